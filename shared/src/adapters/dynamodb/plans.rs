//! The plan store: one item per plan, every transition one conditional write.

use aws_smithy_runtime_api::client::result::SdkError;

use super::codec::to_json;
use super::codec::{plan_from, plan_item};
use super::failure::{
    failed_conditions, is_condition_failed, is_transaction_conflict, store_error,
};
use super::item::{built, n, s, Item};
use super::schema;
use super::schema::{attr, plan_key};
use super::store::DynamoStore;
use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::model::ComplianceView;
use crate::model::{is_expired, PendingChallenge, Plan, PlanStatus, UnixTime};
use crate::ports::{Finish, PlanStore, Reserve};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use std::collections::HashMap;

/// The conditional update that ends a plan: pending and unexpired (and, when consuming, still
/// waiting for exactly that challenge) -> passed or denied, its pending challenge removed.
struct PlanEnd {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

impl PlanEnd {
    fn of(
        finish: &Finish,
        consume: Option<&str>,
        now: UnixTime,
        compliance: Option<&ComplianceView>,
    ) -> Result<Self, StoreError> {
        let mut names: HashMap<String, String> = [
            ("#pk", schema::PK),
            ("#status", attr::STATUS),
            ("#ended", attr::ENDED_AT),
            ("#exp", schema::TTL_ATTRIBUTE),
            ("#ch", attr::CHALLENGE),
            ("#chexp", attr::CHALLENGE_EXP),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut values: Item = [
            (":pending", s(PlanStatus::Pending.as_str())),
            (":now", n(now)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut condition =
            "attribute_exists(#pk) AND #status = :pending AND #exp > :now".to_string();
        if let Some(jws) = consume {
            condition.push_str(" AND #ch = :consumed");
            values.insert(":consumed".into(), s(jws));
        }
        let update = match finish {
            Finish::Passed(device) => {
                values.insert(":final".into(), s(PlanStatus::Passed.as_str()));
                match device {
                    Some(d) => {
                        names.insert("#did".into(), attr::DEVICE_ID.into());
                        names.insert("#dname".into(), attr::DEVICE_NAME.into());
                        values.insert(":did".into(), s(&d.identifier));
                        values.insert(":dname".into(), s(&d.name));
                        match &d.id {
                            Some(uuid) => {
                                names.insert("#duuid".into(), attr::DEVICE_UUID.into());
                                values.insert(":duuid".into(), s(uuid));
                                "SET #status = :final, #did = :did, #dname = :dname, #duuid = :duuid REMOVE #ch, #chexp"
                            }
                            None => "SET #status = :final, #did = :did, #dname = :dname REMOVE #ch, #chexp",
                        }
                    }
                    None => "SET #status = :final REMOVE #ch, #chexp",
                }
            }
            Finish::Denied(message) => {
                names.insert("#denial".into(), attr::DENIAL.into());
                values.insert(":final".into(), s(PlanStatus::Denied.as_str()));
                values.insert(":denial".into(), s(message));
                "SET #status = :final, #denial = :denial REMOVE #ch, #chexp"
            }
        };
        // `SET a, b REMOVE c`: the end's time joins the SET clause (`:now`, of the condition).
        let mut update = update.replacen(" REMOVE", ", #ended = :now REMOVE", 1);
        if let Some(view) = compliance {
            // `SET a, b REMOVE c`: the compliance joins the SET clause.
            update = update.replacen(" REMOVE", ", #compliance = :compliance REMOVE", 1);
            names.insert("#compliance".into(), attr::COMPLIANCE.into());
            values.insert(":compliance".into(), s(to_json(view)?));
        }
        Ok(PlanEnd {
            update,
            condition,
            names,
            values,
        })
    }
}

impl PlanStore for DynamoStore {
    async fn create_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        match self.put_if_absent("PutItem plan", plan_item(plan)?).await? {
            true => Ok(()),
            false => Err(StoreError::AlreadyExists(format!("plan {}", plan.id))),
        }
    }

    async fn get_plan(&self, id: &str, now: UnixTime) -> Result<Option<Plan>, StoreError> {
        match self.get("GetItem plan", plan_key(id)).await? {
            Some(item) => {
                let plan = plan_from(&item)?;
                Ok((!is_expired(Some(plan.expires_at), now)).then_some(plan))
            }
            None => Ok(None),
        }
    }

    async fn reserve_challenge(
        &self,
        id: &str,
        max: u32,
        now: UnixTime,
    ) -> Result<Reserve, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .update_expression("SET #issued = #issued + :one")
            .condition_expression(
                "attribute_exists(#pk) AND #status = :pending AND #exp > :now AND #issued < :max",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#issued", attr::ISSUED)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max.into()))
            .expression_attribute_values(":pending", s(PlanStatus::Pending.as_str()))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => match out.attributes {
                Some(item) => Ok(Reserve::Granted(plan_from(&item)?)),
                None => Err(StoreError::Corrupt(
                    "the reserved plan was not returned".into(),
                )),
            },
            Err(e) if is_condition_failed(&e) => {
                // DynamoDB returns the item that failed the condition; read it if it did not.
                let returned = match &e {
                    SdkError::ServiceError(se) => match se.err() {
                        UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                        _ => None,
                    },
                    _ => None,
                };
                let item = match returned {
                    Some(item) => Some(item),
                    None => {
                        self.get("GetItem plan (refused reservation)", plan_key(id))
                            .await?
                    }
                };
                Ok(Reserve::Refused(item.as_ref().map(plan_from).transpose()?))
            }
            Err(e) => Err(store_error("UpdateItem reserve_challenge", &e)),
        }
    }

    async fn set_challenge(
        &self,
        id: &str,
        challenge: &PendingChallenge,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .update_expression("SET #ch = :ch, #chexp = :chexp")
            .condition_expression("attribute_exists(#pk) AND #status = :pending AND #exp > :now")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#ch", attr::CHALLENGE)
            .expression_attribute_names("#chexp", attr::CHALLENGE_EXP)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":ch", s(&challenge.jws))
            .expression_attribute_values(":chexp", n(challenge.exp))
            .expression_attribute_values(":pending", s(PlanStatus::Pending.as_str()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem set_challenge", &e)),
        }
    }

    async fn finish_plan(
        &self,
        id: &str,
        finish: &Finish,
        consume: Option<&str>,
        now: UnixTime,
        audit: Option<&AuditEvent>,
        compliance: Option<&ComplianceView>,
    ) -> Result<bool, StoreError> {
        let PlanEnd {
            update,
            condition,
            names,
            values,
        } = PlanEnd::of(finish, consume, now, compliance)?;
        if let Some(event) = audit {
            // The plan's end and its audit record in one write: no extra round trip.
            let ended = Update::builder()
                .table_name(&self.table)
                .set_key(Some(plan_key(id)))
                .update_expression(&update)
                .condition_expression(&condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .build();
            let actions = vec![
                TransactWriteItem::builder().update(built(ended)?).build(),
                self.put_action(self.audit_item(event)?)?,
            ];
            let r = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(true),
                Err(e) if failed_conditions(&e).contains(&0) => return Ok(false),
                Err(e) if is_transaction_conflict(&e) => return Ok(false),
                Err(e) => {
                    // The audit record must never fail a login: end the plan alone.
                    let _ = store_error("TransactWriteItems finish_plan with audit", &e);
                    tracing::error!(
                        event = "audit_write_failed",
                        code = %event.code,
                        "audit record not stored with the plan's end; ending the plan alone"
                    );
                }
            }
        }
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem finish_plan", &e)),
        }
    }

