//! Property tests: no input makes response parsing or validation, body parsing, or the DER and
//! SPKI parsers panic.

use endpoint_core::model::{Device, DeviceToken, DeviceWithTokens};
use endpoint_core::protocol::b64url;
use endpoint_core::protocol::response::{validate, Expected};
use endpoint_core::secret::Secret;
use proptest::prelude::*;

fn device() -> DeviceWithTokens {
    DeviceWithTokens {
        compliance: Vec::new(),
        device: Device {
            lock: None,
            owners: Vec::new(),
            id: "00000000-0000-4000-8000-000000000000".into(),
            identifier: "S".into(),
            name: "n".into(),
            created_at: 0,
            expires_at: None,
        },
        tokens: vec![DeviceToken {
            id: "t".into(),
            device: "S".into(),
            connector: "c".into(),
            key: Secret::new("key"),
            created_at: 0,
            expires_at: None,
        }],
    }
}

fn expected() -> Expected<'static> {
    Expected {
        challenge: Some(("a.b.c", 1_000)),
        connector: "c",
        now: 500,
        leeway: 30,
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or_default()),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("(iss|aud|atc|exp|iat|nbf|alg|[a-z]{1,3})", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,400}") {
        let d = device();
        let _ = validate(&s, Some(&d), &expected());
        let _ = validate(&s, None, &expected());
        let _ = endpoint_core::edge::parse_executor_request(s.as_bytes());
        let _ = endpoint_core::edge::parse_plan_request(s.as_bytes());
    }

    #[test]
    fn facts_documents_never_panic(doc in json_value(), serial in proptest::option::of(".{0,10}")) {
        let mut doc = doc;
        if let (Some(serial), Some(obj)) = (serial, doc.as_object_mut()) {
            obj.insert("hardware".into(), serde_json::json!({"serial": serial}));
        }
        let bytes = doc.to_string().into_bytes();
        match endpoint_core::facts::parse(&bytes) {
            // Accepted documents are objects whose hardware, if present and not null, has a
            // non-blank string serial; and what is stored loads back within the item bound.
            Ok(facts) => {
                prop_assert!(doc.is_object());
                match facts.get("hardware") {
                    None | Some(serde_json::Value::Null) => {}
                    Some(h) => prop_assert!(h["serial"].as_str().is_some_and(|s| !s.trim().is_empty())),
                }
                // The lists the checks read are the document's lists, element for element.
                let list_len = |k: &str| doc.get(k).and_then(serde_json::Value::as_array).map(Vec::len);
                prop_assert_eq!(facts.packages().map(Iterator::count), list_len("software"));
                prop_assert_eq!(facts.programs().is_some(), list_len("processes").is_some());
                let stored = endpoint_core::facts::store(&facts);
                prop_assert!(stored.deflate.len() <= endpoint_core::facts::MAX_STORED_FACTS);
                prop_assert!(!stored.truncated);
                // The same document back: its text is stored as it came.
                let loaded = endpoint_core::facts::load(&stored.deflate).map(|f| f.to_value());
                prop_assert_eq!(loaded, Some(facts.to_value()));
            }
            Err(e) => prop_assert!(matches!(e, endpoint_core::CoreError::BadRequest(_) | endpoint_core::CoreError::PayloadTooLarge(_))),
        }
    }

    #[test]
    fn agent_authorization_headers_never_panic(h in ".{0,300}") {
        let _ = endpoint_core::agent::bearer(Some(&h), "Bearer+agent");
        let _ = endpoint_core::agent::bearer(Some(&h), "Bearer");
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = endpoint_core::edge::parse_executor_request(&b);
        let _ = endpoint_core::protocol::jwk::Jwk::from_spki_der(&b);
        let _ = endpoint_core::protocol::der::ecdsa_der_to_jose(&b, 66);
        if let Ok(facts) = endpoint_core::facts::parse(&b) {
            let _ = (facts.packages(), facts.programs(), facts.to_value());
        }
    }

    #[test]
    fn arbitrary_jws_shapes_never_panic(header in json_value(), claims in json_value(), sig in "[A-Za-z0-9_-]{0,90}") {
        let jws = format!("{}.{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()), sig);
        let d = device();
        let _ = validate(&jws, Some(&d), &expected());
        // And with a correct HS512 signature, so parsing reaches the claim checks.
        let input = format!("{}.{}", b64url(br#"{"alg":"HS512"}"#), b64url(claims.to_string().as_bytes()));
        let mac = jsonwebtoken::crypto::sign(input.as_bytes(), &jsonwebtoken::EncodingKey::from_secret(b"key"), jsonwebtoken::Algorithm::HS512).unwrap();
        let r = validate(&format!("{input}.{mac}"), Some(&d), &expected());
        // Random claims never carry the pending challenge, so they never validate.
        prop_assert!(r.is_err());
    }
}
