//! Enrollment tokens, the operator's side: create (the key shown once, stored as a hash),
//! list, show and revoke.

use super::{check_name, check_owner, connector, ENROLLMENT_TOKEN_LEN};
use crate::error::CoreError;
use crate::model::{EnrollmentToken, TokenUse};
use crate::ports::{random_alnum, random_id, Clock, Directory, EnrollmentStore, Random};
use crate::secret::Secret;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEnrollmentToken {
    pub connector: String,
    pub name: String,
    /// Seconds it lives; `None` only for an explicit `--expires never`.
    pub lifetime: Option<i64>,
    pub max_uses: Option<u32>,
    /// The one serial it may enroll.
    pub serial: Option<String>,
    /// The person the devices it enrolls belong to (`--owner`).
    pub owner: Option<String>,
}

/// Creates an enrollment token; returns it with its key, which is stored only as a hash.
pub async fn create_enrollment_token<S, C, R>(
    store: &S,
    clock: &C,
    rng: &R,
    new: NewEnrollmentToken,
) -> Result<(EnrollmentToken, Secret), CoreError>
where
    S: Directory + EnrollmentStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    check_name("name", &new.name)?;
    if let Some(serial) = &new.serial {
        check_name("serial", serial)?;
    }
    if let Some(owner) = &new.owner {
        check_owner(owner)?;
    }
    if new.max_uses == Some(0) {
        return Err(CoreError::BadRequest("max uses must be at least 1".into()));
    }
    if new.lifetime.is_some_and(|l| l <= 0) {
        return Err(CoreError::BadRequest(
            "the lifetime must be positive (or never)".into(),
        ));
    }
    connector(store, &new.connector).await?;
    let now = clock.now();
    let key = Secret::new(random_alnum(rng, ENROLLMENT_TOKEN_LEN));
    let token = EnrollmentToken {
        id: random_id(rng, 12),
        key_sha256: key.sha256_hex(),
        connector: new.connector,
        name: new.name,
        expires_at: new.lifetime.map(|l| now + l),
        created_at: Some(now),
        max_uses: new.max_uses,
        serial: new.serial,
        owner: new.owner,
        uses: 0,
        last_used_at: None,
        revoked_at: None,
    };
    store.put_enrollment_token(&token).await?;
    Ok((token, key))
}

/// An enrollment token with the enrollments it made (never its key: only its hash is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentTokenDetails {
    pub token: EnrollmentToken,
    pub enrolled: Vec<TokenUse>,
}

/// Every enrollment token, of one connector if given, newest first.
pub async fn list_enrollment_tokens<E: EnrollmentStore>(
    store: &E,
    connector: Option<&str>,
) -> Result<Vec<EnrollmentToken>, CoreError> {
    let mut tokens: Vec<EnrollmentToken> = store
        .list_enrollment_tokens()
        .await?
        .into_iter()
        .filter(|t| connector.is_none_or(|c| t.connector == c))
        .collect();
    tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(tokens)
}

async fn enrollment_token_by_id<E: EnrollmentStore>(
    store: &E,
    id: &str,
) -> Result<EnrollmentToken, CoreError> {
    store
        .list_enrollment_tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| CoreError::NotFound(format!("enrollment token {id}")))
}

/// One enrollment token by its id, with the serials it enrolled.
pub async fn show_enrollment_token<E: EnrollmentStore>(
    store: &E,
    id: &str,
) -> Result<EnrollmentTokenDetails, CoreError> {
    let token = enrollment_token_by_id(store, id).await?;
    let enrolled = store.enrollment_token_uses(&token.key_sha256).await?;
    Ok(EnrollmentTokenDetails { token, enrolled })
}

/// Revokes an enrollment token: it enrolls nothing from now on (devices it enrolled keep
/// their device tokens; revoke those with `device revoke-tokens`).
pub async fn revoke_enrollment_token<E: EnrollmentStore, C: Clock + ?Sized>(
    store: &E,
    clock: &C,
    id: &str,
) -> Result<EnrollmentToken, CoreError> {
    let token = enrollment_token_by_id(store, id).await?;
    let gone = || CoreError::NotFound(format!("enrollment token {id}"));
    if !store
        .revoke_enrollment_token(&token.key_sha256, clock.now())
        .await?
    {
        return Err(gone());
    }
    // As stored now: one read by its hash, not another listing.
    store
        .enrollment_token_by_hash(&token.key_sha256)
        .await?
        .ok_or_else(gone)
}
