//! The ACP host: coding agents (Claude Code, Codex, Gemini CLI, opencode)
//! run as child processes speaking the Agent Client Protocol over stdio, one
//! per session, in a workspace's checkout; what they do goes to the control
//! plane through the outbox.
//!
//! - [`catalog`]: which agents exist and how each is started (data:
//!   `vm-agent/agents.toml`).
//! - [`install`]: pinned npm installs into `SAM_AGENTS_DIR`.
//! - [`rpc`]: newline-delimited JSON-RPC over the agent's stdio.
//! - [`session`]: one session's lifecycle, prompt queue, permissions.
//! - [`fs`]: the client file methods, confined to the checkout.
//! - [`events`]: the outbox messages (the contract below).
//! - [`sink`]: delivery of the outbox to the control plane over HTTP.
//! - [`recover`]: at start-up, ending the sessions a previous vm-agent
//!   left (killed, crashed).
//! - [`routes`]: the management API.
//!
//! # Routes (node-management bearer, like the workspace routes)
//!
//! - `POST /workspaces/{wid}/sessions`
//!   `{"session_id": ULID, "agent": name, "api_key", "base_url": url|null,
//!   "model": str|null, "permission_policy": "approve"|"ask",
//!   "prompt": {"prompt_id", "text"}|null, "acp_session_id": str|null}`
//!   → 202 `{"session": view}`; the agent starts in the background. 404
//!   `not_found` (workspace), 409 `session_exists`,
//!   `workspace_not_running`, `runtime_unsupported` (devcontainer
//!   workspaces), 400 `invalid_body`, `invalid_session_id`,
//!   `unknown_agent`, `invalid_api_key`, `invalid_base_url`,
//!   `invalid_model`, `invalid_prompt_id`, `invalid_prompt`,
//!   `invalid_acp_session_id`.
//! - `GET /workspaces/{wid}/sessions` → `{"sessions": [view]}`;
//!   `GET /workspaces/{wid}/sessions/{sid}` → `{"session": view}`.
//! - `POST …/sessions/{sid}/prompts` `{"prompt_id", "text"}` → 202
//!   `{"session": view}`; queued FIFO, each sent once, in order; a known
//!   `prompt_id` is a no-op. 409 `session_not_running` once the agent is
//!   gone.
//! - `POST …/sessions/{sid}/cancel` → 200 `{"session": view}`, also when
//!   idle: `session/cancel` for the turn in flight, pending permission
//!   requests answered `cancelled`; the agent keeps running.
//! - `POST …/sessions/{sid}/permissions/{request_id}` `{"option_id"}` →
//!   200; 404 `permission_not_pending`, 400 `invalid_option`.
//! - `DELETE …/sessions/{sid}` → 200 `{"session": view}` (final) once the
//!   agent is gone: cancel, SIGTERM to its process group, SIGKILL after 3 s.
//!   Stopping, restarting, rebuilding or deleting the workspace stops its
//!   sessions the same way.
//! - `POST /workspaces/{wid}/git/publish` `{"branch", "commit_message",
//!   "author": {"name", "email"}|null}` → 200 `{"branch", "commit_sha",
//!   "committed", "pushed": true}` (see [`routes`]).
//!
//! A view: `{"id", "workspace_id", "agent", "status":
//! "starting"|"idle"|"busy"|"stopping"|"exited"|"failed",
//! "permission_policy", "acp_session_id", "agent_pid", "current_prompt_id",
//! "queued_prompt_ids", "pending_permission_ids", "created_at", "error"?}`.
//!
//! # Outbox messages (kind → payload), per session, in order
//!
//! - `session_started` `{"agent", "acp_session_id", "agent_pid"}`, or
//!   `agent_start_failed` `{"code", "message"}` (codes `install_failed`,
//!   `home_failed`, `spawn_failed`, `initialize_failed`,
//!   `authenticate_failed`, `session_new_failed`, `session_load_failed`,
//!   `stopped`); nothing follows a start failure.
//! - `prompt_sent` `{"prompt_id"}`: recorded just before `session/prompt`
//!   is written to the agent.
//! - `update` `{"update": <params.update exactly as the agent sent it>}`
//!   for every `session/update` (`agent_message_chunk`, `tool_call`, …).
//!   An update over the outbox's 256 KiB limit is stored as
//!   `{"update": {sessionUpdate, toolCallId, status, kind, title},
//!   "truncated": true, "bytes": n}`.
//! - `permission_requested` `{"request_id", "tool_call", "options",
//!   "policy"}` (`tool_call` and `options` as the agent sent them;
//!   `request_id` is ours, a ULID); `permission_answered` `{"request_id",
//!   "option_id": str|null, "by": "policy"|"user"|"cancel"}` (the policy
//!   picks `allow_once`, else `allow_always`, else answers `cancelled`
//!   with `option_id` null).
//! - `turn_ended` `{"prompt_id", "stop_reason"}`; `turn_failed`
//!   `{"prompt_id", "code": "agent_exited"|"agent_error"|"bad_reply",
//!   "message"}`.
//! - `agent_exited` `{"code", "signal", "during_turn"}`, last. A
//!   session whose vm-agent died before it ended is ended by the next one
//!   ([`recover`]): `agent_exited` `{"code": null, "signal": null,
//!   "during_turn", "reason": "vm_agent_restarted"}`, or
//!   `agent_start_failed` with code `vm_agent_restarted` when its agent
//!   had not started.
//!
//! Delivery: [`sink::HttpSink`] (`POST {control plane}/api/workspaces/
//! {wid}/sessions/{sid}/messages`, the workspace's callback token). Which
//! workspace (and token) a session's messages go to is stored in the
//! outbox file when the session is created, so they are delivered after a
//! restart, and after the workspace is gone.

