//! Calls from the agent to the control plane about one workspace, each with
//! that workspace's callback token: the boot log, ready, provisioning
//! failed, and git tokens. Transient failures (network, 5xx, 429) are
//! retried with the agent's back-off a few times; the reports are best
//! effort (a control plane that stays away misses them, the workspace does
//! not wait for it).

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use sam_wire::ErrorBody;
use serde::{Deserialize, Serialize};

use super::model::Secret;
use crate::callback::Backoff;

/// Attempts for a report before it is given up.
const REPORT_ATTEMPTS: u32 = 6;
/// Attempts for a git token: git is waiting.
const TOKEN_ATTEMPTS: u32 = 3;
const MAX_TOKEN_BYTES: usize = 4096;

/// A step of workspace creation, as the boot log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Clone,
    Branch,
    GitIdentity,
    RuntimeStart,
}

impl Step {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Clone => "clone",
            Self::Branch => "branch",
            Self::GitIdentity => "git_identity",
            Self::RuntimeStart => "runtime_start",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepStatus {
    Started,
    Done,
    Failed,
}

impl StepStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

#[derive(Serialize)]
struct BootLogEntry<'a> {
    at: i64,
    step: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct FailedBody<'a> {
    reason: &'a str,
}

#[derive(Deserialize)]
struct GitTokenReply {
    token: String,
}

/// Why a call did not work out. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallbackError {
    #[error("the control plane is unreachable ({0})")]
    Unreachable(String),
    #[error("the control plane refused with HTTP {status} ({code})")]
    Refused { status: u16, code: String },
    #[error("the control plane sent an unusable reply")]
    BadReply,
}

#[derive(Debug, Clone)]
pub(crate) struct Callbacks {
    client: reqwest::Client,
    /// `{control plane}/api/workspaces`.
    base: String,
    backoff: Backoff,
}

impl Callbacks {
    pub(crate) fn new(client: reqwest::Client, control_plane_url: &str, backoff: Backoff) -> Self {
        Self {
            client,
            base: format!("{control_plane_url}/api/workspaces"),
            backoff,
        }
    }

    pub(crate) async fn boot_log(
        &self,
        id: &str,
        token: &Secret,
        step: Step,
        status: StepStatus,
        detail: Option<&str>,
    ) {
        let body = BootLogEntry {
            at: now_ms(),
            step: step.as_str(),
            status: status.as_str(),
            detail,
        };
        if let Err(err) = self
            .post(id, token, "boot-log", &body, REPORT_ATTEMPTS)
            .await
        {
            tracing::warn!(workspace = %id, step = step.as_str(), %err, "boot log entry not delivered");
        }
    }

    pub(crate) async fn ready(&self, id: &str, token: &Secret) {
        match self
            .post(id, token, "ready", &serde_json::json!({}), REPORT_ATTEMPTS)
            .await
        {
            Ok(_) => tracing::info!(workspace = %id, "reported the workspace ready"),
            Err(err) => tracing::warn!(workspace = %id, %err, "ready call not delivered"),
        }
    }

    /// `reason` must already be scrubbed.
    pub(crate) async fn provisioning_failed(&self, id: &str, token: &Secret, reason: &str) {
        let body = FailedBody { reason };
        match self
            .post(id, token, "provisioning-failed", &body, REPORT_ATTEMPTS)
            .await
        {
            Ok(_) => tracing::info!(workspace = %id, "reported the workspace failed"),
            Err(err) => {
                tracing::warn!(workspace = %id, %err, "provisioning-failed call not delivered");
            }
        }
    }

    /// A short-lived git token for the workspace's repository. Held in
    /// memory only.
    pub(crate) async fn git_token(
        &self,
        id: &str,
        token: &Secret,
    ) -> Result<Secret, CallbackError> {
        let bytes = self
            .post(
                id,
                token,
                "git-token",
                &serde_json::json!({}),
                TOKEN_ATTEMPTS,
            )
            .await?;
        let reply: GitTokenReply =
            serde_json::from_slice(&bytes).map_err(|_| CallbackError::BadReply)?;
        // It travels in a line protocol and a git credential: one plain word.
        let usable = !reply.token.is_empty()
            && reply.token.len() <= MAX_TOKEN_BYTES
            && reply.token.chars().all(|c| c.is_ascii_graphic());
        if usable {
            Ok(Secret::new(reply.token))
        } else {
            Err(CallbackError::BadReply)
        }
    }

    /// POSTs `body` to `{base}/{id}/{path}`, retrying transient failures.
    async fn post<B: Serialize>(
        &self,
        id: &str,
        token: &Secret,
        path: &str,
        body: &B,
        attempts: u32,
    ) -> Result<Vec<u8>, CallbackError> {
        let url = format!("{}/{id}/{path}", self.base);
        let mut delay = self.backoff.initial;
        let mut attempt = 1;
        loop {
            let error = match self
                .client
                .post(&url)
                .bearer_auth(token.expose())
                .json(body)
                .send()
                .await
            {
                // reqwest errors carry the URL, never headers.
                Err(err) => CallbackError::Unreachable(err.to_string()),
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Err(err) => CallbackError::Unreachable(err.to_string()),
                        Ok(bytes) if status.is_success() => return Ok(bytes.to_vec()),
                        Ok(bytes) => {
                            let code = serde_json::from_slice::<ErrorBody>(&bytes)
                                .map_or_else(|_| "unknown".to_owned(), |b| b.code);
                            let refused = CallbackError::Refused {
                                status: status.as_u16(),
                                code,
                            };
                            if !(status.is_server_error()
                                || status == StatusCode::TOO_MANY_REQUESTS)
                            {
                                return Err(refused);
                            }
                            refused
                        }
                    }
                }
            };
            if attempt >= attempts {
                return Err(error);
            }
            tracing::debug!(workspace = %id, path, attempt, %error, "workspace callback failed; retrying");
            tokio::time::sleep(delay).await;
            delay = self.backoff.after(delay);
            attempt += 1;
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
