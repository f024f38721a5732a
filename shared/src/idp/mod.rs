//! What the OpenID provider decides about the identity provider that calls it: whether the
//! device belongs to the person signing in ([`owners`]), whether an Entra `id_token_hint` is
//! genuine and what it says ([`entra`]), what the OIDC `claims` request parameter asks for
//! ([`claims`]), and the tenant keys a hint is checked against ([`tenant_keys`]). Pure
//! decisions and one cache; the HTTP routes call them.

pub mod claims;
pub mod entra;
pub mod owners;
pub mod tenant_keys;
