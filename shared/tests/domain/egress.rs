//! Push delivery is no server-side request forgery: the SSRF table of addresses, literal and
//! behind names, refused when a stream is created or changed (400); the local stack's
//! loopback allowance and nothing more; and a failing receiver's status in generic terms only.
//! (Connect time, on the addresses actually connected to: `tests/tests/e2e/egress.rs`.)

use std::net::IpAddr;

use endpoint_core::adapters::memory::StaticResolver;
use endpoint_core::delivery::{deliver_push, Backoff, Pusher, Run};
use endpoint_core::egress::{classify, AddressClass, Egress, EgressPolicy, PushFailure};
use endpoint_core::error::CoreError;
use endpoint_core::model::Receiver;
use endpoint_core::ports::SignalStore;
use endpoint_core::ssf::{create_receiver, create_stream, update_stream, StreamRequest};

use crate::common::Fx;

const PUSH: &str = "urn:ietf:rfc:8935";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every kind of address push delivery must never reach, as a receiver may write it, with its
/// class: loopback, private, unique-local, link-local (the cloud metadata service), shared,
/// multicast, unspecified, broadcast, documentation, reserved, IPv4 inside IPv6, and the
/// numeric spellings WHATWG URL parsing turns into IPv4.
pub const REFUSED: [(&str, AddressClass); 44] = {
    use AddressClass::*;
    [
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("[::1]", Loopback),
        ("10.0.0.1", Private),
        ("10.255.255.255", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.0.1", Private),
        ("[fec0::1]", Private),
        ("[fc00::1]", UniqueLocal),
        ("[fd12:3456:789a::1]", UniqueLocal),
        ("169.254.169.254", LinkLocal),
        ("169.254.0.1", LinkLocal),
        ("[fe80::1]", LinkLocal),
        ("[fd00:ec2::254]", UniqueLocal),
        ("100.64.0.1", Shared),
        ("100.127.255.254", Shared),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("[ff02::1]", Multicast),
        ("0.0.0.0", Unspecified),
        ("[::]", Unspecified),
        ("255.255.255.255", Broadcast),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("[2001:db8::1]", Documentation),
        ("0.1.2.3", Reserved),
        ("240.0.0.1", Reserved),
        ("192.0.0.170", Reserved),
        ("198.18.0.1", Reserved),
        ("[2001::1]", Reserved),
        ("[100::1]", Reserved),
        // IPv4 inside IPv6: mapped, compatible, SIIT, NAT64, 6to4.
        ("[::ffff:10.0.0.1]", Private),
        ("[::ffff:127.0.0.1]", Loopback),
        ("[::ffff:169.254.169.254]", LinkLocal),
        ("[::10.0.0.1]", Private),
        ("[::ffff:0:a00:1]", Private),
        ("[64:ff9b::a9fe:a9fe]", LinkLocal),
        ("[2002:a00:1::1]", Private),
        // Numeric spellings of 127.0.0.1 and 169.254.169.254.
        ("2130706433", Loopback),
        ("0x7f.1", Loopback),
        ("0177.0.0.1", Loopback),
        ("169.254.43518", LinkLocal),
    ]
};

/// Public addresses right beside the refused ranges, and IPv4 inside IPv6 of a public one.
const PUBLIC: [&str; 14] = [
    "9.255.255.255",
    "11.0.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "169.253.255.255",
    "100.63.255.255",
    "100.128.0.1",
    "223.255.255.254",
    "192.0.43.10",
    "[2606:4700:4700::1111]",
    "[::ffff:192.0.43.10]",
    "[64:ff9b::c000:2b0a]",
    "[2a00:1450::1]",
];

fn push(url: &str) -> StreamRequest {
    StreamRequest {
        method: Some(PUSH.into()),
        endpoint_url: Some(url.into()),
        ..StreamRequest::default()
    }
}

async fn receiver(fx: &Fx) -> Receiver {
    create_receiver(&fx.store, &fx.clock, &fx.rng, "r", None)
        .await
        .unwrap()
        .0
}

/// Names a test controls: internal ones resolving to refused addresses, a public one, one
/// with a public and a private address, `localhost`, one that does not resolve, a slow one.
fn names() -> StaticResolver {
    StaticResolver::new()
        .with("internal.example", &[ip("10.1.2.3")])
        .with("metadata.example", &[ip("169.254.169.254")])
        .with("ula.example", &[ip("fd00::5")])
        .with("cgnat.example", &[ip("100.64.1.1")])
        .with("mapped.example", &[ip("::ffff:192.168.1.1")])
        .with("zero.example", &[ip("0.0.0.0")])
        .with("mixed.example", &[ip("192.0.43.10"), ip("10.0.0.1")])
        .with("receiver.example", &[ip("192.0.43.10"), ip("2606:4700::1")])
        .with("localhost", &[ip("127.0.0.1"), ip("::1")])
        .slow("slow.example")
}

fn egress(policy: EgressPolicy) -> Egress<StaticResolver> {
    Egress {
        policy,
        resolver: names(),
    }
}

async fn create(
    fx: &Fx,
    r: &Receiver,
    e: &Egress<StaticResolver>,
    url: &str,
) -> Result<String, CoreError> {
    create_stream(&fx.store, &fx.clock, &fx.rng, e, r, &push(url))
        .await
        .map(|s| s.endpoint_url.unwrap_or_default())
}

#[test]
fn every_address_of_the_ssrf_table_has_its_class() {
    for (host, class) in REFUSED {
        let url = url::Url::parse(&format!("https://{host}/")).unwrap();
        let addr = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            other => panic!("{host} is no address: {other:?}"),
        };
        assert_eq!(classify(addr), class, "{host}");
        assert_eq!(EgressPolicy::PublicOnly.admits(addr), Err(class), "{host}");
        let local = EgressPolicy::AllowLoopback.admits(addr);
        assert_eq!(local.is_ok(), class == AddressClass::Loopback, "{host}");
    }
    for host in PUBLIC {
        let addr = ip(host.trim_matches(['[', ']']));
        assert_eq!(classify(addr), AddressClass::Public, "{host}");
    }
    assert_eq!(
        EgressPolicy::PublicOnly.admits_all([ip("192.0.43.10"), ip("10.0.0.1")]),
        Err(AddressClass::Private),
        "one refused address refuses the name"
    );
    assert!(
        EgressPolicy::PublicOnly.admits_all([]).is_err(),
        "no address"
    );
}

