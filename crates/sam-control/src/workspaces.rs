//! Workspaces: a project's repository checked out on one of the user's
//! nodes, run by the node's vm-agent (docs/workspaces.md).
//!
//! Every status change goes through `sam_domain::workspace::apply`,
//! written compare-and-set on the status it was computed from
//! ([`advance`]), so a late callback cannot undo a delete that won. The
//! control plane writes the state first and then calls the vm-agent
//! ([`NodeAgent`]); what the agent answers moves it on:
//!
//! - create: `creating` is written, a workspace-callback token is minted
//!   and the agent is asked; it answers 202 and reports through the
//!   callbacks (`ready` → `running`, `provisioning-failed` → `error`). A
//!   failed call → `error`, with a reason scrubbed of the token.
//! - stop: `stopping`, the agent stops it, `stopped`. When the agent fails
//!   the workspace stays `stopping`: the state machine has no way back to
//!   `running` (its processes may or may not have been stopped), and
//!   repeating the stop calls the agent again. An agent that does not know
//!   the workspace, or a destroyed node, has nothing running: `stopped`.
//! - restart / rebuild (from `stopped` or `running`, on a `ready` node):
//!   `creating`, and the agent answers when done → `running`. The agent's
//!   own `ready` callback may come too, before or after; both orders end
//!   in `running`. A failure → `error`, as the vm-agent records it too.
//! - delete: `deleting`, the agent deletes it (a 404 means already gone),
//!   `deleted`. A destroyed node (or a missing one) has nothing left to
//!   delete; neither has an unreachable one that is `destroying` or
//!   `error`, whose server is being deleted. Any other failure leaves the
//!   workspace `deleting`; repeating the delete retries.
//!
//! The vm-agent's callbacks are authenticated by the route with
//! `Verifier::authorize_workspace_callback`; the use cases here get the
//! verified claims and check, again, that the workspace is on the token's
//! node.

use sam_auth::{Audience, Grant, SigningKey, TokenClaims};
use sam_domain::ids::{new_ulid, parse_ulid};
use sam_domain::lifecycle::LifecycleStatus;
use sam_domain::projects::{ProjectStatus, validate_branch_name};
use sam_domain::workspace::{WorkspaceEvent, WorkspaceStatus, WorkspaceTransitionError, apply};
use sam_providers::github::GithubError;
use sam_store::{
    NodeRecord, NodeRepository, ProjectRepository, SqlDatabase, UserRecord, WorkspaceEventRecord,
    WorkspaceInsertError, WorkspaceRecord, WorkspaceRepository,
};
use sam_wire::{
    AgentGitIdentity, AgentRepository, AgentWorkspaceRequest, CreateWorkspaceRequest,
    GitTokenReply, TerminalTicket, WorkspaceBootLogEntry, WorkspaceView,
};

use crate::error::ControlError;
use crate::ports::{AgentError, NodeAgent, WorkspaceAction};
use crate::projects::GithubAppPort;

/// Deployment settings the workspace use cases need (read once from the
/// Worker's config).
#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    /// Token issuer and the URL vm-agents call back to, e.g. `http://api.localhost:8787`.
    pub control_plane_url: String,
    /// Lifetime of a workspace's callback token (its git credentials end with it).
    pub callback_token_ttl_secs: i64,
    /// `BASE_DOMAIN`: workspaces are at `ws-<id>.<base_domain>`.
    pub base_domain: String,
    /// `https`, or `http` locally.
    pub url_scheme: String,
    /// The public port (`8787` locally); `None` for the scheme's default.
    pub url_port: Option<u16>,
}

/// Longest failure reason or boot log detail kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest workspace name (a DNS label).
pub const MAX_NAME_CHARS: usize = 63;
/// Longest boot log step name.
pub const MAX_STEP_CHARS: usize = 40;
/// A boot log time this far ahead of ours is the agent's clock, not the
/// event's; ours is recorded instead.
const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60 * 1000;
/// Compare-and-set attempts before a change gives up as busy.
const CAS_ATTEMPTS: usize = 4;
const REDACTED: &str = "[redacted]";

