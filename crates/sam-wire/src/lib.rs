//! JSON bodies that cross a process boundary: browser/CLI ⇄ API and
//! vm-agent ⇄ API. Both sides compile these same types, so a renamed field
//! breaks the build instead of a running node.

pub mod routes;

use serde::{Deserialize, Serialize};

/// Every API error body: a stable machine-readable `code` and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `GET /health` on the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `ok` when every binding check passed, `degraded` otherwise.
    pub status: String,
    pub version: String,
    pub checks: Vec<BindingCheck>,
}

/// The result of exercising one Worker binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingCheck {
    /// Binding name as in `wrangler.toml` (`DB`, `KV`, `R2`, `NODE_LIFECYCLE`).
    pub binding: String,
    /// `d1`, `kv`, `r2` or `durable_object`.
    pub kind: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/auth/me` (and the dev sign-in reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// `user`, `admin` or `superadmin`.
    pub role: String,
    /// `active`, `pending` or `suspended`.
    pub status: String,
}

/// `POST /api/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNodeRequest {
    pub provider: String,
    pub size: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A node as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub size: String,
    pub location: String,
    pub server_type: String,
    /// `provisioning`, `booting`, `ready`, `warm`, `destroying`,
    /// `destroyed` or `error`.
    pub status: String,
    pub status_since: i64,
    /// When something next happens to the node (boot deadline, warm
    /// timeout, delete retry...); absent once destroyed.
    #[serde(default)]
    pub deadline_at: Option<i64>,
    /// When a `warm` node is destroyed unless claimed (its warm timeout).
    #[serde(default)]
    pub warm_until: Option<i64>,
    /// The task or user holding a `ready` node.
    #[serde(default)]
    pub claimed_by: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// `unknown`, `healthy`, `stale` or `unhealthy`, derived from heartbeats.
    pub health: String,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub provider_server_id: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    pub created_at: i64,
    #[serde(default)]
    pub agent_ready_at: Option<i64>,
    #[serde(default)]
    pub agent_version: Option<String>,
    #[serde(default)]
    pub last_heartbeat_at: Option<i64>,
    #[serde(default)]
    pub metrics: Option<NodeMetrics>,
    /// Delete calls issued so far, and why the latest failed.
    #[serde(default)]
    pub destroy_attempts: u32,
    #[serde(default)]
    pub destroy_error: Option<String>,
    /// The user deleted the node (it leaves lists once destroyed).
    #[serde(default)]
    pub removed_at: Option<i64>,
}

/// `POST /api/workspaces/{id}/terminal-ticket`: a single-use ticket the
/// browser trades at the workspace's vm-agent for its cookie.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalTicket {
    pub ticket: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for TerminalTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalTicket")
            .field("ticket", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /api/workspaces/{id}/port-ticket` `{port}`: a single-use ticket
/// to a forwarded port, and the URL that redeems it (opening it sets the
/// port's cookie on `ws-<id>--<port>.` and lands on the app's `/`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortTicket {
    pub ticket: String,
    pub url: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for PortTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortTicket")
            .field("ticket", &"[redacted]")
            .field("url", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Body of `POST /api/workspaces/{id}/port-ticket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortTicketRequest {
    pub port: u16,
}

/// `POST /api/nodes/claim`: take one of the user's warm nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNodeRequest {
    /// Names the holder; a retry with the same id gets the same node.
    /// Generated when absent.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// The project the node will work for: its warm timeout applies when
    /// the node is released. Without one, the platform's applies.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedNode {
    pub claim_id: String,
    pub node: NodeView,
}

/// `POST /api/nodes/{id}/release`: the holder is done with the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseNodeRequest {
    /// The claim to release; the user's own hold (`user:<id>`) when absent.
    #[serde(default)]
    pub claim_id: Option<String>,
}

/// `GET /api/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// `POST /api/nodes/{id}/ready` from the vm-agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReadyRequest {
    pub agent_version: String,
}

/// `POST /api/nodes/{id}/heartbeat` from the vm-agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub agent_version: String,
    pub metrics: NodeMetrics,
}

/// Resource figures a vm-agent reports with each heartbeat.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub load_avg_1m: f64,
    pub load_avg_5m: f64,
    pub load_avg_15m: f64,
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    pub uptime_secs: u64,
}

/// Reply to a heartbeat: the interval the control plane wants next, so it
/// can slow agents down without a redeploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub next_interval_secs: u64,
    /// A fresh callback token, sent when the one in use is past half its
    /// lifetime; the agent replaces its token file with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_token: Option<String>,
}

/// `GET /system-info` on the vm-agent (node-management token required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub node_id: String,
    pub agent_version: String,
    pub hostname: String,
    pub metrics: NodeMetrics,
}

// ---- Workspaces (docs/workspaces.md) ----

