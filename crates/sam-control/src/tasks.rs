//! Tasks: submitting one, and the steps its runner performs.
//!
//! The run's decisions are `sam_domain::task`'s; the `TaskRunner` Durable
//! Object applies its events and calls the functions here for each effect.
//! Every step is safe to repeat: a node is claimed by the task's own claim
//! id (a repeated claim gets the same node), a session start that the
//! vm-agent already has is taken as started, a publish pushes the same
//! commit again, and an open pull request for the branch is found rather
//! than opened twice.

use sam_auth::SigningKey;
use sam_domain::agents::AgentKind;
use sam_domain::catalog::VmSize;
use sam_domain::ids::new_ulid;
use sam_domain::lifecycle::LifecycleStatus;
use sam_domain::projects::ProjectStatus;
use sam_domain::task::{TaskConfig, TaskRun, choose_vm_size};
use sam_domain::workspace::WorkspaceStatus;
use sam_providers::github::GithubError;
use sam_store::{
    NodeRecord, NodeRepository, ProjectRecord, ProjectRepository, SqlDatabase, TaskRecord,
    TaskRepository, TaskStatusChange, UserRecord, WorkspaceRepository,
};
use sam_vault::CredentialKeys;
use sam_wire::{
    AgentPrompt, CreateNodeRequest, CreateWorkspaceRequest, PublishBranchRequest,
    SubmitTaskRequest, TaskView,
};

use crate::agent_credentials::{PlatformAgentCredentials, resolve_agent_credential};
use crate::error::ControlError;
use crate::nodes::{
    Holder, NodePorts, NodeSettings, claim_warm_node, create_node_held, release_node,
};
use crate::ports::RetryRuntime;
use crate::ports::{AgentError, BootLog, CloudAccounts, NodeTimer, SessionAgent};
use crate::workspaces::{WorkspaceSettings, create_workspace, delete_workspace};

/// The longest task message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// The model APIs agents are pointed at; `None` leaves an agent on its
/// vendor's default. Locally these are the LLM stand-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelApiUrls {
    pub anthropic: Option<String>,
    pub openai: Option<String>,
    pub gemini: Option<String>,
}

impl ModelApiUrls {
    /// The base URL for the API `agent` speaks.
    pub fn for_agent(&self, agent: AgentKind) -> Option<String> {
        match agent {
            AgentKind::ClaudeCode => self.anthropic.clone(),
            AgentKind::OpenaiCodex | AgentKind::Opencode => self.openai.clone(),
            AgentKind::GoogleGemini => self.gemini.clone(),
        }
    }
}

/// Everything a task run is configured by.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub config: TaskConfig,
    pub default_vm_size: VmSize,
    pub default_agent: AgentKind,
    /// The cloud provider a node is created on when the project names none.
    pub default_provider: String,
    pub model_apis: ModelApiUrls,
}

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            config: TaskConfig::default(),
            default_vm_size: VmSize::Small,
            default_agent: AgentKind::ClaudeCode,
            default_provider: "hetzner".to_owned(),
            model_apis: ModelApiUrls::default(),
        }
    }
}

