//! Region-affine plans (`region.rs`, docs/ARCHITECTURE.md "Regions"): a plan's id names the
//! region that created it, and only that region serves it. Two regions here share one in-memory
//! store, as replicas of a global table share the items (without the lag): region B refuses
//! A's plan before any read, so the one conditional write that consumes a challenge is always
//! A's. With affinity off (the local stack's negative control) B serves it, which is what lets
//! two replicas both consume one challenge.

use crate::common::{passed, Fx, KEY};
use endpoint_core::model::{PlanStatus, StageMode};
use endpoint_core::region::{plan_region, Regions};
use endpoint_core::settings::Settings;
use endpoint_core::CoreError;

pub(crate) fn region(own: &str, affinity_off: bool) -> Settings {
    let regions = Regions::parse(
        Some(own),
        Some("use1=https://a.example,euw1=https://b.example"),
        Some("use1"),
        Some(if affinity_off { "off" } else { "on" }),
    )
    .unwrap();
    Settings {
        regions,
        ..Settings::default()
    }
}

#[tokio::test]
async fn another_regions_plan_is_neither_read_nor_written() {
    let mut a = Fx::new();
    a.settings = region("use1", false);
    let (c, s) = a.setup(StageMode::Required, Some(KEY), true).await;
    let key = a.enroll(&c.id, "SERIAL-R1").await;
    let plan = a.plan(&s.id).await;
    assert_eq!(plan_region(&plan), Some("use1"));
    let challenge = a.challenge(&plan).await;
    let response = a.respond("SERIAL-R1", &key, &challenge);

    // Region B, same items: every route of the plan refused before it reads or writes.
    let b = Fx {
        settings: region("euw1", false),
        ..a
    };
    assert!(matches!(
        b.get(&plan, None).await,
        Err(CoreError::NotFound(_))
    ));
    assert!(matches!(
        b.post(&plan, Some(&response)).await,
        Err(CoreError::NotFound(_))
    ));
    let p = b.plan_state(&plan);
    assert_eq!(
        (p.status, p.challenges_issued),
        (PlanStatus::Pending, 1),
        "B wrote nothing: no attempt reserved, nothing consumed"
    );
    // Home: passes once.
    let a = Fx {
        settings: region("use1", false),
        ..b
    };
    assert_eq!(a.post(&plan, Some(&response)).await.unwrap(), passed());
    // B's plans carry B's code, and A refuses them.
    let b = Fx {
        settings: region("euw1", false),
        ..a
    };
    let plan_b = b.plan(&s.id).await;
    assert_eq!(plan_region(&plan_b), Some("euw1"));
    let a = Fx {
        settings: region("use1", false),
        ..b
    };
    assert!(matches!(
        a.get(&plan_b, None).await,
        Err(CoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn with_affinity_off_another_region_serves_the_plan() {
    let mut a = Fx::new();
    a.settings = region("use1", false);
    let (c, s) = a.setup(StageMode::Required, Some(KEY), true).await;
    let key = a.enroll(&c.id, "SERIAL-R2").await;
    let plan = a.plan(&s.id).await;
    let challenge = a.challenge(&plan).await;
    let response = a.respond("SERIAL-R2", &key, &challenge);
    let b = Fx {
        settings: region("euw1", true),
        ..a
    };
    assert_eq!(b.post(&plan, Some(&response)).await.unwrap(), passed());
}
