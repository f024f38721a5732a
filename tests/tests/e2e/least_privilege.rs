//! Least privilege per function: every route of every function runs in process (the handlers
//! the functions run) with SDK clients that record each request's IAM actions and partition-key
//! prefixes (`AccessRecorder`), over every path that calls AWS differently (new enrollment,
//! re-enrollment with an allowance, refusals, a pass, an invalid response, a denial, a lost
//! race, the rate limit). `scripts/check-iam.py` then compares the recorded accesses with each
//! function's statements in template.yaml, both ways: a call without a grant fails, and so
//! does a grant no call needs.

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::instrument::AccessRecorder;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::adapters::lambda::LambdaInvoker;
use endpoint_core::adapters::vault::KmsVault;
use endpoint_core::admin;
use endpoint_core::edge::routes;
use endpoint_core::edge::Base;
use endpoint_core::model::StageMode;
use endpoint_e2e::{now, Setup, Stack};
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(super) fn request(
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> Request {
    let body = body.map_or(Body::Empty, |b| Body::Text(b.to_string()));
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:9000");
    if let Some(a) = auth {
        builder = builder.header("authorization", a);
    }
    builder.body(body).unwrap()
}

/// The clients of one function, all recording into one recorder.
pub(crate) struct Recorded {
    pub(crate) recorder: AccessRecorder,
    pub(crate) store: DynamoStore,
    pub(crate) signer: KmsSigner,
    lambda: LambdaInvoker,
}

pub(crate) async fn recorded() -> Recorded {
    let config = load_config().await;
    let recorder = AccessRecorder::default();
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into());
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&config)
            .interceptor(recorder.clone())
            .build(),
    );
    let sealing =
        std::env::var("SEALING_KEY_ID").expect("scripts/stack-lib.sh exports SEALING_KEY_ID");
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .interceptor(recorder.clone())
                .build(),
        ),
        table.clone(),
    )
    .with_sealing(KmsVault::new(kms.clone(), sealing, table));
    let observer = recorder.clone();
    let lambda = LambdaInvoker::from_config(&config).observed(std::sync::Arc::new(move |access| {
        observer.add(access.into())
    }));
    Recorded {
        recorder,
        store,
        signer: KmsSigner::new(kms),
        lambda,
    }
}

fn json_of(reply: &endpoint_core::edge::Reply) -> &Value {
    &reply.body
}

/// What a function's clients were asked, as `service:Action resource` lines.
pub(crate) fn accesses(r: &Recorded) -> Vec<String> {
    r.recorder.accesses().into_iter().collect()
}

/// What the agent function's requests leave for the others: the device's key and the URL
/// auth_ia/ answered.
struct AgentDone {
    accesses: Vec<String>,
    device_key: String,
    ia_url: Option<String>,
}

