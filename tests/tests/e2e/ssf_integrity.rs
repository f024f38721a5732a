//! The transmitter's integrity and availability over HTTP against moto: events of writers
//! whose clocks are off or that commit out of order still reach a stream already past them
//! (the writers here are the admin library on the stack's DynamoDB, as `endpoint-admin` on an
//! operator's workstation is); a re-poll carries the same strings; SETs are signed by the
//! signals key, not the assertion key; the SSF input bounds and the verification limit.

use endpoint_core::adapters::memory::FixedClock;
use endpoint_core::edge::routes;
use endpoint_core::model::{DeviceLock, SignalEvent};
use endpoint_core::ports::{ChallengeSigner, DeviceStore, SystemRandom};
use endpoint_e2e::{now, Stack};
use serde_json::{json, Value};

use crate::ssf::{receiver, Receiver, CAEP};

/// A poll stream of compliance changes: its id.
fn poll_stream(r: &Receiver<'_>) -> String {
    let poll = json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": [CAEP]});
    let (status, stream) = r.call("POST", routes::SSF_STREAM_CREATE.template, Some(poll));
    assert_eq!(status, 201, "{stream}");
    stream["stream_id"].as_str().unwrap().to_string()
}

/// One poll without acknowledgement: the SETs by `jti`.
fn peek(r: &Receiver<'_>, stream: &str) -> serde_json::Map<String, Value> {
    let (status, body) = r.call("POST", &routes::SSF_POLL.path(&[stream]), Some(json!({})));
    assert_eq!(status, 200, "{body}");
    body["sets"].as_object().unwrap().clone()
}

fn of_device<'a>(
    got: &'a std::collections::BTreeMap<String, Value>,
    device_id: &str,
) -> Vec<&'a Value> {
    got.values()
        .filter(|c| c["sub_id"]["device"]["id"] == device_id)
        .collect()
}

#[tokio::test]
async fn a_lock_stamped_by_an_operator_clock_ten_minutes_slow_reaches_a_stream_past_it() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://slow-clock.example");
    let stream = poll_stream(&r);
    let (_, serial, device_id, device) = s.firewall_device("SLOWCLOCK").await;
    for enabled in [true, false] {
        s.check_in_firewall(&device, enabled);
    }
    let first = r.drain(&stream);
    assert_eq!(of_device(&first, &device_id).len(), 1, "{first:?}");
    // The operator's workstation is ten minutes slow.
    let slow = FixedClock::new(now() - 600);
    endpoint_core::admin::lock_device(&s.store, &slow, &SystemRandom, &serial, None, Some("lost"))
        .await
        .unwrap();
    let got = r.drain(&stream);
    let locks = of_device(&got, &device_id);
    assert_eq!(locks.len(), 1, "the lock is delivered: {got:?}");
    assert_eq!(locks[0]["events"][CAEP]["initiating_entity"], "admin");
    let (lock_jti, _) = got
        .iter()
        .find(|(_, c)| c["sub_id"]["device"]["id"] == device_id.as_str())
        .unwrap();
    assert!(
        first.keys().all(|acked| lock_jti < acked),
        "stamped before what the stream had acknowledged"
    );
}

