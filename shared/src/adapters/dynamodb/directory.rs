//! Stages and connectors.

use super::codec::{json_from, json_item};
use super::schema::{connector_key, stage_key, CONNECTOR};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{Connector, Stage};
use crate::ports::Directory;

impl Directory for DynamoStore {
    async fn get_stage(&self, id: &str) -> Result<Option<Stage>, StoreError> {
        self.get("GetItem stage", stage_key(id))
            .await?
            .map(|i| json_from(&i))
            .transpose()
    }

    async fn put_stage(&self, stage: &Stage) -> Result<(), StoreError> {
        self.put(
            "PutItem stage",
            json_item(stage_key(&stage.id), None, stage)?,
        )
        .await
    }

    async fn get_connector(&self, id: &str) -> Result<Option<Connector>, StoreError> {
        self.get("GetItem connector", connector_key(id))
            .await?
            .map(|i| json_from(&i))
            .transpose()
    }

    async fn put_connector(&self, c: &Connector) -> Result<(), StoreError> {
        self.put(
            "PutItem connector",
            json_item(connector_key(&c.id), Some(CONNECTOR), c)?,
        )
        .await
    }

    async fn list_connectors(&self) -> Result<Vec<Connector>, StoreError> {
        self.kind("Query connectors", CONNECTOR)
            .await?
            .iter()
            .map(json_from)
            .collect()
    }
}
