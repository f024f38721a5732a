//! Records of challenge data keys (`DATAKEY#<kid>`, issue 31.4): written once by
//! `endpoint-admin key create-data-key` (never overwritten), read once per instance by the
//! functions that publish or sign with them.

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::item::{corrupt, get_n, get_s, n, s, Item};
use super::schema::{self, data_key_key};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::DataKeyRecord;
use crate::ports::DataKeyRecords;

const PUBLIC_KEY: &str = "public_key";
const WRAPPED_PRIVATE_KEY: &str = "wrapped_private_key";
const WRAPPING_KEY: &str = "wrapping_key";
const KID: &str = "kid";

fn blob(item: &Item, name: &str) -> Result<Vec<u8>, StoreError> {
    item.get(name)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| corrupt(name))
}

impl DataKeyRecords for DynamoStore {
    async fn get_data_key(&self, kid: &str) -> Result<Option<DataKeyRecord>, StoreError> {
        let Some(item) = self.get("GetItem data key", data_key_key(kid)).await? else {
            return Ok(None);
        };
        Ok(Some(DataKeyRecord {
            kid: get_s(&item, KID)?,
            public_key: blob(&item, PUBLIC_KEY)?,
            wrapped_private_key: blob(&item, WRAPPED_PRIVATE_KEY)?,
            wrapping_key: get_s(&item, WRAPPING_KEY)?,
            created_at: get_n(&item, schema::attr::CREATED_AT)?,
        }))
    }

    async fn put_data_key(&self, record: &DataKeyRecord) -> Result<bool, StoreError> {
        let mut item = data_key_key(&record.kid);
        item.insert(KID.into(), s(&record.kid));
        item.insert(PUBLIC_KEY.into(), Av::B(record.public_key.clone().into()));
        item.insert(
            WRAPPED_PRIVATE_KEY.into(),
            Av::B(record.wrapped_private_key.clone().into()),
        );
        item.insert(WRAPPING_KEY.into(), s(&record.wrapping_key));
        item.insert(schema::attr::CREATED_AT.into(), n(record.created_at));
        self.put_if_absent("PutItem data key", item).await
    }
}