#[tokio::test]
async fn a_stream_to_a_refused_address_is_refused_with_400_and_not_stored() {
    let fx = Fx::new();
    let r = receiver(&fx).await;
    let strict = egress(EgressPolicy::PublicOnly);
    for (host, class) in REFUSED {
        for url in [
            format!("https://{host}/events"),
            format!("https://{host}:8443/"),
        ] {
            match create(&fx, &r, &strict, &url).await {
                Err(CoreError::BadRequest(m)) => {
                    assert!(m.contains(class.as_str()), "{url}: {m}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
    assert!(fx.store.list_streams().await.unwrap().is_empty());
    for host in PUBLIC {
        let url = format!("https://{host}/events");
        assert!(create(&fx, &r, &strict, &url).await.is_ok(), "{url}");
        for s in fx.store.list_streams().await.unwrap() {
            assert!(fx.store.delete_stream(&s).await.unwrap());
        }
    }
}

#[tokio::test]
async fn names_that_resolve_to_a_refused_address_are_refused() {
    let fx = Fx::new();
    let r = receiver(&fx).await;
    let strict = egress(EgressPolicy::PublicOnly);
    for (name, class) in [
        ("internal.example", "private"),
        ("metadata.example", "link-local"),
        ("ula.example", "unique-local"),
        ("cgnat.example", "shared"),
        ("mapped.example", "private"),
        ("zero.example", "unspecified"),
        ("mixed.example", "private"),
        ("localhost", "loopback"),
        ("LOCALHOST.", "loopback"),
    ] {
        let url = format!("https://{name}/events");
        match create(&fx, &r, &strict, &url).await {
            Err(CoreError::BadRequest(m)) => assert!(
                m.contains("resolves to a") && m.contains(class),
                "{url}: {m}"
            ),
            other => panic!("{url}: {other:?}"),
        }
    }
    // A name that does not resolve cannot be checked: refused. A resolver too slow: 503.
    match create(&fx, &r, &strict, "https://nowhere.example/").await {
        Err(CoreError::BadRequest(m)) => assert!(m.contains("does not resolve"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        create(&fx, &r, &strict, "https://slow.example/").await,
        Err(CoreError::Unavailable(_))
    ));
    // A public name is accepted, stored normalized.
    assert_eq!(
        create(&fx, &r, &strict, "HTTPS://Receiver.Example:443/events").await,
        Ok("https://receiver.example/events".into())
    );
}

#[tokio::test]
async fn http_and_loopback_only_where_the_local_stack_allows_them() {
    let fx = Fx::new();
    let r = receiver(&fx).await;
    let (strict, local) = (
        egress(EgressPolicy::PublicOnly),
        egress(EgressPolicy::AllowLoopback),
    );
    for url in [
        "http://127.0.0.1:9000/events",
        "http://[::1]:9000/events",
        "http://localhost:9000/events",
        "https://localhost/events",
        "https://127.0.0.1/events",
    ] {
        assert!(
            matches!(
                create(&fx, &r, &strict, url).await,
                Err(CoreError::BadRequest(_))
            ),
            "deployed: {url}"
        );
        assert!(
            create(&fx, &r, &local, url).await.is_ok(),
            "local stack: {url}"
        );
    }
    // The local stack allows loopback, nothing else; http: only to loopback, even there.
    for url in [
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://0.0.0.0/",
        "https://internal.example/",
        "http://receiver.example/events",
        "http://192.0.43.10/events",
        "ftp://receiver.example/",
        "https://user:pw@receiver.example/",
        "https://receiver.example/ events",
        "/events",
    ] {
        for e in [&strict, &local] {
            assert!(
                matches!(create(&fx, &r, e, url).await, Err(CoreError::BadRequest(_))),
                "{:?}: {url}",
                e.policy
            );
        }
    }
}

#[tokio::test]
async fn a_changed_endpoint_is_checked_again() {
    let fx = Fx::new();
    let r = receiver(&fx).await;
    let strict = egress(EgressPolicy::PublicOnly);
    let created = create_stream(
        &fx.store,
        &fx.clock,
        &fx.rng,
        &strict,
        &r,
        &push("https://receiver.example/events"),
    )
    .await
    .unwrap();
    for url in [
        "https://169.254.169.254/",
        "https://internal.example/",
        "https://[::ffff:10.0.0.1]/",
    ] {
        let change = StreamRequest {
            endpoint_url: Some(url.into()),
            ..StreamRequest::default()
        };
        let refused = update_stream(&fx.store, &strict, &r, &created.id, &change).await;
        assert!(
            matches!(refused, Err(CoreError::BadRequest(_))),
            "{url}: {refused:?}"
        );
    }
    // A poll stream turned into a push one to an internal name: refused as well.
    let poll = StreamRequest {
        method: Some("urn:ietf:rfc:8936".into()),
        ..StreamRequest::default()
    };
    let polled = create_stream(&fx.store, &fx.clock, &fx.rng, &strict, &r, &poll)
        .await
        .unwrap();
    let to_push = update_stream(
        &fx.store,
        &strict,
        &r,
        &polled.id,
        &push("https://metadata.example/"),
    )
    .await;
    assert!(
        matches!(to_push, Err(CoreError::BadRequest(_))),
        "{to_push:?}"
    );
    let stored = fx.store.get_stream(&created.id).await.unwrap().unwrap();
    assert_eq!(
        stored.endpoint_url.as_deref(),
        Some("https://receiver.example/events")
    );
    // A change that leaves the delivery alone does not look the name up again.
    let described = StreamRequest {
        description: Some("renamed".into()),
        ..StreamRequest::default()
    };
    let offline = Egress {
        policy: EgressPolicy::PublicOnly,
        resolver: StaticResolver::new(),
    };
    let renamed = update_stream(&fx.store, &offline, &r, &created.id, &described).await;
    assert_eq!(renamed.map(|s| s.description), Ok(Some("renamed".into())));
}

/// A receiver that always fails the same way.
struct Failing(PushFailure);

impl Pusher for Failing {
    async fn push(&self, _: &str, _: Option<&str>, _: &str) -> Result<u16, PushFailure> {
        match self.0 {
            PushFailure::Status(n) => Ok(n),
            f => Err(f),
        }
    }
}

#[tokio::test]
async fn a_failing_receivers_status_says_why_in_generic_terms_only() {
    let fx = Fx::new();
    let r = receiver(&fx).await;
    let created = create(
        &fx,
        &r,
        &egress(EgressPolicy::PublicOnly),
        "https://receiver.example/e",
    )
    .await
    .unwrap();
    assert_eq!(created, "https://receiver.example/e");
    let stream = fx.store.list_streams().await.unwrap().remove(0);
    let keys = (crate::common::KEY, "https://t.example");
    endpoint_core::ssf::verify(
        &fx.store, &fx.signer, keys, &fx.clock, &fx.rng, &r, &stream.id, None,
    )
    .await
    .unwrap();
    for (failure, text) in [
        (PushFailure::Timeout, "timeout"),
        (PushFailure::ConnectionRefused, "connection refused"),
        (PushFailure::RefusedAddress, "refused address"),
        (PushFailure::NameNotResolved, "name not resolved"),
        (PushFailure::Tls, "TLS failure"),
        (PushFailure::ConnectionFailed, "connection failed"),
        (PushFailure::Status(503), "status 503"),
    ] {
        fx.clock.advance(7200);
        let pusher = Failing(failure);
        let run = Run {
            signer: &fx.signer,
            keys,
            pusher: &pusher,
            clock: &fx.clock,
            schedule: Backoff::default(),
            rng: &fx.rng,
        };
        deliver_push(&fx.store, &run).await.unwrap();
        let s = fx.store.get_stream(&stream.id).await.unwrap().unwrap();
        let reason = s.status_reason.unwrap_or_default();
        assert!(
            reason.ends_with(&format!("): {text}; retrying")),
            "{reason}"
        );
        assert_eq!(s.last_error.as_deref(), Some(text));
    }
}
