//! Table administration: create it (for `endpoint-admin init` and tests), check it exists.

use super::failure::store_error;
use super::item::built;
use super::schema;
use super::store::DynamoStore;
use crate::adapters::aws::{classify, Failure};
use crate::error::StoreError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

impl DynamoStore {
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let attr = |name: &str| {
            built(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )
        };
        let key_el = |name: &str, t: KeyType| {
            built(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(t)
                    .build(),
            )
        };
        let gsi = built(
            GlobalSecondaryIndex::builder()
                .index_name(schema::KIND_INDEX)
                .key_schema(key_el(schema::KIND, KeyType::Hash)?)
                .key_schema(key_el(schema::PK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build(),
        )?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(schema::PK)?)
            .attribute_definitions(attr(schema::SK)?)
            .attribute_definitions(attr(schema::KIND)?)
            .key_schema(key_el(schema::PK, KeyType::Hash)?)
            .key_schema(key_el(schema::SK, KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if matches!(classify(&e), Failure::Service(c) if c == "ResourceInUseException") => {
                return Ok(false)
            }
            Err(e) => return Err(store_error("CreateTable", &e)),
        }
        // Wait until ACTIVE (moto is immediate; DynamoDB takes seconds).
        for _ in 0..60 {
            let d = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| store_error("DescribeTable", &e))?;
            if d.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(built(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(schema::TTL_ATTRIBUTE)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| store_error("UpdateTimeToLive", &e))?;
        Ok(true)
    }

    /// Whether the table exists (one DescribeTable; `endpoint-admin` asks before any command
    /// but `init`, so that a wrong table name gets a clear answer).
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("DescribeTable", &e)),
        }
    }

    /// Whether TTL is enabled on `expires_at` (for `init` and tests).
    pub async fn ttl_attribute(&self) -> Result<Option<String>, StoreError> {
        let d = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| store_error("DescribeTimeToLive", &e))?;
        Ok(d.time_to_live_description()
            .filter(|t| t.time_to_live_status().map(|s| s.as_str()) == Some("ENABLED"))
            .and_then(|t| t.attribute_name().map(str::to_string)))
    }
}
