//! The OpenID provider's store: clients, codes taken once (also when two take at once),
//! grants and marks filtered by their expiry, plans that keep their authorization request.

use endpoint_core::model::{
    AuthRequest, ClientAuth, Grant, IdTokenAlg, OidcClient, PlanStatus, Profile,
};
use endpoint_core::ports::{GrantKind, OidcStore, PlanStore};
use endpoint_core::StoreError;

use super::{plan, T0};

fn client(id: &str) -> OidcClient {
    OidcClient {
        id: id.into(),
        name: "okta".into(),
        profile: Profile::Code,
        stage: "stage-1".into(),
        redirect_uris: vec!["https://rp.example/cb".into()],
        auth: ClientAuth::ClientSecretBasic,
        secret_sha256: Some("ab".repeat(32)),
        jwks: None,
        alg: IdTokenAlg::RS256,
        match_owner: None,
        entra: None,
        created_at: T0,
    }
}

fn grant(expires_at: i64) -> Grant {
    Grant {
        client: "c1".into(),
        redirect_uri: "https://rp.example/cb".into(),
        code_challenge: Some("x".repeat(43)),
        nonce: None,
        sub: "device-1".into(),
        auth_time: T0,
        preferred_username: None,
        email: None,
        device: None,
        expires_at,
    }
}

pub async fn oidc_store<S: OidcStore + PlanStore>(s: &S) {
    // Clients.
    s.create_client(&client("c1")).await.unwrap();
    assert!(matches!(
        s.create_client(&client("c1")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let mut rotated = client("c1");
    rotated.secret_sha256 = Some("cd".repeat(32));
    s.replace_client(&rotated).await.unwrap();
    assert_eq!(s.get_client("c1").await.unwrap(), Some(rotated));
    assert!(matches!(
        s.replace_client(&client("c2")).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.list_clients().await.unwrap().len(), 1);
    assert!(s.delete_client("c1").await.unwrap());
    assert!(!s.delete_client("c1").await.unwrap());
    assert_eq!(s.get_client("c1").await.unwrap(), None);

    // A code is taken once, also by two at once.
    s.put_grant(GrantKind::Code, "h1", &grant(T0 + 60))
        .await
        .unwrap();
    let (a, b) = futures::join!(
        s.take_grant(GrantKind::Code, "h1", T0),
        s.take_grant(GrantKind::Code, "h1", T0)
    );
    assert_eq!(
        [a.unwrap().is_some(), b.unwrap().is_some()]
            .iter()
            .filter(|x| **x)
            .count(),
        1
    );
    // An expired code is not answered; an access token is read, not taken, until it expires.
    s.put_grant(GrantKind::Code, "h2", &grant(T0 + 60))
        .await
        .unwrap();
    assert_eq!(
        s.take_grant(GrantKind::Code, "h2", T0 + 60).await.unwrap(),
        None
    );
    s.put_grant(GrantKind::AccessToken, "h1", &grant(T0 + 300))
        .await
        .unwrap();
    assert!(s
        .read_grant(GrantKind::AccessToken, "h1", T0)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .read_grant(GrantKind::AccessToken, "h1", T0)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.read_grant(GrantKind::AccessToken, "h1", T0 + 300)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.read_grant(GrantKind::Code, "h1", T0).await.unwrap(), None);

    // Marks: once while unexpired, again after.
    assert!(s.mark_once("JTI#c1#j1", T0 + 60, T0).await.unwrap());
    assert!(!s.mark_once("JTI#c1#j1", T0 + 60, T0 + 59).await.unwrap());
    assert!(s.mark_once("JTI#c1#j1", T0 + 200, T0 + 60).await.unwrap());

    // A plan keeps its authorization request.
    let mut p = plan("oidc_p1", T0 + 900);
    p.oidc = Some(AuthRequest {
        client: "c1".into(),
        profile: Profile::EntraEam,
        redirect_uri: "https://login.microsoftonline.com/common/federation/externalauthprovider"
            .into(),
        state: Some("st".into()),
        nonce: Some("n".into()),
        code_challenge: None,
        login_hint: Some("ada@example.com".into()),
        hint_sub: Some("sub-1".into()),
        hint_username: Some("ada@example.com".into()),
        hint_email: None,
        acr: Some("possessionorinherence".into()),
        refused: None,
    });
    s.create_plan(&p).await.unwrap();
    let read = s.get_plan("oidc_p1", T0).await.unwrap().unwrap();
    assert_eq!(read.oidc, p.oidc);
    assert_eq!(read.status, PlanStatus::Pending);
}
