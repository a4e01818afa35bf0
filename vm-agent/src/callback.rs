//! Calls from the agent to the control plane: the one-time ready call and
//! the periodic heartbeat, both authenticated with the node's callback token.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use sam_wire::{ErrorBody, HeartbeatReply, HeartbeatRequest, NodeReadyRequest};

use crate::AGENT_VERSION;
use crate::error::AgentError;
use crate::metrics::{PROC_DIR, collect_metrics};

/// Capped exponential back-off for the ready call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay after `delay`: doubled, capped at `max`.
    pub fn after(&self, delay: Duration) -> Duration {
        delay.saturating_mul(2).min(self.max)
    }
}

/// The node's callback token. `Debug` is redacted so the token cannot reach
/// a log line through a stray `?token`.
#[derive(Clone)]
pub(crate) struct CallbackToken(String);

impl std::fmt::Debug for CallbackToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackToken(<redacted>)")
    }
}

impl CallbackToken {
    /// Reads the token cloud-init left for the agent.
    pub(crate) fn read(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::TokenFile {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AgentError::EmptyTokenFile {
                path: path.to_owned(),
            });
        }
        Ok(Self(token.to_owned()))
    }

    /// Replaces the token file with `token` (a fresh token from the control
    /// plane): written to a sibling file with mode 0600, then renamed over
    /// the old one, so a crash never leaves a half-written token.
    pub(crate) fn replace(path: &Path, token: &str) -> Result<Self, AgentError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let token = token.trim();
        if token.is_empty() || token.split('.').count() != 3 {
            return Err(AgentError::EmptyTokenFile {
                path: path.to_owned(),
            });
        }
        let tmp = path.with_extension("new");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(token.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|source| AgentError::TokenFile {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self(token.to_owned()))
    }
}

/// How one call went, as far as retrying is concerned.
enum Outcome<T> {
    Done(T),
    /// Worth retrying: network trouble, 5xx, 429.
    Retry(String),
    /// Will not get better by retrying.
    Refused {
        status: StatusCode,
        body: ErrorBody,
    },
}

/// A client for this node's callback endpoints.
pub(crate) struct ControlPlane {
    client: reqwest::Client,
    /// `{control plane}/api/nodes/{id}`.
    node_url: String,
    /// The token in use; replaced when the control plane sends a fresh one.
    token: std::sync::RwLock<CallbackToken>,
    token_path: std::path::PathBuf,
}

impl ControlPlane {
    pub(crate) fn new(
        client: reqwest::Client,
        control_plane_url: &str,
        node_id: &str,
        token_path: &Path,
    ) -> Result<Self, AgentError> {
        Ok(Self {
            client,
            node_url: format!("{control_plane_url}/api/nodes/{node_id}"),
            token: std::sync::RwLock::new(CallbackToken::read(token_path)?),
            token_path: token_path.to_owned(),
        })
    }

