//! AWS calls per operation, counted with an SDK interceptor on the same handlers the functions
//! run (in process, against moto). Fails when a route makes more calls than its budget:
//! challenge GET at most one KMS Sign and two DynamoDB calls; response POST (warm) three
//! DynamoDB calls in two sequential rounds and no KMS call (the sealed device keys open with the
//! data key unwrapped once per cold start); JWKS warm with zero KMS calls. The audit record of a
//! plan's end travels in the same write as the end (a transaction), never an extra round trip.
//! A challenge GET's two DynamoDB calls are the attempt reservation (which returns the plan)
//! and the store of the signed challenge.

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::instrument::CallCounter;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::edge::routes;
use endpoint_core::edge::Base;
use endpoint_core::model::StageMode;
use endpoint_core::ports::ChallengeMinter;
use endpoint_core::stage::Outcome;
use endpoint_core::CoreError;
use endpoint_e2e::{now, Setup, Stack};
use lambda_http::{Body, Request};
use serde_json::Value;

fn request(method: &str, path: &str, body: Option<Value>) -> Request {
    let body = body.map_or(Body::Empty, |b| Body::Text(b.to_string()));
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .body(body)
        .unwrap()
}

/// The response function never needs a new challenge for a valid response.
struct NoMinter;
impl ChallengeMinter for NoMinter {
    async fn new_challenge(&self, _plan: &str) -> Result<Outcome, CoreError> {
        panic!("a valid response must not mint a challenge")
    }
}

fn table_name() -> String {
    std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into())
}

async fn counted() -> (DynamoStore, KmsSigner, CallCounter, CallCounter) {
    let config = load_config().await;
    let (ddb, kms) = (CallCounter::default(), CallCounter::default());
    let table = table_name();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .interceptor(ddb.clone())
                .build(),
        ),
        table,
    );
    let kms_client = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&config)
            .interceptor(kms.clone())
            .build(),
    );
    let sealing =
        std::env::var("SEALING_KEY_ID").expect("scripts/stack-lib.sh exports SEALING_KEY_ID");
    let store = store.with_sealing(endpoint_core::adapters::vault::KmsVault::new(
        kms_client.clone(),
        sealing,
        table_name(),
    ));
    let signer = KmsSigner::new(kms_client);
    (store, signer, ddb, kms)
}

/// A stage with its key, an enrolled device, and clients whose AWS calls are counted.
struct World {
    s: Stack,
    setup: Setup,
    device: endpoint_agent::State,
    store: DynamoStore,
    signer: KmsSigner,
    ddb: CallCounter,
    kms: CallCounter,
}

async fn world(tag: &str) -> World {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let device = s
        .enrolled(&setup.connector, &format!("E2E-{tag}-{}", now()))
        .await;
    let (store, signer, ddb, kms) = counted().await;
    World {
        s,
        setup,
        device,
        store,
        signer,
        ddb,
        kms,
    }
}

fn challenge_app(w: &World) -> fn_challenge::App<DynamoStore, KmsSigner> {
    fn_challenge::App {
        base: Base::from_env().unwrap(),
        store: w.store.clone(),
        signer: w.signer.clone(),
    }
}

fn response_app(w: &World) -> fn_response::App<DynamoStore, NoMinter> {
    fn_response::App {
        base: Base::from_env().unwrap(),
        store: w.store.clone(),
        minter: NoMinter,
    }
}

fn agent_app(w: &World) -> fn_agent::App<DynamoStore, KmsSigner> {
    fn_agent::App {
        base: Base::from_env().unwrap(),
        store: w.store.clone(),
        signer: w.signer.clone(),
    }
}

/// A new plan of the world's stage, passed by the device (its calls not looked at).
async fn passed_plan(w: &World) -> String {
    let plan = w.s.create_plan(&w.setup.stage);
    let (reply, _) = challenge_app(w)
        .handle(request("GET", &routes::EXECUTOR_GET.path(&[&plan]), None))
        .await;
    let jws = reply.body["challenge"].as_str().unwrap().to_string();
    let answer = endpoint_agent::respond(&w.device, &jws, now()).unwrap();
    let body = serde_json::json!({"component": "ak-stage-endpoint-agent", "response": answer});
    let (_, outcome) = response_app(w)
        .handle(request(
            "POST",
            &routes::EXECUTOR_POST.path(&[&plan]),
            Some(body),
        ))
        .await;
    assert_eq!(outcome.as_str(), "passed");
    plan
}

