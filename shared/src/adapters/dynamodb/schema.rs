//! The table's schema: key attributes, the index, the TTL attribute, and every item key (the
//! key prefixes are written here and nowhere else). `endpoint-admin init` creates the table
//! from these and `template.yaml` declares the same (a test checks the two agree).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::item::Item;

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
pub const KEYRING: &str = "KEYRING";
pub const LIMIT: &str = "LIMIT";
pub const POLICY: &str = "POLICY";
pub const RECEIVER: &str = "RECEIVER";
pub const STREAM: &str = "STREAM";
/// The OpenID provider's clients (the `kind` index lists them), grants and single-use marks.
pub const OIDC_CLIENT: &str = "OIDCCLIENT";
pub const OIDC_GRANT: &str = "OIDCGRANT";
pub const OIDC_MARK: &str = "OIDCMARK";
/// The `kind` of a non-compliant evaluation (a sparse index lists them).
pub const NON_COMPLIANT: &str = "NONCOMPLIANT";

/// The sort key of an item (empty if it has none).
pub(super) fn sk_of(item: &Item) -> &str {
    item.get(SK)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or("")
}

/// `pk` + `sk` as an item key.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.into(), Av::S(pk)), (SK.into(), Av::S(sk.into()))])
}
pub(crate) fn plan_key(id: &str) -> Item {
    key(format!("{PLAN}#{id}"), PLAN)
}
pub(crate) fn stage_key(id: &str) -> Item {
    key(format!("STAGE#{id}"), STAGE)
}
pub(crate) fn connector_key(id: &str) -> Item {
    key(format!("CONNECTOR#{id}"), CONNECTOR)
}
pub(crate) const DEVICE_PREFIX: &str = "DEVICE#";
pub(crate) fn device_pk(identifier: &str) -> String {
    format!("{DEVICE_PREFIX}{identifier}")
}
pub(crate) fn device_key(identifier: &str) -> Item {
    key(device_pk(identifier), DEVICE)
}
pub(crate) fn policy_key(id: &str) -> Item {
    key(format!("{POLICY}#{id}"), POLICY)
}
/// A device's stored evaluation under one policy, in the device partition (read with the
/// device by the login's one query).
pub(crate) fn compliance_sk(policy: &str) -> String {
    format!("{ANY_COMPLIANCE}{policy}")
}
pub(crate) const ANY_COMPLIANCE: &str = "COMPLIANCE#";
/// The connection version item of (device, connector).
pub(crate) fn connection_sk(connector: &str) -> String {
    format!("{ANY_CONNECTION}{connector}")
}
/// Every connection item's sort key starts with this: the connectors a serial is enrolled on.
pub(crate) const ANY_CONNECTION: &str = "CONN#";
/// The `kind` of a connector's token index items: the GSI lists the connector's device tokens
/// (which devices have fetched a next challenge key: `RolloutStore`).
pub(crate) fn connector_tokens_kind(connector: &str) -> String {
    format!("TOKENS#{connector}")
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
    key(enrollment_pk(key_sha256), ENROLLMENT)
}
/// The partition of an enrollment token: its record and the enrollments it made.
pub(crate) const ENROLLMENT_PREFIX: &str = "ENROLL#";
pub(crate) fn enrollment_pk(key_sha256: &str) -> String {
    format!("{ENROLLMENT_PREFIX}{key_sha256}")
}
/// Enrollments an enrollment token made: one item per serial in the token's partition.
pub(crate) fn enrollment_use_sk(serial: &str) -> String {
    format!("USE#{serial}")
}
pub(crate) const ANY_ENROLLMENT_USE: &str = "USE#";
/// The wrapped data key that seals device token keys.
pub(crate) fn keyring_key() -> Item {
    key(KEYRING.to_string(), "DATAKEY")
}
/// The key `/health` reads to see that the table answers: no item is ever
/// written there.
pub const HEALTH: &str = "HEALTH";
pub(crate) fn health_key() -> Item {
    key(HEALTH.to_string(), HEALTH)
}
/// A challenge data key's record (the `data-key` signing mode).
pub const DATA_KEY: &str = "DATAKEY";
pub(crate) fn data_key_key(kid: &str) -> Item {
    key(format!("{DATA_KEY}#{kid}"), DATA_KEY)
}
/// A fixed-window counter of an abuse limit.
pub(crate) fn limit_key(bucket: &str) -> Item {
    key(format!("LIMIT#{bucket}"), LIMIT)
}
/// Audit records of one UTC day: `AUDIT#2026-11-28`, sorted by record id (time first).
pub(crate) fn audit_pk(day: &str) -> String {
    format!("AUDIT#{day}")
}
/// The `kind` of a device's audit records (proven or only claimed serial): the GSI lists them
/// by day, so `audit list --device` reads that device's records and nothing else.
pub(crate) fn audit_device_kind(serial: &str) -> String {
    format!("AUDIT#DEVICE#{serial}")
}
pub(crate) fn receiver_key(id: &str) -> Item {
    key(format!("{RECEIVER}#{id}"), RECEIVER)
}
pub(crate) fn stream_key(id: &str) -> Item {
    key(format!("{STREAM}#{id}"), STREAM)
}
/// The outbox's events as their writers commit them, not settled yet (sorted by event id).
pub(crate) const SIGNAL_INBOX_PK: &str = "SIGNAL#INBOX";
/// The settled events, sorted by the `seq` the settling gave them.
pub(crate) const SIGNAL_LOG_PK: &str = "SIGNAL#LOG";
/// The writers' heads, one item per writer (region): the settling's one conditional write.
pub(crate) const SIGNAL_HEAD_PK: &str = "SIGNAL#HEAD";
/// A writer's head: the last `seq` it gave (`count`) and up to which older `seq` it adopted
/// (`adopted`). `HEAD` is one region's (and every writer's before regions: region codes are
/// lowercase, so none is `HEAD`).
pub(crate) fn signal_head_key(writer: &str) -> Item {
    let sk = if writer.is_empty() { "HEAD" } else { writer };
    key(SIGNAL_HEAD_PK.to_string(), sk)
}
/// A `seq` as a sort key (zero-padded: text order is number order).
pub(crate) fn seq_sk(seq: u64) -> String {
    format!("{seq:020}")
}
/// The SETs signed for one receiver, by `seq`.
pub(crate) fn signed_set_pk(receiver: &str) -> String {
    format!("SET#{receiver}")
}
/// How many streams a receiver holds (`count`), counted with each creation and deletion.
pub(crate) fn stream_count_key(receiver: &str) -> Item {
    key(format!("{STREAM}#COUNT#{receiver}"), "COUNT")
}
pub(crate) fn oidc_client_key(id: &str) -> Item {
    key(format!("{OIDC_CLIENT}#{id}"), OIDC_CLIENT)
}
/// A code or access token by its SHA-256 (`kind`: `CODE` or `ACCESS`).
pub(crate) fn oidc_grant_key(kind: &str, sha256: &str) -> Item {
    key(format!("{OIDC_GRANT}#{kind}#{sha256}"), OIDC_GRANT)
}
/// A single-use mark (a client assertion's `jti`, a plan's one return).
pub(crate) fn oidc_mark_key(marker: &str) -> Item {
    key(format!("{OIDC_MARK}#{marker}"), OIDC_MARK)
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
    /// A plan's compliance view when it ended (JSON).
    pub const COMPLIANCE: &str = "compliance";
    pub const COUNT: &str = "count";
    /// A signal writer's head: up to which `seq` below its epoch it looked for late events.
    pub const ADOPTED: &str = "adopted";
    /// A settled signal event's writer (the region that numbered it; `""`: one region).
    pub const WRITER: &str = "writer";
    pub const CONNECTOR: &str = "connector";
    pub const CREATED_AT: &str = "created_at";
    pub const DATA: &str = "data";
    pub const DENIAL: &str = "denial";
    pub const DEVICE: &str = "device";
    pub const DEVICE_AUTH: &str = "device_auth";
    pub const DEVICE_ID: &str = "device_id";
    pub const DEVICE_NAME: &str = "device_name";
    /// A plan's device's stable id (the `device_id` of a device item is its UUID; a plan's
    /// `device_id` is, for history's sake, the serial).
    pub const DEVICE_UUID: &str = "device_uuid";
    /// A plan's end, and what its device assertion carries.
    pub const ENDED_AT: &str = "ended_at";
    pub const NONCE: &str = "nonce";
    /// A plan's OpenID authorization request (JSON).
    pub const OIDC: &str = "oidc";
    pub const AUDIENCE: &str = "audience";
    /// A passed plan's device assertion (signed once); a stage's registered audiences.
    pub const ASSERTION: &str = "assertion";
    pub const AUDIENCES: &str = "audiences";
    pub const ENABLED: &str = "enabled";
    pub const FACTS_DEFLATE: &str = "facts_deflate";
    pub const ID: &str = "id";
    pub const IDENTIFIER: &str = "identifier";
    pub const HELP: &str = "help";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    pub const ISSUED: &str = "issued";
    /// A device token key in plain text: only on records written before sealing (migrate
    /// seals them).
    pub const KEY: &str = "key";
    pub const KEY_SEALED: &str = "key_sealed";
    pub const KEY_SHA256: &str = "key_sha256";
    pub const LAST_USED_AT: &str = "last_used_at";
    /// A device's lock: since when, until when (absent: until unlocked), the operator's reason.
    pub const LOCKED_SINCE: &str = "locked_since";
    pub const LOCKED_UNTIL: &str = "locked_until";
    pub const LOCK_REASON: &str = "lock_reason";
    pub const MAX_USES: &str = "max_uses";
    /// A plan's owner; an enrollment token's `--owner`.
    pub const OWNER: &str = "owner";
    /// A device's owners (a list of strings; absent: none).
    pub const OWNERS: &str = "owners";
    pub const PLAIN_KEYS_REFUSED: &str = "plain_keys_refused";
    /// A plan's snapshot of its stage's policy (JSON).
    pub const POLICY: &str = "policy";
    pub const REVOKED_AT: &str = "revoked_at";
    pub const SERIAL: &str = "serial";
    pub const USES: &str = "uses";
    pub const WRAPPED_KEY: &str = "wrapped_key";
    /// The keyring's data key generation (absent: 0) and, during a rotation, the next one.
    pub const GENERATION: &str = "generation";
    pub const NEXT_GENERATION: &str = "next_generation";
    pub const NEXT_WRAPPED_KEY: &str = "next_wrapped_key";
    pub const MODE: &str = "mode";
    pub const NAME: &str = "name";
    pub const REDIRECT: &str = "redirect";
    pub const STAGE: &str = "stage";
    pub const STATUS: &str = "status";
    pub const TOKEN_ID: &str = "token_id";
    pub const TRUNCATED: &str = "truncated";
    pub const VERSION: &str = "version";
    /// A push stream's `Authorization` header, sealed like device keys.
    pub const AUTH_SEALED: &str = "auth_sealed";
    /// On a token index item: the next challenge key of the configuration its device last
    /// fetched with one pending, and when (`RolloutStore`).
    pub const CONFIG_NEXT_KEY: &str = "config_next_key";
    pub const CONFIG_FETCHED_AT: &str = "config_fetched_at";
}
