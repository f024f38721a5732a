//! The OpenID provider's items: clients (JSON, listed by the `kind` index), grants (codes and
//! access tokens by their hash, with TTL) and single-use marks (conditional puts with TTL).

use aws_sdk_dynamodb::types::ReturnValue;

use super::codec::{json_from, json_item};
use super::failure::{is_condition_failed, store_error};
use super::item::{n, Item};
use super::schema::{self, oidc_client_key, oidc_grant_key, oidc_mark_key, OIDC_CLIENT};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{is_expired, Grant, OidcClient, UnixTime};
use crate::ports::{GrantKind, OidcStore};

fn grant_of(item: &Item, now: UnixTime) -> Result<Option<Grant>, StoreError> {
    let grant: Grant = json_from(item)?;
    Ok((!is_expired(Some(grant.expires_at), now)).then_some(grant))
}

impl DynamoStore {
    async fn put_new(&self, op: &'static str, item: Item, what: &str) -> Result<(), StoreError> {
        match self.put_if_absent(op, item).await? {
            true => Ok(()),
            false => Err(StoreError::AlreadyExists(what.to_string())),
        }
    }
}

impl OidcStore for DynamoStore {
    async fn create_client(&self, c: &OidcClient) -> Result<(), StoreError> {
        let item = json_item(oidc_client_key(&c.id), Some(OIDC_CLIENT), c)?;
        self.put_new("PutItem oidc client", item, &format!("client {}", c.id))
            .await
    }

    async fn replace_client(&self, c: &OidcClient) -> Result<(), StoreError> {
        let item = json_item(oidc_client_key(&c.id), Some(OIDC_CLIENT), c)?;
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                Err(StoreError::NotFound(format!("client {}", c.id)))
            }
            Err(e) => Err(store_error("PutItem oidc client", &e)),
        }
    }

    async fn get_client(&self, id: &str) -> Result<Option<OidcClient>, StoreError> {
        match self.get("GetItem oidc client", oidc_client_key(id)).await? {
            Some(item) => Ok(Some(json_from(&item)?)),
            None => Ok(None),
        }
    }

    async fn list_clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        let items = self.kind("Query oidc clients", OIDC_CLIENT).await?;
        items.iter().map(json_from).collect()
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_existing("DeleteItem oidc client", oidc_client_key(id))
            .await
    }

    async fn put_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        grant: &Grant,
    ) -> Result<(), StoreError> {
        let mut item = json_item(oidc_grant_key(kind.as_str(), hash), None, grant)?;
        item.insert(schema::TTL_ATTRIBUTE.into(), n(grant.expires_at));
        self.put_new("PutItem oidc grant", item, "grant").await
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        now: UnixTime,
    ) -> Result<Option<Grant>, StoreError> {
        // One conditional delete: of concurrent redemptions exactly one gets the old item.
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(oidc_grant_key(kind.as_str(), hash)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => match out.attributes {
                Some(item) if !item.is_empty() => grant_of(&item, now),
                _ => Ok(None),
            },
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(store_error("DeleteItem oidc grant", &e)),
        }
    }

    async fn read_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        now: UnixTime,
    ) -> Result<Option<Grant>, StoreError> {
        match self
            .get("GetItem oidc grant", oidc_grant_key(kind.as_str(), hash))
            .await?
        {
            Some(item) => grant_of(&item, now),
            None => Ok(None),
        }
    }

    async fn mark_once(
        &self,
        marker: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut item = oidc_mark_key(marker);
        item.insert(schema::TTL_ATTRIBUTE.into(), n(expires_at));
        // A mark whose time is over counts as absent (TTL deletes late, moto never).
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("PutItem oidc mark", &e)),
        }
    }
}