/// The same through the operator's CLI itself: `endpoint-admin device lock` and `unlock` on a
/// workstation whose clock is ten minutes slow (`ENDPOINT_ADMIN_CLOCK_SKEW=-600`) reach a
/// stream that already delivered and acknowledged later-stamped events of the device.
#[tokio::test]
async fn the_cli_on_a_workstation_ten_minutes_slow_locks_and_unlocks_and_both_reach_the_stream() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://slow-cli.example");
    let stream = poll_stream(&r);
    let (_, serial, device_id, device) = s.firewall_device("SLOWCLI").await;
    for enabled in [true, false] {
        s.check_in_firewall(&device, enabled);
    }
    assert_eq!(of_device(&r.drain(&stream), &device_id).len(), 1);
    let admin = std::env::var("STACK_ADMIN").expect("run through make test (STACK_ADMIN)");
    for args in [
        ["device", "lock", serial.as_str()],
        ["device", "unlock", serial.as_str()],
    ] {
        let out = std::process::Command::new(&admin)
            .args(args)
            .env("ENDPOINT_ADMIN_CLOCK_SKEW", "-600")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = r.drain(&stream);
    let changes = of_device(&got, &device_id);
    assert_eq!(
        changes.len(),
        2,
        "the lock and the unlock are delivered: {got:?}"
    );
    for c in &changes {
        assert_eq!(c["events"][CAEP]["initiating_entity"], "admin");
        // Stamped by the slow workstation: ten minutes before the events already delivered.
        assert!(
            c["events"][CAEP]["event_timestamp"].as_i64().unwrap() <= now() - 590,
            "{c}"
        );
    }
    // An unreadable skew is refused (exit 1, one line naming the variable), nothing written.
    let out = std::process::Command::new(&admin)
        .args(["device", "lock", serial.as_str()])
        .env("ENDPOINT_ADMIN_CLOCK_SKEW", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENDPOINT_ADMIN_CLOCK_SKEW"));
    assert!(of_device(&r.drain(&stream), &device_id).is_empty());
}

#[tokio::test]
async fn two_writers_committing_out_of_order_are_both_delivered_over_dynamodb() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://out-of-order.example");
    let stream = poll_stream(&r);
    let (_, serial, device_id, _) = s.firewall_device("ORDER").await;
    let device = s.store.get_device(&serial, now()).await.unwrap().unwrap();
    let clock = FixedClock::new(now());
    let first =
        endpoint_core::signals::lock_change(&SystemRandom, &clock, &device, &[], true, Some("A"));
    clock.advance(2);
    let second: SignalEvent =
        endpoint_core::signals::lock_change(&SystemRandom, &clock, &device, &[], true, Some("B"));
    let lock = DeviceLock {
        since: now(),
        until: None,
        reason: Some("B".into()),
    };
    // B (stamped later) commits first and is delivered and acknowledged.
    assert!(s
        .store
        .set_device_lock(&serial, Some(&lock), Some(&second))
        .await
        .unwrap());
    let got = r.drain(&stream);
    assert_eq!(
        of_device(&got, &device_id)
            .iter()
            .map(|c| c["jti"].clone())
            .collect::<Vec<_>>(),
        [json!(second.id)]
    );
    // A commits now.
    s.store
        .put_evaluations(&serial, &[], &[], std::slice::from_ref(&first))
        .await
        .unwrap();
    let got = r.drain(&stream);
    assert_eq!(
        of_device(&got, &device_id)
            .iter()
            .map(|c| c["jti"].clone())
            .collect::<Vec<_>>(),
        [json!(first.id)]
    );
}

#[tokio::test]
async fn a_re_poll_carries_the_same_strings_signed_by_the_signals_key_not_the_assertion_key() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://same-bytes.example");
    let (_, _, device_id, device) = s.firewall_device("SAMEBYTES").await;
    s.check_in_firewall(&device, true);
    let stream = poll_stream(&r);
    let (status, _) = r.call(
        "POST",
        routes::SSF_VERIFY.template,
        Some(json!({"stream_id": stream, "state": "x"})),
    );
    assert_eq!(status, 204);
    s.check_in_firewall(&device, false);
    let a = peek(&r, &stream);
    let b = peek(&r, &stream);
    assert!(a.len() >= 2, "the verification and the change: {a:?}");
    // The stream is every device's: other suites' events may arrive between the two polls; what
    // the first carried, the second carries again, byte for byte.
    for (jti, set) in &a {
        assert_eq!(
            b.get(jti),
            Some(set),
            "every delivery carries the same string"
        );
    }
    let mine = a
        .values()
        .map(|set| r.verified(set.as_str().unwrap()))
        .filter(|c| c["sub_id"]["device"]["id"] == device_id.as_str())
        .count();
    assert_eq!(mine, 1);
    // Signed by the signals key: another kid than the assertion key's, both published.
    let set = a.values().next().unwrap().as_str().unwrap();
    let kid = jsonwebtoken::decode_header(set).unwrap().kid.unwrap();
    let assertion = std::env::var("ASSERTION_KEY_ID").expect("the stack exports it");
    let signals = std::env::var("SIGNALS_KEY_ID").expect("the stack exports it");
    let assertion_kid = s.signer.describe(&assertion).await.unwrap().kid;
    let signals_kid = s.signer.describe(&signals).await.unwrap().kid;
    assert_eq!(kid, signals_kid);
    assert_ne!(kid, assertion_kid);
    let (_, jwks) = s.http.get(routes::ASSERTION_JWKS.template, &[]).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&kid.as_str()) && kids.contains(&assertion_kid.as_str()),
        "{jwks}"
    );
}