/// Why a workspace request was refused before anything happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceInputError {
    #[error(
        "a workspace name is 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    InvalidName,
    #[error("unknown runtime '{0}'; supported: host, devcontainer")]
    InvalidRuntime(String),
    #[error(
        "devcontainer_config names a directory under .devcontainer/ (at most 64 letters, digits, '.', '_' or '-', not starting with '.') and needs the devcontainer runtime"
    )]
    InvalidDevcontainerConfig,
    #[error("invalid boot log entry: {0}")]
    InvalidBootLogEntry(&'static str),
}

impl WorkspaceInputError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkspaceInputError::InvalidName => "invalid_name",
            WorkspaceInputError::InvalidRuntime(_) => "invalid_runtime",
            WorkspaceInputError::InvalidDevcontainerConfig => "invalid_devcontainer_config",
            WorkspaceInputError::InvalidBootLogEntry(_) => "invalid_boot_log_entry",
        }
    }
}

/// Checks a workspace name: the rule of node names (a DNS label of
/// lowercase letters, digits and inner dashes).
pub fn validate_workspace_name(name: &str) -> Result<(), WorkspaceInputError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(WorkspaceInputError::InvalidName)
    }
}

/// A valid workspace name from a branch name: lowercase, every run of other
/// characters a single `-`, at most `max` characters; `workspace` if
/// nothing is left.
pub fn name_from_branch(branch: &str, max: usize) -> String {
    let mut out = String::new();
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let clipped: String = out.chars().take(max).collect();
    let trimmed = clipped.trim_matches('-');
    if trimmed.is_empty() {
        "workspace".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `host` (default) or `devcontainer`.
fn runtime(raw: Option<&str>) -> Result<&'static str, WorkspaceInputError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None | Some("host") => Ok("host"),
        Some("devcontainer") => Ok("devcontainer"),
        Some(other) => Err(WorkspaceInputError::InvalidRuntime(
            other.chars().filter(|c| !c.is_control()).take(40).collect(),
        )),
    }
}

/// The vm-agent's rule for a dev container configuration name; only the
/// devcontainer runtime takes one.
fn devcontainer_config(
    runtime: &str,
    raw: Option<&str>,
) -> Result<Option<String>, WorkspaceInputError> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let ok = runtime == "devcontainer"
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(Some(name.to_owned()))
    } else {
        Err(WorkspaceInputError::InvalidDevcontainerConfig)
    }
}

pub(crate) fn status_of(w: &WorkspaceRecord) -> WorkspaceStatus {
    // The column's CHECK constraint allows nothing else; an unknown value
    // would read as failed, which can only be deleted.
    WorkspaceStatus::parse(&w.status).unwrap_or(WorkspaceStatus::Error)
}

/// Applies `event` to the workspace and writes the result compare-and-set
/// on the status it was computed from; a lost race reloads and applies
/// again. An event that changes nothing writes nothing (repeats are
/// no-ops). `error` is recorded with the change.
async fn advance(
    db: &impl SqlDatabase,
    id: &str,
    event: WorkspaceEvent,
    error: Option<&str>,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let repo = WorkspaceRepository::new(db);
    for _ in 0..CAS_ATTEMPTS {
        let current = repo.get(id).await?.ok_or(ControlError::NotFound)?;
        let from = status_of(&current);
        let to = apply(from, event)?;
        if to == from {
            return Ok(current);
        }
        if repo
            .transition(id, from.as_str(), to.as_str(), error, now)
            .await?
        {
            return repo.get(id).await?.ok_or(ControlError::NotFound);
        }
    }
    Err(ControlError::WorkspaceBusy)
}

/// [`advance`] after the vm-agent did its part: if the workspace moved on
/// meanwhile (deleted while it was being stopped), that is the answer.
async fn settle(
    db: &impl SqlDatabase,
    id: &str,
    event: WorkspaceEvent,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    match advance(db, id, event, None, now).await {
        Err(ControlError::WorkspaceTransition(_)) => WorkspaceRepository::new(db)
            .get(id)
            .await?
            .ok_or(ControlError::NotFound),
        other => other,
    }
}

