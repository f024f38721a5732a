//! What the OpenID provider decides about the identity provider that calls it: whether the
//! device belongs to the person signing in ([`owners`]). Pure decisions; the HTTP routes call
//! them.

pub mod owners;
