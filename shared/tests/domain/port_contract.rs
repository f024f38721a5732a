//! The port contracts (tests/contract) against the in-memory store. `aws_dynamodb.rs` runs the
//! same functions against the DynamoDB store on moto.

use endpoint_core::adapters::memory::MemoryStore;

#[tokio::test]
async fn memory_plans_keep_the_plan_contract() {
    crate::contract::plans(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_directory_keeps_the_directory_contract() {
    crate::contract::directory(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_devices_keep_the_device_contract() {
    crate::contract::devices(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_enrollments_keep_the_enrollment_contract() {
    crate::contract::enrollments(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_enrollment_grants_keep_the_contract() {
    crate::contract::enrollment_grants(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_device_lock_keeps_the_contract() {
    crate::contract::device_lock(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_plans_keep_one_assertion() {
    crate::contract::kept_assertions(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_reads_the_token_and_its_device_together() {
    crate::contract::token_and_device(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_outbox_keeps_the_contract() {
    crate::contract::outbox(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_streams_keep_the_contract() {
    crate::contract::streams(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_audit_keeps_the_contract() {
    crate::contract::audit(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_rollout_contract() {
    crate::contract::rollout(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_oidc_store_keeps_the_contract() {
    crate::contract::oidc_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_device_owners_keep_the_contract() {
    crate::contract::device_owners(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_outbox_keeps_its_numbers_when_the_primary_moves() {
    let a = MemoryStore::new().with_signal_writer("use1");
    let b = MemoryStore::new().with_signal_writer("euw1");
    crate::contract::primary_move(&a, &b, async |from: &MemoryStore, to: &MemoryStore| {
        from.replicate_signals_to(to)
    })
    .await;
}
