//! Test fixture: the core over the in-memory store, the local signer and a fixed clock.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::adapters::memory::{FixedClock, MemoryStore};
use endpoint_core::admin;
use endpoint_core::model::{Connector, Plan, Stage, StageMode};
use endpoint_core::ports::{Directory, KeyDescription, SystemRandom};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::protocol::response::sign_response;
use endpoint_core::secret::Secret;
use endpoint_core::settings::{Env, Settings};
use endpoint_core::stage::{self, Outcome};
use endpoint_core::CoreError;

pub const T0: i64 = 1_800_000_000;

/// RSA private keys made ahead (PKCS#8 DER; test keys, public in this repository: see
/// shared/tests/fixtures/rsa/README.md). Generating one takes up to seconds (4096 bits), and the
/// suites need a dozen: most of the domain suite's CPU when each was generated.
const RSA_2048: [&[u8]; 8] = [
    include_bytes!("../fixtures/rsa/rsa-2048-1.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-2.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-3.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-4.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-5.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-6.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-7.der"),
    include_bytes!("../fixtures/rsa/rsa-2048-8.der"),
];
const RSA_3072: [&[u8]; 2] = [
    include_bytes!("../fixtures/rsa/rsa-3072-1.der"),
    include_bytes!("../fixtures/rsa/rsa-3072-2.der"),
];
const RSA_4096: [&[u8]; 2] = [
    include_bytes!("../fixtures/rsa/rsa-4096-1.der"),
    include_bytes!("../fixtures/rsa/rsa-4096-2.der"),
];

/// A key of `spec` under `name` in `signer`: a new EC key, or the next RSA key of that size from
/// the fixtures (each size takes its turn process-wide, so two keys drawn one after the other
/// are different keys; no test holds more keys of one size than there are).
pub fn add_key(signer: &mut LocalSigner, name: &str, spec: KeySpec) -> KeyDescription {
    static TURNS: [AtomicUsize; 3] = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    let (pool, turn): (&[&[u8]], _) = match spec {
        KeySpec::Rsa2048 => (&RSA_2048, &TURNS[0]),
        KeySpec::Rsa3072 => (&RSA_3072, &TURNS[1]),
        KeySpec::Rsa4096 => (&RSA_4096, &TURNS[2]),
        _ => return signer.generate(name, spec).expect("EC key generation"),
    };
    let der = pool[turn.fetch_add(1, Ordering::Relaxed) % pool.len()];
    signer.import_rsa(name, der).expect("a fixture RSA key")
}
pub const KEY: &str = "key-p256";

pub struct Fx {
    pub store: MemoryStore,
    pub signer: LocalSigner,
    pub clock: FixedClock,
    pub rng: SystemRandom,
    pub settings: Settings,
}

impl Fx {
    pub fn new() -> Self {
        let mut signer = LocalSigner::new();
        signer.generate(KEY, KeySpec::EccNistP256).unwrap();
        Fx {
            store: MemoryStore::new(),
            signer,
            clock: FixedClock::new(T0),
            rng: SystemRandom,
            settings: Settings::default(),
        }
    }