/// `req` authenticated with the device's token.
fn with_device_token(mut req: Request, token: &str) -> Request {
    req.headers_mut().insert(
        "authorization",
        format!("Bearer+agent {token}").parse().unwrap(),
    );
    req
}

/// Challenge GETs, cold (the public key fetched once) then warm; answers the warm plan and its
/// challenge.
async fn challenge_gets(
    w: &World,
    challenge: &fn_challenge::App<DynamoStore, KmsSigner>,
) -> (String, String) {
    let (s, setup, ddb, kms) = (&w.s, &w.setup, &w.ddb, &w.kms);
    // Cold: the first challenge also fetches the public key once.
    let plan = s.create_plan(&setup.stage);
    let (reply, _) = challenge
        .handle(request("GET", &routes::EXECUTOR_GET.path(&[&plan]), None))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(kms.calls(), ["GetPublicKey", "Sign"]);
    assert_eq!(
        ddb.calls(),
        ["UpdateItem", "UpdateItem"],
        "reserve the attempt, then store the challenge"
    );

    // Warm challenge GET: one Sign, two DynamoDB calls.
    let plan = s.create_plan(&setup.stage);
    kms.reset();
    ddb.reset();
    let (reply, _) = challenge
        .handle(request("GET", &routes::EXECUTOR_GET.path(&[&plan]), None))
        .await;
    assert_eq!(kms.calls(), ["Sign"]);
    assert_eq!(ddb.calls(), ["UpdateItem", "UpdateItem"]);

    let jws = reply.body["challenge"].as_str().unwrap().to_string();
    (plan, jws)
}

#[tokio::test]
async fn calls_per_route_stay_within_budget() {
    let w = world("CALLS").await;
    let (s, setup, device, ddb, kms) = (&w.s, &w.setup, &w.device, &w.ddb, &w.kms);
    let (challenge, response) = (challenge_app(&w), response_app(&w));

    let (plan, jws) = challenge_gets(&w, &challenge).await;

    // Response POST, cold: the two reads and the data key's item together, then its unwrapping
    // (once per process), then the consumption with its audit record in one transaction.
    let answer = endpoint_agent::respond(device, &jws, now()).unwrap();
    kms.reset();
    ddb.reset();
    let post = |plan: &str, answer: &str| {
        let body = serde_json::json!({"component": "ak-stage-endpoint-agent", "response": answer});
        request("POST", &routes::EXECUTOR_POST.path(&[plan]), Some(body))
    };
    let (reply, outcome) = response.handle(post(&plan, &answer)).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "passed"),
        "{}",
        reply.body
    );
    let mut calls = ddb.calls();
    assert_eq!(
        calls.pop().as_deref(),
        Some("TransactWriteItems"),
        "the consumption comes last"
    );
    calls.sort();
    assert_eq!(
        calls,
        ["GetItem", "GetItem", "Query"],
        "the plan, the device and, cold only, the keyring (issued together)"
    );
    assert_eq!(
        kms.calls(),
        ["Decrypt"],
        "the data key, once per cold start"
    );

    // Warm: the reads, then the consumption with its audit record. No KMS call.
    let plan = s.create_plan(&setup.stage);
    let (reply, _) = challenge
        .handle(request("GET", &routes::EXECUTOR_GET.path(&[&plan]), None))
        .await;
    let jws = reply.body["challenge"].as_str().unwrap().to_string();
    let answer = endpoint_agent::respond(device, &jws, now()).unwrap();
    kms.reset();
    ddb.reset();
    let (reply, outcome) = response.handle(post(&plan, &answer)).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "passed"),
        "{}",
        reply.body
    );
    let mut calls = ddb.calls();
    assert_eq!(calls.pop().as_deref(), Some("TransactWriteItems"));
    calls.sort();
    assert_eq!(calls, ["GetItem", "Query"], "two sequential rounds in all");
    assert!(
        kms.calls().is_empty(),
        "the response validator makes no KMS call"
    );
}

