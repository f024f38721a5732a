//! Enrollment tokens, found by the SHA-256 of their key, and the enrollments each made.

use super::failure::{is_condition_failed, store_error};
use super::item::{corrupt, get_n, get_s, n, opt_n, opt_s, put_opt_n, s, Item};
use super::schema;
use super::schema::{
    attr, enrollment_key, enrollment_pk, sk_of, ANY_ENROLLMENT_USE, ENROLLMENT, ENROLLMENT_PREFIX,
};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{EnrollmentToken, TokenUse, UnixTime};
use crate::ports::EnrollmentStore;

fn enrollment_token_from(item: &Item) -> Result<EnrollmentToken, StoreError> {
    let pk = get_s(item, schema::PK)?;
    let key_sha256 = pk
        .strip_prefix(ENROLLMENT_PREFIX)
        .ok_or_else(|| corrupt(schema::PK))?
        .to_string();
    let u32_of = |f: &str| -> Result<Option<u32>, StoreError> {
        opt_n(item, f)?
            .map(|v| u32::try_from(v).map_err(|_| corrupt(f)))
            .transpose()
    };
    Ok(EnrollmentToken {
        id: get_s(item, attr::ID)?,
        key_sha256,
        connector: get_s(item, attr::CONNECTOR)?,
        name: get_s(item, attr::NAME)?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
        created_at: opt_n(item, attr::CREATED_AT)?,
        max_uses: u32_of(attr::MAX_USES)?,
        serial: opt_s(item, attr::SERIAL),
        owner: opt_s(item, attr::OWNER),
        uses: u32_of(attr::USES)?.unwrap_or(0),
        last_used_at: opt_n(item, attr::LAST_USED_AT)?,
        revoked_at: opt_n(item, attr::REVOKED_AT)?,
    })
}

impl EnrollmentStore for DynamoStore {
    async fn put_enrollment_token(&self, t: &EnrollmentToken) -> Result<(), StoreError> {
        let mut item = enrollment_key(&t.key_sha256);
        item.insert(schema::KIND.into(), s(ENROLLMENT));
        item.insert(attr::ID.into(), s(&t.id));
        item.insert(attr::CONNECTOR.into(), s(&t.connector));
        item.insert(attr::NAME.into(), s(&t.name));
        item.insert(attr::USES.into(), n(t.uses.into()));
        put_opt_n(&mut item, attr::CREATED_AT, t.created_at);
        put_opt_n(&mut item, attr::MAX_USES, t.max_uses.map(i64::from));
        put_opt_n(&mut item, attr::LAST_USED_AT, t.last_used_at);
        put_opt_n(&mut item, attr::REVOKED_AT, t.revoked_at);
        if let Some(serial) = &t.serial {
            item.insert(attr::SERIAL.into(), s(serial));
        }
        if let Some(owner) = &t.owner {
            item.insert(attr::OWNER.into(), s(owner));
        }
        put_opt_n(&mut item, schema::TTL_ATTRIBUTE, t.expires_at);
        self.put("PutItem enrollment token", item).await
    }

    async fn enrollment_token_by_hash(
        &self,
        key_sha256: &str,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        self.get("GetItem enrollment token", enrollment_key(key_sha256))
            .await?
            .map(|item| enrollment_token_from(&item))
            .transpose()
    }

    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError> {
        self.kind("Query enrollment tokens", ENROLLMENT)
            .await?
            .iter()
            .map(enrollment_token_from)
            .collect()
    }

    async fn enrollment_token_uses(&self, key_sha256: &str) -> Result<Vec<TokenUse>, StoreError> {
        let pk = enrollment_pk(key_sha256);
        let mut uses = Vec::new();
        for item in self.partition("Query enrollment token uses", &pk).await? {
            if sk_of(&item).starts_with(ANY_ENROLLMENT_USE) {
                uses.push(TokenUse {
                    serial: get_s(&item, attr::SERIAL)?,
                    at: get_n(&item, attr::CREATED_AT)?,
                });
            }
        }
        uses.sort_by(|a, b| a.at.cmp(&b.at).then(a.serial.cmp(&b.serial)));
        Ok(uses)
    }

    async fn revoke_enrollment_token(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(enrollment_key(key_sha256)))
            .update_expression("SET #revoked = if_not_exists(#revoked, :now)")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#revoked", attr::REVOKED_AT)
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem revoke enrollment token", &e)),
        }
    }
}
