//! Closing the remaining ways in, over HTTP against moto with the real `endpoint-admin`: the
//! device lock (every stage denies, `auth_ia/` is 403, check-ins flow) and stages' registered
//! redirect origins (a path lands on the relying party's site; other hosts are refused).

use endpoint_core::edge::routes;
use endpoint_core::model::{StageMode, MSG_DEVICE_LOCKED};
use endpoint_e2e::{denied, now, redirect, Stack};
use serde_json::json;

const AGENT: &str = "/api/v3/endpoints/agents/connectors/";

#[tokio::test]
async fn a_locked_device_is_denied_and_refused_until_unlocked_while_it_checks_in() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Optional, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let serial = format!("LOCK-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    let login = || {
        let plan = s.create_plan(&setup.stage);
        let challenge = s.challenge(&plan);
        let response = endpoint_agent::respond(&device, &challenge, now()).unwrap();
        s.post_executor(&plan, Some(&response))
    };
    let auth = [("authorization", format!("Bearer+agent {}", device.token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(login(), (200, redirect()));

    let locked = s.admin_json(&[
        "device", "lock", &serial, "--for", "1h", "--reason", "stolen",
    ]);
    assert_eq!(locked["lock"]["reason"], "stolen");
    assert_eq!(
        login(),
        (200, denied(MSG_DEVICE_LOCKED)),
        "an optional stage denies it too"
    );
    let (status, body) = s
        .http
        .post(&format!("{AGENT}auth_ia/"), &auth, &json!({}))
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert_eq!(body["message"], MSG_DEVICE_LOCKED);
    let facts = json!({"hardware": {"serial": serial}});
    let (status, _) = s
        .http
        .post(&format!("{AGENT}check_in/"), &auth, &facts)
        .unwrap();
    assert_eq!(status, 204, "a locked device still checks in");
    let shown = s.admin_json(&["device", "show", &serial]);
    assert_eq!(
        (&shown["lock"]["held"], &shown["lock"]["reason"]),
        (&json!(true), &json!("stolen"))
    );

    s.admin_json(&["device", "unlock", &serial]);
    assert_eq!(login(), (200, redirect()));
    let events = s.admin_json(&["audit", "list", "--device", &serial, "--since", "1h"]);
    let codes: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    for code in ["ES009I", "ES010I", "ES104W"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
}

#[tokio::test]
async fn registered_origins_decide_where_a_plan_may_redirect() {
    let s = Stack::connect().await;
    // No challenge key: an optional stage passes at once, showing where it redirects.
    let setup = s.setup(StageMode::Optional, false, true).await;
    let created = s.admin_json(&[
        "stage",
        "create",
        "--connector",
        &setup.connector,
        "--redirect-origin",
        "https://RP.example:443",
    ]);
    let stage = created["id"].as_str().unwrap().to_string();
    let shown = s.admin_json(&["stage", "show", &stage]);
    assert_eq!(shown["redirect_origins"], json!(["https://rp.example"]));
    let plan = |redirect: &str| {
        s.http
            .post(
                routes::CREATE_PLAN.template,
                &[],
                &json!({"stage": stage, "redirect": redirect}),
            )
            .unwrap()
    };
    // A path is resolved against the first origin: the browser lands on the relying party.
    let (status, body) = plan("/signed-in?x=1");
    assert_eq!(status, 201, "{body}");
    let id = body["plan"].as_str().unwrap();
    assert_eq!(
        s.get_executor(id).1,
        json!({"component": "xak-flow-redirect", "to": "https://rp.example/signed-in?x=1"})
    );
    for bad in [
        "https://evil.example/",
        "http://[::1]@evil.example/",
        "https://rp.example.evil.example/",
    ] {
        let (status, body) = plan(bad);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    // Replacing the origins applies to the next plans.
    s.admin_json(&[
        "stage",
        "set-redirect-origins",
        &stage,
        "https://app.example:8443",
    ]);
    assert_eq!(plan("https://app.example:8443/x").0, 201);
    assert_eq!(plan("https://rp.example/x").0, 400);
    // A stage without origins: paths and loopback only.
    let bare = s.admin_json(&["stage", "create", "--connector", &setup.connector]);
    let bare = bare["id"].as_str().unwrap();
    let (status, _) = s
        .http
        .post(
            routes::CREATE_PLAN.template,
            &[],
            &json!({"stage": bare, "redirect": "https://rp.example/"}),
        )
        .unwrap();
    assert_eq!(status, 400);
}
