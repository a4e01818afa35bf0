//! Ports the use cases need besides SQL.

use std::collections::BTreeMap;

use sam_domain::node::BootPhase;

use crate::error::ControlError;
use sam_providers::{
    CreateServer, DeleteOutcome, HetznerClient, HttpClient, ProviderError, Server,
};
use sam_store::NodeRecord;
use sam_wire::AgentWorkspaceRequest;

/// Creates and deletes servers at a cloud provider.
#[allow(async_fn_in_trait)]
pub trait ServerProvider {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError>;
    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError>;
    /// Servers carrying all of `labels`.
    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError>;
}

/// A borrowed provider is a provider (sweeps build one per account; tests
/// hand out the same fake for every account).
impl<T: ServerProvider> ServerProvider for &T {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        T::create_server(self, req).await
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        T::delete_server(self, id).await
    }

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        T::find_servers(self, labels).await
    }
}

impl<H: HttpClient> ServerProvider for HetznerClient<H> {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        HetznerClient::create_server(self, req).await
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        HetznerClient::delete_server(self, id).await
    }

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        HetznerClient::list_servers(self, labels).await
    }
}

/// The node's log (the `NodeLifecycle` Durable Object in the Worker).
/// Failures to log are reported but never fail the use case: the log is
/// observability, D1 is the source of truth.
#[allow(async_fn_in_trait)]
pub trait BootLog {
    /// Something happened during the node's life.
    async fn record(
        &self,
        node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> Result<(), String>;
}

/// The per-node timer (the `NodeLifecycle` Durable Object's alarm): it
/// must wake the node's lifecycle no later than `at`. Waking early is
/// harmless (nothing is due yet, the timer is set again), so an
/// implementation may keep the earlier of two requests.
#[allow(async_fn_in_trait)]
pub trait NodeTimer {
    async fn wake_at(&self, node_id: &str, at: i64) -> Result<(), String>;
}

/// Opens a user's cloud account: the provider client acting with their
/// decrypted credential for `provider` (e.g. `hetzner`).
#[allow(async_fn_in_trait)]
pub trait CloudAccounts {
    type Provider: ServerProvider;
    async fn open(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<OpenedAccount<Self::Provider>, ControlError>;
}

/// A provider client and what identifies the account behind it (users who
/// share one cloud account are swept for orphans once). The identity is a
/// digest, never the credential.
pub struct OpenedAccount<P> {
    pub provider: P,
    pub account: String,
}

/// Waiting and randomness for retries: `setTimeout` and `crypto` in the
/// Worker, no-ops or fixed values in tests.
#[allow(async_fn_in_trait)]
pub trait RetryRuntime {
    async fn pause(&self, ms: u64);
    /// A random number in `0..=1` for backoff jitter.
    fn jitter(&self) -> f64;
}

/// What can be asked of a workspace that exists on a node
/// (`POST /workspaces/{id}/<action>` on its vm-agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkspaceAction {
    Stop,
    Restart,
    /// Restart with its runtime rebuilt (a dev container is recreated).
    Rebuild,
}

impl WorkspaceAction {
    /// The last segment of the vm-agent's route.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceAction::Stop => "stop",
            WorkspaceAction::Restart => "restart",
            WorkspaceAction::Rebuild => "rebuild",
        }
    }
}

/// Longest vm-agent message kept in an [`AgentError`], in characters.
const MAX_AGENT_MESSAGE_CHARS: usize = 300;

/// Why a call to a node's vm-agent did not work. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The vm-agent answered 404: it has no such workspace.
    #[error("the node's vm-agent has no such workspace")]
    NotFound,
    /// The vm-agent refused the request (4xx other than 404) with its code.
    #[error("the node's vm-agent refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer (connect, TLS, timeout) or a 5xx: the operation may or may
    /// not have happened.
    #[error("the node's vm-agent failed: {0}")]
    Unreachable(String),
}

impl AgentError {
    /// Classifies a vm-agent reply: `None` for a 2xx, otherwise 404 →
    /// [`AgentError::NotFound`], another 4xx → [`AgentError::Refused`]
    /// with the code and message of its `{code, message}` body, anything
    /// else → [`AgentError::Unreachable`]. For the Worker's adapter.
    pub fn from_reply(status: u16, body: &[u8]) -> Option<Self> {
        if (200..300).contains(&status) {
            return None;
        }
        let parsed = serde_json::from_slice::<sam_wire::ErrorBody>(body).ok();
        let code = parsed
            .as_ref()
            .map_or_else(|| format!("http_{status}"), |b| clip_text(&b.code, 64));
        let message = parsed
            .map(|b| clip_text(&b.message, MAX_AGENT_MESSAGE_CHARS))
            .unwrap_or_default();
        Some(match status {
            404 => AgentError::NotFound,
            400..=499 => AgentError::Refused {
                status,
                code,
                message,
            },
            _ if message.is_empty() => AgentError::Unreachable(format!("HTTP {status} ({code})")),
            _ => AgentError::Unreachable(format!("HTTP {status} ({code}): {message}")),
        })
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::NotFound => "vm_agent_not_found",
            AgentError::Refused { .. } => "vm_agent_refused",
            AgentError::Unreachable(_) => "vm_agent_unreachable",
        }
    }
}

fn clip_text(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A node's vm-agent, called with a `node-management` token for that node
/// (the Worker implements it over `fetch` to the node's address and
/// `vm_agent_port`). Request bodies are exactly the vm-agent's
/// (docs/workspaces.md).
#[allow(async_fn_in_trait)]
pub trait NodeAgent {
    /// `POST /workspaces`; the vm-agent answers 202 and reports through
    /// the workspace's callbacks.
    async fn create_workspace(
        &self,
        node: &NodeRecord,
        req: &AgentWorkspaceRequest,
    ) -> Result<(), AgentError>;

    /// `POST /workspaces/{id}/stop|restart|rebuild`; answers when done.
    async fn workspace_action(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        action: WorkspaceAction,
    ) -> Result<(), AgentError>;

    /// `DELETE /workspaces/{id}`: stops its processes and removes its directory.
    async fn delete_workspace(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
    ) -> Result<(), AgentError>;
}

/// The agent sessions and git of a node's workspaces, as the control plane
/// drives them on the node's vm-agent.
#[allow(async_fn_in_trait)]
pub trait SessionAgent {
    /// `POST /workspaces/{id}/sessions`: starts the agent (and sends the
    /// first prompt); the session's updates come back through the outbox.
    async fn start_session(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        req: &sam_wire::AgentSessionRequest,
    ) -> Result<(), AgentError>;

    /// `POST /workspaces/{id}/sessions/{sid}/prompts`: queued behind the
    /// turn in flight; a repeated prompt id is delivered once.
    async fn send_prompt(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
        prompt: &sam_wire::AgentPrompt,
    ) -> Result<(), AgentError>;

    /// `POST /workspaces/{id}/sessions/{sid}/cancel`: ends the current turn;
    /// the agent keeps running.
    async fn cancel_turn(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
    ) -> Result<(), AgentError>;

    /// `POST /workspaces/{id}/sessions/{sid}/permissions/{rid}`.
    async fn answer_permission(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
        request_id: &str,
        option_id: &str,
    ) -> Result<(), AgentError>;

    /// `DELETE /workspaces/{id}/sessions/{sid}`: stops the agent.
    async fn stop_session(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
    ) -> Result<(), AgentError>;

    /// `POST /workspaces/{id}/git/publish`: commit and push.
    async fn publish_branch(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        req: &sam_wire::PublishBranchRequest,
    ) -> Result<sam_wire::PublishedBranch, AgentError>;
}
