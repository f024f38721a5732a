//! Helpers of the end-to-end suite. It runs inside the local stack that `make test` starts (that is, `make
//! test`), which exports ENDPOINT_API (the functions under `cargo lambda watch`) and the AWS
//! variables of the moto_server behind them; setup data goes in through the core's admin
//! operations on the same table, every request of the product goes over real HTTP.

use endpoint_agent::Http;
use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::admin::{self, NewConnector};
use endpoint_core::edge::routes;
use endpoint_core::model::{Connector, StageMode};
use endpoint_core::ports::{Directory, SystemClock, SystemRandom};
use endpoint_core::protocol::keys::KeySpec;
use serde_json::{json, Value};

pub use endpoint_agent::{now, State};

pub struct Stack {
    pub api: String,
    pub http: Http,
    pub store: DynamoStore,
    pub signer: KmsSigner,
}

/// A connector and a stage on it.
pub struct Setup {
    pub connector: String,
    pub stage: String,
    pub key: Option<String>,
}

impl Stack {
    pub async fn connect() -> Self {
        let api = std::env::var("ENDPOINT_API")
            .expect("ENDPOINT_API is not set: run the end-to-end tests through `make test` (scripts/stack-lib.sh)");
        let config = load_config().await;
        let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into());
        Stack {
            http: Http::new(&api),
            api,
            store: DynamoStore::configured(
                &config,
                &table,
                std::env::var("SEALING_KEY_ID").ok().as_deref(),
                90,
            ),
            signer: KmsSigner::from_config(&config),
        }
    }

    /// A KMS key, a connector (with or without that key; enabled or not), a stage of `mode`.
    /// Written through the store so that configurations `endpoint-admin` refuses can be tested.
    pub async fn setup(&self, mode: StageMode, with_key: bool, enabled: bool) -> Setup {
        let key = if with_key {
            Some(
                self.signer
                    .create_key(KeySpec::EccNistP256, "e2e")
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        self.setup_of(mode, key, enabled).await
    }

    /// An enabled connector signing with `key` (a KMS key id), and a stage of `mode` on it.
    pub async fn setup_with_key(&self, mode: StageMode, key: &str) -> Setup {
        self.setup_of(mode, Some(key.to_string()), true).await
    }

    async fn setup_of(&self, mode: StageMode, key: Option<String>, enabled: bool) -> Setup {
        let mut c: Connector = admin::create_connector(
            &self.store,
            &endpoint_core::ports::SystemClock,
            &SystemRandom,
            NewConnector {
                name: "e2e".into(),
                challenge_key: key.clone(),
                // Most suites re-enroll serials freely; the policy's own tests use `approve`.
                reenroll: endpoint_core::model::ReenrollPolicy::Open,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        c.enabled = enabled;
        self.store.put_connector(&c).await.unwrap();
        let stage = endpoint_core::model::Stage {
            redirect_origins: None,
            audiences: Vec::new(),
            help: None,
            policy: None,
            id: endpoint_core::ports::random_id(&SystemRandom, 12),
            connector: c.id.clone(),
            mode,
        };
        self.store.put_stage(&stage).await.unwrap();
        Setup {
            connector: c.id,
            stage: stage.id,
            key,
        }
    }

    /// Names the stage that the connector's `auth_ia/` plans run through.
    pub async fn set_interactive_stage(&self, connector: &str, stage: &str) {
        admin::set_interactive_stage(&self.store, connector, stage)
            .await
            .unwrap();
    }

    /// An enrollment token key for the connector.
    pub async fn enrollment_token(&self, connector: &str, lifetime: Option<i64>) -> String {
        let (_, key) = admin::create_enrollment_token(
            &self.store,
            &SystemClock,
            &SystemRandom,
            admin::NewEnrollmentToken {
                connector: connector.into(),
                name: "e2e".into(),
                lifetime: Some(lifetime.unwrap_or(admin::DEFAULT_ENROLLMENT_TOKEN_LIFETIME)),
                max_uses: None,
                serial: None,
                owner: None,
            },
        )
        .await
        .unwrap();
        key.expose().to_string()
    }

    /// Enrolls a device through the agent API, as `endpoint-agent enroll` does.
    pub async fn enrolled(&self, connector: &str, serial: &str) -> State {
        let token = self.enrollment_token(connector, None).await;
        endpoint_agent::enroll(&self.api, &token, serial, &format!("host-{serial}")).unwrap()
    }

    pub fn create_plan(&self, stage: &str) -> String {
        let (status, body) = self
            .http
            .post(
                routes::CREATE_PLAN.template,
                &[],
                &json!({"stage": stage, "redirect": "/next"}),
            )
            .unwrap();
        assert_eq!(status, 201, "{body}");
        body["plan"].as_str().unwrap().to_string()
    }

    pub fn get_executor(&self, plan: &str) -> (u16, Value) {
        self.http
            .get(&routes::EXECUTOR_GET.path(&[plan]), &[])
            .unwrap()
    }

    pub fn post_executor(&self, plan: &str, response: Option<&str>) -> (u16, Value) {
        let body = json!({"component": "ak-stage-endpoint-agent", "response": response});
        self.http
            .post(&routes::EXECUTOR_POST.path(&[plan]), &[], &body)
            .unwrap()
    }

    /// GETs the executor and returns the challenge JWS.
    pub fn challenge(&self, plan: &str) -> String {
        let (status, body) = self.get_executor(plan);
        assert_eq!(status, 200);
        assert_eq!(body["component"], "ak-stage-endpoint-agent", "{body}");
        body["challenge"].as_str().unwrap().to_string()
    }

    /// A login of `device` on a new plan of `stage`: the plan and the executor's 200 answer to
    /// the device's response.
    pub fn login(&self, stage: &str, device: &State) -> (String, Value) {
        let plan = self.create_plan(stage);
        let challenge = self.challenge(&plan);
        let response = endpoint_agent::respond(device, &challenge, now()).unwrap();
        let (status, body) = self.post_executor(&plan, Some(&response));
        assert_eq!(status, 200, "{body}");
        (plan, body)
    }

    /// `enroll/` with the enrollment token `key` for `serial` (named `host-<serial>`): the
    /// status and body as answered.
    pub fn enroll(&self, key: &str, serial: &str) -> (u16, Value) {
        self.http
            .post(
                routes::ENROLL.template,
                &[("authorization", &format!("Bearer {key}"))],
                &json!({"device_serial": serial, "device_name": format!("host-{serial}")}),
            )
            .unwrap()
    }

    /// `agent_config/` with the device token `token`: the status and body as answered.
    pub fn agent_config(&self, token: &str) -> (u16, Value) {
        self.http
            .get(
                routes::AGENT_CONFIG.template,
                &[("authorization", &format!("Bearer+agent {token}"))],
            )
            .unwrap()
    }

    /// `check_in/` of `facts` with the device token `token`: the status and body as answered.
    pub fn check_in(&self, token: &str, facts: &Value) -> (u16, Value) {
        self.http
            .post(
                routes::CHECK_IN.template,
                &[("authorization", &format!("Bearer+agent {token}"))],
                facts,
            )
            .unwrap()
    }

    /// Runs the stack's `endpoint-admin` with `args` and `--json`; returns its JSON answer.
    pub fn admin_json(&self, args: &[&str]) -> Value {
        let admin = std::env::var("STACK_ADMIN")
            .expect("run through make test (scripts/stack-lib.sh exports STACK_ADMIN)");
        let out = std::process::Command::new(admin)
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A required stage whose posture policy has one rule, the firewall on (block, an
    /// unreported firewall fails), and a device enrolled on it: (policy id, serial, device id,
    /// the device's state).
    pub async fn firewall_device(&self, tag: &str) -> (String, String, String, State) {
        use endpoint_core::compliance::admin::{add_rule, create_policy, set_stage_policy};
        use endpoint_core::compliance::rules::NewRule;
        use endpoint_core::model::{Enforcement, RuleKind, UnknownAs, WhenUnknown};
        let setup = self.setup(StageMode::Required, true, true).await;
        let policy = create_policy(
            &self.store,
            &SystemRandom,
            now(),
            tag,
            None,
            WhenUnknown::Deny,
        )
        .await
        .unwrap();
        let rule = NewRule {
            kind: RuleKind::Firewall,
            title: None,
            remediation: None,
            enforce: Enforcement::Block,
            unknown: UnknownAs::Fail,
        };
        add_rule(&self.store, &SystemRandom, &policy.id, rule)
            .await
            .unwrap();
        set_stage_policy(&self.store, &setup.stage, Some(&policy.id))
            .await
            .unwrap();
        let serial = format!("{tag}-{}", now());
        let device = self.enrolled(&setup.connector, &serial).await;
        let id = self.admin_json(&["device", "show", &serial])["id"]
            .as_str()
            .unwrap()
            .to_string();
        (policy.id, serial, id, device)
    }

    /// A check-in of `device` reporting only whether its firewall is on.
    pub fn check_in_firewall(&self, device: &State, enabled: bool) {
        let (status, body) = self
            .http
            .post(
                routes::CHECK_IN.template,
                &[("authorization", &format!("Bearer+agent {}", device.token))],
                &json!({"network": {"firewall_enabled": enabled}}),
            )
            .unwrap();
        assert_eq!(status, 204, "{body}");
    }

    pub fn plan(&self, plan: &str) -> Value {
        let (status, body) = self
            .http
            .get(&routes::READ_PLAN.path(&[plan]), &[])
            .unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }
}

pub fn redirect() -> Value {
    json!({"component": "xak-flow-redirect", "to": "/next"})
}

/// A denial as the executor answers it: authentik's fields, and our `reason` for the page.
/// Written out as the wire format, not made by our serializer (`edge::outcome_body`): the core's
/// suites have their own `denied` over `Outcome` (`shared/tests/common`), and this one checks
/// the JSON that reaches authentik.
pub fn denied(message: &str) -> Value {
    let mut body = json!({"component": "ak-stage-access-denied", "error_message": message});
    if let Some(reason) = endpoint_core::stage::denial_reason(message) {
        body["reason"] = Value::String(reason.as_str().into());
    }
    body
}

pub fn is_retry(body: &Value) -> bool {
    body["component"] == "ak-stage-endpoint-agent"
        && body["challenge"].is_string()
        && body["response_errors"]
            == json!({"response": [{"string": "Invalid challenge response", "code": "invalid"}]})
}
