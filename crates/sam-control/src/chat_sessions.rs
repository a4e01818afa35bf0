//! Agent sessions driven from project chat: starting one in a running
//! workspace (a task's, or one the user opened), follow-up prompts,
//! cancelling the current turn, answering permission requests and stopping
//! the agent. The chat itself (which session belongs to which workspace,
//! the messages) is the project's `ProjectData` Durable Object; the Worker
//! reads the session's workspace there and passes it in.

use sam_domain::agents::AgentKind;
use sam_domain::workspace::WorkspaceStatus;
use sam_store::{NodeRecord, SqlDatabase, WorkspaceRecord};
use sam_vault::CredentialKeys;
use sam_wire::{AgentPrompt, AgentSessionRequest};

use crate::agent_credentials::{PlatformAgentCredentials, resolve_agent_credential};
use crate::error::ControlError;
use crate::ports::{AgentError, SessionAgent};
use crate::tasks::{ModelApiUrls, workspace_node};
use crate::workspaces::{owned, status_of};

/// The longest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

/// How permission requests are answered: `approve` (at once, by policy) or
/// `ask` (forwarded to the user in chat).
pub fn check_permission_policy(raw: &str) -> Result<&'static str, ControlError> {
    match raw {
        "approve" => Ok("approve"),
        "ask" => Ok("ask"),
        _ => Err(ControlError::TaskInput {
            code: "invalid_permission_policy",
            message: "permission_policy must be approve or ask".into(),
        }),
    }
}

/// A prompt's text: not empty, not huge.
pub fn check_prompt(text: &str) -> Result<&str, ControlError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ControlError::TaskInput {
            code: "prompt_empty",
            message: "the message is empty".into(),
        });
    }
    if text.len() > MAX_PROMPT_BYTES {
        return Err(ControlError::TaskInput {
            code: "prompt_too_long",
            message: format!("the message is longer than {MAX_PROMPT_BYTES} bytes"),
        });
    }
    Ok(text)
}

/// What starts an agent session.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub user_id: &'a str,
    pub project_id: &'a str,
    pub agent: &'a str,
    pub session_id: &'a str,
    pub workspace_id: &'a str,
    pub prompt: Option<AgentPrompt>,
    pub permission_policy: &'a str,
}

/// Starts the agent in the workspace with the credential resolved for the
/// user and project (project override → user key → platform key), which
/// reaches the vm-agent only in the request body. A session the vm-agent
/// already has counts as started.
pub async fn launch_session(
    db: &impl SqlDatabase,
    agent: &impl SessionAgent,
    keys: &CredentialKeys,
    platform: &PlatformAgentCredentials,
    model_apis: &ModelApiUrls,
    launch: &Launch<'_>,
) -> Result<(), ControlError> {
    let credential = resolve_agent_credential(
        db,
        keys,
        platform,
        launch.user_id,
        Some(launch.project_id),
        launch.agent,
    )
    .await?;
    let node = workspace_node(db, launch.workspace_id).await?;
    let api_key = credential
        .secret
        .expose_str()
        .map_err(ControlError::Vault)?
        .to_owned();
    let req = AgentSessionRequest {
        session_id: launch.session_id.to_owned(),
        agent: credential.agent.as_str().to_owned(),
        api_key,
        base_url: model_apis.for_agent(credential.agent),
        model: None,
        permission_policy: launch.permission_policy.to_owned(),
        prompt: launch.prompt.clone(),
        acp_session_id: None,
    };
    match agent.start_session(&node, launch.workspace_id, &req).await {
        Ok(()) => Ok(()),
        Err(AgentError::Refused { code, .. }) if code == "session_exists" => Ok(()),
        Err(e) => Err(ControlError::VmAgent(e)),
    }
}

/// The user's running workspace (of the project) and its node: where a
/// new interactive session starts.
pub async fn session_workspace(
    db: &impl SqlDatabase,
    user_id: &str,
    workspace_id: &str,
) -> Result<(WorkspaceRecord, NodeRecord), ControlError> {
    let workspace = owned(db, user_id, workspace_id).await?;
    if status_of(&workspace) != WorkspaceStatus::Running {
        return Err(ControlError::WorkspaceNotRunning(workspace.status));
    }
    let node = workspace_node(db, &workspace.id).await?;
    Ok((workspace, node))
}

/// The agent a new session runs: the one asked for, else the project's,
/// else the platform's.
pub fn session_agent(
    requested: Option<&str>,
    project_default: Option<&str>,
    platform_default: AgentKind,
) -> Result<AgentKind, ControlError> {
    match requested.or(project_default) {
        Some(raw) => Ok(AgentKind::parse(raw.trim())?),
        None => Ok(platform_default),
    }
}

/// The session's workspace, while it runs; a chat whose workspace is gone
/// answers 409 `session_workspace_gone`.
async fn live_workspace(
    db: &impl SqlDatabase,
    user_id: &str,
    workspace_id: Option<&str>,
) -> Result<(WorkspaceRecord, NodeRecord), ControlError> {
    let gone = || ControlError::SessionState {
        code: "session_workspace_gone",
        message: "this session's workspace is no longer running".into(),
    };
    let workspace_id = workspace_id.ok_or_else(|| ControlError::SessionState {
        code: "session_not_started",
        message: "this session's agent has not started yet".into(),
    })?;
    match session_workspace(db, user_id, workspace_id).await {
        Err(ControlError::WorkspaceNotRunning(_) | ControlError::NotFound) => Err(gone()),
        other => other,
    }
}

fn agent_error(e: AgentError) -> ControlError {
    match e {
        AgentError::NotFound => ControlError::SessionState {
            code: "session_not_running",
            message: "the agent of this session is not running".into(),
        },
        other => ControlError::VmAgent(other),
    }
}

/// What the user asks of a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// A follow-up: queued behind the turn in flight, delivered in order.
    Prompt(AgentPrompt),
    /// End the current turn; the agent keeps running.
    Cancel,
    /// Stop the agent.
    Stop,
    /// Answer a permission request forwarded to the user.
    Permission {
        request_id: String,
        option_id: String,
    },
}

/// Sends `command` to the session's agent on its workspace's vm-agent.
pub async fn command_session(
    db: &impl SqlDatabase,
    agent: &impl SessionAgent,
    user_id: &str,
    session_id: &str,
    workspace_id: Option<&str>,
    command: &SessionCommand,
) -> Result<(), ControlError> {
    let (workspace, node) = live_workspace(db, user_id, workspace_id).await?;
    let w = workspace.id.as_str();
    let result = match command {
        SessionCommand::Prompt(prompt) => agent.send_prompt(&node, w, session_id, prompt).await,
        SessionCommand::Cancel => agent.cancel_turn(&node, w, session_id).await,
        SessionCommand::Stop => agent.stop_session(&node, w, session_id).await,
        SessionCommand::Permission {
            request_id,
            option_id,
        } => {
            agent
                .answer_permission(&node, w, session_id, request_id, option_id)
                .await
        }
    };
    result.map_err(agent_error)
}
