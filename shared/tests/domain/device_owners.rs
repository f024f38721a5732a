//! Devices bound to people: an enrollment token's owner becomes the device's only owner (also
//! when it re-enrolls an existing serial), an enrollment without one keeps the owners, the
//! operator sets and clears them within their bounds, and the owners the store keeps are what
//! the OpenID provider's decision matches the signing-in person against.

use crate::common::{Fx, KEY};
use crate::enrollment::agent_enroll;
use endpoint_core::admin;
use endpoint_core::idp::owners::{match_owner, NamedBy, OwnerClaim, OwnerMismatch};
use endpoint_core::model::{ReenrollPolicy, StageMode, MAX_DEVICE_OWNERS};
use endpoint_core::ports::{Clock, DeviceStore};
use endpoint_core::CoreError;

async fn owner_token(
    fx: &Fx,
    connector: &str,
    owner: Option<&str>,
    serial: Option<&str>,
) -> String {
    let (token, key) = admin::create_enrollment_token(
        &fx.store,
        &fx.clock,
        &fx.rng,
        admin::NewEnrollmentToken {
            connector: connector.into(),
            name: "t".into(),
            lifetime: Some(86_400),
            max_uses: None,
            serial: serial.map(str::to_string),
            owner: owner.map(str::to_string),
        },
    )
    .await
    .unwrap();
    assert_eq!(token.owner.as_deref(), owner);
    key.expose().to_string()
}

async fn owners_of(fx: &Fx, serial: &str) -> Vec<String> {
    fx.store
        .get_device(serial, fx.clock.now())
        .await
        .unwrap()
        .unwrap()
        .owners
}

fn login(hint: &str) -> NamedBy<'_> {
    NamedBy {
        hint: None,
        login_hint: Some(hint),
    }
}

#[tokio::test]
async fn an_enrollment_tokens_owner_owns_the_device_it_enrolls() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let alice = owner_token(&fx, &c.id, Some("alice@example.com"), None).await;
    agent_enroll(&fx, &alice, "LAPTOP-1").await.unwrap();
    assert_eq!(owners_of(&fx, "LAPTOP-1").await, ["alice@example.com"]);

    // The provider's decision over what the store keeps.
    let owners = owners_of(&fx, "LAPTOP-1").await;
    let m = match_owner(OwnerClaim::Email, &login("ALICE@example.com"), &owners).unwrap();
    assert_eq!(m.owner, "alice@example.com");
    assert_eq!(
        match_owner(OwnerClaim::Email, &login("bob@example.com"), &owners),
        Err(OwnerMismatch::NotAnOwner)
    );

    // The operator adds a second owner; a re-enrollment approved without an owner keeps them.
    admin::set_device_owners(
        &fx.store,
        "LAPTOP-1",
        &["alice@example.com".into(), "bob".into()],
    )
    .await
    .unwrap();
    let (_, approval) =
        admin::allow_reenroll(&fx.store, &fx.clock, &fx.rng, &c.id, "LAPTOP-1", 600)
            .await
            .unwrap();
    agent_enroll(&fx, approval.expose(), "LAPTOP-1")
        .await
        .unwrap();
    assert_eq!(
        owners_of(&fx, "LAPTOP-1").await,
        ["alice@example.com", "bob"]
    );

    // Handed over: a token bound to the serial with the new person's name makes them the only
    // owner.
    let carol = owner_token(&fx, &c.id, Some("carol"), Some("LAPTOP-1")).await;
    agent_enroll(&fx, &carol, "LAPTOP-1").await.unwrap();
    assert_eq!(owners_of(&fx, "LAPTOP-1").await, ["carol"]);
    let owners = owners_of(&fx, "LAPTOP-1").await;
    assert_eq!(
        match_owner(
            OwnerClaim::PreferredUsername,
            &login("alice@example.com"),
            &owners
        ),
        Err(OwnerMismatch::NotAnOwner),
        "the previous owner no longer passes"
    );

    // On an open connector, an ownerless token re-enrolls without touching the owners.
    admin::set_reenroll(&fx.store, &c.id, ReenrollPolicy::Open)
        .await
        .unwrap();
    let plain = owner_token(&fx, &c.id, None, None).await;
    agent_enroll(&fx, &plain, "LAPTOP-1").await.unwrap();
    assert_eq!(owners_of(&fx, "LAPTOP-1").await, ["carol"]);
    agent_enroll(&fx, &plain, "DESKTOP-2").await.unwrap();
    assert!(owners_of(&fx, "DESKTOP-2").await.is_empty());
}

#[tokio::test]
async fn owners_are_bounded_and_an_unknown_device_is_reported() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plain = owner_token(&fx, &c.id, None, None).await;
    agent_enroll(&fx, &plain, "D-1").await.unwrap();

    let too_many: Vec<String> = (0..=MAX_DEVICE_OWNERS)
        .map(|i| format!("user{i}"))
        .collect();
    let e = admin::set_device_owners(&fx.store, "D-1", &too_many)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::BadRequest(m) if m.contains("16")),
        "{e:?}"
    );
    let e = admin::set_device_owners(&fx.store, "D-1", &["two words".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::BadRequest(_)));
    assert!(owners_of(&fx, "D-1").await.is_empty(), "nothing written");

    let e = admin::set_device_owners(&fx.store, "NOBODY", &["a".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");

    let set = admin::set_device_owners(&fx.store, "D-1", &too_many[..MAX_DEVICE_OWNERS])
        .await
        .unwrap();
    assert_eq!(set.len(), MAX_DEVICE_OWNERS);
    assert_eq!(owners_of(&fx, "D-1").await, set);
    assert!(admin::set_device_owners(&fx.store, "D-1", &[])
        .await
        .unwrap()
        .is_empty());
    assert!(owners_of(&fx, "D-1").await.is_empty(), "cleared");

    // An enrollment token's owner follows the same rule.
    let e = admin::create_enrollment_token(
        &fx.store,
        &fx.clock,
        &fx.rng,
        admin::NewEnrollmentToken {
            connector: c.id.clone(),
            name: "t".into(),
            lifetime: Some(60),
            max_uses: None,
            serial: None,
            owner: Some("x".repeat(257)),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CoreError::BadRequest(_)), "{e:?}");
}