pub mod catalog;
pub mod events;
pub mod fs;
pub mod install;
pub mod recover;
pub mod routes;
pub mod rpc;
pub mod session;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

pub use catalog::{AgentSpec, Catalog};
pub use install::Installer;
pub use session::{Policy, SessionView, Status};
pub use sink::HttpSink;

use crate::config::Config;
use crate::outbox::{Outbox, OutboxError, OutboxStore, Route};
use crate::workspaces::{RuntimeKind, Secret, WorkspaceStatus, Workspaces};
use session::{Prompt, Session, Start};

pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Why a session could not be created or reached; each has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("no such workspace")]
    NoWorkspace,
    #[error("no such session")]
    NoSession,
    #[error("a session with this id exists")]
    Exists,
    #[error("the workspace is not running")]
    WorkspaceNotRunning,
    #[error("agent sessions run only in host workspaces")]
    RuntimeUnsupported,
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("the session outbox is unavailable: {0}")]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Session(#[from] session::SessionError),
}

impl SessionsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoWorkspace | Self::NoSession => "not_found",
            Self::Exists => "session_exists",
            Self::WorkspaceNotRunning => "workspace_not_running",
            Self::RuntimeUnsupported => "runtime_unsupported",
            Self::Invalid { code, .. } => code,
            Self::Outbox(err) => err.code(),
            Self::Session(session::SessionError::NotRunning(_)) => "session_not_running",
            Self::Session(session::SessionError::NoSuchPermission) => "permission_not_pending",
            Self::Session(session::SessionError::InvalidOption) => "invalid_option",
        }
    }
}

fn invalid(code: &'static str, message: &str) -> SessionsError {
    SessionsError::Invalid {
        code,
        message: message.to_owned(),
    }
}

/// `POST /workspaces/{wid}/sessions`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub session_id: String,
    pub agent: String,
    pub api_key: Secret,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    pub permission_policy: Policy,
    #[serde(default)]
    pub prompt: Option<PromptBody>,
    #[serde(default)]
    pub acp_session_id: Option<String>,
}

/// A prompt as the API takes it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptBody {
    pub prompt_id: String,
    pub text: String,
}

/// The node's agent sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

