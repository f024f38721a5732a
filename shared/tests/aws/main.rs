//! The AWS adapters against moto_server, through the real AWS SDK over HTTP, as one test
//! binary: the DynamoDB store (its contract suites, the stage over it, facts, audit) and the
//! KMS signer; and the emulator's own transactions (scripts/moto_server.py).

#[path = "../common/aws.rs"]
mod aws_env;
#[path = "../common/mod.rs"]
mod common;
#[path = "../contract/mod.rs"]
mod contract;
#[path = "../common/emulator_env.rs"]
mod emulator_env;

mod data_keys;
mod dynamodb_stage;
mod dynamodb_store;
mod emulator;
mod health;
mod kms;
mod lambda;
mod sealing;
mod signals_regions;
mod stream_sealing;
