//! The Shared Signals transmitter's routes: `/.well-known/ssf-configuration` (public), streams,
//! status and verification (bearer-authenticated receivers), and poll delivery.

use endpoint_core::edge::routes::SsfRoute;
use endpoint_core::edge::ssf::{
    configuration_body, parse_poll_request, parse_status_request, parse_stream_request,
    parse_verify_request, poll_body, status_body, stream_body,
};
use endpoint_core::edge::{self, failed, Base, SystemResolver};
use endpoint_core::edge::{Answer, Label, Reply};
use endpoint_core::egress::Egress;
use endpoint_core::error::CoreError;
use endpoint_core::model::Receiver;
use endpoint_core::ports::{ChallengeSigner, Clock, Store};
use endpoint_core::ssf;
use lambda_http::Request;
use serde_json::Value;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

/// What a route answers: 200 with a body, 201, or 204.
enum Done {
    Ok(Value),
    Created(Value),
    NoContent,
}

impl<S: Store, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> Answer {
        let (route, params) = match edge::route::<SsfRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        let issuer = edge::public_base_url(&self.base.config, &req).unwrap_or_default();
        let done = match route {
            SsfRoute::SsfConfiguration => Ok(Done::Ok(configuration_body(&issuer))),
            SsfRoute::StreamCreate
            | SsfRoute::StreamRead
            | SsfRoute::StreamUpdate
            | SsfRoute::StreamDelete
            | SsfRoute::StatusRead
            | SsfRoute::StatusUpdate
            | SsfRoute::Verify
            | SsfRoute::Poll => {
                // The outbox is settled and delivered by the primary region only.
                if let Err(answer) = edge::at_primary(&self.base.config, &req) {
                    return *answer;
                }
                self.receiver_route(route, &params, &req, &issuer).await
            }
        };
        match done {
            Ok(Done::Ok(body)) => (Reply::ok(body), Label::Signals),
            Ok(Done::Created(body)) => (Reply::created(body), Label::Signals),
            Ok(Done::NoContent) => (Reply::json(204, Value::Null), Label::Signals),
            Err(e) => failed(&e),
        }
    }

    /// The routes of an authenticated receiver.
    async fn receiver_route(
        &self,
        route: SsfRoute,
        params: &[&str],
        req: &Request,
        issuer: &str,
    ) -> Result<Done, CoreError> {
        let receiver = ssf::authenticate(&self.store, edge::header(req, "authorization")).await?;
        let (store, clock, rng) = (&self.store, &self.base.clock, &self.base.rng);
        // Where a push endpoint may lead: public addresses (the local stack: also loopback).
        let egress = Egress {
            policy: self.base.config.push_egress,
            resolver: SystemResolver,
        };
        let stream_body = |s| stream_body(s, issuer, &receiver.audience);
        let wanted = || {
            edge::query(req, "stream_id")
                .ok_or_else(|| CoreError::BadRequest("stream_id is required".into()))
        };
        match route {
            SsfRoute::StreamCreate => {
                let (_, request) = parse_stream_request(edge::body(req)?)?;
                let s = ssf::create_stream(store, clock, rng, &egress, &receiver, &request).await?;
                Ok(Done::Created(stream_body(&s)))
            }
            SsfRoute::StreamRead => match edge::query(req, "stream_id") {
                Some(id) => Ok(Done::Ok(stream_body(
                    &ssf::own_stream(store, &receiver, &id).await?,
                ))),
                None => {
                    let all = ssf::own_streams(store, &receiver).await?;
                    Ok(Done::Ok(Value::Array(
                        all.iter().map(stream_body).collect(),
                    )))
                }
            },
            SsfRoute::StreamUpdate => {
                let (id, request) = parse_stream_request(edge::body(req)?)?;
                let id = id.ok_or_else(|| CoreError::BadRequest("stream_id is required".into()))?;
                let s = ssf::update_stream(store, &egress, &receiver, &id, &request).await?;
                Ok(Done::Ok(stream_body(&s)))
            }
            SsfRoute::StreamDelete => {
                ssf::delete_stream(store, &receiver, &wanted()?).await?;
                Ok(Done::NoContent)
            }
            SsfRoute::StatusRead => Ok(Done::Ok(status_body(
                &ssf::own_stream(store, &receiver, &wanted()?).await?,
            ))),
            SsfRoute::StatusUpdate => {
                let (id, status, reason) = parse_status_request(edge::body(req)?)?;
                let s = ssf::set_status(store, &receiver, &id, &status, reason).await?;
                Ok(Done::Ok(status_body(&s)))
            }
            SsfRoute::Verify => {
                let (id, state) = parse_verify_request(edge::body(req)?)?;
                let keys = (self.signals_key()?, issuer);
                ssf::verify(store, &self.signer, keys, clock, rng, &receiver, &id, state).await?;
                Ok(Done::NoContent)
            }
            SsfRoute::Poll => {
                self.poll(
                    &receiver,
                    params.first().copied().unwrap_or(""),
                    req,
                    issuer,
                )
                .await
            }
            // Public: `handle` answers it without authenticating; a receiver gets the same.
            SsfRoute::SsfConfiguration => Ok(Done::Ok(configuration_body(issuer))),
        }
    }

    /// The key that signs SETs (never the assertion key).
    fn signals_key(&self) -> Result<&str, CoreError> {
        self.base
            .config
            .signals_key
            .as_deref()
            .ok_or_else(|| CoreError::Unavailable("no signals key is configured".into()))
    }

    async fn poll(
        &self,
        receiver: &Receiver,
        stream: &str,
        req: &Request,
        issuer: &str,
    ) -> Result<Done, CoreError> {
        let request = parse_poll_request(edge::body(req)?)?;
        let now = self.base.clock.now();
        let keys = (self.signals_key()?, issuer);
        let answer = ssf::poll(
            &self.store,
            &self.signer,
            keys,
            now,
            receiver,
            stream,
            &request,
        )
        .await?;
        Ok(Done::Ok(poll_body(&answer)))
    }
}