/// The workspace failed (`error`, with `reason`); nothing to do if it has
/// moved on (a delete won, or the agent's `ready` came first).
async fn fail(db: &impl SqlDatabase, id: &str, reason: &str, now: i64) -> Result<(), ControlError> {
    let reason = clean(reason, MAX_REASON_CHARS);
    match advance(
        db,
        id,
        WorkspaceEvent::ProvisioningFailed,
        Some(&reason),
        now,
    )
    .await
    {
        Ok(_) | Err(ControlError::WorkspaceTransition(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

// ---- create ----

/// Creates a workspace of the user's `project` on the user's `ready`
/// node: writes it `creating` (its name unique on the node), mints its
/// workspace-callback token and asks the node's vm-agent to clone and
/// start it. The agent reports back through the callbacks. If the agent
/// cannot be asked, the workspace is `error` (the reason never contains
/// the token) and the agent's error is returned.
#[allow(clippy::too_many_arguments)]
pub async fn create_workspace(
    db: &impl SqlDatabase,
    agent: &impl NodeAgent,
    key: &SigningKey,
    settings: &WorkspaceSettings,
    user: &UserRecord,
    req: &CreateWorkspaceRequest,
    now: i64,
    random: u128,
) -> Result<WorkspaceRecord, ControlError> {
    let project = ProjectRepository::new(db)
        .get_owned(&user.id, req.project_id.trim())
        .await?
        .ok_or(ControlError::NotFound)?;
    let node = NodeRepository::new(db)
        .get_owned(&user.id, req.node_id.trim())
        .await?
        .ok_or(ControlError::NotFound)?;

    let runtime = runtime(req.runtime.as_deref())?;
    let devcontainer_config = devcontainer_config(runtime, req.devcontainer_config.as_deref())?;
    let branch = req
        .branch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(&project.default_branch)
        .to_owned();
    validate_branch_name(&branch)?;
    let requested_name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if let Some(name) = requested_name {
        validate_workspace_name(name)?;
    }

    if project.status != ProjectStatus::Active.as_str() {
        return Err(ControlError::ProjectUnavailable(project.status));
    }
    if node.status() != LifecycleStatus::Ready {
        return Err(ControlError::NodeNotReady(node.status));
    }

    let id = new_ulid(now, random);
    let mut record = WorkspaceRecord {
        id: id.clone(),
        user_id: user.id.clone(),
        project_id: project.id.clone(),
        node_id: node.id.clone(),
        name: requested_name
            .map_or_else(|| name_from_branch(&branch, MAX_NAME_CHARS), str::to_owned),
        branch: branch.clone(),
        runtime: runtime.to_owned(),
        status: WorkspaceStatus::Creating.as_str().to_owned(),
        status_since: now,
        error_message: None,
        ports_public: 0,
        created_at: now,
        ready_at: None,
        updated_at: now,
    };
    insert(db, &mut record, requested_name.is_none()).await?;

    let token = key.issue(
        &settings.control_plane_url,
        &Grant::workspace(
            Audience::WorkspaceCallback,
            &node.id,
            &id,
            settings.callback_token_ttl_secs,
        ),
        now,
    );
    let request = AgentWorkspaceRequest {
        id: id.clone(),
        repository: AgentRepository {
            clone_url: clone_url(&project.repo_html_url),
            branch,
            base_branch: Some(project.default_branch.clone()),
        },
        git_identity: git_identity(user, settings),
        runtime: runtime.to_owned(),
        devcontainer_config,
        callback_token: token.clone(),
    };
    if let Err(error) = agent.create_workspace(&node, &request).await {
        let error = scrub_agent_error(error, &[&token]);
        fail(db, &id, &format!("creation could not start: {error}"), now).await?;
        return Err(ControlError::VmAgent(error));
    }
    // The agent may have reported it ready (or failed) already.
    WorkspaceRepository::new(db)
        .get(&id)
        .await?
        .ok_or(ControlError::NotFound)
}

/// Inserts the workspace. A name the node already has is refused, unless
/// it was made up from the branch: then the id's tail makes it unique.
async fn insert(
    db: &impl SqlDatabase,
    record: &mut WorkspaceRecord,
    name_defaulted: bool,
) -> Result<(), ControlError> {
    let repo = WorkspaceRepository::new(db);
    match repo.insert(record).await {
        Ok(()) => return Ok(()),
        Err(WorkspaceInsertError::Store(e)) => return Err(e.into()),
        Err(WorkspaceInsertError::NameTaken) if !name_defaulted => {
            return Err(ControlError::WorkspaceNameTaken(record.name.clone()));
        }
        Err(WorkspaceInsertError::NameTaken) => {}
    }
    let tail = record.id[20..].to_ascii_lowercase();
    record.name = format!(
        "{}-{tail}",
        name_from_branch(&record.name, MAX_NAME_CHARS - tail.len() - 1)
    );
    match repo.insert(record).await {
        Ok(()) => Ok(()),
        Err(WorkspaceInsertError::NameTaken) => {
            Err(ControlError::WorkspaceNameTaken(record.name.clone()))
        }
        Err(WorkspaceInsertError::Store(e)) => Err(e.into()),
    }
}

/// The repository's HTTPS clone URL: its web URL with `.git`.
fn clone_url(html_url: &str) -> String {
    format!("{}.git", html_url.trim().trim_end_matches('/'))
}

/// `user.name` (their name, or login) and `user.email` (their email, or
/// `<login>@users.noreply.<base domain>`), made acceptable to git: one
/// line, no `<` or `>`, at most 256 characters.
fn git_identity(user: &UserRecord, settings: &WorkspaceSettings) -> AgentGitIdentity {
    let line = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control() && !matches!(c, '<' | '>'))
            .take(256)
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let login = line(&user.login);
    let name = user
        .name
        .as_deref()
        .map(line)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| login.clone());
    let email = user
        .email
        .as_deref()
        .map(line)
        .filter(|e| e.contains('@') && !e.contains(char::is_whitespace))
        .unwrap_or_else(|| format!("{login}@users.noreply.{}", settings.base_domain));
    AgentGitIdentity { name, email }
}

// ---- callbacks from the vm-agent ----

/// The workspace a verified workspace-callback token is about, checked
/// again here: the token's audience, its workspace, and its node must be
/// the workspace's (403 otherwise); a deleted workspace takes no more
/// callbacks (409 `workspace_deleted`).
async fn callback_workspace(
    db: &impl SqlDatabase,
    claims: &TokenClaims,
) -> Result<WorkspaceRecord, ControlError> {
    if claims.aud != Audience::WorkspaceCallback.as_str() {
        return Err(ControlError::WorkspaceScopeMismatch);
    }
    let id = claims
        .workspace
        .as_deref()
        .ok_or(ControlError::WorkspaceScopeMismatch)?;
    let workspace = WorkspaceRepository::new(db)
        .get(id)
        .await?
        .ok_or(ControlError::NotFound)?;
    if workspace.node_id != claims.node {
        return Err(ControlError::WorkspaceScopeMismatch);
    }
    if status_of(&workspace) == WorkspaceStatus::Deleted {
        return Err(WorkspaceTransitionError::Deleted.into());
    }
    Ok(workspace)
}

/// `POST /api/workspaces/{id}/ready`: `creating` → `running`; accepted
/// again once running.
pub async fn record_workspace_ready(
    db: &impl SqlDatabase,
    claims: &TokenClaims,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = callback_workspace(db, claims).await?;
    advance(db, &workspace.id, WorkspaceEvent::Ready, None, now).await
}

/// `POST /api/workspaces/{id}/provisioning-failed`: `creating` → `error`
/// with the reason (control characters removed, at most 500 characters,
/// anything that looks like a token redacted); a repeat keeps the first.
pub async fn record_provisioning_failed(
    db: &impl SqlDatabase,
    claims: &TokenClaims,
    reason: &str,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = callback_workspace(db, claims).await?;
    let reason = scrub(reason, &[]);
    let reason = if reason.is_empty() {
        "the vm-agent gave no reason".to_owned()
    } else {
        reason
    };
    advance(
        db,
        &workspace.id,
        WorkspaceEvent::ProvisioningFailed,
        Some(&reason),
        now,
    )
    .await
}

/// `POST /api/workspaces/{id}/boot-log`: appends a step of the workspace's
/// creation. The step is `[a-z_]{1,40}` and the status `started`, `done`
/// or `failed` (400 otherwise); the detail is cleaned like a failure
/// reason and clipped to 500 characters (the vm-agent sends up to 1000:
/// clipping keeps the entry, a refusal would lose it). A time more than
/// five minutes ahead of `now` (or not positive) is replaced by `now`.
pub async fn append_workspace_event(
    db: &impl SqlDatabase,
    claims: &TokenClaims,
    entry: &WorkspaceBootLogEntry,
    now: i64,
) -> Result<(), ControlError> {
    let workspace = callback_workspace(db, claims).await?;
    let step_ok = !entry.step.is_empty()
        && entry.step.len() <= MAX_STEP_CHARS
        && entry
            .step
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_');
    if !step_ok {
        return Err(WorkspaceInputError::InvalidBootLogEntry("step must be [a-z_]{1,40}").into());
    }
    if !matches!(entry.status.as_str(), "started" | "done" | "failed") {
        return Err(WorkspaceInputError::InvalidBootLogEntry(
            "status must be started, done or failed",
        )
        .into());
    }
    let at = if entry.at <= 0 || entry.at > now.saturating_add(MAX_CLOCK_AHEAD_MS) {
        now
    } else {
        entry.at
    };
    let detail = entry
        .detail
        .as_deref()
        .map(|d| scrub(d, &[]))
        .filter(|d| !d.is_empty());
    WorkspaceRepository::new(db)
        .append_event(
            &workspace.id,
            &WorkspaceEventRecord {
                at,
                step: entry.step.clone(),
                status: entry.status.clone(),
                detail,
            },
        )
        .await?;
    Ok(())
}

/// `POST /api/workspaces/{id}/git-token`: a GitHub token for the
/// workspace's repository only (`contents: write`), while the workspace is
/// `creating` or `running` (409 `workspace_not_active` otherwise) and its
/// project is active (409 `project_unavailable`).
pub async fn workspace_git_token(
    db: &impl SqlDatabase,
    github: &impl GithubAppPort,
    claims: &TokenClaims,
) -> Result<GitTokenReply, ControlError> {
    let workspace = callback_workspace(db, claims).await?;
    if !matches!(
        status_of(&workspace),
        WorkspaceStatus::Creating | WorkspaceStatus::Running
    ) {
        return Err(ControlError::WorkspaceNotActive(workspace.status));
    }
    let project = ProjectRepository::new(db)
        .get_owned(&workspace.user_id, &workspace.project_id)
        .await?
        .ok_or_else(|| ControlError::ProjectUnavailable("deleted".into()))?;
    if project.status != ProjectStatus::Active.as_str() {
        return Err(ControlError::ProjectUnavailable(project.status));
    }
    let unreachable = || ControlError::ProjectUnavailable("not reachable on GitHub".into());
    let installation = project
        .installation_id
        .parse::<u64>()
        .map_err(|_| unreachable())?;
    let repository = u64::try_from(project.repository_id).map_err(|_| unreachable())?;
    match github.repository_token(installation, repository).await {
        Ok(t) => Ok(GitTokenReply {
            token: t.token,
            expires_at: t.expires_at,
        }),
        Err(GithubError::NotFound) => Err(unreachable()),
        Err(e) => Err(ControlError::Github(e)),
    }
}

// ---- the user's actions ----

/// The user's workspace (not deleted or deleted); another user's, or an
/// id that is not one, is `NotFound`.
pub(crate) async fn owned(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
) -> Result<WorkspaceRecord, ControlError> {
    let id = parse_ulid(id.trim()).map_err(|_| ControlError::NotFound)?;
    WorkspaceRepository::new(db)
        .get_owned(user_id, &id)
        .await?
        .ok_or(ControlError::NotFound)
}

/// The user's workspace (its id in any case).
pub async fn get_workspace(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
) -> Result<WorkspaceRecord, ControlError> {
    owned(db, user_id, id).await
}

/// The user's workspaces that are not deleted, newest first, as API views.
pub async fn list_workspaces(
    db: &impl SqlDatabase,
    settings: &WorkspaceSettings,
    user_id: &str,
) -> Result<Vec<WorkspaceView>, ControlError> {
    Ok(WorkspaceRepository::new(db)
        .list_owned(user_id)
        .await?
        .iter()
        .map(|w| workspace_view(w, settings))
        .collect())
}

/// The creation log of the user's workspace, oldest first.
pub async fn workspace_events(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
) -> Result<Vec<WorkspaceBootLogEntry>, ControlError> {
    let workspace = owned(db, user_id, id).await?;
    Ok(WorkspaceRepository::new(db)
        .events(&workspace.id)
        .await?
        .into_iter()
        .map(|e| WorkspaceBootLogEntry {
            at: e.at,
            step: e.step,
            status: e.status,
            detail: e.detail,
        })
        .collect())
}

/// Renames the user's workspace; 409 `workspace_name_taken` when its node
/// has another of that name, `workspace_deleted` once deleted.
pub async fn rename_workspace(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
    name: &str,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let name = name.trim();
    validate_workspace_name(name)?;
    let workspace = live(db, user_id, id).await?;
    if workspace.name == name {
        return Ok(workspace);
    }
    let repo = WorkspaceRepository::new(db);
    if !repo.rename(user_id, &workspace.id, name, now).await? {
        return Err(ControlError::WorkspaceNameTaken(name.to_owned()));
    }
    repo.get(&workspace.id).await?.ok_or(ControlError::NotFound)
}

/// Opens (or closes) the workspace's forwarded ports to anyone with the URL.
pub async fn set_ports_public(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
    public: bool,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = live(db, user_id, id).await?;
    let repo = WorkspaceRepository::new(db);
    if !repo
        .set_ports_public(user_id, &workspace.id, public, now)
        .await?
    {
        // Deleted since it was loaded.
        return Err(WorkspaceTransitionError::Deleted.into());
    }
    repo.get(&workspace.id).await?.ok_or(ControlError::NotFound)
}

/// The user's workspace, unless deleted (409 `workspace_deleted`).
async fn live(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = owned(db, user_id, id).await?;
    if status_of(&workspace) == WorkspaceStatus::Deleted {
        return Err(WorkspaceTransitionError::Deleted.into());
    }
    Ok(workspace)
}

/// Whether a node can no longer be running anything: missing or destroyed.
fn node_gone(node: Option<&NodeRecord>) -> bool {
    node.is_none_or(|n| n.status() == LifecycleStatus::Destroyed)
}

/// Stops the user's running workspace: `stopping`, the vm-agent stops it,
/// `stopped`. Repeats are harmless (a stopped workspace stays so without a
/// call; a `stopping` one is asked again). When the agent fails it stays
/// `stopping` and the error is returned.
pub async fn stop_workspace(
    db: &impl SqlDatabase,
    agent: &impl NodeAgent,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = owned(db, user_id, id).await?;
    let workspace = advance(db, &workspace.id, WorkspaceEvent::StopRequested, None, now).await?;
    if status_of(&workspace) == WorkspaceStatus::Stopped {
        return Ok(workspace);
    }
    let node = NodeRepository::new(db).get(&workspace.node_id).await?;
    if let Some(node) = node.as_ref().filter(|n| !node_gone(Some(n))) {
        match agent
            .workspace_action(node, &workspace.id, WorkspaceAction::Stop)
            .await
        {
            // An agent without the workspace runs nothing of it.
            Ok(()) | Err(AgentError::NotFound) => {}
            Err(e) => return Err(ControlError::VmAgent(scrub_agent_error(e, &[]))),
        }
    }
    settle(db, &workspace.id, WorkspaceEvent::Stopped, now).await
}

/// Restarts the user's stopped or running workspace on its `ready` node.
pub async fn restart_workspace(
    db: &impl SqlDatabase,
    agent: &impl NodeAgent,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    start(db, agent, user_id, id, WorkspaceAction::Restart, now).await
}

/// Rebuilds the runtime of the user's stopped or running workspace (a dev
/// container is recreated) and starts it again.
pub async fn rebuild_workspace(
    db: &impl SqlDatabase,
    agent: &impl NodeAgent,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    start(db, agent, user_id, id, WorkspaceAction::Rebuild, now).await
}

/// `creating`, the agent's restart or rebuild (it answers when done),
/// `running`; a failure → `error`.
async fn start(
    db: &impl SqlDatabase,
    agent: &impl NodeAgent,
    user_id: &str,
    id: &str,
    action: WorkspaceAction,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = owned(db, user_id, id).await?;
    // Refused before the node is looked at: a deleted or failed workspace
    // says so whatever its node is doing.
    apply(status_of(&workspace), WorkspaceEvent::StartRequested)?;
    let node = NodeRepository::new(db)
        .get(&workspace.node_id)
        .await?
        .ok_or_else(|| ControlError::NodeNotReady("gone".into()))?;
    if node.status() != LifecycleStatus::Ready {
        return Err(ControlError::NodeNotReady(node.status));
    }
    let workspace = advance(db, &workspace.id, WorkspaceEvent::StartRequested, None, now).await?;
    match agent.workspace_action(&node, &workspace.id, action).await {
        Ok(()) => settle(db, &workspace.id, WorkspaceEvent::Ready, now).await,
        Err(e) => {
            let e = scrub_agent_error(e, &[]);
            fail(
                db,
                &workspace.id,
                &format!("{} failed: {e}", action.as_str()),
                now,
            )
            .await?;
            Err(ControlError::VmAgent(e))
        }
    }
}

/// Deletes the user's workspace: `deleting`, the vm-agent removes it
/// (cancelling a creation in progress), `deleted`. Repeats are harmless; a
/// failure leaves it `deleting` for the next attempt.
pub async fn delete_workspace(
    db: &impl SqlDatabase,
    agent: &impl NodeAgent,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<WorkspaceRecord, ControlError> {
    let workspace = owned(db, user_id, id).await?;
    let workspace = advance(
        db,
        &workspace.id,
        WorkspaceEvent::DeleteRequested,
        None,
        now,
    )
    .await?;
    if status_of(&workspace) == WorkspaceStatus::Deleted {
        return Ok(workspace);
    }
    let node = NodeRepository::new(db).get(&workspace.node_id).await?;
    if let Some(node) = node.as_ref().filter(|n| !node_gone(Some(n))) {
        match agent.delete_workspace(node, &workspace.id).await {
            Ok(()) | Err(AgentError::NotFound) => {}
            // Its server is being deleted, and the directory with it.
            Err(AgentError::Unreachable(_))
                if matches!(
                    node.status(),
                    LifecycleStatus::Destroying | LifecycleStatus::Error
                ) => {}
            Err(e) => return Err(ControlError::VmAgent(scrub_agent_error(e, &[]))),
        }
    }
    settle(db, &workspace.id, WorkspaceEvent::Gone, now).await
}

// ---- views ----

/// Lifetime of a terminal ticket: it only has to reach the vm-agent once,
/// which trades it for its own cookie.
pub const TERMINAL_TICKET_TTL_SECS: i64 = 60;

/// A single-use ticket into the user's running workspace (`terminal`
/// audience, scoped to its node and workspace), for the browser to trade
/// at the vm-agent (`…/session?token=`) for the workspace cookie.
pub async fn terminal_ticket(
    db: &impl SqlDatabase,
    key: &SigningKey,
    settings: &WorkspaceSettings,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<TerminalTicket, ControlError> {
    let workspace = owned(db, user_id, id).await?;
    if status_of(&workspace) != WorkspaceStatus::Running {
        return Err(ControlError::WorkspaceNotRunning(workspace.status));
    }
    let ticket = key.issue(
        &settings.control_plane_url,
        &Grant::workspace(
            Audience::Terminal,
            &workspace.node_id,
            &workspace.id,
            TERMINAL_TICKET_TTL_SECS,
        ),
        now,
    );
    Ok(TerminalTicket {
        ticket,
        expires_at: now + TERMINAL_TICKET_TTL_SECS * 1000,
    })
}

/// Where the browser reaches a workspace:
/// `{scheme}://ws-<lowercase id>.<base domain>[:port]`.
pub fn workspace_url(settings: &WorkspaceSettings, id: &str) -> String {
    let port = settings
        .url_port
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!(
        "{}://ws-{}.{}{port}",
        settings.url_scheme,
        id.to_ascii_lowercase(),
        settings.base_domain.trim_end_matches('.')
    )
}

/// The API view of a workspace record.
pub fn workspace_view(w: &WorkspaceRecord, settings: &WorkspaceSettings) -> WorkspaceView {
    WorkspaceView {
        id: w.id.clone(),
        project_id: w.project_id.clone(),
        node_id: w.node_id.clone(),
        name: w.name.clone(),
        branch: w.branch.clone(),
        runtime: w.runtime.clone(),
        status: w.status.clone(),
        status_since: w.status_since,
        error_message: w.error_message.clone(),
        ports_public: w.ports_public != 0,
        created_at: w.created_at,
        ready_at: w.ready_at,
        url: workspace_url(settings, &w.id),
    }
}

// ---- scrubbing ----

/// One line of at most `max` characters: line breaks and tabs become
/// spaces, other control characters are dropped.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter_map(|c| match c {
            c if c.is_control() && c.is_whitespace() => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `text` with every one of `secrets` and every word that looks like a
/// credential (a JWT, a GitHub token) replaced by `[redacted]`, then
/// [`clean`]ed to [`MAX_REASON_CHARS`].
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        out = out.replace(secret, REDACTED);
    }
    let mut scrubbed = String::with_capacity(out.len());
    let mut word = String::new();
    let flush = |word: &mut String, scrubbed: &mut String| {
        let core = word.trim_end_matches('.');
        if looks_like_token(core) {
            scrubbed.push_str(REDACTED);
            scrubbed.push_str(&word[core.len()..]);
        } else {
            scrubbed.push_str(word);
        }
        word.clear();
    };
    for c in out.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            word.push(c);
        } else {
            flush(&mut word, &mut scrubbed);
            scrubbed.push(c);
        }
    }
    flush(&mut word, &mut scrubbed);
    clean(&scrubbed, MAX_REASON_CHARS)
}

