//! `validate-bench INPUTS.json [ITERATIONS]`: writes the inputs the reference benchmark reads
//! (an ES256 challenge, a device with one token, the agent's response), then times our response
//! validation on them and prints `ours_us_per_op=<float>`.

use std::time::Instant;

use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::model::{Device, DeviceToken, DeviceWithTokens};
use endpoint_core::ports::random_alnum;
use endpoint_core::ports::SystemRandom;
use endpoint_core::protocol::challenge::{assemble, signing_input, ChallengeClaims};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::protocol::response::{sign_response, validate, Expected};
use endpoint_core::protocol::ATC_LEN;
use endpoint_core::secret::Secret;
use serde_json::json;

/// A signed challenge and the device's response to it, for validation by both
/// implementations: (challenge, response, device key).
fn inputs(now: i64, serial: &str) -> (String, String, String) {
    let mut signer = LocalSigner::new();
    let key = match signer.generate("k", KeySpec::EccNistP256) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("key generation failed: {e}");
            std::process::exit(1);
        }
    };
    let claims = ChallengeClaims::new(
        random_alnum(&SystemRandom, ATC_LEN),
        "stage-bench",
        now,
        false,
    );
    let input = signing_input(key.alg, &key.kid, &claims);
    let Ok(signature) = signer.sign_now("k", input.as_bytes()) else {
        eprintln!("signing failed");
        std::process::exit(1);
    };
    let challenge = assemble(&input, &signature.signature);
    let token = random_alnum(&SystemRandom, 128);
    let response = sign_response(serial, &token, &challenge, now);
    (challenge, response, token)
}

/// The enrolled device holding `token`.
fn device(serial: &str, token: &str, now: i64) -> DeviceWithTokens {
    DeviceWithTokens {
        compliance: Vec::new(),
        device: Device {
            lock: Default::default(),
            owners: Vec::new(),
            id: "00000000-0000-4000-8000-000000000000".into(),
            identifier: serial.into(),
            name: "bench".into(),
            created_at: now,
            expires_at: None,
        },
        tokens: vec![DeviceToken {
            id: "t".into(),
            device: serial.into(),
            connector: "conn".into(),
            key: Secret::new(token.to_string()),
            created_at: now,
            expires_at: None,
        }],
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: validate-bench INPUTS.json [ITERATIONS]");
        std::process::exit(2);
    };
    let iterations: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let serial = "BENCH-SERIAL-1";
    let (challenge, response, token) = inputs(now, serial);
    let device = device(serial, &token, now);
    let inputs = json!({"challenge": challenge, "response": response, "serial": serial, "tokens": [token], "now": now});
    if let Err(e) = std::fs::write(&path, inputs.to_string()) {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1);
    }

    let expected = Expected {
        challenge: Some((&challenge, now + 300)),
        connector: "conn",
        now,
        leeway: 30,
    };
    assert!(
        validate(&response, Some(&device), &expected).is_ok(),
        "the benchmark input must validate"
    );
    // Warm up, then time.
    for _ in 0..iterations / 10 {
        std::hint::black_box(
            validate(std::hint::black_box(&response), Some(&device), &expected).is_ok(),
        );
    }
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(
            validate(std::hint::black_box(&response), Some(&device), &expected).is_ok(),
        );
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("ours_us_per_op={us:.3}");
}
