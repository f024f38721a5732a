//! `stage set-help`: the operator's help for denied people, shown by `stage show` and carried
//! by every plan created from then on (the hosted page reads only the plan).

use endpoint_core::ports::{PlanStore, SystemClock, SystemRandom};
use endpoint_core::settings::{Env, Settings};
use endpoint_core::stage;
use serde_json::json;

use crate::Cli;

#[tokio::test]
async fn stage_help_is_set_shown_checked_and_snapshotted_onto_new_plans() {
    let cli = Cli::new();
    let conn = cli.ok(&["connector", "create", "--name", "c"]);
    let stage_id = cli.ok(&["stage", "create", "--connector", &conn]);
    assert_eq!(cli.json(&["stage", "show", &stage_id])["help"], json!(null));

    let set = cli.json(&[
        "stage",
        "set-help",
        &stage_id,
        "--text",
        "Call the IT desk on 1234 <any time>.",
        "--url",
        "https://help.example.com/device",
    ]);
    let want = json!({"text": "Call the IT desk on 1234 <any time>.", "url": "https://help.example.com/device"});
    assert_eq!(set["help"], want);
    assert_eq!(cli.json(&["stage", "show", &stage_id])["help"], want);
    let plain = cli.ok(&["stage", "show", &stage_id]);
    assert!(
        plain.ends_with("\nhelp-text\tCall the IT desk on 1234 <any time>.\nhelp-url\thttps://help.example.com/device"),
        "{plain}"
    );

    // Refused, and nothing changed: a link that is not https:, one with user information.
    for url in [
        "http://help.example.com",
        "javascript:alert(1)",
        "https://u:p@help.example.com",
    ] {
        let err = cli.fails(&["stage", "set-help", &stage_id, "--url", url]);
        assert!(err.contains("https:"), "{err}");
    }
    let long = "x".repeat(501);
    assert!(cli
        .fails(&["stage", "set-help", &stage_id, "--text", &long])
        .contains("500"));
    cli.fails(&["stage", "set-help", "nope", "--text", "x"]);
    assert_eq!(cli.json(&["stage", "show", &stage_id])["help"], want);

    // A plan created now carries the help, through the real table's plan item.
    let store = cli.store().await;
    let settings = Settings::default();
    let env = Env {
        clock: &SystemClock,
        rng: &SystemRandom,
        settings: &settings,
        caller: &endpoint_core::audit::Caller::UNKNOWN,
    };
    let plan = stage::create_plan(&store, &env, &stage_id, None, None)
        .await
        .unwrap();
    let stored = store
        .get_plan(&plan.id, plan.expires_at - 1)
        .await
        .unwrap()
        .unwrap();
    let help = stored
        .config
        .help
        .expect("the plan carries the stage's help");
    assert_eq!(
        help.text.as_deref(),
        Some("Call the IT desk on 1234 <any time>.")
    );
    assert_eq!(help.url.as_deref(), Some("https://help.example.com/device"));

    // Neither text nor link: no help, and new plans carry none.
    assert_eq!(
        cli.json(&["stage", "set-help", &stage_id])["help"],
        json!(null)
    );
    let plan = stage::create_plan(&store, &env, &stage_id, None, None)
        .await
        .unwrap();
    let stored = store
        .get_plan(&plan.id, plan.expires_at - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.config.help, None);
}
