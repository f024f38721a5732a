//! Test instrumentation of the AWS clients (feature `instrument`, which only the test and
//! benchmark crates turn on): interceptors that count the calls of each route and record the
//! IAM accesses they need, for `e2e::aws_calls` and `e2e::least_privilege`. No function links it.

use super::dynamodb::schema::PLAN;
use crate::model::{INTERACTIVE_PLAN_PREFIX, OIDC_PLAN_PREFIX};

/// An SDK interceptor that records the name of every operation a client starts (one entry per
/// call, retries not counted). Tests and the performance harness attach it to count AWS calls
/// per route: `aws_sdk_kms::config::Builder::from(&cfg).interceptor(counter.clone())`.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl CallCounter {
    /// The operations started so far, in order (e.g. `["GetPublicKey", "Sign"]`).
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// How many calls of `operation` were started.
    pub fn count(&self, operation: &str) -> usize {
        self.calls().iter().filter(|c| *c == operation).count()
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_serialization(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let name = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        if let Ok(mut c) = self.0.lock() {
            c.push(name);
        }
        Ok(())
    }
}

/// An SDK interceptor that records, for every request a client sends, the IAM actions it needs
/// and the partition-key prefix each one touches: `dynamodb:GetItem PLAN#*`, one entry per item
/// of a transaction (IAM checks each item's own action), `kms:Sign`, `lambda:InvokeFunction`.
/// The least-privilege test compares these with template.yaml's statements.
#[derive(Debug, Clone, Default)]
pub struct AccessRecorder(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl AccessRecorder {
    /// Every access recorded so far.
    pub fn accesses(&self) -> std::collections::BTreeSet<String> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }

    /// Records an access (the Lambda invoker's observer calls it: `adapters::lambda`).
    pub fn add(&self, access: String) {
        if let Ok(mut c) = self.0.lock() {
            c.insert(access);
        }
    }
}

/// `PLAN#abc` -> `PLAN#*`, `PLAN#ia_abc` -> `PLAN#ia_*` (interactive-auth plans, their own
/// grant), `PLAN#oidc_abc` -> `PLAN#oidc_*` (the OpenID provider's); a key without `#` (`KEYRING`) stays as it is.
pub fn key_prefix(pk: &str) -> String {
    match pk.split_once('#') {
        Some((PLAN, id)) if id.starts_with(INTERACTIVE_PLAN_PREFIX) => {
            format!("{PLAN}#{INTERACTIVE_PLAN_PREFIX}*")
        }
        Some((PLAN, id)) if id.starts_with(OIDC_PLAN_PREFIX) => {
            format!("{PLAN}#{OIDC_PLAN_PREFIX}*")
        }
        Some((kind, _)) => format!("{kind}#*"),
        None => pk.to_string(),
    }
}

/// The IAM accesses of one DynamoDB request body (`operation` from its `X-Amz-Target`).
pub fn dynamodb_accesses(operation: &str, body: &serde_json::Value) -> Vec<String> {
    let pk = |v: &serde_json::Value| {
        v.get("pk")
            .and_then(|p| p.get("S"))
            .and_then(|s| s.as_str())
            .map(key_prefix)
            .unwrap_or_else(|| "?".into())
    };
    match operation {
        "GetItem" | "DeleteItem" | "UpdateItem" => {
            vec![format!("dynamodb:{operation} {}", pk(&body["Key"]))]
        }
        "PutItem" => vec![format!("dynamodb:PutItem {}", pk(&body["Item"]))],
        "BatchGetItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .flat_map(|t| t["Keys"].as_array().cloned().unwrap_or_default())
            .map(|k| format!("dynamodb:BatchGetItem {}", pk(&k)))
            .collect(),
        "Query" => {
            let index = body
                .get("IndexName")
                .and_then(|i| i.as_str())
                .map(|i| format!(" index {i}"))
                .unwrap_or_default();
            let values = &body["ExpressionAttributeValues"];
            let key = values
                .get(":pk")
                .or_else(|| values.get(":k"))
                .and_then(|v| v.get("S"))
                .and_then(|s| s.as_str())
                .map(key_prefix)
                .unwrap_or_else(|| "?".into());
            vec![format!("dynamodb:Query {key}{index}")]
        }
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .flat_map(|item| {
                        [
                            ("Put", "PutItem", "Item"),
                            ("Update", "UpdateItem", "Key"),
                            ("Delete", "DeleteItem", "Key"),
                            ("ConditionCheck", "ConditionCheckItem", "Key"),
                        ]
                        .into_iter()
                        .filter_map(|(kind, action, field)| {
                            item.get(kind)
                                .map(|k| format!("dynamodb:{action} {}", pk(&k[field])))
                        })
                        .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .unwrap_or_default(),
        other => vec![format!("dynamodb:{other} (unclassified)")],
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for AccessRecorder {
    fn name(&self) -> &'static str {
        "AccessRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or("");
        let body: serde_json::Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(serde_json::Value::Null);
        if let Some(op) = target.strip_prefix("DynamoDB_20120810.") {
            for access in dynamodb_accesses(op, &body) {
                self.add(access);
            }
        } else if let Some(op) = target.strip_prefix("TrentService.") {
            self.add(format!("kms:{op}"));
        } else {
            self.add(format!("unknown {}", request.uri()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_name_the_key_prefix_of_each_item() {
        assert_eq!(key_prefix("PLAN#abc"), "PLAN#*");
        assert_eq!(key_prefix("PLAN#ia_abc"), "PLAN#ia_*");
        assert_eq!(key_prefix("PLAN#oidc_abc"), "PLAN#oidc_*");
        assert_eq!(key_prefix("DEVICE#ia_serial"), "DEVICE#*");
        assert_eq!(key_prefix("KEYRING"), "KEYRING");
        let body = serde_json::json!({"TransactItems": [
            {"Update": {"Key": {"pk": {"S": "PLAN#x"}}}},
            {"Put": {"Item": {"pk": {"S": "AUDIT#2026-11-28"}}}},
            {"Delete": {"Key": {"pk": {"S": "TOKENHASH#ab"}}}},
        ]});
        assert_eq!(
            dynamodb_accesses("TransactWriteItems", &body),
            [
                "dynamodb:UpdateItem PLAN#*",
                "dynamodb:PutItem AUDIT#*",
                "dynamodb:DeleteItem TOKENHASH#*"
            ]
        );
        let query = serde_json::json!({"ExpressionAttributeValues": {":pk": {"S": "DEVICE#s"}}});
        assert_eq!(
            dynamodb_accesses("Query", &query),
            ["dynamodb:Query DEVICE#*"]
        );
        let batch = serde_json::json!({"RequestItems": {"t": {"Keys": [
            {"pk": {"S": "TOKENHASH#ab"}, "sk": {"S": "TOKENHASH"}},
            {"pk": {"S": "DEVICE#s"}, "sk": {"S": "DEVICE"}},
        ]}}});
        assert_eq!(
            dynamodb_accesses("BatchGetItem", &batch),
            [
                "dynamodb:BatchGetItem TOKENHASH#*",
                "dynamodb:BatchGetItem DEVICE#*"
            ]
        );
    }
}
