//! Region-affine authorization codes (`region.rs`, docs/ARCHITECTURE.md "Regions"): a code names
//! the region that issued it, and only that region redeems it. Two regions here share one
//! in-memory store, as replicas of a global table share the items (without the lag): region B
//! answers A's code with A's base URL before any read or write, so the one conditional write
//! that spends the code is always A's. With affinity off (the local stack's negative control) B
//! redeems it, which is what lets two replicas both redeem one code. One region: unchanged.

use endpoint_core::oidc::resume::{resume, Resumed};
use endpoint_core::oidc::token::TokenError;
use endpoint_core::oidc::{Failure, CODE_CHARS};
use endpoint_core::region::plan_region;

use crate::common::Fx;
use crate::oidc_rules::{
    code, grant_error, keys, passed_plan, redeem, token_params, world, ISSUER, VERIFIER,
};
use crate::regions::region;

fn other_region(r: Result<serde_json::Value, TokenError>) -> (String, String) {
    match r {
        Err(TokenError::OtherRegion { region, base_url }) => (region, base_url),
        other => panic!("expected another region's code, got {other:?}"),
    }
}

#[tokio::test]
async fn another_regions_code_is_neither_read_nor_written_and_its_home_redeems_it_once() {
    let (mut fx, connector, client, secret) = world().await;
    fx.settings = region("use1", false);
    let code = code(&fx, &connector, &client).await;
    assert_eq!(plan_region(&code), Some("use1"), "{code}");
    assert_eq!(code.len(), "use1_".len() + CODE_CHARS);
    let params = token_params(&client, &secret, &code, VERIFIER);

    // Region B, same items: A's code goes to A's base URL.
    let b = Fx {
        settings: region("euw1", false),
        ..fx
    };
    let to_a = ("use1".to_string(), "https://a.example".to_string());
    assert_eq!(other_region(redeem(&b, &params).await), to_a);
    // Before any read: a wrong secret is not even checked, and a store that holds neither the
    // client nor the code answers the same (it would be invalid_client after a read).
    let wrong = token_params(&client, "not-the-secret", &code, VERIFIER);
    assert_eq!(other_region(redeem(&b, &wrong).await), to_a);
    let empty = Fx {
        settings: region("euw1", false),
        ..Fx::new()
    };
    assert_eq!(other_region(redeem(&empty, &params).await), to_a);

    // B wrote nothing: the code is still A's to redeem, once.
    let a = Fx {
        settings: region("use1", false),
        ..b
    };
    let body = redeem(&a, &params).await.unwrap();
    assert!(body["id_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(grant_error(redeem(&a, &params).await), "invalid_grant");
    // A code of a region this deployment does not know: refused, nothing read.
    let unknown = token_params(&client, &secret, &format!("apse2_{}", &code[5..]), VERIFIER);
    assert_eq!(grant_error(redeem(&a, &unknown).await), "invalid_grant");
}

#[tokio::test]
async fn with_affinity_off_another_region_redeems_the_code() {
    let (mut fx, connector, client, secret) = world().await;
    fx.settings = region("use1", false);
    let code = code(&fx, &connector, &client).await;
    let params = token_params(&client, &secret, &code, VERIFIER);
    // B without affinity reads its copy: with a replication lag, A could redeem it too.
    let b = Fx {
        settings: region("euw1", true),
        ..fx
    };
    assert!(redeem(&b, &params).await.is_ok());
}

#[tokio::test]
async fn one_region_codes_and_redemption_are_unchanged() {
    let (fx, connector, client, secret) = world().await;
    let code = code(&fx, &connector, &client).await;
    assert_eq!(code.len(), CODE_CHARS);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");
    let params = token_params(&client, &secret, &code, VERIFIER);
    assert!(redeem(&fx, &params).await.is_ok());
    assert_eq!(grant_error(redeem(&fx, &params).await), "invalid_grant");
}

#[tokio::test]
async fn another_regions_provider_plan_is_not_returned_here_and_its_home_returns_it_once() {
    let (mut fx, connector, client, _) = world().await;
    fx.settings = region("use1", false);
    let plan = passed_plan(&fx, &connector, &client).await;
    assert_eq!(plan_region(&plan), Some("use1"), "{plan}");
    let b = Fx {
        settings: region("euw1", false),
        ..fx
    };
    // B neither reads the plan nor marks its one return (nor issues a code).
    assert!(matches!(
        resume(&b.store, &b.signer, &keys(), &b.env(), ISSUER, &plan).await,
        Err(Failure::Page(_))
    ));
    let a = Fx {
        settings: region("use1", false),
        ..b
    };
    let back = resume(&a.store, &a.signer, &keys(), &a.env(), ISSUER, &plan).await;
    assert!(matches!(back, Ok(Resumed::Back(_))), "{back:?}");
}
