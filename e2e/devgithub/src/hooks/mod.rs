//! Signed webhook deliveries to the app's webhook URL.
//!
//! [`Webhooks::send`] records a `pending` delivery in the world and queues
//! it; one background task posts queued deliveries in order (so a receiver
//! sees `created` before `deleted`), retries connection errors, 429 and 5xx
//! with growing delays, and records the outcome. Nothing here can take the
//! server down: every failure ends as a logged, recorded delivery.

mod delivery;
pub(crate) mod payloads;
mod signature;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::clock::now_rfc3339;
use crate::config::WebhookConfig;
use crate::ids::uuid_v4;
use crate::state::{Delivery, Store};

/// One event to announce.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// `X-GitHub-Event`: `installation`, `repository`, …
    pub name: &'static str,
    pub payload: Value,
}

impl Event {
    pub(crate) fn new(name: &'static str, payload: Value) -> Self {
        Event { name, payload }
    }
}

/// A queued delivery: the recorded id, the GUID and the exact body bytes.
#[derive(Debug)]
struct Job {
    delivery_id: u64,
    guid: String,
    event: &'static str,
    body: Vec<u8>,
}

/// Handle to the delivery queue; cheap to clone.
#[derive(Clone)]
pub(crate) struct Webhooks {
    store: Arc<Store>,
    queue: Option<mpsc::UnboundedSender<Job>>,
}

impl Webhooks {
    /// Starts the delivery task when a webhook URL is configured. Must run
    /// inside a Tokio runtime.
    pub(crate) fn start(
        config: Option<WebhookConfig>,
        app_id: u64,
        store: Arc<Store>,
    ) -> Result<Self, reqwest::Error> {
        let Some(config) = config else {
            return Ok(Webhooks { store, queue: None });
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = delivery::Worker::new(config, app_id, Arc::clone(&store))?;
        tokio::spawn(worker.run(rx));
        Ok(Webhooks {
            store,
            queue: Some(tx),
        })
    }

    /// Records and queues `event`. Must not be called while holding the
    /// store's lock. Without a webhook URL the event is dropped (GitHub
    /// sends nothing for an app without a webhook).
    pub(crate) fn send(&self, event: Event) {
        let Some(queue) = &self.queue else {
            tracing::debug!(event = event.name, "no --webhook-url; not delivered");
            return;
        };
        let body = match serde_json::to_vec(&event.payload) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "serializing webhook payload");
                return;
            }
        };
        let guid = uuid_v4();
        let payload = &event.payload;
        let action = payload["action"].as_str().map(str::to_owned);
        let installation_id = payload["installation"]["id"].as_u64();
        let repository_id = payload["repository"]["id"].as_u64();
        let delivery = Delivery {
            id: 0,
            guid: guid.clone(),
            event: event.name.to_owned(),
            action,
            installation_id,
            repository_id,
            status: "pending".into(),
            status_code: None,
            attempts: 0,
            delivered_at: None,
            error: None,
            payload: event.payload,
        };
        let delivery_id = self.store.update(|w| w.record_delivery(delivery));
        let job = Job {
            delivery_id,
            guid,
            event: event.name,
            body,
        };
        if queue.send(job).is_err() {
            tracing::error!("webhook delivery task is gone");
            self.store.update(|w| {
                if let Some(d) = w.delivery_mut(delivery_id) {
                    d.status = "failed".into();
                    d.error = Some("delivery task stopped".into());
                    d.delivered_at = Some(now_rfc3339());
                }
            });
        }
    }
}