struct Inner {
    config: Arc<Config>,
    workspaces: Workspaces,
    catalog: Catalog,
    installer: Installer,
    outbox: Mutex<Option<Outbox>>,
    sessions: Mutex<BTreeMap<String, Arc<Session>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const MAX_PROMPT_BYTES: usize = 1024 * 1024;

impl Sessions {
    pub fn new(config: Arc<Config>, workspaces: Workspaces) -> Self {
        let catalog = Catalog::builtin().unwrap_or_else(|err| {
            // A test fails long before this; no agents rather than no node.
            tracing::error!(%err, "the built-in agent catalog is broken");
            Catalog::parse("agents = {}").unwrap_or_else(|_| unreachable!())
        });
        Self {
            inner: Arc::new(Inner {
                installer: Installer::new(config.agents_dir.clone(), Installer::default_path()),
                config,
                workspaces,
                catalog,
                outbox: Mutex::new(None),
                sessions: Mutex::default(),
            }),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The outbox (`OutboxStore::default_path(fs_root)`), opened on first
    /// use.
    pub fn outbox(&self) -> Result<Outbox, OutboxError> {
        let mut outbox = lock(&self.inner.outbox);
        if let Some(outbox) = outbox.as_ref() {
            return Ok(outbox.clone());
        }
        let store = OutboxStore::open(&OutboxStore::default_path(&self.inner.config.fs_root))?;
        let opened = Outbox::new(store);
        *outbox = Some(opened.clone());
        Ok(opened)
    }

    /// The delivery side of the outbox, for `run_delivery`.
    pub fn sink(&self, client: reqwest::Client) -> Result<HttpSink, OutboxError> {
        Ok(HttpSink::new(
            client,
            &self.inner.config.control_plane_url,
            self.outbox()?,
            self.inner.workspaces.clone(),
        ))
    }

    /// At start-up: ends the sessions a previous vm-agent left behind (see
    /// [`recover`]). Without an outbox there is nothing to end.
    pub async fn recover(&self) -> Vec<recover::Recovered> {
        let outbox = match self.outbox() {
            Ok(outbox) => outbox,
            Err(err) => {
                tracing::error!(%err, code = err.code(), "cannot look for sessions to end");
                return Vec::new();
            }
        };
        recover::recover(&outbox).await.unwrap_or_else(|err| {
            tracing::error!(%err, code = err.code(), "cannot look for sessions to end");
            Vec::new()
        })
    }

    /// Validates `request` and starts the session in the background.
    pub async fn create(
        &self,
        workspace_id: &str,
        request: CreateSession,
    ) -> Result<SessionView, SessionsError> {
        let info = self
            .inner
            .workspaces
            .get(workspace_id)
            .await
            .ok_or(SessionsError::NoWorkspace)?;
        let session_id = ulid::Ulid::from_string(&request.session_id)
            .map_err(|_| invalid("invalid_session_id", "session_id must be a ULID"))?
            .to_string();
        let spec = self
            .inner
            .catalog
            .get(&request.agent)
            .ok_or_else(|| {
                let known: Vec<&str> = self.inner.catalog.names().collect();
                invalid(
                    "unknown_agent",
                    &format!("agent must be one of {}", known.join(", ")),
                )
            })?
            .clone();
        validate_api_key(request.api_key.expose())?;
        let base_url = request
            .base_url
            .as_deref()
            .map(validate_base_url)
            .transpose()?;
        if let Some(model) = &request.model {
            validate_word("invalid_model", "model", model, 128, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@')
            })?;
        }
        if let Some(prompt) = &request.prompt {
            validate_prompt(prompt)?;
        }
        if let Some(id) = &request.acp_session_id {
            validate_word("invalid_acp_session_id", "acp_session_id", id, 256, |c| {
                c.is_ascii_graphic()
            })?;
        }
        match info.view.status {
            WorkspaceStatus::Running => {}
            WorkspaceStatus::Deleting => return Err(SessionsError::NoWorkspace),
            _ => return Err(SessionsError::WorkspaceNotRunning),
        }
        if info.view.runtime != RuntimeKind::Host {
            return Err(SessionsError::RuntimeUnsupported);
        }
        let workspace_id = info.view.id.clone();
        let outbox = self.outbox()?;
        let token = self
            .inner
            .workspaces
            .callback_token(&workspace_id)
            .await
            .ok_or(SessionsError::NoWorkspace)?;
        let session = {
            let mut sessions = lock(&self.inner.sessions);
            if sessions.contains_key(&session_id) {
                return Err(SessionsError::Exists);
            }
            let session = Session::new(
                &session_id,
                &workspace_id,
                &request.agent,
                request.permission_policy,
                request.prompt.map(|p| Prompt {
                    id: p.prompt_id,
                    text: p.text,
                }),
                events::Recorder::new(outbox.clone(), &session_id),
            );
            sessions.insert(session_id.clone(), Arc::clone(&session));
            session
        };
        // Before any message exists: where they go.
        if let Err(err) = outbox
            .set_route(
                &session_id,
                Route {
                    workspace_id: workspace_id.clone(),
                    callback_token: token.expose().to_owned(),
                },
            )
            .await
        {
            lock(&self.inner.sessions).remove(&session_id);
            return Err(err.into());
        }
        let start = Start {
            spec,
            installer: self.inner.installer.clone(),
            api_key: request.api_key,
            base_url,
            model: request.model,
            load_session_id: request.acp_session_id,
            checkout: info.repo_dir.clone(),
            // Beside the checkout, not in it: the workspace's own state.
            home: info.dir.join("sessions").join(&session_id).join("home"),
            recorder: events::Recorder::new(outbox, &session_id),
        };
        tracing::info!(session = %session_id, workspace = %workspace_id, agent = %request.agent, "starting an agent session");
        let view = session.view();
        tokio::spawn(Arc::clone(&session).run(start));
        Ok(view)
    }

    /// The session `session_id` of workspace `workspace_id`.
    fn get(&self, workspace_id: &str, session_id: &str) -> Result<Arc<Session>, SessionsError> {
        let id = ulid::Ulid::from_string(session_id)
            .map_err(|_| SessionsError::NoSession)?
            .to_string();
        lock(&self.inner.sessions)
            .get(&id)
            .filter(|s| s.workspace_id.eq_ignore_ascii_case(workspace_id))
            .cloned()
            .ok_or(SessionsError::NoSession)
    }

    pub fn view(&self, workspace_id: &str, session_id: &str) -> Result<SessionView, SessionsError> {
        Ok(self.get(workspace_id, session_id)?.view())
    }

    pub fn list(&self, workspace_id: &str) -> Vec<SessionView> {
        lock(&self.inner.sessions)
            .values()
            .filter(|s| s.workspace_id.eq_ignore_ascii_case(workspace_id))
            .map(|s| s.view())
            .collect()
    }

    pub fn prompt(
        &self,
        workspace_id: &str,
        session_id: &str,
        prompt: PromptBody,
    ) -> Result<SessionView, SessionsError> {
        validate_prompt(&prompt)?;
        let session = self.get(workspace_id, session_id)?;
        session.submit(Prompt {
            id: prompt.prompt_id,
            text: prompt.text,
        })?;
        Ok(session.view())
    }

    pub async fn cancel(
        &self,
        workspace_id: &str,
        session_id: &str,
    ) -> Result<SessionView, SessionsError> {
        let session = self.get(workspace_id, session_id)?;
        session.cancel().await;
        Ok(session.view())
    }

    pub async fn answer_permission(
        &self,
        workspace_id: &str,
        session_id: &str,
        request_id: &str,
        option_id: &str,
    ) -> Result<SessionView, SessionsError> {
        let session = self.get(workspace_id, session_id)?;
        session.answer_permission(request_id, option_id).await?;
        Ok(session.view())
    }

    /// Stops the session and forgets it.
    pub async fn delete(
        &self,
        workspace_id: &str,
        session_id: &str,
    ) -> Result<SessionView, SessionsError> {
        let session = self.get(workspace_id, session_id)?;
        session.stop(session::STOP_GRACE).await;
        lock(&self.inner.sessions).remove(&session.id);
        Ok(session.view())
    }

    /// Stops every session of a workspace (it is being stopped or deleted).
    pub async fn stop_workspace(&self, workspace_id: &str) {
        let sessions: Vec<Arc<Session>> = lock(&self.inner.sessions)
            .values()
            .filter(|s| s.workspace_id.eq_ignore_ascii_case(workspace_id))
            .cloned()
            .collect();
        futures::future::join_all(sessions.iter().map(|s| s.stop(session::STOP_GRACE))).await;
        let mut map = lock(&self.inner.sessions);
        for session in sessions {
            map.remove(&session.id);
        }
    }

    /// Stops every session (the agent is shutting down).
    pub async fn stop_all(&self) {
        let sessions: Vec<Arc<Session>> = lock(&self.inner.sessions).values().cloned().collect();
        futures::future::join_all(sessions.iter().map(|s| s.stop(session::STOP_GRACE))).await;
    }
}

fn validate_word(
    code: &'static str,
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), SessionsError> {
    if value.is_empty() || value.len() > max || !value.chars().all(allowed) {
        return Err(invalid(
            code,
            &format!("{field} must be 1 to {max} characters of the allowed set"),
        ));
    }
    Ok(())
}

/// The key is written into env values and config files: one plain word,
/// nothing that could break out of a TOML or JSON string.
fn validate_api_key(key: &str) -> Result<(), SessionsError> {
    validate_word("invalid_api_key", "api_key", key, 4096, |c| {
        c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '{' | '}')
    })
}

/// An http(s) URL without credentials, query or fragment; returned without
/// a trailing slash.
fn validate_base_url(raw: &str) -> Result<String, SessionsError> {
    let bad = || {
        invalid(
            "invalid_base_url",
            "base_url must be an http(s) URL without credentials, query or fragment",
        )
    };
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || raw.contains(['"', '\'', '\\', '{', '}', ' '])
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn validate_prompt(prompt: &PromptBody) -> Result<(), SessionsError> {
    validate_word(
        "invalid_prompt_id",
        "prompt_id",
        &prompt.prompt_id,
        128,
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
    )?;
    if prompt.text.trim().is_empty() || prompt.text.len() > MAX_PROMPT_BYTES {
        return Err(invalid(
            "invalid_prompt",
            "prompt text must be non-empty and at most 1 MiB",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_validated_with_stable_codes() {
        assert_eq!(validate_api_key("sk-ant-123").ok(), Some(()));
        for key in ["", "with space", "quote\"", "brace{x}", "back\\slash"] {
            assert_eq!(
                validate_api_key(key).unwrap_err().code(),
                "invalid_api_key",
                "{key}"
            );
        }
        assert_eq!(
            validate_base_url("http://127.0.0.1:4000/").unwrap(),
            "http://127.0.0.1:4000"
        );
        assert_eq!(
            validate_base_url("https://proxy.example/v1").unwrap(),
            "https://proxy.example/v1"
        );
        for url in [
            "ftp://x",
            "http://user:pw@x",
            "http://x/?q=1",
            "not a url",
            "http://x/#f",
        ] {
            assert_eq!(
                validate_base_url(url).unwrap_err().code(),
                "invalid_base_url",
                "{url}"
            );
        }
        let prompt = |id: &str, text: &str| PromptBody {
            prompt_id: id.to_owned(),
            text: text.to_owned(),
        };
        assert!(validate_prompt(&prompt("p-1", "hi")).is_ok());
        assert_eq!(
            validate_prompt(&prompt("p/1", "hi")).unwrap_err().code(),
            "invalid_prompt_id"
        );
        assert_eq!(
            validate_prompt(&prompt("p1", "  ")).unwrap_err().code(),
            "invalid_prompt"
        );
    }
}
