//! SDK errors as the store's typed errors, and the conditions a cancelled transaction names.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::adapters::aws::{classify, Failure};
use crate::error::StoreError;

/// Maps an SDK error to the store's typed error, logging the classification (never the
/// request) once here.
pub(super) fn store_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    op: &'static str,
    e: &SdkError<E, R>,
) -> StoreError {
    match classify(e) {
        Failure::Throttled => {
            tracing::warn!(op, "dynamodb throttled after retries");
            StoreError::Throttled
        }
        Failure::Unreachable(why) => {
            tracing::warn!(op, why = %why, "dynamodb unreachable");
            StoreError::Unavailable(why)
        }
        Failure::Service(code) => {
            tracing::warn!(op, code = %code, "dynamodb error");
            StoreError::Unavailable(match code.as_str() {
                "ResourceNotFoundException" => "table not found".into(),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "AccessDeniedException" => {
                    "access denied: check the AWS credentials and permissions".into()
                }
                _ => "unexpected service error".into(),
            })
        }
    }
}

pub(super) fn is_condition_failed<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    e: &SdkError<E, R>,
) -> bool {
    matches!(classify(e), Failure::Service(c) if c == "ConditionalCheckFailedException")
}

/// A transaction cancelled because one of its conditions failed (a concurrent writer).
pub(super) fn is_transaction_conflict<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e {
        SdkError::ServiceError(se) => match se.err() {
            E::TransactionCanceledException(t) => t.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed") | Some("TransactionConflict")
                )
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The positions of the items whose condition failed in a cancelled transaction.
pub(super) fn failed_conditions<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Vec<usize> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e {
        SdkError::ServiceError(se) => match se.err() {
            E::TransactionCanceledException(t) => t
                .cancellation_reasons()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