#[tokio::test]
async fn relying_party_reads_and_jwks_stay_within_budget() {
    let w = world("READS").await;
    let (s, setup, store, signer, ddb, kms) = (&w.s, &w.setup, &w.store, &w.signer, &w.ddb, &w.kms);
    let plan = passed_plan(&w).await;
    let jwks = fn_jwks::App::new(
        Base::from_env().unwrap(),
        store.clone(),
        signer.clone(),
        signer.clone(),
        "us-east-1",
    );

    // The relying party's first read of the passed plan: one GetItem, the device assertion's
    // one KMS Sign (cold, the assertion key's public key first) and the conditional write that
    // keeps it with the plan; every later read: the GetItem alone, the same assertion, no KMS
    // call (one signature per passed plan). Of a pending plan, no KMS call.
    let plans = fn_plans::App {
        base: Base::from_env().unwrap(),
        store: store.clone(),
        signer: signer.clone(),
    };
    let read = |p: &str| request("GET", &routes::READ_PLAN.path(&[p]), None);
    let mut assertions = Vec::new();
    for (kms_expected, ddb_expected) in [
        (
            &["GetPublicKey", "Sign"][..],
            &["GetItem", "UpdateItem"][..],
        ),
        (&[][..], &["GetItem"][..]),
        (&[][..], &["GetItem"][..]),
    ] {
        kms.reset();
        ddb.reset();
        let (reply, _) = plans.handle(read(&plan)).await;
        assert!(reply.body["assertion"].is_string(), "{}", reply.body);
        assertions.push(reply.body["assertion"].clone());
        assert_eq!(kms.calls(), kms_expected);
        assert_eq!(ddb.calls(), ddb_expected);
    }
    assert!(
        assertions.iter().all(|a| *a == assertions[0]),
        "signed once"
    );
    let pending = s.create_plan(&setup.stage);
    kms.reset();
    let (reply, _) = plans.handle(read(&pending)).await;
    assert!(reply.body.get("assertion").is_none());
    assert!(kms.calls().is_empty());

    // JWKS: warm, no KMS call at all.
    kms.reset();
    ddb.reset();
    let (reply, _) = jwks
        .handle(request(
            "GET",
            &routes::JWKS.path(&[&setup.connector]),
            None,
        ))
        .await;
    assert_eq!(reply.status, 200);
    assert!(kms.calls().is_empty(), "{:?}", kms.calls());
    assert_eq!(ddb.calls(), ["GetItem"]);
}

/// `/health`: one round of checks (the table's `GetItem`, the challenge key's `DescribeKey`, no
/// KMS `Sign`) answers every caller of the instance for `HEALTH_CACHE_SECONDS`.
#[tokio::test]
async fn health_makes_one_round_of_calls_per_window_whatever_the_callers() {
    let w = world("HEALTH").await;
    let (store, signer, ddb, kms) = (&w.store, &w.signer, &w.ddb, &w.kms);
    let key = signer
        .create_key(
            endpoint_core::protocol::keys::KeySpec::EccNistP256,
            "health",
        )
        .await
        .unwrap();
    let mut base = Base::from_env().unwrap();
    base.config.challenge_key = Some(key);
    let jwks = fn_jwks::App::new(
        base,
        store.clone(),
        signer.clone(),
        signer.clone(),
        "us-east-1",
    );
    kms.reset();
    ddb.reset();
    let callers = 20;
    for _ in 0..callers {
        let (reply, _) = jwks
            .handle(request("GET", routes::HEALTH.template, None))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["checks"]["table"], "ok");
        assert_eq!(reply.body["checks"]["challenge_key"], "ok");
    }
    // Each round is one GetItem and one DescribeKey. The first call makes one; the others answer
    // its report (they take milliseconds: at most one window can end among them, one more round).
    let rounds = ddb.calls().len();
    assert!((1..=2).contains(&rounds), "{:?}", ddb.calls());
    assert_eq!(ddb.calls(), vec!["GetItem"; rounds]);
    assert_eq!(kms.calls(), vec!["DescribeKey"; rounds]);
    println!(
        "health: {callers} calls, {rounds} round(s) of AWS calls: {:?} {:?}",
        ddb.calls(),
        kms.calls()
    );
}

