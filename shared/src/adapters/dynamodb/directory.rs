//! Stages, connectors and posture policies.

use super::codec::{json_from, json_item};
use super::schema::{connector_key, policy_key, stage_key, CONNECTOR, POLICY, STAGE};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{Connector, Policy, Stage};
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
            json_item(stage_key(&stage.id), Some(STAGE), stage)?,
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

    async fn list_stages(&self) -> Result<Vec<Stage>, StoreError> {
        self.kind("Query stages", STAGE)
            .await?
            .iter()
            .map(json_from)
            .collect()
    }

    async fn get_policy(&self, id: &str) -> Result<Option<Policy>, StoreError> {
        self.get("GetItem policy", policy_key(id))
            .await?
            .map(|i| json_from(&i))
            .transpose()
    }

    async fn get_policies(&self, ids: &[String]) -> Result<Vec<Policy>, StoreError> {
        // A connector's stages use a few policies: their reads go out together.
        let reads = ids.iter().map(|id| self.get_policy(id));
        let found = futures::future::join_all(reads).await;
        found.into_iter().filter_map(Result::transpose).collect()
    }

    async fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        self.put(
            "PutItem policy",
            json_item(policy_key(&policy.id), Some(POLICY), policy)?,
        )
        .await
    }

    async fn list_policies(&self) -> Result<Vec<Policy>, StoreError> {
        self.kind("Query policies", POLICY)
            .await?
            .iter()
            .map(json_from)
            .collect()
    }

    async fn delete_policy(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_existing("DeleteItem policy", policy_key(id))
            .await
    }
}