/// A task as lists and pages show it (no owner: the caller is the owner).
pub fn task_view(t: &TaskRecord) -> TaskView {
    TaskView {
        id: t.id.clone(),
        project_id: t.project_id.clone(),
        session_id: t.session_id.clone(),
        agent: t.agent.clone(),
        title: t.title.clone(),
        branch: t.branch.clone(),
        vm_size: t.vm_size.clone(),
        status: t.status.clone(),
        attempt: t.attempt,
        failed_step: t.failed_step.clone(),
        failure_reason: t.failure_reason.clone(),
        node_id: t.node_id.clone(),
        workspace_id: t.workspace_id.clone(),
        stop_reason: t.stop_reason.clone(),
        pr_url: t.pr_url.clone(),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

/// The claim a task holds its node by.
pub fn task_claim(task_id: &str) -> String {
    format!("task:{task_id}")
}

/// A submitted task: its D1 row and the run its runner starts from.
#[derive(Debug, Clone)]
pub struct SubmittedTask {
    pub record: TaskRecord,
    pub run: TaskRun,
}

fn invalid(code: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::TaskInput {
        code,
        message: message.into(),
    }
}

/// The user's active project (another user's is not found).
pub async fn active_project(
    db: &impl SqlDatabase,
    user_id: &str,
    project_id: &str,
) -> Result<ProjectRecord, ControlError> {
    let project = ProjectRepository::new(db)
        .get_owned(user_id, project_id.trim())
        .await?
        .ok_or(ControlError::NotFound)?;
    if project.status != ProjectStatus::Active.as_str() {
        return Err(ControlError::ProjectUnavailable(project.status));
    }
    Ok(project)
}

/// Checks a submission, then writes the task `queued` with its title,
/// branch, agent and VM size decided. The agent's credential must exist
/// (it is opened again when the agent starts): a task that could never
/// start is refused now, with the reason, instead of failing minutes later.
#[allow(clippy::too_many_arguments)]
pub async fn submit_task(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    platform: &PlatformAgentCredentials,
    settings: &TaskSettings,
    user: &UserRecord,
    project_id: &str,
    req: &SubmitTaskRequest,
    now: i64,
    random: u128,
) -> Result<SubmittedTask, ControlError> {
    let project = active_project(db, &user.id, project_id).await?;
    let message = req.message.trim();
    if message.is_empty() {
        return Err(invalid("task_message_empty", "the task message is empty"));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(invalid(
            "task_message_too_long",
            format!("the task message is longer than {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let agent = match req.agent.as_deref().or(project.agent.as_deref()) {
        Some(raw) => AgentKind::parse(raw.trim())?,
        None => settings.default_agent,
    };
    let explicit_size = match req.vm_size.as_deref() {
        Some(raw) => Some(VmSize::parse(raw.trim()).ok_or_else(|| {
            invalid(
                "invalid_vm_size",
                "vm_size must be one of small, medium, large",
            )
        })?),
        None => None,
    };
    let project_size = project.vm_size.as_deref().and_then(VmSize::parse);
    let size = choose_vm_size(explicit_size, project_size, settings.default_vm_size);
    resolve_agent_credential(
        db,
        keys,
        platform,
        &user.id,
        Some(&project.id),
        agent.as_str(),
    )
    .await?;

    let run_for = |short_id: &str| TaskRun::submit(message, short_id, size, now, &settings.config);
    insert_task(db, user, &project.id, agent, size, run_for, now, random).await
}

/// Writes a new task `queued` with the run `make_run` builds from the
/// task's short id.
#[allow(clippy::too_many_arguments)]
async fn insert_task(
    db: &impl SqlDatabase,
    user: &UserRecord,
    project_id: &str,
    agent: AgentKind,
    size: VmSize,
    make_run: impl FnOnce(&str) -> TaskRun,
    now: i64,
    random: u128,
) -> Result<SubmittedTask, ControlError> {
    let id = new_ulid(now, random);
    let session_id = new_ulid(now, random.reverse_bits() ^ 0x5e55);
    // The ULID's last characters are its random part: unique enough to
    // tell branches of the same title apart.
    let short_id = id[id.len() - 8..].to_ascii_lowercase();
    let run = make_run(&short_id);
    let record = TaskRecord {
        id,
        user_id: user.id.clone(),
        project_id: project_id.to_owned(),
        session_id,
        agent: agent.as_str().to_owned(),
        title: run.title.clone(),
        branch: run.branch.clone(),
        vm_size: size.as_str().to_owned(),
        status: run.status.as_str().to_owned(),
        attempt: i64::from(run.attempt),
        failed_step: None,
        failure_reason: None,
        node_id: None,
        workspace_id: None,
        stop_reason: None,
        pr_url: None,
        created_at: now,
        updated_at: now,
    };
    TaskRepository::new(db).insert(&record).await?;
    Ok(SubmittedTask { record, run })
}

/// Continues an ended task's conversation in a new task: same agent, size
/// and branch (its work is already pushed there, so the new workspace
/// starts from it), titled after the new `message`, with `prompt` (the
/// earlier conversation and the message, see
/// `sam_domain::chat::continuation_prompt`) as its first prompt. Its pull
/// request is the branch's open one.
#[allow(clippy::too_many_arguments)]
pub async fn continue_task(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    platform: &PlatformAgentCredentials,
    settings: &TaskSettings,
    user: &UserRecord,
    parent: &TaskRecord,
    message: &str,
    prompt: &str,
    now: i64,
    random: u128,
) -> Result<SubmittedTask, ControlError> {
    let project = active_project(db, &user.id, &parent.project_id).await?;
    let agent = AgentKind::parse(&parent.agent)?;
    let size = VmSize::parse(&parent.vm_size).unwrap_or(settings.default_vm_size);
    resolve_agent_credential(
        db,
        keys,
        platform,
        &user.id,
        Some(&project.id),
        agent.as_str(),
    )
    .await?;
    let run_for = |short_id: &str| {
        let mut run = TaskRun::submit(prompt, short_id, size, now, &settings.config);
        run.title = sam_domain::task::derive_title(message);
        run.branch.clone_from(&parent.branch);
        run
    };
    insert_task(db, user, &project.id, agent, size, run_for, now, random).await
}

/// The user's task; another user's is not found.
pub async fn get_task(
    db: &impl SqlDatabase,
    user_id: &str,
    task_id: &str,
) -> Result<TaskRecord, ControlError> {
    let id = sam_domain::ids::parse_ulid(task_id.trim()).map_err(|_| ControlError::NotFound)?;
    TaskRepository::new(db)
        .get_owned(user_id, &id)
        .await?
        .ok_or(ControlError::NotFound)
}

/// Copies the run onto its row (and logs a status change) after the
/// runner applied `event`.
pub async fn mirror_run(
    db: &impl SqlDatabase,
    task: &TaskRecord,
    run: &TaskRun,
    event: &str,
    now: i64,
) -> Result<TaskRecord, ControlError> {
    let mut next = task.clone();
    next.branch.clone_from(&run.branch);
    run.status.as_str().clone_into(&mut next.status);
    next.attempt = i64::from(run.attempt);
    next.failed_step = run.failure.as_ref().map(|f| f.step.as_str().to_owned());
    next.failure_reason = run
        .failure
        .as_ref()
        .map(|f| f.reason.clone())
        .or_else(|| run.retry_reason.clone());
    // Until the run has its node or workspace, the row keeps the one it
    // waits for (see `TaskRepository::record_waiting_for`).
    next.node_id = run.node_id.clone().or_else(|| task.node_id.clone());
    next.workspace_id = run
        .workspace_id
        .clone()
        .or_else(|| task.workspace_id.clone());
    next.stop_reason = run.stop_reason.map(|r| r.as_str().to_owned());
    next.pr_url.clone_from(&run.pr_url);
    if next == *task {
        return Ok(next);
    }
    next.updated_at = now;
    let change = (next.status != task.status).then(|| TaskStatusChange {
        at: now,
        from_status: Some(task.status.clone()),
        to_status: next.status.clone(),
        event: event.to_owned(),
        detail: next.failure_reason.clone(),
    });
    TaskRepository::new(db)
        .record(&next, change.as_ref())
        .await?;
    Ok(next)
}

/// How far an asynchronous step has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Done; the id of what it made (node, workspace).
    Done(String),
    /// Still going; look again later.
    Waiting(String),
    Failed {
        reason: String,
        retryable: bool,
    },
}

/// A step failure worth retrying or not, from a control error.
pub fn failure_of(error: &ControlError) -> Progress {
    let retryable = matches!(
        error,
        ControlError::NoWarmNode
            | ControlError::NodeBusy
            | ControlError::NodeNotReady(_)
            | ControlError::WorkspaceBusy
            | ControlError::WorkspaceNameTaken(_)
            | ControlError::ProviderCreate { .. }
            | ControlError::Github(_)
            | ControlError::Store(_)
            | ControlError::BootLog(_)
            | ControlError::VmAgent(AgentError::Unreachable(_))
    );
    Progress::Failed {
        reason: format!("{} ({})", error, error.code()),
        retryable,
    }
}

/// Claims one of the user's warm nodes for the task, or creates one held
/// by the task. A warm node is ready at once; a new one is `Waiting` until
/// [`node_progress`] says it is ready.
#[allow(clippy::too_many_arguments)]
pub async fn acquire_node<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    runtime: &impl RetryRuntime,
    key: &SigningKey,
    settings: &NodeSettings,
    task: &TaskRecord,
    default_provider: &str,
    size: VmSize,
    now: i64,
    random: u128,
) -> Result<Progress, ControlError> {
    let project = active_project(db, &task.user_id, &task.project_id).await?;
    let claim = task_claim(&task.id);
    let warm = claim_warm_node(
        db,
        ports,
        settings,
        &task.user_id,
        &claim,
        Some((project.id.as_str(), project.warm_node_timeout_ms)),
        now,
    )
    .await;
    match warm {
        Ok(node) => return Ok(node_progress_of(&node)),
        Err(ControlError::NoWarmNode) => {}
        Err(e) => return Err(e),
    }
    // A node this task created on an earlier attempt, still booting.
    if let Some(held) = NodeRepository::new(db)
        .find_claimed(&task.user_id, &claim)
        .await?
    {
        return Ok(node_progress_of(&held));
    }
    let provider_name = project
        .provider
        .clone()
        .unwrap_or_else(|| default_provider.to_owned());
    let provider = ports
        .accounts
        .open(&task.user_id, &provider_name)
        .await?
        .provider;
    let node = create_node_held(
        db,
        &provider,
        runtime,
        ports,
        key,
        settings,
        &task.user_id,
        &CreateNodeRequest {
            provider: provider_name,
            size: size.as_str().to_owned(),
            location: project.location.clone(),
            name: None,
        },
        &Holder {
            claim_id: claim,
            project: Some((project.id, project.warm_node_timeout_ms)),
        },
        now,
        random,
    )
    .await?;
    Ok(node_progress_of(&node))
}

fn node_progress_of(node: &NodeRecord) -> Progress {
    match node.status() {
        LifecycleStatus::Ready => Progress::Done(node.id.clone()),
        LifecycleStatus::Provisioning | LifecycleStatus::Booting => {
            Progress::Waiting(node.id.clone())
        }
        other => Progress::Failed {
            reason: format!(
                "node {} is {}{}",
                node.id,
                other.as_str(),
                node.error_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            retryable: true,
        },
    }
}

/// Where a node the task waits for is.
pub async fn node_progress(db: &impl SqlDatabase, node_id: &str) -> Result<Progress, ControlError> {
    let node = NodeRepository::new(db)
        .get(node_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(node_progress_of(&node))
}

/// Creates the task's workspace on its node, checked out on the task's
/// branch (made from the project's default branch). `Waiting` until
/// [`workspace_progress`] sees it running.
#[allow(clippy::too_many_arguments)]
pub async fn create_task_workspace(
    db: &impl SqlDatabase,
    agent: &impl crate::ports::NodeAgent,
    key: &SigningKey,
    settings: &WorkspaceSettings,
    task: &TaskRecord,
    node_id: &str,
    branch: &str,
    attempt: u32,
    now: i64,
    random: u128,
) -> Result<Progress, ControlError> {
    let user = owner(db, task).await?;
    let short = &task.id[task.id.len() - 8..];
    let workspace = create_workspace(
        db,
        agent,
        key,
        settings,
        &user,
        &CreateWorkspaceRequest {
            project_id: task.project_id.clone(),
            node_id: node_id.to_owned(),
            // One name per attempt: an earlier attempt's failed workspace
            // may still hold the previous one.
            name: Some(format!("task-{}-{attempt}", short.to_ascii_lowercase())),
            branch: Some(branch.to_owned()),
            runtime: None,
            devcontainer_config: None,
        },
        now,
        random,
    )
    .await?;
    Ok(Progress::Waiting(workspace.id))
}

/// Where a workspace the task waits for is.
pub async fn workspace_progress(
    db: &impl SqlDatabase,
    workspace_id: &str,
) -> Result<Progress, ControlError> {
    let w = WorkspaceRepository::new(db)
        .get(workspace_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(match WorkspaceStatus::parse(&w.status) {
        Some(WorkspaceStatus::Running) => Progress::Done(w.id),
        Some(WorkspaceStatus::Creating) => Progress::Waiting(w.id),
        _ => Progress::Failed {
            reason: format!(
                "workspace {} is {}{}",
                w.id,
                w.status,
                w.error_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            retryable: true,
        },
    })
}

async fn owner(db: &impl SqlDatabase, task: &TaskRecord) -> Result<UserRecord, ControlError> {
    sam_store::UserRepository::new(db)
        .get(&task.user_id)
        .await?
        .ok_or(ControlError::NotFound)
}

/// The workspace's node, with its address.
pub(crate) async fn workspace_node(
    db: &impl SqlDatabase,
    workspace_id: &str,
) -> Result<NodeRecord, ControlError> {
    let w = WorkspaceRepository::new(db)
        .get(workspace_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    NodeRepository::new(db)
        .get(&w.node_id)
        .await?
        .ok_or(ControlError::NotFound)
}

/// How the agent's permission requests are answered in a task: a task runs
/// unattended, so they are approved (the workspace is the sandbox).
pub const TASK_PERMISSION_POLICY: &str = "approve";

/// Starts the task's agent in its workspace with the task's message as the
/// first prompt (its id: the task's). A session the vm-agent already has
/// counts as started.
#[allow(clippy::too_many_arguments)]
pub async fn start_task_agent(
    db: &impl SqlDatabase,
    agent: &impl SessionAgent,
    keys: &CredentialKeys,
    platform: &PlatformAgentCredentials,
    model_apis: &ModelApiUrls,
    task: &TaskRecord,
    workspace_id: &str,
    prompt: &str,
) -> Result<(), ControlError> {
    crate::chat_sessions::launch_session(
        db,
        agent,
        keys,
        platform,
        model_apis,
        &crate::chat_sessions::Launch {
            user_id: &task.user_id,
            project_id: &task.project_id,
            agent: &task.agent,
            session_id: &task.session_id,
            workspace_id,
            prompt: Some(AgentPrompt {
                prompt_id: task.id.clone(),
                text: prompt.to_owned(),
            }),
            permission_policy: TASK_PERMISSION_POLICY,
        },
    )
    .await
}

/// Opens pull requests.
#[allow(async_fn_in_trait)]
pub trait PullRequests {
    /// Opens (or finds the open) pull request from `head` into `base` of
    /// the project's repository; `Ok(None)` when there is nothing to
    /// propose (no commits between them). Returns its web URL.
    async fn open_pull_request(
        &self,
        installation_id: u64,
        repo_full_name: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Option<String>, GithubError>;
}

/// Commits and pushes the agent's work to the task's branch, then opens
/// the pull request. Returns the pull request's URL (`None`: nothing
/// changed, so there is nothing to propose).
#[allow(clippy::too_many_arguments)]
pub async fn finalize_task(
    db: &impl SqlDatabase,
    agent: &impl SessionAgent,
    github: &impl PullRequests,
    task: &TaskRecord,
    workspace_id: &str,
    branch: &str,
    title: &str,
) -> Result<Option<String>, ControlError> {
    let project = active_project(db, &task.user_id, &task.project_id).await?;
    let node = workspace_node(db, workspace_id).await?;
    agent
        .publish_branch(
            &node,
            workspace_id,
            &PublishBranchRequest {
                branch: branch.to_owned(),
                commit_message: title.to_owned(),
                author: None,
            },
        )
        .await
        .map_err(ControlError::VmAgent)?;
    let installation = project
        .installation_id
        .parse::<u64>()
        .map_err(|_| ControlError::ProjectUnavailable("not reachable on GitHub".into()))?;
    let body = format!(
        "Opened by SAM for task {}.\n\n> {}\n",
        task.id,
        task.title.replace('\n', " ")
    );
    Ok(github
        .open_pull_request(
            installation,
            &project.repo_full_name,
            branch,
            &project.default_branch,
            title,
            &body,
        )
        .await?)
}

/// Hands back what a run holds: stops its agent session, deletes its
/// workspace and releases its node (which turns warm). Each part is
/// idempotent and tried even if another failed; the first error is
/// returned so the runner can try again.
#[allow(clippy::too_many_arguments)]
pub async fn clean_up_task<A: CloudAccounts>(
    db: &impl SqlDatabase,
    node_agent: &(impl crate::ports::NodeAgent + SessionAgent),
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    task: &TaskRecord,
    session_id: Option<&str>,
    workspace_id: Option<&str>,
    node_id: Option<&str>,
    now: i64,
) -> Result<(), ControlError> {
    let mut first_error = None;
    // Only a live node has an agent to stop (a gone node's address may
    // belong to someone else by now).
    if let (Some(session), Some(workspace)) = (session_id, workspace_id)
        && let Ok(node) = workspace_node(db, workspace).await
        && matches!(
            node.status(),
            LifecycleStatus::Ready | LifecycleStatus::Warm
        )
        && let Err(e) = node_agent.stop_session(&node, workspace, session).await
        && !matches!(e, AgentError::NotFound)
    {
        first_error.get_or_insert(ControlError::VmAgent(e));
    }
    if let Some(workspace) = workspace_id {
        match delete_workspace(db, node_agent, &task.user_id, workspace, now).await {
            Ok(_) | Err(ControlError::NotFound | ControlError::WorkspaceTransition(_)) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // Released by the task's claim: also covers a node acquired by an
    // attempt whose report never arrived.
    let claim = task_claim(&task.id);
    let held = match node_id {
        Some(id) => Some(id.to_owned()),
        None => NodeRepository::new(db)
            .find_claimed(&task.user_id, &claim)
            .await?
            .map(|n| n.id),
    };
    if let Some(node) = held {
        match release_node(db, ports, settings, &task.user_id, &node, &claim, now).await {
            Ok(_) | Err(ControlError::NotFound | ControlError::Transition(_)) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