/// Check-ins evaluated against a posture policy: the policy read, the evaluation and the
/// record of its status change written.
async fn posture_check_ins(
    s: &Stack,
    setup: &Setup,
    agent: &fn_agent::App<DynamoStore, KmsSigner>,
    (serial, device_auth): (&str, &str),
) {
    let policy = endpoint_core::compliance::admin::create_policy(
        &s.store,
        &endpoint_core::ports::SystemRandom,
        now(),
        "least privilege",
        None,
        endpoint_core::model::WhenUnknown::Deny,
    )
    .await
    .unwrap();
    let firewall = endpoint_core::compliance::rules::NewRule {
        kind: endpoint_core::model::RuleKind::Firewall,
        title: None,
        remediation: None,
        enforce: endpoint_core::model::Enforcement::Block,
        unknown: endpoint_core::model::UnknownAs::Fail,
    };
    endpoint_core::compliance::admin::add_rule(
        &s.store,
        &endpoint_core::ports::SystemRandom,
        &policy.id,
        firewall,
    )
    .await
    .unwrap();
    // On a stage of its own: the logins below, on the setup's stage, stay policy-free.
    let guarded = admin::create_stage(
        &s.store,
        &endpoint_core::ports::SystemRandom,
        &setup.connector,
        StageMode::Optional,
        &[],
    )
    .await
    .unwrap();
    endpoint_core::compliance::admin::set_stage_policy(&s.store, &guarded.id, Some(&policy.id))
        .await
        .unwrap();
    // Non-compliant (no firewall reported), then compliant: the second change is a signal
    // event, written with the evaluation (the outbox).
    for facts in [
        json!({"hardware": {"serial": serial}}),
        json!({"hardware": {"serial": serial}, "network": {"firewall_enabled": true}}),
    ] {
        let (reply, _) = agent
            .handle(request(
                "POST",
                routes::CHECK_IN.template,
                Some(device_auth),
                Some(facts),
            ))
            .await;
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
}

/// auth_ia/ up to and past its limit; answers the first URL it gave.
async fn auth_ia_to_its_limit(
    agent: &fn_agent::App<DynamoStore, KmsSigner>,
    device_auth: &str,
) -> Option<String> {
    let mut statuses = Vec::new();
    let mut ia_url = None;
    // Ten a minute: within 21 calls a refusal must come, even if a minute turns once.
    for _ in 0..21 {
        let (reply, _) = agent
            .handle(request(
                "POST",
                routes::AUTH_IA.template,
                Some(device_auth),
                None,
            ))
            .await;
        statuses.push(reply.status);
        if ia_url.is_none() {
            ia_url = json_of(&reply)["url"].as_str().map(str::to_string);
        }
        if reply.status == 429 {
            break;
        }
    }
    assert!(
        statuses.contains(&200) && statuses.last() == Some(&429),
        "{statuses:?}"
    );
    ia_url
}

async fn agent_function(s: &Stack, setup: &Setup, serial: &str) -> AgentDone {
    // The agent function: enroll (new), refused re-enrollment, allowed re-enrollment,
    // agent_config, check_in, auth_ia up to and past its limit, the brand.
    let r = recorded().await;
    let agent = fn_agent::App {
        base: Base::from_env().unwrap(),
        store: r.store.clone(),
        signer: r.signer.clone(),
    };
    let enroll_path = routes::ENROLL.template;
    let token = s.enrollment_token(&setup.connector, None).await;
    let bearer = format!("Bearer {token}");
    let body = json!({"device_serial": serial, "device_name": "lp"});
    let (reply, _) = agent
        .handle(request(
            "POST",
            enroll_path,
            Some(&bearer),
            Some(body.clone()),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (reply, _) = agent
        .handle(request(
            "POST",
            enroll_path,
            Some(&bearer),
            Some(body.clone()),
        ))
        .await;
    assert_eq!(reply.status, 403, "needs an approval: {}", reply.body);
    let (_, approval) = admin::allow_reenroll(
        &s.store,
        &endpoint_core::ports::SystemClock,
        &endpoint_core::ports::SystemRandom,
        &setup.connector,
        serial,
        600,
    )
    .await
    .unwrap();
    let approved = format!("Bearer {}", approval.expose());
    let (reply, _) = agent
        .handle(request("POST", enroll_path, Some(&approved), Some(body)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let device_key = json_of(&reply)["token"].as_str().unwrap().to_string();
    let device_auth = format!("Bearer+agent {device_key}");
    // Enrollment on an `open` connector reads which connectors are open (the kind index).
    let open = s.setup(StageMode::Optional, false, true).await;
    let open_token = s.enrollment_token(&open.connector, None).await;
    let (reply, _) = agent
        .handle(request(
            "POST",
            enroll_path,
            Some(&format!("Bearer {open_token}")),
            Some(json!({"device_serial": format!("{serial}-OPEN"), "device_name": "lp"})),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A key rotation under way: agent_config/ records that the device has the next key.
    let next = s.admin_json(&["key", "create"])["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    admin::add_next_key(
        &s.store,
        &endpoint_core::ports::SystemClock,
        &setup.connector,
        &next,
    )
    .await
    .unwrap();
    let (reply, _) = agent
        .handle(request(
            "GET",
            routes::AGENT_CONFIG.template,
            Some(&device_auth),
            None,
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (reply, _) = agent
        .handle(request(
            "POST",
            routes::CHECK_IN.template,
            Some(&device_auth),
            Some(json!({"hardware": {"serial": serial}})),
        ))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    posture_check_ins(s, setup, &agent, (serial, &device_auth)).await;
    let ia_url = auth_ia_to_its_limit(&agent, &device_auth).await;
    let (reply, _) = agent
        .handle(request("GET", routes::CURRENT_BRAND.template, None, None))
        .await;
    assert_eq!(reply.status, 200);

    AgentDone {
        accesses: accesses(&r),
        device_key,
        ia_url,
    }
}

/// The plans function; answers its accesses and a pending plan.
async fn plans_function(s: &Stack, setup: &Setup, serial: &str) -> (Vec<String>, String) {
    // The plans function: create and read.
    let r = recorded().await;
    let plans = fn_plans::App {
        base: Base::from_env().unwrap(),
        store: r.store.clone(),
        signer: r.signer.clone(),
    };
    let (reply, _) = plans
        .handle(request(
            "POST",
            routes::CREATE_PLAN.template,
            None,
            Some(json!({"stage": setup.stage})),
        ))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let plan = json_of(&reply)["plan"].as_str().unwrap().to_string();
    let (reply, _) = plans
        .handle(request(
            "GET",
            &routes::READ_PLAN.path(&[&plan]),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 200);
    // Another plan passes (ended here, outside the function's record): its read mints a
    // device assertion.
    let passed_plan = s.create_plan(&setup.stage);
    let device = endpoint_core::model::DeviceRef {
        identifier: serial.to_string(),
        name: "lp".into(),
        id: Some("00000000-0000-4000-8000-0000000000lp".into()),
    };
    use endpoint_core::ports::PlanStore;
    let passed = endpoint_core::ports::Finish::Passed(Some(device));
    assert!(s
        .store
        .finish_plan(&passed_plan, &passed, None, now(), None, None)
        .await
        .unwrap());
    let (reply, _) = plans
        .handle(request(
            "GET",
            &routes::READ_PLAN.path(&[&passed_plan]),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 200);
    assert!(json_of(&reply)["assertion"].is_string(), "{}", reply.body);

    (accesses(&r), plan)
}

async fn web_function(plan: &str) -> Vec<String> {
    // The web function: the page.
    let r = recorded().await;
    let web = fn_web::App::new(Base::from_env().unwrap(), r.store.clone());
    let (reply, _) = web
        .handle(request(
            "GET",
            &routes::STAGE_PAGE.path(&[plan]),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 200);

    accesses(&r)
}

/// The challenge function; answers its accesses and the challenge it minted for `plan`.
async fn challenge_function(
    s: &Stack,
    setup: &Setup,
    plan: &str,
    agent: &AgentDone,
) -> (Vec<String>, String) {
    // The challenge function: a challenge, the DTH path, the attempt limit's denial, and
    // concurrent GETs that lose the race to end the plan (they read its outcome).
    let r = recorded().await;
    let mut base = Base::from_env().unwrap();
    base.config.settings.max_challenges_per_plan = 1;
    let challenge = fn_challenge::App {
        base,
        store: r.store.clone(),
        signer: r.signer.clone(),
    };
    let executor = |p: &str| format!("/v1/plans/{p}/executor");
    let (reply, _) = challenge
        .handle(request("GET", &executor(plan), None, None))
        .await;
    assert_eq!(reply.status, 200);
    let jws = json_of(&reply)["challenge"].as_str().unwrap().to_string();
    let mut raced = false;
    for _ in 0..10 {
        let p = s.create_plan(&setup.stage);
        let (first, _) = challenge
            .handle(request("GET", &executor(&p), None, None))
            .await;
        assert_eq!(first.status, 200);
        let racers: Vec<_> = (0..6)
            .map(|_| challenge.handle(request("GET", &executor(&p), None, None)))
            .collect();
        futures::future::join_all(racers).await;
        if r.recorder.accesses().contains("dynamodb:GetItem PLAN#*") {
            raced = true;
            break;
        }
    }
    assert!(
        raced,
        "concurrent GETs past the attempt limit lose the race to end the plan"
    );
    // DTH: the plan of auth_ia/ passes with the header (the token index is read).
    let ia_url = agent.ia_url.as_deref().expect("auth_ia/ answered a URL");
    let ia_path = &ia_url[ia_url.find("/v1/plans/").expect("an executor URL")..];
    let mut req = request("GET", ia_path, None, None);
    req.headers_mut().insert(
        lambda_http::http::HeaderName::from_bytes(endpoint_core::protocol::DTH_HEADER.as_bytes())
            .unwrap(),
        endpoint_core::secret::sha256_hex(agent.device_key.as_bytes())
            .parse()
            .unwrap(),
    );
    let (reply, outcome) = challenge.handle(req).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "passed"),
        "{}",
        reply.body
    );

    (accesses(&r), jws)
}

async fn response_function(
    s: &Stack,
    setup: &Setup,
    (serial, device_key): (&str, &str),
    (plan, jws): (&str, &str),
) -> Vec<String> {
    let executor = |p: &str| format!("/v1/plans/{p}/executor");
    // The response function: a valid response (cold: the data key is unwrapped), an invalid
    // one (required: a new challenge from the challenge function), no response (denied).
    let r = recorded().await;
    let response = fn_response::App {
        base: Base::from_env().unwrap(),
        store: r.store.clone(),
        minter: fn_response::InvokeMinter {
            invoker: r.lambda.clone(),
            function: "challenge".into(),
        },
    };
    let answer = endpoint_core::protocol::response::sign_response(serial, device_key, jws, now());
    let post = |p: &str, response: Option<&str>| {
        request(
            "POST",
            &executor(p),
            None,
            Some(json!({"component": "ak-stage-endpoint-agent", "response": response})),
        )
    };
    let (reply, outcome) = response.handle(post(plan, Some(&answer))).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "passed"),
        "{}",
        reply.body
    );
    let p2 = s.create_plan(&setup.stage);
    s.get_executor(&p2);
    let (reply, outcome) = response.handle(post(&p2, Some("not.a.jws"))).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "challenge_retry"),
        "{}",
        reply.body
    );
    let (reply, outcome) = response.handle(post(&p2, None)).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "denied"),
        "{}",
        reply.body
    );

    accesses(&r)
}

async fn jwks_function(setup: &Setup) -> Vec<String> {
    // The JWKS function.
    let r = recorded().await;
    let mut base = Base::from_env().unwrap();
    // `/health` checks the connector's key, as the stack's CHALLENGE_KEY_ID names its key.
    base.config.challenge_key = setup.key.clone();
    let jwks = fn_jwks::App::new(
        base,
        r.store.clone(),
        r.signer.clone(),
        r.signer.clone(),
        "us-east-1",
    );
    let (reply, _) = jwks
        .handle(request(
            "GET",
            &routes::JWKS.path(&[&setup.connector]),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 200);
    let (reply, _) = jwks
        .handle(request("GET", routes::ASSERTION_JWKS.template, None, None))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (reply, _) = jwks
        .handle(request("GET", routes::HEALTH.template, None, None))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    accesses(&r)
}

/// The delivery function: one run over a push stream (its verification first), whose
/// receiver cannot be reached (the failure recorded on the stream).
async fn deliver_function(
    s: &Stack,
    ssf: &fn_ssf::App<DynamoStore, KmsSigner>,
    bearer: &str,
) -> Vec<String> {
    let push = json!({
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "http://127.0.0.1:9/none", "authorization_header": "Bearer least-privilege"},
        "events_requested": [endpoint_core::signals::DEVICE_COMPLIANCE_CHANGE],
    });
    let (reply, _) = ssf
        .handle(request(
            "POST",
            routes::SSF_STREAM_CREATE.template,
            Some(bearer),
            Some(push),
        ))
        .await;
    let stream = json_of(&reply)["stream_id"].as_str().unwrap().to_string();
    let verify = json!({"stream_id": stream});
    let (reply, _) = ssf
        .handle(request(
            "POST",
            routes::SSF_VERIFY.template,
            Some(bearer),
            Some(verify),
        ))
        .await;
    assert_eq!(reply.status, 204);
    let r = recorded().await;
    let base = Base::from_env().unwrap();
    let deliver = fn_deliver::App {
        pusher: fn_deliver::HttpPusher::new(base.config.push_egress),
        base,
        store: r.store.clone(),
        signer: r.signer.clone(),
    };
    // A new event for the run to settle, sign and keep. The stack's own delivery runs may
    // settle an event first, or sign and keep its SET first (then this run reads the kept one
    // and signs nothing), and a failed push backs the stream off for 2 s: so new events until
    // the recorded runs have done all three, waiting out the back-off in between.
    let mut failed = 0;
    for _ in 0..10 {
        seed_event(s).await;
        failed += deliver.run().await.unwrap().failed;
        if delivered_all(&r) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    }
    assert!(failed >= 1, "the push to a closed port fails");
    use endpoint_core::ports::SignalStore;
    let st = s.store.get_stream(&stream).await.unwrap().unwrap();
    s.store.delete_stream(&st).await.unwrap();

    accesses(&r)
}

/// Puts one signal event in the outbox (not recorded), as a check-in or a lock does.
async fn seed_event(s: &Stack) {
    use endpoint_core::model::{CaepStatus, InitiatingEntity, SignalEvent};
    let suffix = endpoint_core::ports::random_alnum(&endpoint_core::ports::SystemRandom, 8);
    let event = SignalEvent {
        id: format!("{:011}.000-lp{suffix}", now()),
        seq: 0,
        time: now(),
        device_id: "least-privilege".into(),
        serial: "LP-SEED".into(),
        previous_status: CaepStatus::Compliant,
        current_status: CaepStatus::NotCompliant,
        initiating_entity: InitiatingEntity::Admin,
        reason: "least privilege".into(),
        txn: suffix,
    };
    endpoint_core::ports::DeviceStore::put_evaluations(&s.store, "LP-SEED", &[], &[], &[event])
        .await
        .unwrap();
}

/// Whether the recorded runs settled the outbox (its one transaction), signed a SET and kept it.
fn delivered_all(r: &Recorded) -> bool {
    let seen = accesses(r);
    [
        "dynamodb:UpdateItem SIGNAL#*",
        "kms:Sign",
        "dynamodb:PutItem SET#*",
    ]
    .iter()
    .all(|want| seen.iter().any(|a| a.starts_with(want)))
}

/// The Shared Signals function, then the delivery function; answers their accesses.
async fn ssf_and_deliver_functions(s: &Stack) -> (Vec<String>, Vec<String>) {
    // The Shared Signals function: configuration, a stream created, listed, read, verified,
    // polled (the outbox, a signed SET) and deleted.
    let r = recorded().await;
    let (_, token) = endpoint_core::ssf::create_receiver(
        &s.store,
        &endpoint_core::ports::SystemClock,
        &endpoint_core::ports::SystemRandom,
        "least privilege",
        None,
    )
    .await
    .unwrap();
    let ssf = fn_ssf::App {
        base: Base::from_env().unwrap(),
        store: r.store.clone(),
        signer: r.signer.clone(),
    };
    let bearer = format!("Bearer {}", token.expose());
    let (reply, _) = ssf
        .handle(request(
            "GET",
            routes::SSF_CONFIGURATION.template,
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 200);
    let poll = json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": [endpoint_core::signals::DEVICE_COMPLIANCE_CHANGE]});
    let (reply, _) = ssf
        .handle(request(
            "POST",
            routes::SSF_STREAM_CREATE.template,
            Some(&bearer),
            Some(poll),
        ))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let stream = json_of(&reply)["stream_id"].as_str().unwrap().to_string();
    // A poll settles a new event and signs its SET (the stack's own delivery runs may settle
    // one first: then another).
    for _ in 0..5 {
        seed_event(s).await;
        let (reply, _) = ssf
            .handle(request(
                "POST",
                &routes::SSF_POLL.path(&[&stream]),
                Some(&bearer),
                Some(json!({})),
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if delivered_all(&r) {
            break;
        }
    }
    // A push stream's authorization header is sealed (the keyring read, its data key
    // unwrapped).
    let push = json!({
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "http://127.0.0.1:9/none", "authorization_header": "Bearer least-privilege"},
        "events_requested": [endpoint_core::signals::DEVICE_COMPLIANCE_CHANGE],
    });
    for (method, path, body) in [
        ("GET", routes::SSF_STREAM_READ.template.to_string(), None),
        (
            "POST",
            routes::SSF_STREAM_CREATE.template.to_string(),
            Some(push),
        ),
        (
            "PATCH",
            routes::SSF_STREAM_UPDATE.template.to_string(),
            Some(json!({"stream_id": stream, "description": "least privilege"})),
        ),
        (
            "POST",
            routes::SSF_STATUS_UPDATE.template.to_string(),
            Some(json!({"stream_id": stream, "status": "enabled"})),
        ),
        ("GET", format!("/ssf/streams?stream_id={stream}"), None),
        (
            "POST",
            routes::SSF_VERIFY.template.to_string(),
            Some(json!({"stream_id": stream})),
        ),
        ("POST", routes::SSF_POLL.path(&[&stream]), Some(json!({}))),
        ("DELETE", format!("/ssf/streams?stream_id={stream}"), None),
    ] {
        let (reply, _) = ssf
            .handle(request(method, &path, Some(&bearer), body))
            .await;
        assert!(
            reply.status < 300,
            "{method} {path}: {} {}",
            reply.status,
            reply.body
        );
    }
    let ssf_accesses = accesses(&r);

    let deliver_accesses = deliver_function(s, &ssf, &bearer).await;
    (ssf_accesses, deliver_accesses)
}

/// Compares what the functions were seen doing with template.yaml as deployed with
/// `ChallengeSigning=mode`, both ways.
fn compare_with_the_template(observed: &BTreeMap<&str, Vec<String>>, mode: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/least-privilege-{mode}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(observed).unwrap()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/check-iam.py"))
        .arg(&path)
        .args(["--mode", mode])
        .output()
        .expect("the venv's python (scripts/venv.sh) runs scripts/check-iam.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "template.yaml and the code disagree:\n{report}"
    );
}

#[tokio::test]
async fn every_function_uses_exactly_the_grants_of_its_template_statements() {
    let s = Stack::connect().await;
    // A KMS key whatever the stack's mode (the kms comparison; data keys are driven below).
    let key = s
        .signer
        .create_key(endpoint_core::protocol::keys::KeySpec::EccNistP256, "lp")
        .await
        .unwrap();
    let setup = s.setup_with_key(StageMode::Required, &key).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    // Policy approve for this connector: re-enrollment takes an allowance.
    admin::set_reenroll(
        &s.store,
        &setup.connector,
        endpoint_core::model::ReenrollPolicy::Approve,
    )
    .await
    .unwrap();
    let serial = format!("LP-{}", now());

    let agent = agent_function(&s, &setup, &serial).await;
    let (plans, plan) = plans_function(&s, &setup, &serial).await;
    let web = web_function(&plan).await;
    let (challenge, jws) = challenge_function(&s, &setup, &plan, &agent).await;
    let response = response_function(&s, &setup, (&serial, &agent.device_key), (&plan, &jws)).await;
    let jwks = jwks_function(&setup).await;
    let oidc =
        crate::least_privilege_oidc::oidc_function(&s, &setup, (&serial, &agent.device_key)).await;
    let (ssf, deliver) = ssf_and_deliver_functions(&s).await;
    let observed: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("AgentFunction", agent.accesses),
        ("PlansFunction", plans),
        ("WebFunction", web),
        ("ChallengeFunction", challenge),
        ("ResponseFunction", response),
        ("JwksFunction", jwks),
        ("SsfFunction", ssf),
        ("DeliverFunction", deliver),
        ("OidcFunction", oidc),
    ]);
    compare_with_the_template(&observed, "kms");
    // ChallengeSigning=data-key: the same, plus what data keys need (issue 31.4).
    let mut with_data_keys = observed.clone();
    for (function, accesses) in super::least_privilege_data_key::data_key_functions(&s).await {
        let all = with_data_keys.entry(function).or_default();
        all.extend(accesses);
        all.sort();
        all.dedup();
    }
    compare_with_the_template(&with_data_keys, "data-key");
}
