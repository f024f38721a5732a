//! The parameters of the provider's form and query requests, each bounded: at most
//! [`MAX_PARAMS`] parameters, each at most its own size, none twice (OIDC Core 3.1.2.1: a
//! parameter sent more than once is an error).

use std::collections::BTreeMap;

/// The most parameters one request may carry (known or not).
pub const MAX_PARAMS: usize = 64;
/// The longest value of a parameter not named in [`max_len`].
pub const MAX_VALUE: usize = 2048;
/// The longest `id_token_hint` (Entra's hints are about 2 KiB).
pub const MAX_HINT: usize = 16 * 1024;
/// The longest `claims` parameter (JSON), and its deepest nesting.
pub const MAX_CLAIMS: usize = 4096;
pub const MAX_CLAIMS_DEPTH: usize = 6;
/// The longest client assertion (`private_key_jwt`).
pub const MAX_ASSERTION: usize = 8 * 1024;

/// The longest value accepted for `name`.
pub fn max_len(name: &str) -> usize {
    match name {
        "id_token_hint" => MAX_HINT,
        "claims" => MAX_CLAIMS,
        "client_assertion" => MAX_ASSERTION,
        _ => MAX_VALUE,
    }
}

/// Why a request's parameters were refused (before anything else was looked at).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("too many parameters (at most {MAX_PARAMS})")]
    TooMany,
    #[error("the parameter {0} is too long")]
    TooLong(String),
    #[error("the parameter {0} is given more than once")]
    Repeated(String),
    #[error("the parameters are not a valid form")]
    Malformed,
}

/// A request's parameters by name (an empty value counts as absent, OIDC Core 3.1.2.1 style).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses an `application/x-www-form-urlencoded` string (a query or a form body).
    pub fn parse(form: &str) -> Result<Params, ParamError> {
        if form.bytes().filter(|b| *b == b'&').count() >= MAX_PARAMS * 2 {
            return Err(ParamError::TooMany);
        }
        Self::from_pairs(
            url::form_urlencoded::parse(form.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
        )
    }

    /// From name/value pairs, bounded.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Params, ParamError> {
        let mut out = BTreeMap::new();
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            if i >= MAX_PARAMS {
                return Err(ParamError::TooMany);
            }
            if name.len() > 64 || value.len() > max_len(&name) {
                return Err(ParamError::TooLong(name.chars().take(64).collect()));
            }
            if value.is_empty() {
                continue;
            }
            if out.insert(name.clone(), value).is_some() {
                return Err(ParamError::Repeated(name));
            }
        }
        Ok(Params(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Whether a JSON value nests deeper than `max` (objects and arrays).
pub fn deeper_than(v: &serde_json::Value, max: usize) -> bool {
    if max == 0 {
        return matches!(
            v,
            serde_json::Value::Object(_) | serde_json::Value::Array(_)
        );
    }
    match v {
        serde_json::Value::Object(m) => m.values().any(|x| deeper_than(x, max - 1)),
        serde_json::Value::Array(a) => a.iter().any(|x| deeper_than(x, max - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_repeats_are_refused() {
        let ok = Params::parse("a=1&b=&c=%20x").expect("a valid form");
        assert_eq!(ok.get("a"), Some("1"));
        assert_eq!(ok.get("b"), None);
        assert_eq!(ok.get("c"), Some(" x"));
        assert_eq!(
            Params::parse("a=1&a=2"),
            Err(ParamError::Repeated("a".into()))
        );
        let long = format!("state={}", "x".repeat(MAX_VALUE + 1));
        assert!(matches!(Params::parse(&long), Err(ParamError::TooLong(_))));
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(Params::parse(&many.join("&")), Err(ParamError::TooMany));
        let deep: serde_json::Value = serde_json::from_str("[[[[[[[1]]]]]]]").expect("json");
        assert!(deeper_than(&deep, MAX_CLAIMS_DEPTH));
        assert!(!deeper_than(
            &serde_json::json!({"id_token": {"acr": {"values": ["a"]}}}),
            MAX_CLAIMS_DEPTH
        ));
    }
}