/// `POST /api/workspaces`: check a project's repository out on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    pub project_id: String,
    pub node_id: String,
    /// Unique among the node's workspaces; a slug of the branch when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The project's default branch when absent; created from it on the
    /// remote's side when it does not exist there yet.
    #[serde(default)]
    pub branch: Option<String>,
    /// `host` (the default) or `devcontainer`.
    #[serde(default)]
    pub runtime: Option<String>,
    /// For `devcontainer`: use `.devcontainer/<name>/devcontainer.json`.
    #[serde(default)]
    pub devcontainer_config: Option<String>,
}

/// `PATCH /api/workspaces/{id}`: rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameWorkspaceRequest {
    pub name: String,
}

/// `PUT /api/workspaces/{id}/ports-public`: open or close the workspace's
/// forwarded ports to anyone with the URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePortsRequest {
    pub ports_public: bool,
}

/// A workspace as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceView {
    pub id: String,
    pub project_id: String,
    pub node_id: String,
    pub name: String,
    pub branch: String,
    /// `host` or `devcontainer`.
    pub runtime: String,
    /// `creating`, `running`, `stopping`, `stopped`, `error`, `deleting`
    /// or `deleted`.
    pub status: String,
    pub status_since: i64,
    #[serde(default)]
    pub error_message: Option<String>,
    pub ports_public: bool,
    pub created_at: i64,
    /// When it first ran.
    #[serde(default)]
    pub ready_at: Option<i64>,
    /// Where the browser reaches it: `{scheme}://ws-<id>.<BASE_DOMAIN>[:port]`.
    pub url: String,
}

/// `GET /api/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceList {
    pub workspaces: Vec<WorkspaceView>,
}

/// One step of a workspace's creation: `POST /api/workspaces/{id}/boot-log`
/// from the vm-agent, and the log's entries as the API returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceBootLogEntry {
    /// Unix milliseconds (the vm-agent's clock).
    pub at: i64,
    /// `[a-z_]{1,40}`: `clone`, `branch`, `git_identity`, `runtime_start`...
    pub step: String,
    /// `started`, `done` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /api/workspaces/{id}/provisioning-failed` from the vm-agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceFailedRequest {
    /// Already scrubbed of secrets by the vm-agent.
    pub reason: String,
}

/// Reply to `POST /api/workspaces/{id}/git-token`: a GitHub token for the
/// workspace's repository only. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitTokenReply {
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for GitTokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitTokenReply")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The vm-agent's `POST /workspaces` body (its `CreateWorkspace`).
/// `Debug` hides the callback token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentWorkspaceRequest {
    /// The workspace's ULID.
    pub id: String,
    pub repository: AgentRepository,
    pub git_identity: AgentGitIdentity,
    /// `host` or `devcontainer`.
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devcontainer_config: Option<String>,
    /// The `workspace-callback` token (node + workspace scope).
    pub callback_token: String,
}

impl std::fmt::Debug for AgentWorkspaceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWorkspaceRequest")
            .field("id", &self.id)
            .field("repository", &self.repository)
            .field("git_identity", &self.git_identity)
            .field("runtime", &self.runtime)
            .field("devcontainer_config", &self.devcontainer_config)
            .finish_non_exhaustive()
    }
}

/// What the vm-agent checks out (its `RepositorySpec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRepository {
    /// `http(s)`, without credentials.
    pub clone_url: String,
    pub branch: String,
    /// Where `branch` is created from when the remote lacks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
}

