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

/// Every attribute name the items use besides the keys (written here and nowhere else).
pub mod attr {
    pub const CHALLENGE: &str = "challenge";
    pub const CHALLENGE_EXP: &str = "challenge_exp";
    pub const CHALLENGE_KEY: &str = "challenge_key";
    pub const CHECK_IN: &str = "check_in";
    pub const CONNECTOR: &str = "connector";
    pub const CREATED_AT: &str = "created_at";
    pub const DATA: &str = "data";
    pub const DENIAL: &str = "denial";
    pub const DEVICE: &str = "device";
    pub const DEVICE_AUTH: &str = "device_auth";
    pub const DEVICE_ID: &str = "device_id";
    pub const DEVICE_NAME: &str = "device_name";
    pub const ENABLED: &str = "enabled";
    pub const FACTS_DEFLATE: &str = "facts_deflate";
    pub const ID: &str = "id";
    pub const IDENTIFIER: &str = "identifier";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    pub const ISSUED: &str = "issued";
    pub const KEY: &str = "key";
    pub const MODE: &str = "mode";
    pub const NAME: &str = "name";
    pub const REDIRECT: &str = "redirect";
    pub const STAGE: &str = "stage";
    pub const STATUS: &str = "status";
    pub const TOKEN_ID: &str = "token_id";
    pub const TRUNCATED: &str = "truncated";
    pub const VERSION: &str = "version";
}
