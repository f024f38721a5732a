//! The redirect rules as a table of tricky URLs (userinfo, backslashes, `//host`,
//! percent-encoded dots, IDN, ports, other schemes, whitespace and control characters) under
//! each of a stage's three rules. The hosted page's side runs in Chromium (`tests/browser`).

use endpoint_core::redirect::{parse_origin, plan_redirect, RedirectRule, MAX_REDIRECT_LEN};

const ORIGINS: &[&str] = &["https://rp.example", "https://app.example:8443"];

fn registered() -> Vec<String> {
    ORIGINS.iter().map(|s| s.to_string()).collect()
}

/// One row: a redirect, and what each rule makes of it.
type Row = (&'static str, [Option<&'static str>; 3]);

/// (redirect, legacy rule, no origins, registered origins): `Some(stored)` or refused.
const TABLE: &[Row] = &[
    ("/", [Some("/"), Some("/"), Some("https://rp.example/")]),
    (
        "/next?x=1#f",
        [
            Some("/next?x=1#f"),
            Some("/next?x=1#f"),
            Some("https://rp.example/next?x=1#f"),
        ],
    ),
    // Percent-encoded dots stay on the origin; the path is the site's business.
    (
        "/%2e%2e/admin",
        [
            Some("/%2e%2e/admin"),
            Some("/%2e%2e/admin"),
            Some("https://rp.example/admin"),
        ],
    ),
    (
        "https://rp.example/done",
        [
            Some("https://rp.example/done"),
            None,
            Some("https://rp.example/done"),
        ],
    ),
    (
        "HTTPS://RP.EXAMPLE:443/x",
        [
            Some("https://rp.example/x"),
            None,
            Some("https://rp.example/x"),
        ],
    ),
    (
        "https://app.example:8443/x",
        [
            Some("https://app.example:8443/x"),
            None,
            Some("https://app.example:8443/x"),
        ],
    ),
    // Another port is another origin.
    (
        "https://rp.example:8443/",
        [Some("https://rp.example:8443/"), None, None],
    ),
    (
        "https://evil.example/",
        [Some("https://evil.example/"), None, None],
    ),
    // Userinfo: the host is evil.example, whatever comes before the @.
    ("http://[::1]@evil.example/", [None, None, None]),
    ("https://rp.example@evil.example/", [None, None, None]),
    ("https://user:pw@rp.example/", [None, None, None]),
    ("https://@rp.example/", [None, None, None]),
    // Backslashes and scheme-relative forms.
    ("/\\evil.example", [None, None, None]),
    ("\\\\evil.example", [None, None, None]),
    ("//evil.example/", [None, None, None]),
    ("///evil.example/", [None, None, None]),
    ("https:\\\\evil.example", [None, None, None]),
    (
        "https:evil.example",
        [Some("https://evil.example/"), None, None],
    ),
    // A host smuggled through percent-encoded dots is still another host.
    (
        "https://rp.example%2eevil.example/",
        [Some("https://rp.example.evil.example/"), None, None],
    ),
    // IDN: a look-alike host (Cyrillic "е") is not the registered one.
    (
        "https://rр.example/",
        [Some("https://xn--r-5tb.example/"), None, None],
    ),
    // Loopback for development.
    (
        "http://localhost:3000/cb",
        [
            Some("http://localhost:3000/cb"),
            Some("http://localhost:3000/cb"),
            None,
        ],
    ),
    (
        "http://127.0.0.1/",
        [Some("http://127.0.0.1/"), Some("http://127.0.0.1/"), None],
    ),
    (
        "http://[::1]:8080/",
        [Some("http://[::1]:8080/"), Some("http://[::1]:8080/"), None],
    ),
    ("http://127.0.0.2/", [None, None, None]),
    ("http://localhost.evil.example/", [None, None, None]),
    ("http://rp.example/", [None, None, None]),
    // Other schemes.
    ("javascript:alert(1)", [None, None, None]),
    ("JavaScript://rp.example/%0aalert(1)", [None, None, None]),
    (
        "data:text/html,<script>alert(1)</script>",
        [None, None, None],
    ),
    ("file:///etc/passwd", [None, None, None]),
    ("ftp://rp.example/", [None, None, None]),
    // Whitespace and control characters (parsers strip some of them silently).
    (" https://rp.example/", [None, None, None]),
    ("https://rp.example/\t", [None, None, None]),
    ("java\nscript:alert(1)", [None, None, None]),
    ("/next\u{0}", [None, None, None]),
    ("/next\u{a0}x", [None, None, None]),
    (
        "https://rp.example/\u{200b}",
        [
            Some("https://rp.example/%E2%80%8B"),
            None,
            Some("https://rp.example/%E2%80%8B"),
        ],
    ),
    ("", [None, None, None]),
    ("next", [None, None, None]),
    ("https://", [None, None, None]),
];

#[test]
fn the_table_of_tricky_redirects() {
    let origins = registered();
    let rules = [
        RedirectRule::Legacy,
        RedirectRule::Origins(&[]),
        RedirectRule::Origins(&origins),
    ];
    for (redirect, expected) in TABLE {
        for (rule, want) in rules.iter().zip(expected) {
            let got = plan_redirect(redirect, *rule).ok();
            assert_eq!(got.as_deref(), *want, "{redirect:?} under {rule:?}");
        }
    }
    let long = format!("/{}", "a".repeat(MAX_REDIRECT_LEN));
    assert!(plan_redirect(&long, RedirectRule::Legacy).is_err());
}

#[test]
fn origins_are_scheme_host_and_port_in_canonical_form() {
    assert_eq!(
        parse_origin("https://RP.example").unwrap(),
        "https://rp.example"
    );
    assert_eq!(
        parse_origin("https://rp.example:443/").unwrap(),
        "https://rp.example"
    );
    assert_eq!(
        parse_origin("https://rp.example:8443").unwrap(),
        "https://rp.example:8443"
    );
    assert_eq!(
        parse_origin("https://bücher.example").unwrap(),
        "https://xn--bcher-kva.example"
    );
    assert_eq!(
        parse_origin("http://localhost:8080").unwrap(),
        "http://localhost:8080"
    );
    for bad in [
        "http://rp.example",
        "https://rp.example/path",
        "https://rp.example/?q",
        "https://rp.example/#f",
        "https://user@rp.example",
        "rp.example",
        "javascript:alert(1)",
        "https:// rp.example",
        "",
    ] {
        assert!(parse_origin(bad).is_err(), "{bad:?}");
    }
}