    async fn keep_assertion(
        &self,
        id: &str,
        assertion: &str,
    ) -> Result<Option<String>, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .update_expression("SET #assertion = :assertion")
            .condition_expression(
                "attribute_exists(#pk) AND #status = :passed AND attribute_not_exists(#assertion)",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#assertion", attr::ASSERTION)
            .expression_attribute_values(":passed", s(PlanStatus::Passed.as_str()))
            .expression_attribute_values(":assertion", s(assertion))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(assertion.to_string())),
            Err(e) if is_condition_failed(&e) => {
                // A concurrent first read stored its assertion first: answer that one. DynamoDB
                // returns the item that failed the condition; read it if it did not.
                let returned = match &e {
                    SdkError::ServiceError(se) => match se.err() {
                        UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                        _ => None,
                    },
                    _ => None,
                };
                let item = match returned {
                    Some(item) => Some(item),
                    None => {
                        self.get("GetItem plan (assertion kept)", plan_key(id))
                            .await?
                    }
                };
                Ok(item
                    .as_ref()
                    .map(plan_from)
                    .transpose()?
                    .filter(|p| p.status == PlanStatus::Passed)
                    .and_then(|p| p.assertion))
            }
            Err(e) => Err(store_error("UpdateItem keep_assertion", &e)),
        }
    }
}
