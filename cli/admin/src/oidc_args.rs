//! `endpoint-admin oidc ...`: the OpenID provider's clients.

use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum OidcCommand {
    /// Clients of the OpenID provider (identity providers that call the device step).
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (shown once, stored hashed; no secret for
    /// private_key_jwt).
    Create(Box<CreateClient>),
    /// List clients (never a secret).
    List,
    /// Show one client (never a secret).
    Show {
        /// The client's id (`client_id`).
        id: String,
    },
    /// A new secret (shown once); the old one stops working at once.
    #[command(name = "rotate-secret")]
    RotateSecret {
        /// The client's id (`client_id`).
        id: String,
    },
    /// Delete a client.
    Delete {
        /// The client's id (`client_id`).
        id: String,
    },
}

/// `oidc client create`'s options.
#[derive(Args, Debug)]
pub struct CreateClient {
    /// A name for people.
    #[arg(long)]
    pub name: String,
    /// `code` (Okta, Keycloak, generic OIDC) or `entra-eam` (Entra external authentication method).
    #[arg(long)]
    pub profile: String,
    /// The stage its sign-ins run.
    #[arg(long)]
    pub stage: String,
    /// A redirect URI, compared character for character (repeat for more).
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    /// client_secret_basic (default), client_secret_post or private_key_jwt.
    #[arg(long, default_value = "client_secret_basic")]
    pub auth: String,
    /// The client's public keys (private_key_jwt), as a URL ...
    #[arg(long = "jwks-uri", conflicts_with = "jwks_file")]
    pub jwks_uri: Option<String>,
    /// ... or as a JWKS file (kept in the table).
    #[arg(long = "jwks-file")]
    pub jwks_file: Option<std::path::PathBuf>,
    /// The ID token algorithm: RS256 (default) or ES256.
    #[arg(long, default_value = "RS256")]
    pub alg: String,
    /// Deny devices whose owners do not include the user this claim names
    /// (preferred_username, email or sub).
    #[arg(long = "match-owner")]
    pub match_owner: Option<String>,
    /// Entra: the provider's app registration id (the hint's `aud`).
    #[arg(long = "entra-app-id")]
    pub entra_app_id: Option<String>,
    /// Entra: an allowed tenant id (`tid`; repeat for more).
    #[arg(long = "entra-tenant")]
    pub entra_tenants: Vec<String>,
    /// Entra: the tenant's keys as a URL ...
    #[arg(long = "entra-jwks-uri", conflicts_with = "entra_jwks_file")]
    pub entra_jwks_uri: Option<String>,
    /// ... or as a JWKS file.
    #[arg(long = "entra-jwks-file")]
    pub entra_jwks_file: Option<std::path::PathBuf>,
}
