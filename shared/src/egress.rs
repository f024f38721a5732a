//! Where the transmitter may connect: the address policy of push delivery (RFC 8935), so that a
//! receiver cannot make it reach the stack's own network (server-side request forgery).
//!
//! A push endpoint is `https:` to a public address. Loopback, private, link-local,
//! unique-local, shared, multicast, unspecified, broadcast, documentation and reserved
//! addresses are refused, also when written as IPv4 inside IPv6 (`::ffff:10.0.0.1`,
//! `::10.0.0.1`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`), and so are names that resolve to
//! any of them. The check runs twice: when a stream is created or its delivery changed
//! ([`Egress::admit`], 400), and when delivering, on the very addresses the connection is made
//! to (`functions/deliver`, through [`EgressPolicy::admits_all`]). The local stack alone (the
//! explicit `PUSH_ALLOW_LOOPBACK`, set by `make run` and the tests) also allows loopback
//! addresses and `http:` to them.
//!
//! A failed delivery is told to the receiver only in the generic terms of [`PushFailure`],
//! never with the HTTP client's error text (which would make the status a port scanner).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::CoreError;
use crate::ports::{LookupError, Resolve};

/// The longest endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;

/// What kind of address an IP is, for the policy and for the messages that name a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, and the deprecated IPv6 site-local fec0::/10.
    Private,
    /// fc00::/7.
    UniqueLocal,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 100.64/10 (carrier-grade NAT).
    Shared,
    Multicast,
    /// 0.0.0.0, `::`.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Everything else that is no public unicast address: 0/8, 240/4, 192.0.0/24, 198.18/15,
    /// IPv6 outside 2000::/3, 2001::/23, 100::/64, the local-use NAT64 64:ff9b:1::/48.
    Reserved,
}

impl AddressClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Shared => "shared",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// The class of an address; IPv4 written inside IPv6 is classified as that IPv4 address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    match ip.octets() {
        [0, 0, 0, 0] => Unspecified,
        [0, ..] => Reserved,
        [127, ..] => Loopback,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Private,
        [169, 254, ..] => LinkLocal,
        [100, 64..=127, ..] => Shared,
        [224..=239, ..] => Multicast,
        [255, 255, 255, 255] => Broadcast,
        [240..=255, ..] => Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [192, 0, 0, _] | [198, 18..=19, ..] => Reserved,
        _ => Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let s = ip.segments();
    let embedded = || Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    match s {
        // IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d (deprecated), SIIT
        // ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96: a connection to them reaches the IPv4 address.
        [0, 0, 0, 0, 0, 0xffff, _, _]
        | [0, 0, 0, 0, 0, 0, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => classify_v4(embedded()),
        // 6to4: the IPv4 address in bits 16 to 48.
        [0x2002, hi, lo, ..] => classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        [0x64, 0xff9b, 1, ..] => Reserved,
        [a, ..] if a & 0xfe00 == 0xfc00 => UniqueLocal,
        [a, ..] if a & 0xffc0 == 0xfe80 => LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => Private,
        [a, ..] if a & 0xff00 == 0xff00 => Multicast,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x3fff, b, ..] if b < 0x1000 => Documentation,
        [0x2001, b, ..] if b < 0x0200 => Reserved,
        [0x0100, 0, 0, 0, ..] => Reserved,
        [a, ..] if a & 0xe000 != 0x2000 => Reserved,
        _ => Public,
    }
}

/// Where push delivery may connect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EgressPolicy {
    /// Public addresses only, over `https:` (deployed; the default).
    #[default]
    PublicOnly,
    /// Also loopback addresses, and `http:` to them: the local stack only (`make run`).
    AllowLoopback,
}

impl EgressPolicy {
    /// Whether a connection to `ip` is allowed: `Err` with its class if not.
    pub fn admits(self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            AddressClass::Public => Ok(()),
            AddressClass::Loopback if self == EgressPolicy::AllowLoopback => Ok(()),
            class => Err(class),
        }
    }

    /// Whether every one of a name's addresses is allowed (one refused address refuses the
    /// name: a client may try any of them). No address at all is refused.
    pub fn admits_all(self, ips: impl IntoIterator<Item = IpAddr>) -> Result<(), AddressClass> {
        let mut any = false;
        for ip in ips {
            self.admits(ip)?;
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(AddressClass::Unspecified)
        }
    }
}