    pub fn env(&self) -> Env<'_> {
        Env {
            clock: &self.clock,
            rng: &self.rng,
            settings: &self.settings,
            caller: &endpoint_core::audit::Caller::UNKNOWN,
        }
    }

    /// A connector (with or without key, enabled or not) and a stage of `mode` on it. Written
    /// directly so that configurations the admin operations refuse can be tested at run time.
    pub async fn setup(
        &self,
        mode: StageMode,
        key: Option<&str>,
        enabled: bool,
    ) -> (Connector, Stage) {
        let mut c = Connector::new(format!("conn-{}", rand_suffix()), "test connector");
        c.challenge_key = key.map(str::to_string);
        c.enabled = enabled;
        self.store.put_connector(&c).await.unwrap();
        let s = Stage {
            redirect_origins: None,
            audiences: Vec::new(),
            help: None,
            policy: None,
            id: format!("stage-{}", rand_suffix()),
            connector: c.id.clone(),
            mode,
        };
        self.store.put_stage(&s).await.unwrap();
        (c, s)
    }

    pub async fn enroll(&self, connector: &str, serial: &str) -> Secret {
        admin::enroll_device(
            &self.store,
            &self.clock,
            &self.rng,
            connector,
            serial,
            &format!("host-{serial}"),
        )
        .await
        .unwrap()
        .1
    }

    pub async fn plan(&self, stage: &str) -> String {
        stage::create_plan(&self.store, &self.env(), stage, Some("/next"), None)
            .await
            .unwrap()
            .id
    }

    pub async fn get(&self, plan: &str, dth: Option<&str>) -> Result<Outcome, CoreError> {
        stage::executor_get(&self.store, &self.signer, &self.env(), plan, dth).await
    }

    pub async fn post(&self, plan: &str, response: Option<&str>) -> Result<Outcome, CoreError> {
        let env = self.env();
        let minter = endpoint_core::minter::SigningMinter {
            store: &self.store,
            signer: &self.signer,
            env: &env,
        };
        stage::executor_post(&self.store, &minter, &env, plan, response).await
    }

    /// GETs a challenge and returns the JWS.
    pub async fn challenge(&self, plan: &str) -> String {
        match self.get(plan, None).await.unwrap() {
            Outcome::Challenge { jws, .. } => jws,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// The agent's answer to `challenge`, made now.
    pub fn respond(&self, serial: &str, key: &Secret, challenge: &str) -> String {
        use endpoint_core::ports::Clock;
        sign_response(serial, key.expose(), challenge, self.clock.now())
    }

    /// A login of device `serial` with `key` on a new plan of `stage`: the plan and the outcome
    /// of the device's answer to its challenge.
    pub async fn login(&self, stage: &str, serial: &str, key: &Secret) -> (String, Outcome) {
        let plan = self.plan(stage).await;
        let challenge = self.challenge(&plan).await;
        let response = self.respond(serial, key, &challenge);
        let outcome = self.post(&plan, Some(&response)).await.unwrap();
        (plan, outcome)
    }

    pub fn plan_state(&self, plan: &str) -> Plan {
        self.store.raw_plan(plan).unwrap()
    }
}

pub fn rand_suffix() -> String {
    endpoint_core::ports::random_alnum(&SystemRandom, 8)
}

pub fn passed() -> Outcome {
    Outcome::Redirect {
        to: "/next".into(),
        compliance: None,
    }
}

pub fn denied(message: &str) -> Outcome {
    Outcome::Denied {
        compliance: None,
        message: message.into(),
        reason: endpoint_core::stage::denial_reason(message),
    }
}

pub fn is_retry(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::Challenge {
            invalid_response: true,
            ..
        }
    )
}

/// Builds a JWS with arbitrary header and claims JSON and an HS512 signature with `key`
/// (or a given signature segment), for hostile-response tests.
pub fn forge(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
    use endpoint_core::protocol::b64url;
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(key),
        jsonwebtoken::Algorithm::HS512,
    )
    .unwrap();
    format!("{input}.{sig}")
}

// ---- an independent verifier (RustCrypto), as an agent would verify a challenge ----

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use endpoint_core::protocol::jwk::Jwk;
use serde_json::Value;

pub fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// Verifies a compact JWS with the public JWK; returns the claims. Panics on any mismatch.
pub fn verify_independently(jws: &str, jwk: &Jwk) -> Value {
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let (h, c) = input.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&b64(h)).unwrap();
    assert_eq!(header["kid"], jwk.kid.as_str());
    assert_eq!(header["alg"], jwk.alg.as_str());
    assert_eq!(header["typ"], "JWT");
    let sig = b64(sig);
    let point = |size: usize| {
        let (x, y) = (
            b64(jwk.x.as_deref().unwrap()),
            b64(jwk.y.as_deref().unwrap()),
        );
        assert_eq!(
            (x.len(), y.len()),
            (size, size),
            "coordinates left-padded to the curve size"
        );
        [&[4u8][..], &x, &y].concat()
    };
    match jwk.alg.as_str() {
        "ES256" => {
            use p256::ecdsa::{signature::Verifier, Signature, VerifyingKey};
            let key = VerifyingKey::from_sec1_bytes(&point(32)).unwrap();
            key.verify(input.as_bytes(), &Signature::from_slice(&sig).unwrap())
                .unwrap();
        }
        "ES384" => {
            use p384::ecdsa::{signature::Verifier, Signature, VerifyingKey};
            let key = VerifyingKey::from_sec1_bytes(&point(48)).unwrap();
            key.verify(input.as_bytes(), &Signature::from_slice(&sig).unwrap())
                .unwrap();
        }
        "ES512" => {
            use p521::ecdsa::{signature::Verifier, Signature, VerifyingKey};
            let key = VerifyingKey::from_sec1_bytes(&point(66)).unwrap();
            key.verify(input.as_bytes(), &Signature::from_slice(&sig).unwrap())
                .unwrap();
        }
        "RS256" => {
            use rsa::pkcs1v15::{Signature, VerifyingKey};
            use rsa::signature::Verifier;
            use rsa::{BigUint, RsaPublicKey};
            let n = BigUint::from_bytes_be(&b64(jwk.n.as_deref().unwrap()));
            let e = BigUint::from_bytes_be(&b64(jwk.e.as_deref().unwrap()));
            let key = VerifyingKey::<sha2::Sha256>::new(RsaPublicKey::new(n, e).unwrap());
            key.verify(
                input.as_bytes(),
                &Signature::try_from(sig.as_slice()).unwrap(),
            )
            .unwrap();
        }
        other => panic!("unexpected alg {other}"),
    }
    serde_json::from_slice(&b64(c)).unwrap()
}
