//! Push delivery of Shared Signals (RFC 8935), run on a schedule (deployed: every minute;
//! locally: every two seconds, by the stack): one run of `delivery::deliver_push` over every
//! push stream that is due, POSTing each SET over HTTPS to public addresses only (`push.rs`).

mod push;

use endpoint_core::delivery::{deliver_push, Backoff, DeliveryReport, Run};
use endpoint_core::edge::Base;
use endpoint_core::error::CoreError;
use endpoint_core::ports::{ChallengeSigner, Store};

pub use push::{HttpPusher, PUSH_TIMEOUT};

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
    pub pusher: HttpPusher,
}

impl<S: Store, K: ChallengeSigner> App<S, K> {
    /// One run; the issuer is the stack's public base URL.
    pub async fn run(&self) -> Result<DeliveryReport, CoreError> {
        // Deployed in several regions, only the primary settles the outbox and delivers, so
        // that no two regions send every event (docs/ARCHITECTURE.md, "Regions").
        if !self.base.config.settings.regions.is_primary() {
            tracing::debug!(
                event = "push_run",
                "not the primary region: delivery is the primary's"
            );
            return Ok(DeliveryReport::default());
        }
        let key = self
            .base
            .config
            .signals_key
            .as_deref()
            .ok_or_else(|| CoreError::Unavailable("no signals key is configured".into()))?;
        let issuer = self
            .base
            .config
            .public_base_url
            .as_deref()
            .unwrap_or_default();
        let run = Run {
            signer: &self.signer,
            keys: (key, issuer),
            pusher: &self.pusher,
            clock: &self.base.clock,
            schedule: Backoff {
                first: self.base.config.push_first_retry,
                ..Backoff::default()
            },
            rng: &self.base.rng,
        };
        let report = deliver_push(&self.store, &run).await?;
        tracing::info!(
            event = "push_run",
            streams = report.streams,
            delivered = report.delivered,
            failed = report.failed,
            "push delivery ran"
        );
        Ok(report)
    }
}
