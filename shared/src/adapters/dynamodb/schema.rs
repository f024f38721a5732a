//! The table's schema: key attributes, the index, the TTL attribute, and every item key (the
//! key prefixes are written here and nowhere else). `endpoint-admin init` creates the table
//! from these and `template.yaml` declares the same (a test checks the two agree).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::Item;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const TTL_ATTRIBUTE: &str = "expires_at";
pub const KIND_INDEX: &str = "kind-index";
pub const KIND: &str = "kind";

/// Sort keys of the items that are alone in their partition, and the `kind` of GSI items.
pub const PLAN: &str = "PLAN";
pub const STAGE: &str = "STAGE";
pub const CONNECTOR: &str = "CONNECTOR";
pub const DEVICE: &str = "DEVICE";
pub const TOKEN_INDEX: &str = "TOKENHASH";
pub const ENROLLMENT: &str = "ENROLL";

/// `pk` + `sk` as an item key.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.into(), Av::S(pk)), (SK.into(), Av::S(sk.into()))])
}
pub(crate) fn plan_key(id: &str) -> Item {
    key(format!("PLAN#{id}"), PLAN)
}
pub(crate) fn stage_key(id: &str) -> Item {
    key(format!("STAGE#{id}"), STAGE)
}
pub(crate) fn connector_key(id: &str) -> Item {
    key(format!("CONNECTOR#{id}"), CONNECTOR)
}
pub(crate) fn device_pk(identifier: &str) -> String {
    format!("DEVICE#{identifier}")
}
pub(crate) fn device_key(identifier: &str) -> Item {
    key(device_pk(identifier), DEVICE)
}
/// The connection version item of (device, connector).
pub(crate) fn connection_sk(connector: &str) -> String {
    format!("CONN#{connector}")
}
/// Every token of (device, connector) has a sort key starting with this.
pub(crate) fn token_prefix(connector: &str) -> String {
    format!("TOKEN#{connector}#")
}
pub(crate) fn token_sk(connector: &str, id: &str) -> String {
    format!("{}{id}", token_prefix(connector))
}
/// Any token of the device, whatever its connector.
pub(crate) const ANY_TOKEN: &str = "TOKEN#";
pub(crate) fn token_index_key(key_sha256: &str) -> Item {
    key(format!("TOKENHASH#{key_sha256}"), TOKEN_INDEX)
}
pub(crate) fn enrollment_key(key_sha256: &str) -> Item {
    key(format!("ENROLL#{key_sha256}"), ENROLLMENT)
}
pub(crate) fn facts_pk(identifier: &str) -> String {
    format!("FACTS#{identifier}")
}
pub(crate) fn facts_sk(connector: &str) -> String {
    format!("SNAPSHOT#{connector}")
}
