//! Enrollment tokens, found by the SHA-256 of their key.

use super::*;

impl EnrollmentStore for DynamoStore {
    async fn put_enrollment_token(&self, t: &EnrollmentToken) -> Result<(), StoreError> {
        let mut item = enrollment_key(&t.key_sha256);
        item.insert(attr::ID.into(), s(&t.id));
        item.insert(attr::CONNECTOR.into(), s(&t.connector));
        item.insert(attr::NAME.into(), s(&t.name));
        put_opt_n(&mut item, schema::TTL_ATTRIBUTE, t.expires_at);
        self.put("PutItem enrollment token", item).await
    }

    async fn enrollment_token_by_hash(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        let Some(item) = self
            .get("GetItem enrollment token", enrollment_key(key_sha256))
            .await?
        else {
            return Ok(None);
        };
        let t = EnrollmentToken {
            id: get_s(&item, attr::ID)?,
            key_sha256: key_sha256.to_string(),
            connector: get_s(&item, attr::CONNECTOR)?,
            name: get_s(&item, attr::NAME)?,
            expires_at: opt_n(&item, schema::TTL_ATTRIBUTE)?,
        };
        Ok((!is_expired(t.expires_at, now)).then_some(t))
    }
}
