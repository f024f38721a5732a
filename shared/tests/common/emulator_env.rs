//! The one check that a suite against AWS runs against the local emulator: shared by the core's
//! AWS suites (`tests/aws`, through `aws.rs`) and `endpoint-admin`'s (`cli/admin/tests`, which
//! includes this file by path). `make test` starts moto (scripts/with-moto.sh) and exports
//! AWS_ENDPOINT_URL; without it these suites fail loudly rather than skip, so a CI run can never
//! pass them silently.

pub fn require_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|u| u.starts_with("http://127.0.0.1")),
        "AWS_ENDPOINT_URL must point at a local moto_server: run these tests through `make test` \
         (scripts/with-moto.sh -- cargo test ...)"
    );
}