/// Why an endpoint URL is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint_url must be an absolute URL of at most {MAX_URL_CHARS} characters, with a host and without user information")]
    Malformed,
    #[error("endpoint_url must be an https: URL (http: only to loopback, in the local stack)")]
    Scheme,
    #[error("endpoint_url must lead to a public address; its host is a {} address", .0.as_str())]
    Address(AddressClass),
    #[error("endpoint_url must lead to a public address; its host name resolves to a {} address", .0.as_str())]
    Resolves(AddressClass),
    #[error("endpoint_url's host name does not resolve")]
    Unresolvable,
    #[error("endpoint_url's host name could not be resolved in time; try again")]
    ResolveTimeout,
}

impl From<EndpointError> for CoreError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::ResolveTimeout => CoreError::Unavailable(e.to_string()),
            _ => CoreError::BadRequest(e.to_string()),
        }
    }
}

/// The policy and the resolver that check a push endpoint when a stream is created or changed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Egress<R> {
    pub policy: EgressPolicy,
    pub resolver: R,
}

impl<R: Resolve> Egress<R> {
    /// Checks where `url` leads; answers it normalized. Syntax, scheme and a literal address
    /// first; a host name is resolved and every address checked (a name that does not
    /// resolve is refused: what cannot be checked is not accepted; the delivery checks again
    /// what it connects to, whatever the name resolves to by then).
    pub async fn admit(&self, url: &str) -> Result<String, EndpointError> {
        let parsed = parse(url)?;
        let (ips, named) = match parsed.host() {
            Some(Host::Ipv4(ip)) => (vec![IpAddr::V4(ip)], false),
            Some(Host::Ipv6(ip)) => (vec![IpAddr::V6(ip)], false),
            Some(Host::Domain(name)) => {
                let ips = self.resolver.lookup(name).await.map_err(|e| match e {
                    LookupError::NotFound => EndpointError::Unresolvable,
                    LookupError::Timeout => EndpointError::ResolveTimeout,
                })?;
                if ips.is_empty() {
                    return Err(EndpointError::Unresolvable);
                }
                (ips, true)
            }
            None => return Err(EndpointError::Malformed),
        };
        self.policy
            .admits_all(ips.iter().copied())
            .map_err(|class| match named {
                true => EndpointError::Resolves(class),
                false => EndpointError::Address(class),
            })?;
        // http: only where every address is loopback, and only where loopback is allowed.
        let loopback = ips.iter().all(|ip| classify(*ip) == AddressClass::Loopback);
        match parsed.scheme() {
            "https" => {}
            "http" if loopback && self.policy == EgressPolicy::AllowLoopback => {}
            _ => return Err(EndpointError::Scheme),
        }
        Ok(parsed.into())
    }
}

/// An absolute `http:`/`https:` URL with a host and no user information (which scheme is
/// allowed where is [`Egress::admit`]'s).
fn parse(url: &str) -> Result<Url, EndpointError> {
    if url.len() > MAX_URL_CHARS || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EndpointError::Malformed);
    }
    let parsed = Url::parse(url).map_err(|_| EndpointError::Malformed)?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(EndpointError::Scheme);
    }
    if parsed.host().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(EndpointError::Malformed);
    }
    Ok(parsed)
}

/// Why a push got no HTTP status, or the status it got, in the generic terms a receiver's
/// status shows (never the HTTP client's own error text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushFailure {
    #[error("timeout")]
    Timeout,
    #[error("connection refused")]
    ConnectionRefused,
    /// The endpoint's name resolved to an address the policy refuses.
    #[error("refused address")]
    RefusedAddress,
    #[error("name not resolved")]
    NameNotResolved,
    #[error("TLS failure")]
    Tls,
    /// Any other failure to connect, send or read the answer.
    #[error("connection failed")]
    ConnectionFailed,
    /// The receiver answered, but not 202.
    #[error("status {0}")]
    Status(u16),
}