#[tokio::test]
async fn the_directory_sync_reads_only_the_token_index() {
    let w = world("DIRECTORY-CALLS").await;
    let (device, ddb, kms) = (&w.device, &w.ddb, &w.kms);
    let agent = agent_app(&w);
    for path in [
        routes::DIRECTORY_USERS.template,
        routes::DIRECTORY_GROUPS.template,
    ] {
        ddb.reset();
        kms.reset();
        let req = with_device_token(request("GET", path, None), &device.token);
        let (reply, _) = agent.handle(req).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["results"], serde_json::json!([]));
        assert_eq!(ddb.calls(), ["GetItem"], "{path}");
        assert!(kms.calls().is_empty(), "{:?}", kms.calls());
    }
}

#[tokio::test]
async fn agent_routes_stay_within_budget() {
    let w = world("AGENT-CALLS").await;
    let (s, setup, device, ddb, kms) = (&w.s, &w.setup, &w.device, &w.ddb, &w.kms);
    let agent = agent_app(&w);
    let config = || {
        let req = request("GET", routes::AGENT_CONFIG.template, None);
        with_device_token(req, &device.token)
    };
    // Warm: the first agent_config/ of a process fetches the connector's public key once.
    assert_eq!(agent.handle(config()).await.0.status, 200);
    // core/brands/current/: no AWS call at all. agent_config/: the token index, then the device
    // and the connector together; the connector's JWKS from the warm key cache.
    kms.reset();
    ddb.reset();
    let (reply, _) = agent
        .handle(request("GET", routes::CURRENT_BRAND.template, None))
        .await;
    assert_eq!(reply.status, 200);
    assert!(ddb.calls().is_empty() && kms.calls().is_empty());
    let (reply, _) = agent.handle(config()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(kms.calls().is_empty(), "{:?}", kms.calls());
    let mut calls = ddb.calls();
    calls.sort();
    // The token index, then the device (one Query of its partition: the device and its stored
    // evaluations, no key) and the connector together.
    assert_eq!(calls, ["GetItem", "GetItem", "Query"]);

    // During a key rotation (a next key published), the first agent_config/ of each device
    // also records that the device has the next key: one UpdateItem of its token index entry,
    // after the reads (the only change to this route's count, and only then); the next fetch
    // is back to the three reads. (The next key's public key is fetched once, cold.)
    let next = s.admin_json(&["key", "create"])["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    endpoint_core::admin::add_next_key(
        &s.store,
        &endpoint_core::ports::SystemClock,
        &setup.connector,
        &next,
    )
    .await
    .unwrap();
    ddb.reset();
    let (reply, _) = agent.handle(config()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut calls = ddb.calls();
    calls.sort();
    assert_eq!(calls, ["GetItem", "GetItem", "Query", "UpdateItem"]);
    ddb.reset();
    kms.reset();
    let (reply, _) = agent.handle(config()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut calls = ddb.calls();
    calls.sort();
    assert_eq!(calls, ["GetItem", "GetItem", "Query"]);
    assert!(kms.calls().is_empty(), "{:?}", kms.calls());

    // check_in/: the same three reads with the device's check-in counter beside the device and
    // connector (the limit adds no round trip), then the snapshot and its audit record written
    // together (two parallel PutItems: the audit record adds no round trip).
    ddb.reset();
    let (reply, _) = agent.handle(check_in(&device.token)).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let mut calls = ddb.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "GetItem",
            "GetItem",
            "PutItem",
            "PutItem",
            "Query",
            "UpdateItem"
        ]
    );

    // auth_ia/: the token index, then device, connector and the rate counter together, then
    // the stage and connector of the plan and the plan itself: the limit adds no round trip.
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    ddb.reset();
    let req = request("POST", routes::AUTH_IA.template, None);
    let mut req = with_device_token(req, &device.token);
    req.headers_mut()
        .insert("host", "127.0.0.1".parse().unwrap());
    let (reply, _) = agent.handle(req).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut calls = ddb.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "GetItem",
            "GetItem",
            "GetItem",
            "GetItem",
            "PutItem",
            "Query",
            "UpdateItem"
        ]
    );
}

