//! Items as attribute maps: reading and writing typed attributes, the lowest layer of the
//! adapter (every other file of `dynamodb/` builds on it).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;

use crate::error::StoreError;

pub(super) type Item = HashMap<String, Av>;

pub(super) fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}
pub(super) fn n(v: i64) -> Av {
    Av::N(v.to_string())
}

pub(super) fn corrupt(field: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {field} missing or of the wrong type"))
}
pub(super) fn get_s(item: &Item, f: &str) -> Result<String, StoreError> {
    item.get(f)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| corrupt(f))
}
pub(super) fn opt_s(item: &Item, f: &str) -> Option<String> {
    item.get(f).and_then(|v| v.as_s().ok()).cloned()
}
pub(super) fn get_n(item: &Item, f: &str) -> Result<i64, StoreError> {
    item.get(f)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(f))
}
pub(super) fn opt_n(item: &Item, f: &str) -> Result<Option<i64>, StoreError> {
    match item.get(f) {
        None | Some(Av::Null(_)) => Ok(None),
        Some(_) => get_n(item, f).map(Some),
    }
}
pub(super) fn get_bool(item: &Item, f: &str) -> Result<bool, StoreError> {
    item.get(f)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .ok_or_else(|| corrupt(f))
}
pub(super) fn put_opt_n(item: &mut Item, f: &str, v: Option<i64>) {
    if let Some(v) = v {
        item.insert(f.into(), n(v));
    }
}

pub(super) fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("request could not be built: {e}")))
}
