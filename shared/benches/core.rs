//! Benchmarks of the two hot paths: response validation (a device with one token and
//! with three) and challenge building with the local signer.
//!
//! `cargo bench -p endpoint-core --bench core`; medians go in docs/DEVELOPING.md, "Benchmarks".

mod support;

use support::{black_box, Harness};

use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::model::{Device, DeviceToken, DeviceWithTokens};
use endpoint_core::ports::random_alnum;
use endpoint_core::ports::{KeyDescription, SystemRandom};
use endpoint_core::protocol::challenge::{assemble, signing_input, ChallengeClaims};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::protocol::response::{sign_response, validate, Expected};
use endpoint_core::protocol::ATC_LEN;
use endpoint_core::secret::Secret;

const NOW: i64 = 1_800_000_000;

fn challenge(signer: &LocalSigner, key: &str, d: &KeyDescription) -> String {
    let claims = ChallengeClaims::new(random_alnum(&SystemRandom, ATC_LEN), "stage-1", NOW, false);
    let input = signing_input(d.alg, &d.kid, &claims);
    let sig = signer.sign_now(key, input.as_bytes()).unwrap();
    assemble(&input, &sig.signature)
}

fn device(tokens: usize) -> (DeviceWithTokens, Secret) {
    let keys: Vec<Secret> = (0..tokens)
        .map(|_| Secret::new(random_alnum(&SystemRandom, 128)))
        .collect();
    let d = DeviceWithTokens {
        compliance: Vec::new(),
        device: Device {
            lock: None,
            owners: Vec::new(),
            id: "00000000-0000-4000-8000-000000000000".into(),
            identifier: "SERIAL-1".into(),
            name: "host".into(),
            created_at: NOW,
            expires_at: None,
        },
        tokens: keys
            .iter()
            .enumerate()
            .map(|(i, k)| DeviceToken {
                id: format!("t{i}"),
                device: "SERIAL-1".into(),
                connector: "conn".into(),
                key: k.clone(),
                created_at: NOW,
                expires_at: None,
            })
            .collect(),
    };
    // The device answers with its last token: the worst case tries every token.
    let last = keys.last().cloned().unwrap();
    (d, last)
}

fn bench_validation(c: &mut Harness) {
    let mut signer = LocalSigner::new();
    let d = signer.generate("k", KeySpec::EccNistP256).unwrap();
    let ch = challenge(&signer, "k", &d);
    for tokens in [1, 3] {
        let (d, key) = device(tokens);
        let response = sign_response("SERIAL-1", key.expose(), &ch, NOW);
        let expected = Expected {
            challenge: Some((&ch, NOW + 300)),
            connector: "conn",
            now: NOW,
            leeway: 30,
        };
        assert!(validate(&response, Some(&d), &expected).is_ok());
        c.bench_function(&format!("validate_response/{tokens}_token"), |b| {
            b.iter(|| {
                validate(
                    black_box(&response),
                    Some(black_box(&d)),
                    black_box(&expected),
                )
            })
        });
    }
    let (_, key) = device(1);
    let response = sign_response("UNKNOWN", key.expose(), &ch, NOW);
    let expected = Expected {
        challenge: Some((&ch, NOW + 300)),
        connector: "conn",
        now: NOW,
        leeway: 30,
    };
    c.bench_function("validate_response/unknown_device", |b| {
        b.iter(|| validate(black_box(&response), None, black_box(&expected)))
    });
}

fn bench_challenge(c: &mut Harness) {
    let mut signer = LocalSigner::new();
    for (name, spec) in [
        ("ES256", KeySpec::EccNistP256),
        ("ES384", KeySpec::EccNistP384),
        ("RS256_2048", KeySpec::Rsa2048),
    ] {
        let d = signer.generate(name, spec).unwrap();
        c.bench_function(&format!("build_challenge/{name}"), |b| {
            b.iter(|| challenge(black_box(&signer), name, &d))
        });
    }
}

/// Opening a sealed device token key (AES-256-GCM, the 128-character key bound to its item):
/// what reading a device's tokens adds per token in production.
fn bench_sealing(c: &mut Harness) {
    use endpoint_core::adapters::sealing::DataKey;
    let key = DataKey::from_bytes(&[7u8; 32]).expect("32 bytes is a 256-bit key");
    let aad = b"DEVICE#VMware-56 4d 1a 2b\nTOKEN#connector#token";
    let sealed = key.seal(0, aad, &[b'k'; 128]).expect("seals");
    c.bench_function("open_sealed_device_key", |b| {
        b.iter(|| key.open(black_box(aad), black_box(&sealed)))
    });
}

fn main() {
    let mut c = Harness::from_args();
    bench_validation(&mut c);
    bench_challenge(&mut c);
    bench_sealing(&mut c);
}