#[tokio::test]
async fn a_posture_policy_adds_one_round_to_check_in_only() {
    let w = world("POLICY-CALLS").await;
    let (s, setup, device, ddb) = (&w.s, &w.setup, &w.device, &w.ddb);
    let agent = agent_app(&w);
    // check_in/ on a connector whose stage has a posture policy: the policy is read after the
    // connector (one more round, on this agent route only), and the evaluation is written with
    // the snapshot and the audit record, in the same round as they are.
    let policy = endpoint_core::compliance::admin::create_policy(
        &s.store,
        &endpoint_core::ports::SystemRandom,
        now(),
        "calls",
        None,
        endpoint_core::model::WhenUnknown::Deny,
    )
    .await
    .unwrap();
    endpoint_core::compliance::admin::set_stage_policy(&s.store, &setup.stage, Some(&policy.id))
        .await
        .unwrap();
    ddb.reset();
    let (reply, _) = agent.handle(check_in(&device.token)).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let mut calls = ddb.calls();
    calls.sort();
    // The first evaluation changes the device's status (unknown -> compliant): the evaluation
    // and that change's audit record are one transaction.
    assert_eq!(
        calls,
        [
            "GetItem",
            "GetItem",
            "GetItem",
            "PutItem",
            "PutItem",
            "Query",
            "TransactWriteItems",
            "UpdateItem"
        ]
    );
}

#[tokio::test]
async fn a_refused_check_in_spends_nothing_but_its_counter() {
    let w = world("CHECK-IN-LIMIT").await;
    let (device, ddb, kms) = (&w.device, &w.ddb, &w.kms);
    let agent = agent_app(&w);
    // Up to the limit (a minute may turn once: then up to twice as many are accepted).
    let mut refused = false;
    for _ in 0..41 {
        let (reply, _) = agent.handle(check_in(&device.token)).await;
        if reply.status == 429 {
            refused = true;
            break;
        }
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
    assert!(refused, "the limit refused a check-in");
    // Past the limit: the token, the device and connector beside the counter, and (at most
    // once a minute, already spent by the refusal above) the refusal's counter and record.
    // Nothing is evaluated, stored or signed.
    ddb.reset();
    kms.reset();
    let (reply, _) = agent.handle(check_in(&device.token)).await;
    if reply.status == 204 {
        return; // The minute turned just now: the window is new.
    }
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(kms.calls().is_empty(), "{:?}", kms.calls());
    let mut calls = ddb.calls();
    calls.sort();
    assert_eq!(
        calls,
        ["GetItem", "GetItem", "Query", "UpdateItem", "UpdateItem"],
        "no PutItem: no snapshot, no evaluation, no second audit record this minute"
    );
}

/// A `check_in/` of a small facts document, authenticated with the device's token.
fn check_in(token: &str) -> Request {
    let req = request(
        "POST",
        routes::CHECK_IN.template,
        Some(serde_json::json!({"hardware": {"serial": "x"}})),
    );
    with_device_token(req, token)
}

#[tokio::test]
async fn the_dth_path_reads_the_lock_with_the_token_in_one_call() {
    let w = world("DTH-CALLS").await;
    let (s, setup, device, ddb, kms) = (&w.s, &w.setup, &w.device, &w.ddb, &w.kms);
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let req = request("POST", routes::AUTH_IA.template, None);
    let mut req = with_device_token(req, &device.token);
    req.headers_mut()
        .insert("host", "127.0.0.1".parse().unwrap());
    let (reply, _) = agent_app(&w).handle(req).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let url = reply.body["url"].as_str().unwrap();
    let path = &url[url.find("/v1/plans/").unwrap()..];
    let mut req = request("GET", path, None);
    let dth = endpoint_core::protocol::DTH_HEADER.as_bytes();
    req.headers_mut().insert(
        lambda_http::http::HeaderName::from_bytes(dth).unwrap(),
        endpoint_core::protocol::device_token_hash(&device.token)
            .parse()
            .unwrap(),
    );
    kms.reset();
    ddb.reset();
    let (reply, outcome) = challenge_app(&w).handle(req).await;
    assert_eq!(
        (reply.status, outcome.as_str()),
        (200, "passed"),
        "{}",
        reply.body
    );
    // The attempt's reservation, then the token index entry and the device (its lock) in one
    // request, then the plan's end with its audit record: three calls in three rounds, as
    // before the lock was read (a GetItem of the entry alone).
    assert_eq!(
        ddb.calls(),
        ["UpdateItem", "BatchGetItem", "TransactWriteItems"]
    );
    assert!(kms.calls().is_empty(), "{:?}", kms.calls());
}