/// `user.name` and `user.email` of the checkout (the vm-agent's `GitIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentGitIdentity {
    pub name: String,
    pub email: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_node_rejects_unknown_fields() {
        let err = serde_json::from_str::<CreateNodeRequest>(
            r#"{"provider":"hetzner","size":"small","sneaky":1}"#,
        );
        assert!(err.is_err());
        let ok: CreateNodeRequest =
            serde_json::from_str(r#"{"provider":"hetzner","size":"small"}"#).unwrap();
        assert_eq!(ok.location, None);
    }
    #[test]
    fn the_agent_request_has_the_vm_agents_field_names() {
        let req = AgentWorkspaceRequest {
            id: "01J0000000000000000000000A".into(),
            repository: AgentRepository {
                clone_url: "https://github.com/acme/app.git".into(),
                branch: "feature/x".into(),
                base_branch: Some("main".into()),
            },
            git_identity: AgentGitIdentity {
                name: "Alice".into(),
                email: "alice@example.com".into(),
            },
            runtime: "host".into(),
            devcontainer_config: None,
            callback_token: "eyJ.secret.sig".into(),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({
                "id": "01J0000000000000000000000A",
                "repository": {
                    "clone_url": "https://github.com/acme/app.git",
                    "branch": "feature/x",
                    "base_branch": "main"
                },
                "git_identity": {"name": "Alice", "email": "alice@example.com"},
                "runtime": "host",
                "callback_token": "eyJ.secret.sig"
            })
        );
        assert!(!format!("{req:?}").contains("eyJ.secret.sig"));
        let reply = GitTokenReply {
            token: "ghs_secret".into(),
            expires_at: 5,
        };
        assert!(!format!("{reply:?}").contains("ghs_secret"));
    }

    #[test]
    fn the_boot_log_entry_reads_what_the_vm_agent_sends() {
        let e: WorkspaceBootLogEntry =
            serde_json::from_str(r#"{"at":1,"step":"clone","status":"started"}"#).unwrap();
        assert_eq!(e.detail, None);
        let e: WorkspaceFailedRequest =
            serde_json::from_str(r#"{"reason":"clone failed"}"#).unwrap();
        assert_eq!(e.reason, "clone failed");
        assert!(
            serde_json::from_str::<CreateWorkspaceRequest>(
                r#"{"project_id":"P","node_id":"N","sneaky":1}"#
            )
            .is_err()
        );
    }
}

/// `POST /api/projects/{id}/tasks`: a message from project chat to turn
/// into a branch and a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTaskRequest {
    pub message: String,
    /// The agent to run (`claude-code`, `openai-codex`, ...); the project's
    /// default when absent.
    #[serde(default)]
    pub agent: Option<String>,
    /// Explicit VM size; else the project's default, else the platform's.
    #[serde(default)]
    pub vm_size: Option<String>,
}

/// `POST /workspaces/{id}/sessions` on the vm-agent: start an agent in the
/// workspace and, if given, send it the first prompt. The key reaches the
/// agent through its environment only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSessionRequest {
    pub session_id: String,
    /// The agent's platform name (`claude-code`, `openai-codex`, ...).
    pub agent: String,
    pub api_key: String,
    /// The model API's base URL; `None` for the agent's own default.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// `approve` (answer permission requests at once) or `ask` (forward
    /// them to the user).
    pub permission_policy: String,
    #[serde(default)]
    pub prompt: Option<AgentPrompt>,
    /// The agent's own session id, to resume with `session/load`.
    #[serde(default)]
    pub acp_session_id: Option<String>,
}

impl std::fmt::Debug for AgentSessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSessionRequest")
            .field("session_id", &self.session_id)
            .field("agent", &self.agent)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("permission_policy", &self.permission_policy)
            .field("prompt", &self.prompt)
            .field("acp_session_id", &self.acp_session_id)
            .finish_non_exhaustive()
    }
}

/// One prompt for an agent session (`POST .../sessions/{sid}/prompts` on
/// the vm-agent, and inside [`AgentSessionRequest`]). A repeated
/// `prompt_id` is delivered once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPrompt {
    pub prompt_id: String,
    pub text: String,
}

/// `POST /workspaces/{id}/git/publish` on the vm-agent: commit whatever
/// changed and push the checkout's HEAD to `branch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishBranchRequest {
    pub branch: String,
    pub commit_message: String,
    #[serde(default)]
    pub author: Option<AgentGitIdentity>,
}

/// The vm-agent's answer to [`PublishBranchRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedBranch {
    pub branch: String,
    pub commit_sha: String,
    /// Whether this call made a commit (false: nothing had changed).
    pub committed: bool,
    pub pushed: bool,
}

/// One session update from a vm-agent's outbox, numbered per session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMessage {
    pub seq: u64,
    pub created_at: i64,
    pub kind: String,
    pub payload: serde_json::Value,
}

/// `POST /api/workspaces/{wid}/sessions/{sid}/messages` (workspace callback
/// token): consecutive messages of one session, ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMessagesBatch {
    pub messages: Vec<SessionMessage>,
}

/// The API holds every message of the session up to `acked_up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMessagesAck {
    pub acked_up_to: u64,
}

/// `POST /api/projects/{pid}/sessions/{sid}/prompts`: a follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpRequest {
    pub text: String,
}

/// `POST /api/projects/{pid}/sessions/{sid}/permissions/{rid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionAnswer {
    pub option_id: String,
}

/// `POST /api/workspaces/{id}/sessions`: start an agent in a running
/// workspace, driven from the project's chat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StartSessionRequest {
    /// The project's default agent when absent.
    #[serde(default)]
    pub agent: Option<String>,
    /// A first prompt, if any.
    #[serde(default)]
    pub message: Option<String>,
    /// `ask` (the default: permission requests come to the chat) or `approve`.
    #[serde(default)]
    pub permission_policy: Option<String>,
}

/// A task as the API and the pages show it (`docs/tasks.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: String,
    pub project_id: String,
    pub session_id: String,
    pub agent: String,
    pub title: String,
    pub branch: String,
    pub vm_size: String,
    pub status: String,
    pub attempt: i64,
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    pub node_id: Option<String>,
    pub workspace_id: Option<String>,
    pub stop_reason: Option<String>,
    pub pr_url: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}
