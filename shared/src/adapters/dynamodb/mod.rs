//! The store ports on one DynamoDB table (`pk`, `sk`, TTL `expires_at`).
//!
//! | item               | pk                    | sk                          |
//! |--------------------|-----------------------|-----------------------------|
//! | plan               | `PLAN#<id>`           | `PLAN`                      |
//! | stage              | `STAGE#<id>`          | `STAGE`                     |
//! | connector          | `CONNECTOR#<id>`      | `CONNECTOR`                 |
//! | device             | `DEVICE#<serial>`     | `DEVICE`                    |
//! | connection version | `DEVICE#<serial>`     | `CONN#<connector>`          |
//! | device token       | `DEVICE#<serial>`     | `TOKEN#<connector>#<id>`    |
//! | token index        | `TOKENHASH#<sha256>`  | `TOKENHASH`                 |
//! | enrollment token   | `ENROLL#<sha256>`     | `ENROLL`                    |
//! | token's enrollment | `ENROLL#<sha256>`     | `USE#<serial>`              |
//! | facts snapshot     | `FACTS#<serial>`      | `SNAPSHOT#<connector>`      |
//! | evaluation         | `DEVICE#<serial>`     | `COMPLIANCE#<policy>`       |
//! | posture policy     | `POLICY#<id>`         | `POLICY`                    |
//! | audit record       | `AUDIT#<yyyy-mm-dd>`  | `<time>-<random>`           |
//! | event, unsettled   | `SIGNAL#INBOX`        | `<time>-<random>`           |
//! | event, settled     | `SIGNAL#LOG`          | `<seq>` (20 digits)         |
//! | last seq given     | `SIGNAL#HEAD`         | `HEAD`                      |
//! | receiver's SET     | `SET#<receiver>`      | `<seq>` (20 digits)         |
//! | receiver           | `RECEIVER#<id>`       | `RECEIVER`                  |
//! | stream             | `STREAM#<id>`         | `STREAM`                    |
//! | receiver's streams | `STREAM#COUNT#<id>`   | `COUNT`                     |
//! | abuse counter      | `LIMIT#<bucket>`      | `LIMIT`                     |
//! | OpenID client      | `OIDCCLIENT#<id>`     | `OIDCCLIENT`                |
//! | code, access token | `OIDCGRANT#<kind>#<sha256>` | `OIDCGRANT`           |
//! | single-use mark    | `OIDCMARK#<marker>`   | `OIDCMARK`                  |
//! | wrapped data key   | `KEYRING`             | `DATAKEY`                   |
//! | challenge data key | `DATAKEY#<kid>`       | `DATAKEY`                   |
//!
//! Device token keys are stored sealed (`key_sealed`, AES-256-GCM under the KEYRING's data key,
//! see `adapters::sealing`) beside their SHA-256 (`key_sha256`); enrollment and revocation find
//! index entries by that hash and never read a key.
//!
//! Response validation reads the plan (GetItem) and the device's partition (one Query: the
//! device, all its tokens and its stored evaluations) in parallel, then consumes the challenge with one conditional
//! UpdateItem. Every read filters items whose `expires_at` has passed, because DynamoDB's TTL
//! deletes them up to two days late. Connectors and devices carry a `kind` attribute for the
//! sparse GSI that lists them; so do stages and policies, and an evaluation while it is
//! non-compliant (`kind = NONCOMPLIANT`: `device list --non-compliant` is one index query).
//!
//! | file | concern |
//! |---|---|
//! | `schema.rs` | key attributes, index, TTL, every item key |
//! | `item.rs` | typed attributes of an item (the lowest layer) |
//! | `failure.rs` | SDK errors as typed store errors |
//! | `store.rs` | the store, its settings and request primitives |
//! | `codec.rs` | items <-> model |
//! | `table.rs` | table administration |
//! | `plans.rs`, `directory.rs`, `devices.rs`, `enrollments.rs`, `audit.rs` | one file per port |
//! | `enroll.rs` | enrollment's one transaction |
//! | `dth.rs` | the DTH path's one read: the token index entry and the device (its lock) |
//! | `keyring.rs` | the data keys that seal device token keys, and `migrate` |
//! | `signals.rs` | the outbox of signal events |
//! | `rotate.rs` | `sealing rotate`: a new data key, every device key re-sealed, the old one retired |
//! | `oidc.rs` | the OpenID provider's clients, codes, access tokens and single-use marks |
//! | `rollout.rs` | which devices fetched a connector's next challenge key (`RolloutStore`) |

mod audit;
mod codec;
mod data_keys;
mod devices;
mod directory;
mod dth;
mod enroll;
mod enrollments;
mod failure;
mod item;
mod keyring;
mod oidc;
mod plans;
mod probes;
mod rollout;
mod rotate;
pub mod schema;
mod signals;
mod store;
mod streams;
mod table;

pub use keyring::MigrationReport;
pub use rotate::RotationReport;
pub use store::DynamoStore;
