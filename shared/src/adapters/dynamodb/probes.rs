//! `/health`'s read of the table: one consistent `GetItem` of the `HEALTH`
//! key, where no item is ever written (half a read unit; the functions' IAM grant names that
//! key alone).

use super::schema::health_key;
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::ports::TableProbe;

impl TableProbe for DynamoStore {
    async fn probe_table(&self) -> Result<(), StoreError> {
        self.get("GetItem health", health_key()).await.map(|_| ())
    }
}