/// GitHub tokens (`ghp_…`, `ghs_…`, `github_pat_…`) and JWTs (three
/// base64url parts, the first a JSON header).
fn looks_like_token(word: &str) -> bool {
    const GITHUB: [&str; 6] = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];
    if GITHUB.iter().any(|p| word.starts_with(p)) && word.len() >= 20 {
        return true;
    }
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3 && parts[0].starts_with("eyJ") && parts.iter().all(|p| p.len() >= 8)
}

/// The agent's error with its text scrubbed of `secrets` and of anything
/// that looks like a token, so it can be stored and returned.
fn scrub_agent_error(error: AgentError, secrets: &[&str]) -> AgentError {
    match error {
        AgentError::NotFound => AgentError::NotFound,
        AgentError::Refused {
            status,
            code,
            message,
        } => AgentError::Refused {
            status,
            code: scrub(&code, secrets),
            message: scrub(&message, secrets),
        },
        AgentError::Unreachable(message) => AgentError::Unreachable(scrub(&message, secrets)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_branches_are_valid_names() {
        for (branch, name) in [
            ("main", "main"),
            ("feature/Login_x", "feature-login-x"),
            ("--weird//", "weird"),
            ("ünïcode", "n-code"),
            ("@@@", "workspace"),
        ] {
            assert_eq!(name_from_branch(branch, MAX_NAME_CHARS), name, "{branch}");
            assert_eq!(validate_workspace_name(name), Ok(()));
        }
        let long = name_from_branch(&"a-".repeat(100), 56);
        assert!(long.len() <= 56 && validate_workspace_name(&long).is_ok());
    }

    #[test]
    fn scrubbing_removes_tokens_and_control_characters() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0xxxx.c2lnbmF0dXJlc2ln";
        let text =
            format!("failed with {jwt}.\nand ghs_abcdefghijklmnopqrstuvwx\tand secret-value-1");
        let out = scrub(&text, &["secret-value-1"]);
        assert_eq!(out, "failed with [redacted]. and [redacted] and [redacted]");
        assert_eq!(scrub(&"x".repeat(900), &[]).len(), MAX_REASON_CHARS);
        assert_eq!(scrub("a.b.c main.rs", &[]), "a.b.c main.rs");
    }

    #[test]
    fn urls_and_clone_urls() {
        let settings = WorkspaceSettings {
            control_plane_url: "http://api.localhost:8787".into(),
            callback_token_ttl_secs: 60,
            base_domain: "localhost".into(),
            url_scheme: "http".into(),
            url_port: Some(8787),
        };
        assert_eq!(
            workspace_url(&settings, "01J0AB"),
            "http://ws-01j0ab.localhost:8787"
        );
        assert_eq!(
            clone_url("https://github.com/a/b"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            clone_url("https://github.com/a/b/"),
            "https://github.com/a/b.git"
        );
    }
}
