//! Use-case errors, each with the HTTP status and stable code the API returns.

use sam_cloud_init::CloudInitError;
use sam_domain::catalog::SpecError;
use sam_domain::lifecycle::TransitionError;
use sam_domain::workspace::WorkspaceTransitionError;
use sam_providers::ProviderError;
use sam_store::StoreError;

use crate::ports::AgentError;
use crate::workspaces::WorkspaceInputError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("you already have {limit} nodes; delete one before creating another")]
    Quota { limit: u64 },
    #[error("node not found")]
    NotFound,
    /// No warm node of the user's could be claimed.
    #[error("no warm node is available to claim")]
    NoWarmNode,
    #[error(transparent)]
    InvalidClaimId(#[from] sam_domain::lifecycle::InvalidClaimId),
    /// Nodes still need the credential to be destroyed.
    #[error(
        "{nodes} of your nodes at {provider} still need this credential to be destroyed; stop or delete them first"
    )]
    CredentialInUse { provider: String, nodes: u64 },
    /// Other requests kept changing the node; the caller may retry.
    #[error("the node is changing; try again")]
    NodeBusy,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the provider refused to create node {node_id}: {error}")]
    ProviderCreate {
        node_id: String,
        error: ProviderError,
    },
    #[error("the provider failed to delete node {node_id}'s server: {error}")]
    ProviderDelete {
        node_id: String,
        error: ProviderError,
    },
    #[error("could not render the node's cloud-init: {0}")]
    CloudInit(#[from] CloudInitError),
    #[error("the node's boot deadline could not be armed: {0}")]
    BootLog(String),
    #[error(
        "no {0} credential: add your API token under Settings → Cloud credentials (PUT /api/credentials/cloud/{0})"
    )]
    CloudCredentialsMissing(String),
    #[error("unknown cloud provider '{0}'; supported: hetzner, scaleway")]
    UnknownCloudProvider(String),
    #[error("the provider did not accept this credential: {0}")]
    InvalidCloudCredential(String),
    #[error("a stored credential could not be opened: {0}")]
    Vault(sam_vault::VaultError),
    #[error("this sign-in link has expired or was already used; start again")]
    OAuthStateInvalid,
    #[error(transparent)]
    Github(#[from] sam_providers::github::GithubError),
    #[error("your account is suspended")]
    AccountSuspended,
    #[error(transparent)]
    AgentInput(#[from] sam_domain::agents::AgentCredentialError),
    #[error(
        "no credential for {0}: add a key under Settings → Agent keys (PUT /api/credentials/agents/{0}) or on the project"
    )]
    AgentCredentialMissing(&'static str),
    #[error(transparent)]
    ProjectInput(#[from] sam_domain::projects::ProjectInputError),
    #[error("you already have a project for this repository ({existing_id})")]
    ProjectExists { existing_id: String },
    #[error("branch '{0}' does not exist in the repository")]
    BranchNotFound(String),
    #[error(
        "GitHub has not yet confirmed that you installed this; it appears under New project as soon as it does"
    )]
    InstallationUnconfirmed,
    #[error(transparent)]
    WorkspaceInput(#[from] WorkspaceInputError),
    /// The project's repository cannot be checked out (`repository_missing`,
    /// `installation_missing`, or GitHub no longer reaches it).
    #[error("the project's repository is unavailable ({0}); reconnect it on GitHub first")]
    ProjectUnavailable(String),
    #[error("the node is {0}; workspaces need a ready node")]
    NodeNotReady(String),
    #[error("this node already has a workspace named '{0}'")]
    WorkspaceNameTaken(String),
    #[error(transparent)]
    WorkspaceTransition(#[from] WorkspaceTransitionError),
    /// A workspace callback whose token names another node than the
    /// workspace's (the route already matched the workspace).
    #[error("this token is for a different node")]
    WorkspaceScopeMismatch,
    #[error(
        "the workspace is {0}; git credentials are handed out only while it is creating or running"
    )]
    WorkspaceNotActive(String),
    #[error("the workspace is {0}; terminals and files open only while it is running")]
    WorkspaceNotRunning(String),
    #[error("a port is a number from 1 to 65535")]
    InvalidPort,
    /// Other requests kept changing the workspace; the caller may retry.
    #[error("the workspace is changing; try again")]
    WorkspaceBusy,
    /// The node's vm-agent failed or refused (its text scrubbed of tokens).
    #[error(transparent)]
    VmAgent(AgentError),
    /// A task submission that cannot run (empty message, unknown agent...).
    #[error("{message}")]
    TaskInput { code: &'static str, message: String },
    /// The task's state machine refused the request (e.g. cancelling a
    /// task that already ended).
    #[error(transparent)]
    TaskTransition(#[from] sam_domain::task::TaskTransitionError),
    /// The chat session cannot take this request in its state.
    #[error("{message}")]
    SessionState { code: &'static str, message: String },
}

impl ControlError {
    pub fn status(&self) -> u16 {
        match self {
            ControlError::Spec(_)
            | ControlError::InvalidClaimId(_)
            | ControlError::CloudCredentialsMissing(_)
            | ControlError::UnknownCloudProvider(_)
            | ControlError::InvalidCloudCredential(_)
            | ControlError::OAuthStateInvalid
            | ControlError::AgentInput(_)
            | ControlError::AgentCredentialMissing(_)
            | ControlError::ProjectInput(_)
            | ControlError::BranchNotFound(_)
            | ControlError::WorkspaceInput(_)
            | ControlError::InvalidPort
            | ControlError::TaskInput { .. } => 400,
            ControlError::VmAgent(e) => vm_agent_status(e),
            ControlError::Github(e) if e.code() == "github_not_found" => 404,
            ControlError::Github(e) if e.code() == "oauth_code_invalid" => 400,
            ControlError::AccountSuspended | ControlError::WorkspaceScopeMismatch => 403,
            ControlError::Quota { .. } => 429,
            ControlError::NotFound => 404,
            ControlError::NoWarmNode
            | ControlError::CredentialInUse { .. }
            | ControlError::NodeBusy
            | ControlError::Transition(_)
            | ControlError::ProjectExists { .. }
            | ControlError::InstallationUnconfirmed
            | ControlError::ProjectUnavailable(_)
            | ControlError::NodeNotReady(_)
            | ControlError::WorkspaceNameTaken(_)
            | ControlError::WorkspaceTransition(_)
            | ControlError::WorkspaceNotActive(_)
            | ControlError::WorkspaceNotRunning(_)
            | ControlError::WorkspaceBusy
            | ControlError::TaskTransition(_)
            | ControlError::SessionState { .. } => 409,
            ControlError::Store(_) | ControlError::CloudInit(_) | ControlError::Vault(_) => 500,
            ControlError::BootLog(_) => 503,

            ControlError::ProviderCreate { .. }
            | ControlError::ProviderDelete { .. }
            | ControlError::Github(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Spec(e) => e.code(),
            ControlError::Quota { .. } => "node_quota_exceeded",
            ControlError::NotFound => "not_found",
            ControlError::NoWarmNode => "no_warm_node",
            ControlError::InvalidClaimId(_) => "invalid_claim_id",
            ControlError::CredentialInUse { .. } => "credential_in_use",
            ControlError::NodeBusy => "node_busy",
            ControlError::Transition(e) => e.code(),
            ControlError::Store(_) => "storage_error",
            ControlError::ProviderCreate { .. } => "provider_create_failed",
            ControlError::ProviderDelete { .. } => "provider_delete_failed",
            ControlError::CloudInit(e) => e.code(),
            ControlError::BootLog(_) => "boot_log_unavailable",
            ControlError::CloudCredentialsMissing(_) => "cloud_credentials_missing",
            ControlError::UnknownCloudProvider(_) => "unknown_provider",
            ControlError::InvalidCloudCredential(_) => "cloud_credential_invalid",
            ControlError::Vault(e) => e.code(),
            ControlError::OAuthStateInvalid => "oauth_state_invalid",
            ControlError::Github(e) => e.code(),
            ControlError::AccountSuspended => "account_suspended",
            ControlError::AgentInput(e) => e.code(),
            ControlError::AgentCredentialMissing(_) => "agent_credential_missing",
            ControlError::ProjectInput(e) => e.code(),
            ControlError::ProjectExists { .. } => "project_exists",
            ControlError::BranchNotFound(_) => "branch_not_found",
            ControlError::InstallationUnconfirmed => "installation_unconfirmed",
            ControlError::WorkspaceInput(e) => e.code(),
            ControlError::ProjectUnavailable(_) => "project_unavailable",
            ControlError::NodeNotReady(_) => "node_not_ready",
            ControlError::WorkspaceNameTaken(_) => "workspace_name_taken",
            ControlError::WorkspaceTransition(e) => e.code(),
            ControlError::WorkspaceScopeMismatch => "token_scope_mismatch",
            ControlError::WorkspaceNotActive(_) => "workspace_not_active",
            ControlError::WorkspaceNotRunning(_) => "workspace_not_running",
            ControlError::WorkspaceBusy => "workspace_busy",
            ControlError::InvalidPort => "invalid_port",
            ControlError::VmAgent(e) => vm_agent_code(e),
            ControlError::TaskInput { code, .. } | ControlError::SessionState { code, .. } => code,
            ControlError::TaskTransition(e) => e.code(),
        }
    }
}

/// A vm-agent's refusal of what we asked is the caller's conflict (409)
/// or bad input (400); anything else (unreachable, 5xx, our management
/// token refused, a workspace it does not know) is a bad gateway.
fn vm_agent_status(e: &AgentError) -> u16 {
    match e {
        AgentError::Refused { status: 409, .. } => 409,
        AgentError::Refused { status, .. } if !matches!(status, 401 | 403) => 400,
        _ => 502,
    }
}

/// The vm-agent's own code when it is one of its documented refusals
/// (docs/workspaces.md), `vm_agent_failed` otherwise.
fn vm_agent_code(e: &AgentError) -> &'static str {
    const KNOWN: [&str; 11] = [
        "workspace_exists",
        "workspace_busy",
        "workspace_not_running",
        "invalid_body",
        "invalid_workspace_id",
        "invalid_clone_url",
        "invalid_branch",
        "invalid_git_identity",
        "invalid_devcontainer_config",
        "invalid_callback_token",
        "not_found",
    ];
    match e {
        AgentError::Refused { code, .. } if vm_agent_status(e) != 502 => KNOWN
            .into_iter()
            .find(|k| k == code)
            .unwrap_or("vm_agent_refused"),
        _ => "vm_agent_failed",
    }
}
