//! Push delivery of Shared Signals (RFC 8935), run on a schedule (deployed: every minute;
//! locally: every two seconds, by the stack): one run of `delivery::deliver_push` over every
//! push stream that is due, POSTing each SET over HTTPS.

use std::time::Duration;

use endpoint_core::delivery::{deliver_push, Backoff, DeliveryReport, Pusher, Run};
use endpoint_core::edge::Base;
use endpoint_core::error::CoreError;
use endpoint_core::ports::{ChallengeSigner, Store};

/// How long one POST to a receiver may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs a SET (`application/secevent+jwt`) with a blocking client on the blocking pool.
pub struct HttpPusher {
    agent: ureq::Agent,
}

impl Default for HttpPusher {
    fn default() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(PUSH_TIMEOUT))
            .max_redirects(0)
            .build()
            .into();
        HttpPusher { agent }
    }
}

impl Pusher for HttpPusher {
    async fn push(&self, url: &str, authorization: Option<&str>, set: &str) -> Result<u16, String> {
        let (agent, url) = (self.agent.clone(), url.to_string());
        let (auth, set) = (authorization.map(str::to_string), set.to_string());
        tokio::task::spawn_blocking(move || {
            let mut req = agent
                .post(&url)
                .header("content-type", "application/secevent+jwt")
                .header("accept", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.send(set)
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
    pub pusher: HttpPusher,
}

impl<S: Store, K: ChallengeSigner> App<S, K> {
    /// One run; the issuer is the stack's public base URL.
    pub async fn run(&self) -> Result<DeliveryReport, CoreError> {
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