    fn current_token(&self) -> String {
        match self.token.read() {
            Ok(t) => t.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// Stores a fresh token on disk and starts using it.
    fn adopt_token(&self, fresh: &str) {
        match CallbackToken::replace(&self.token_path, fresh) {
            Ok(token) => {
                match self.token.write() {
                    Ok(mut t) => *t = token,
                    Err(poisoned) => *poisoned.into_inner() = token,
                }
                tracing::info!("callback token renewed");
            }
            Err(e) => tracing::warn!(error = %e, "could not store the renewed callback token"),
        }
    }

    /// Reports the node ready, retrying transient failures with back-off.
    /// Returns an error only when the control plane refuses for good.
    pub(crate) async fn register(&self, backoff: Backoff) -> Result<(), AgentError> {
        let body = NodeReadyRequest {
            agent_version: AGENT_VERSION.to_owned(),
        };
        let mut delay = backoff.initial;
        let mut attempt = 1u32;
        loop {
            match self.post::<_, ()>("ready", &body).await {
                Outcome::Done(()) => {
                    tracing::info!(attempt, "registered with the control plane");
                    return Ok(());
                }
                Outcome::Retry(reason) => {
                    tracing::warn!(attempt, %reason, retry_in_ms = delay.as_millis(), "ready call failed; retrying");
                }
                Outcome::Refused { status, body } => {
                    tracing::error!(
                        status = status.as_u16(),
                        code = %body.code,
                        detail = %body.message,
                        "control plane refused the ready call; giving up"
                    );
                    return Err(AgentError::RegistrationRejected {
                        status: status.as_u16(),
                        code: body.code,
                        message: body.message,
                    });
                }
            }
            tokio::time::sleep(delay).await;
            delay = backoff.after(delay);
            attempt = attempt.saturating_add(1);
        }
    }

    /// Sends heartbeats forever: one right away, then one per interval,
    /// following the interval the control plane asks for. Failures are
    /// logged and the next tick tries again.
    pub(crate) async fn heartbeat_forever(
        &self,
        mut interval: Duration,
        disk_path: &Path,
    ) -> std::convert::Infallible {
        loop {
            let body = HeartbeatRequest {
                agent_version: AGENT_VERSION.to_owned(),
                metrics: collect_metrics(Path::new(PROC_DIR), disk_path),
            };
            match self
                .post::<_, Option<HeartbeatReply>>("heartbeat", &body)
                .await
            {
                Outcome::Done(reply) => {
                    if let Some(fresh) = reply.as_ref().and_then(|r| r.refreshed_token.as_deref()) {
                        self.adopt_token(fresh);
                    }
                    if let Some(reply) = reply {
                        // Never faster than once a second, whatever the reply says.
                        let wanted = Duration::from_secs(reply.next_interval_secs.max(1));
                        if wanted != interval {
                            tracing::info!(
                                secs = wanted.as_secs(),
                                "heartbeat interval changed by the control plane"
                            );
                            interval = wanted;
                        }
                    }
                    tracing::debug!("heartbeat sent");
                }
                Outcome::Retry(reason) => tracing::warn!(%reason, "heartbeat failed"),
                Outcome::Refused { status, body } => tracing::warn!(
                    status = status.as_u16(),
                    code = %body.code,
                    detail = %body.message,
                    "heartbeat refused"
                ),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// POSTs `body` to `{node_url}/{path}` and classifies the result. A 2xx
    /// reply is parsed as `R`; `Option<R>` tolerates an empty or foreign body.
    async fn post<B: serde::Serialize, R: ReplyBody>(&self, path: &str, body: &B) -> Outcome<R> {
        let result = self
            .client
            .post(format!("{}/{path}", self.node_url))
            .bearer_auth(self.current_token())
            .json(body)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            // reqwest errors carry the URL, never headers, so the token stays out.
            Err(err) => return Outcome::Retry(err.to_string()),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(err) => return Outcome::Retry(err.to_string()),
        };
        if status.is_success() {
            return R::from_bytes(&bytes).map_or_else(
                || Outcome::Retry(format!("unexpected reply body (HTTP {status})")),
                Outcome::Done,
            );
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            code: "unknown".to_owned(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Outcome::Retry(format!("HTTP {status} ({})", body.code))
        } else {
            Outcome::Refused { status, body }
        }
    }
}

/// How a successful reply body is read.
trait ReplyBody: Sized {
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// The ready call's reply carries nothing the agent needs.
impl ReplyBody for () {
    fn from_bytes(_: &[u8]) -> Option<Self> {
        Some(())
    }
}

/// Optional structured reply: absent or unparsable is not an error.
impl<T: serde::de::DeserializeOwned> ReplyBody for Option<T> {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(serde_json::from_slice(bytes).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let mut d = b.initial;
        let mut seen = vec![d];
        for _ in 0..8 {
            d = b.after(d);
            seen.push(d);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  secret-token-value\n").unwrap();
        let token = CallbackToken::read(&path).unwrap();
        assert_eq!(token.0, "secret-token-value");
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn token_file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(
            CallbackToken::read(&missing),
            Err(AgentError::TokenFile { path, .. }) if path == missing
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            CallbackToken::read(&empty),
            Err(AgentError::EmptyTokenFile { .. })
        ));
    }
}
