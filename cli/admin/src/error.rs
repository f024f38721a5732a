//! What can go wrong in a command, as one typed enum; `main` prints its sentence on stderr
//! and exits 1 (clap's usage errors exit 2 before any of this runs).

use endpoint_core::{CoreError, SignerError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A core operation refused or failed (its own sentence).
    #[error("{0}")]
    Core(#[from] CoreError),
    /// What the command names does not exist.
    #[error("{0} was not found")]
    NotFound(String),
    /// An argument that clap accepted but the command cannot use.
    #[error("{0}")]
    Usage(String),
    /// Something stored could not be read back.
    #[error("{0} could not be read")]
    Unreadable(&'static str),
    #[error("the table {table:?} does not exist in {region}: pass --table (or set TABLE_NAME) to the stack's TableName output (aws cloudformation describe-stacks --stack-name endpoint-stage --query \"Stacks[0].Outputs\"), or set AWS_REGION to the stack's region; `endpoint-admin init` creates a table for a local emulator")]
    NoTable { table: String, region: String },
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Core(e.into())
    }
}

impl From<SignerError> for AdminError {
    fn from(e: SignerError) -> Self {
        AdminError::Core(e.into())
    }
}
