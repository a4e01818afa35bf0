//! The outbox's HTTP sink: delivers a batch of one session's messages to
//! the control plane (wire shape: [`crate::outbox::Sink`]), with the
//! workspace's callback token. The session's workspace (and the token it
//! had) come from the route the outbox stores; the registry's current token
//! is preferred while the workspace exists. Retries are the delivery
//! loop's: one attempt per call.

use reqwest::StatusCode;
use sam_wire::ErrorBody;
use serde::Serialize;
use serde_json::Value;

use crate::outbox::{Ack, Batch, DeliveryError, Outbox, Sink};
use crate::workspaces::Workspaces;

#[derive(Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    /// `{control plane}/api/workspaces`.
    base: String,
    outbox: Outbox,
    workspaces: Workspaces,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    messages: Vec<WireMessage<'a>>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    seq: u64,
    created_at: i64,
    kind: &'a str,
    payload: Value,
}

impl HttpSink {
    pub fn new(
        client: reqwest::Client,
        control_plane_url: &str,
        outbox: Outbox,
        workspaces: Workspaces,
    ) -> Self {
        Self {
            client,
            base: format!("{control_plane_url}/api/workspaces"),
            outbox,
            workspaces,
        }
    }

    async fn send(&self, batch: &Batch) -> Result<Ack, DeliveryError> {
        let route = self
            .outbox
            .route(&batch.session_id)
            .await
            .map_err(|err| DeliveryError::Unreachable(format!("outbox: {err}")))?
            .ok_or_else(|| DeliveryError::Refused {
                status: 0,
                code: "no_route".to_owned(),
            })?;
        let token = match self.workspaces.callback_token(&route.workspace_id).await {
            Some(token) => token.expose().to_owned(),
            None => route.callback_token.clone(),
        };
        let body = Body {
            messages: batch
                .messages
                .iter()
                .map(|m| WireMessage {
                    seq: m.seq,
                    created_at: m.created_at,
                    kind: &m.kind,
                    // Stored only after it parsed.
                    payload: serde_json::from_str(&m.payload).unwrap_or(Value::Null),
                })
                .collect(),
        };
        let url = format!(
            "{}/{}/sessions/{}/messages",
            self.base, route.workspace_id, batch.session_id
        );
        let response = self
            .client
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            // reqwest errors carry the URL, never headers.
            .map_err(|err| DeliveryError::Unreachable(err.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| DeliveryError::Unreachable(err.to_string()))?;
        if status == StatusCode::OK {
            return serde_json::from_slice::<Ack>(&bytes).map_err(|_| DeliveryError::BadReply);
        }
        let code = serde_json::from_slice::<ErrorBody>(&bytes)
            .map_or_else(|_| "unknown".to_owned(), |b| b.code);
        Err(DeliveryError::Refused {
            status: status.as_u16(),
            code,
        })
    }
}

impl Sink for HttpSink {
    fn deliver(
        &self,
        batch: &Batch,
    ) -> impl std::future::Future<Output = Result<Ack, DeliveryError>> + Send {
        self.send(batch)
    }
}