/// `path` answered with `method` and `body`, with its `Retry-After`.
fn raw(r: &Receiver<'_>, method: &str, path: &str, body: Value) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", r.s.api);
    let auth = format!("Bearer {}", r.token);
    let mut resp = match method {
        "POST" => agent
            .post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(body.to_string()),
        "PATCH" => agent
            .patch(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(body.to_string()),
        "DELETE" => agent.delete(&url).header("authorization", &auth).call(),
        _ => agent.get(&url).header("authorization", &auth).call(),
    }
    .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_oversized_stream_id_is_404_on_every_route_and_a_long_reason_is_400() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://bounds.example");
    let stream = poll_stream(&r);
    let long = "a".repeat(65);
    let huge = "a".repeat(3000);
    for id in [&long, &huge] {
        for (method, path, body) in [
            ("GET", format!("/ssf/streams?stream_id={id}"), Value::Null),
            (
                "DELETE",
                format!("/ssf/streams?stream_id={id}"),
                Value::Null,
            ),
            (
                "PATCH",
                routes::SSF_STREAM_UPDATE.template.to_string(),
                json!({"stream_id": id, "description": "x"}),
            ),
            ("GET", format!("/ssf/status?stream_id={id}"), Value::Null),
            (
                "POST",
                routes::SSF_STATUS_UPDATE.template.to_string(),
                json!({"stream_id": id, "status": "paused"}),
            ),
            (
                "POST",
                routes::SSF_VERIFY.template.to_string(),
                json!({"stream_id": id}),
            ),
            ("POST", routes::SSF_POLL.path(&[id]), json!({})),
        ] {
            let (status, _, body) = raw(&r, method, &path, body);
            assert_eq!(
                (status, body["error"].as_str()),
                (404, Some("not_found")),
                "{method} {} chars: {body}",
                id.len()
            );
        }
    }
    let reason =
        |n: usize| json!({"stream_id": stream, "status": "paused", "reason": "r".repeat(n)});
    assert_eq!(
        raw(&r, "POST", routes::SSF_STATUS_UPDATE.template, reason(256)).0,
        200
    );
    let (status, _, body) = raw(&r, "POST", routes::SSF_STATUS_UPDATE.template, reason(257));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
}

#[tokio::test]
async fn concurrent_creations_hold_ten_streams_per_receiver() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://ten.example");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..14)
            .map(|_| {
                scope.spawn(|| {
                    let poll = json!({"delivery": {"method": "urn:ietf:rfc:8936"}});
                    raw(&r, "POST", routes::SSF_STREAM_CREATE.template, poll).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        4,
        "{statuses:?}"
    );
    let (_, mine) = r.call("GET", routes::SSF_STREAM_READ.template, None);
    assert_eq!(mine.as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn a_seventh_verification_in_a_minute_is_429_with_retry_after() {
    let s = Stack::connect().await;
    let r = receiver(&s, "https://verify-limit.example");
    // Seven in one minute (if a minute ends between the first and the seventh, the window
    // is new: again, on a new stream).
    for _ in 0..3 {
        let stream = poll_stream(&r);
        let verify = || {
            raw(
                &r,
                "POST",
                routes::SSF_VERIFY.template,
                json!({"stream_id": stream}),
            )
        };
        let minute = now().div_euclid(60);
        let answers: Vec<(u16, Option<String>, Value)> = (0..7).map(|_| verify()).collect();
        if now().div_euclid(60) != minute {
            continue;
        }
        assert!(answers[..6].iter().all(|a| a.0 == 204), "{answers:?}");
        let (status, retry_after, body) = &answers[6];
        assert_eq!(
            (*status, body["error"].as_str()),
            (429, Some("throttled")),
            "{body}"
        );
        let seconds: i64 = retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&seconds), "{seconds}");
        return;
    }
    panic!("three minutes ended during seven requests");
}
