//! The plan store: one item per plan, every transition one conditional write.

use super::*;

impl PlanStore for DynamoStore {
    async fn create_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(plan_item(plan)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                Err(StoreError::AlreadyExists(format!("plan {}", plan.id)))
            }
            Err(e) => Err(store_error("PutItem plan", &e)),
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
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#ch", attr::CHALLENGE)
            .expression_attribute_names("#chexp", attr::CHALLENGE_EXP)
            .expression_attribute_values(":pending", s(PlanStatus::Pending.as_str()))
            .expression_attribute_values(":now", n(now));
        let mut condition =
            "attribute_exists(#pk) AND #status = :pending AND #exp > :now".to_string();
        if let Some(jws) = consume {
            condition.push_str(" AND #ch = :consumed");
            req = req.expression_attribute_values(":consumed", s(jws));
        }
        let update = match finish {
            Finish::Passed(device) => {
                req = req.expression_attribute_values(":final", s(PlanStatus::Passed.as_str()));
                match device {
                    Some(d) => {
                        req = req
                            .expression_attribute_names("#did", attr::DEVICE_ID)
                            .expression_attribute_names("#dname", attr::DEVICE_NAME)
                            .expression_attribute_values(":did", s(&d.identifier))
                            .expression_attribute_values(":dname", s(&d.name));
                        "SET #status = :final, #did = :did, #dname = :dname REMOVE #ch, #chexp"
                    }
                    None => "SET #status = :final REMOVE #ch, #chexp",
                }
            }
            Finish::Denied(message) => {
                req = req
                    .expression_attribute_names("#denial", attr::DENIAL)
                    .expression_attribute_values(":final", s(PlanStatus::Denied.as_str()))
                    .expression_attribute_values(":denial", s(message));
                "SET #status = :final, #denial = :denial REMOVE #ch, #chexp"
            }
        };
        let r = req
            .update_expression(update)
            .condition_expression(condition)
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem finish_plan", &e)),
        }
    }
}
