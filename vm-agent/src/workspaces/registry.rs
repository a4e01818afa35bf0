//! The registry: every workspace of this node, in memory and on disk.
//!
//! Each workspace has a directory `<fs_root>/var/lib/sam/workspaces/<ID>/`
//! with its checkout (`repo/`) and its state (`workspace.json`, 0600,
//! replaced atomically). The registry reads them all on first use (the
//! agent does that at start), so a restarted agent knows its workspaces; a
//! workspace it finds half-created is marked failed (and reported), one it
//! finds half-deleted is deleted.
//!
//! Operations on one workspace are serialised by its own lock: creation
//! holds it from the 202 until ready or failed, and stop, restart, rebuild
//! and delete take it in turn. Stop/restart/rebuild of a workspace that is
//! being created or deleted are refused (`workspace_busy`); a delete during
//! creation cancels the creation (its git processes are killed) and waits
//! for the lock.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, watch};

use super::callbacks::{Callbacks, Step, StepStatus, now_ms};
use super::credentials::{self, CredentialError, CredentialRequest};
use super::devcontainer::DevcontainerRuntime;
use super::git::{Git, GitError, helper_value};
use super::host::HostRuntime;
use super::model::{
    CreateWorkspace, GitIdentity, RuntimeKind, Secret, WorkspaceRecord, WorkspaceStatus,
    WorkspaceView,
};
use super::runtime::{CommandSpec, RuntimeError, RuntimeState, RuntimeTarget, WorkspaceRuntime};
use super::scrub::scrub;
use super::validate;
use crate::access::workspace_id;
use crate::config::Config;
use crate::resolver::LocalhostResolver;

/// Where workspaces live (re-rooted under `SAM_FS_ROOT`).
pub const WORKSPACES_DIR: &str = "/var/lib/sam/workspaces";
/// The state file in a workspace's directory.
pub const RECORD_FILE: &str = "workspace.json";
/// The checkout in a workspace's directory.
pub const REPO_DIR: &str = "repo";
/// The agent's runtime directory (re-rooted), holding the credential socket.
const RUNTIME_DIR: &str = "/run/sam";
const SOCKET_NAME: &str = "git-credential.sock";
/// `sun_path` holds 108 bytes; stay well clear.
const MAX_SOCKET_PATH: usize = 100;
/// Git tokens remembered (in memory) per workspace to scrub them from
/// error messages.
const REMEMBERED_TOKENS: usize = 16;

/// Why a workspace operation failed; every variant has a stable
/// [`code`](WorkspaceError::code) for the API.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no such workspace")]
    NotFound,
    #[error("a workspace with this id exists")]
    Exists,
    #[error("the workspace is {}", .0.as_str())]
    Busy(WorkspaceStatus),
    #[error("the workspace is not running")]
    NotRunning,
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// A git command on the checkout failed; `message` is scrubbed.
    #[error("{message}")]
    Git { code: &'static str, message: String },
    #[error("{context}")]
    Storage {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl WorkspaceError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Exists => "workspace_exists",
            Self::Busy(_) => "workspace_busy",
            Self::NotRunning => "workspace_not_running",
            Self::Invalid { code, .. } | Self::Git { code, .. } => code,
            Self::Runtime(err) => err.code(),
            Self::Storage { .. } => "storage_failed",
        }
    }

    fn storage(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Storage { context, source }
    }
}

impl From<validate::Invalid> for WorkspaceError {
    fn from(invalid: validate::Invalid) -> Self {
        Self::Invalid {
            code: invalid.code,
            message: invalid.message,
        }
    }
}

/// One workspace as other parts of the agent see it.
#[derive(Debug, Clone)]
pub struct WorkspaceInfo {
    pub view: WorkspaceView,
    /// The workspace's directory.
    pub dir: PathBuf,
    /// The checkout (exists once creation has cloned it).
    pub repo_dir: PathBuf,
}

/// The workspaces of this node. Cheap to clone: clones share one registry.
#[derive(Clone)]
pub struct Workspaces {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Workspaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspaces")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Arc<Config>,
    root: PathBuf,
    callbacks: Callbacks,
    host: HostRuntime,
    devcontainer: DevcontainerRuntime,
    /// Filled from disk on first use.
    slots: tokio::sync::OnceCell<Mutex<BTreeMap<String, Arc<Slot>>>>,
    /// The credential socket, bound on first use.
    socket: Mutex<Option<PathBuf>>,
    /// The binary git runs as credential helper; `None`: this executable.
    helper_exe: Mutex<Option<PathBuf>>,
}

struct Slot {
    id: String,
    dir: PathBuf,
    /// Serialises operations on the workspace.
    op: Arc<tokio::sync::Mutex<()>>,
    /// The current state; written to disk on every change.
    record: Mutex<WorkspaceRecord>,
    status: watch::Sender<WorkspaceStatus>,
    /// Set by a delete to cancel a creation in progress.
    cancel: watch::Sender<bool>,
    /// Git tokens handed out, kept (in memory) only to scrub them.
    issued: Mutex<Vec<Secret>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn new(record: WorkspaceRecord, dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            id: record.id.clone(),
            dir,
            op: Arc::new(tokio::sync::Mutex::new(())),
            status: watch::channel(record.status).0,
            record: Mutex::new(record),
            cancel: watch::channel(false).0,
            issued: Mutex::new(Vec::new()),
        })
    }

    fn record(&self) -> WorkspaceRecord {
        lock(&self.record).clone()
    }

    fn status(&self) -> WorkspaceStatus {
        lock(&self.record).status
    }

    fn repo_dir(&self) -> PathBuf {
        self.dir.join(REPO_DIR)
    }

    fn target(&self) -> RuntimeTarget {
        let record = lock(&self.record);
        RuntimeTarget {
            id: self.id.clone(),
            dir: self.dir.clone(),
            repo_dir: self.repo_dir(),
            devcontainer_config: record.devcontainer_config.clone(),
            state: record.runtime_state.clone(),
        }
    }

    fn info(&self) -> WorkspaceInfo {
        WorkspaceInfo {
            view: lock(&self.record).view(),
            dir: self.dir.clone(),
            repo_dir: self.repo_dir(),
        }
    }

    /// Applies `change` and writes the result to disk (under the record's
    /// lock, so writes happen in order). The in-memory state changes even if
    /// the write fails.
    fn commit(
        &self,
        change: impl FnOnce(&mut WorkspaceRecord),
    ) -> Result<WorkspaceView, WorkspaceError> {
        let mut record = lock(&self.record);
        change(&mut record);
        self.status.send_replace(record.status);
        write_record(&self.dir, &record)
            .map_err(WorkspaceError::storage("cannot save the workspace state"))?;
        Ok(record.view())
    }

    /// Like [`Slot::commit`], logging instead of failing.
    fn commit_or_log(&self, change: impl FnOnce(&mut WorkspaceRecord)) {
        if let Err(err) = self.commit(change) {
            tracing::error!(workspace = %self.id, error = %err, "cannot save the workspace state");
        }
    }

    fn remember(&self, token: &Secret) {
        let mut issued = lock(&self.issued);
        if issued.len() >= REMEMBERED_TOKENS {
            issued.remove(0);
        }
        issued.push(token.clone());
    }

    /// `text` without any secret of this workspace (or token-like words).
    fn scrub(&self, text: &str) -> String {
        let callback = lock(&self.record).callback_token.clone();
        let issued = lock(&self.issued).clone();
        let mut secrets: Vec<&str> = issued.iter().map(Secret::expose).collect();
        secrets.push(callback.expose());
        scrub(text, &secrets)
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

/// Writes `workspace.json` atomically (temporary file, then rename), 0600.
fn write_record(dir: &Path, record: &WorkspaceRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{RECORD_FILE}.new"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(RECORD_FILE))
}

/// Reads every workspace under `root`. Entries that are not workspaces, or
/// whose state cannot be read, are logged and left alone.
fn read_all(root: &Path) -> BTreeMap<String, Arc<Slot>> {
    let mut slots = BTreeMap::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return slots,
        Err(err) => {
            tracing::error!(root = %root.display(), %err, "cannot read the workspaces directory");
            return slots;
        }
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(workspace_id)
            .filter(|id| name == id.as_str())
        else {
            tracing::warn!(entry = ?name, "ignoring a stray entry in the workspaces directory");
            continue;
        };
        let dir = entry.path();
        let record = std::fs::read(dir.join(RECORD_FILE))
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<WorkspaceRecord>(&bytes).map_err(|e| e.to_string())
            });
        match record {
            Ok(record) if record.id == id => {
                slots.insert(id, Slot::new(record, dir));
            }
            Ok(_) => {
                tracing::warn!(workspace = %id, "workspace.json names another workspace; ignored");
            }
            Err(err) => {
                tracing::warn!(workspace = %id, %err, "cannot read workspace.json; ignored");
            }
        }
    }
    slots
}

/// An HTTP client for the callbacks when the agent does not supply one.
pub(crate) fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(LocalhostResolver))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// What went wrong during creation.
enum CreationFailure {
    Cancelled,
    Step { step: Step, detail: String },
}

fn at(step: Step) -> impl FnOnce(GitError) -> CreationFailure {
    move |err| CreationFailure::Step {
        step,
        detail: err.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Stop,
    Restart,
    Rebuild,
}

impl Workspaces {
    /// A registry for the node `config` describes. Nothing is read until
    /// first use (or [`Workspaces::load`]).
    pub fn new(config: Arc<Config>, client: reqwest::Client) -> Self {
        let root = config.host_path(Path::new(WORKSPACES_DIR));
        let callbacks = Callbacks::new(client, &config.control_plane_url, config.backoff);
        let host = HostRuntime::new(
            config.shell.as_deref(),
            &config.home,
            HostRuntime::inherited_from_process(),
        );
        Self {
            inner: Arc::new(Inner {
                root,
                callbacks,
                host,
                devcontainer: DevcontainerRuntime::from_process(),
                slots: tokio::sync::OnceCell::new(),
                socket: Mutex::new(None),
                helper_exe: Mutex::new(None),
                config,
            }),
        }
    }

    /// Makes git run `exe` as the credential helper instead of this
    /// executable (tests run the agent inside the test binary).
    pub fn set_credential_helper(&self, exe: PathBuf) {
        *lock(&self.inner.helper_exe) = Some(exe);
    }

    /// `<fs_root>/var/lib/sam/workspaces`.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Reads the workspaces from disk (once; later calls do nothing) and
    /// returns how many there are.
    pub async fn load(&self) -> usize {
        lock(self.slots().await).len()
    }

    async fn slots(&self) -> &Mutex<BTreeMap<String, Arc<Slot>>> {
        self.inner
            .slots
            .get_or_init(|| async {
                let slots = read_all(&self.inner.root);
                tracing::info!(workspaces = slots.len(), "workspaces loaded");
                for slot in slots.values() {
                    self.recover(slot);
                }
                // Git in their checkouts (terminals) asks for credentials.
                if !slots.is_empty()
                    && let Err(err) = self.socket_path()
                {
                    tracing::error!(error = %err, "git credentials will not be available");
                }
                Mutex::new(slots)
            })
            .await
    }

    /// Finishes what a previous agent left half done.
    fn recover(&self, slot: &Arc<Slot>) {
        match slot.status() {
            WorkspaceStatus::Creating => {
                let reason = "the agent restarted while the workspace was being created";
                tracing::warn!(workspace = %slot.id, "{reason}");
                slot.commit_or_log(|r| {
                    r.status = WorkspaceStatus::Error;
                    r.error = Some(reason.to_owned());
                });
                let callbacks = self.inner.callbacks.clone();
                let (id, token) = (slot.id.clone(), slot.record().callback_token);
                tokio::spawn(async move {
                    callbacks.provisioning_failed(&id, &token, reason).await;
                });
            }
            WorkspaceStatus::Deleting => {
                let (registry, slot) = (self.clone(), Arc::clone(slot));
                tokio::spawn(async move {
                    if let Err(err) = registry.finish_delete(&slot).await {
                        tracing::error!(workspace = %slot.id, error = %err, "cannot finish deleting the workspace");
                    }
                });
            }
            WorkspaceStatus::Running | WorkspaceStatus::Stopped | WorkspaceStatus::Error => {}
        }
    }

    /// The slot of `raw_id` (any case), or `None` for unknown or malformed
    /// ids. Nothing touches the file system before the id is checked.
    async fn slot(&self, raw_id: &str) -> Option<Arc<Slot>> {
        let id = workspace_id(raw_id)?;
        lock(self.slots().await).get(&id).cloned()
    }

    fn runtime(&self, kind: RuntimeKind) -> &dyn WorkspaceRuntime {
        match kind {
            RuntimeKind::Host => &self.inner.host,
            RuntimeKind::Devcontainer => &self.inner.devcontainer,
        }
    }

    /// Every workspace, by id.
    pub async fn list(&self) -> Vec<WorkspaceView> {
        lock(self.slots().await)
            .values()
            .map(|slot| lock(&slot.record).view())
            .collect()
    }

    /// One workspace's view.
    pub async fn view(&self, raw_id: &str) -> Result<WorkspaceView, WorkspaceError> {
        let slot = self.slot(raw_id).await.ok_or(WorkspaceError::NotFound)?;
        Ok(lock(&slot.record).view())
    }

    /// One workspace: its view and where it lives. `None` for unknown or
    /// malformed ids.
    pub async fn get(&self, raw_id: &str) -> Option<WorkspaceInfo> {
        self.slot(raw_id).await.map(|slot| slot.info())
    }

    /// Follows a workspace's status; the sender goes away (`changed()`
    /// errs) when the workspace is deleted.
    pub async fn watch(&self, raw_id: &str) -> Option<watch::Receiver<WorkspaceStatus>> {
        self.slot(raw_id).await.map(|slot| slot.status.subscribe())
    }

    /// How to start an interactive shell in a running workspace (see
    /// [`WorkspaceRuntime::shell_command`]).
    pub async fn shell_command(&self, raw_id: &str) -> Result<CommandSpec, WorkspaceError> {
        let slot = self.running(raw_id).await?;
        let kind = lock(&slot.record).runtime;
        Ok(self.runtime(kind).shell_command(&slot.target())?)
    }

    /// How to run `argv` in a running workspace (see
    /// [`WorkspaceRuntime::exec_command`]).
    pub async fn exec_command(
        &self,
        raw_id: &str,
        argv: &[OsString],
        tty: bool,
    ) -> Result<CommandSpec, WorkspaceError> {
        let slot = self.running(raw_id).await?;
        let kind = lock(&slot.record).runtime;
        Ok(self.runtime(kind).exec_command(&slot.target(), argv, tty)?)
    }

    async fn running(&self, raw_id: &str) -> Result<Arc<Slot>, WorkspaceError> {
        let slot = self.slot(raw_id).await.ok_or(WorkspaceError::NotFound)?;
        match slot.status() {
            WorkspaceStatus::Running => Ok(slot),
            WorkspaceStatus::Deleting => Err(WorkspaceError::NotFound),
            _ => Err(WorkspaceError::NotRunning),
        }
    }

    /// Validates `request`, records the workspace (`creating`) and starts
    /// creating it in the background. Returns its view at once.
    pub async fn create(&self, request: CreateWorkspace) -> Result<WorkspaceView, WorkspaceError> {
        let id = workspace_id(&request.id).ok_or_else(|| WorkspaceError::Invalid {
            code: "invalid_workspace_id",
            message: "id must be a ULID".to_owned(),
        })?;
        let url = validate::clone_url(&request.repository.clone_url)?;
        validate::branch_name("repository.branch", &request.repository.branch)?;
        if let Some(base) = &request.repository.base_branch {
            validate::branch_name("repository.base_branch", base)?;
        }
        validate::identity_part("name", &request.git_identity.name)?;
        validate::identity_part("email", &request.git_identity.email)?;
        if let Some(name) = &request.devcontainer_config {
            if request.runtime != RuntimeKind::Devcontainer {
                return Err(WorkspaceError::Invalid {
                    code: "invalid_devcontainer_config",
                    message: "devcontainer_config needs the devcontainer runtime".to_owned(),
                });
            }
            validate::devcontainer_config(name)?;
        }
        validate::callback_token(request.callback_token.expose())?;

        let mut repository = request.repository;
        repository.clone_url = url.to_string();
        let record = WorkspaceRecord {
            id: id.clone(),
            status: WorkspaceStatus::Creating,
            runtime: request.runtime,
            repository,
            git_identity: request.git_identity,
            devcontainer_config: request.devcontainer_config,
            created_at: now_ms(),
            error: None,
            callback_token: request.callback_token,
            runtime_state: RuntimeState::default(),
        };

        let slots = self.slots().await;
        let (slot, guard) = {
            let mut map = lock(slots);
            if map.contains_key(&id) {
                return Err(WorkspaceError::Exists);
            }
            let dir = self.inner.root.join(&id);
            std::fs::create_dir_all(&self.inner.root).map_err(WorkspaceError::storage(
                "cannot create the workspaces directory",
            ))?;
            match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
                Ok(()) => {}
                // Left by something the registry could not read: not ours to replace.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(WorkspaceError::Exists);
                }
                Err(err) => {
                    return Err(WorkspaceError::storage(
                        "cannot create the workspace directory",
                    )(err));
                }
            }
            if let Err(err) = write_record(&dir, &record) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(WorkspaceError::storage("cannot save the workspace state")(
                    err,
                ));
            }
            let slot = Slot::new(record, dir);
            // Fresh, so free: the lock is held from here until creation ends.
            let guard = Arc::clone(&slot.op)
                .try_lock_owned()
                .map_err(|_| WorkspaceError::Busy(WorkspaceStatus::Creating))?;
            map.insert(id.clone(), Arc::clone(&slot));
            (slot, guard)
        };
        tracing::info!(workspace = %id, "creating workspace");
        let view = lock(&slot.record).view();
        tokio::spawn(self.clone().provision(slot, guard));
        Ok(view)
    }

    /// Creation, in the background: checkout, identity, runtime; then
    /// ready or failed.
    async fn provision(self, slot: Arc<Slot>, guard: OwnedMutexGuard<()>) {
        let record = slot.record();
        let mut cancel = slot.cancel.subscribe();
        let outcome = tokio::select! {
            outcome = self.create_steps(&slot, &record) => outcome,
            _ = cancel.wait_for(|cancelled| *cancelled) => Err(CreationFailure::Cancelled),
        };
        let callbacks = &self.inner.callbacks;
        let token = &record.callback_token;
        match outcome {
            _ if slot.cancelled() => {
                tracing::info!(workspace = %slot.id, "creation cancelled by a delete");
            }
            Ok(state) => {
                slot.commit_or_log(|r| {
                    r.status = WorkspaceStatus::Running;
                    r.error = None;
                    r.runtime_state = state;
                });
                tracing::info!(workspace = %slot.id, "workspace ready");
                // Operations need not wait for a slow control plane.
                drop(guard);
                callbacks.ready(&slot.id, token).await;
            }
            Err(CreationFailure::Cancelled) => {}
            Err(CreationFailure::Step { step, detail }) => {
                let reason = slot.scrub(&format!("{} failed: {detail}", step.as_str()));
                tracing::warn!(workspace = %slot.id, %reason, "workspace creation failed");
                slot.commit_or_log(|r| {
                    r.status = WorkspaceStatus::Error;
                    r.error = Some(reason.clone());
                });
                drop(guard);
                callbacks
                    .boot_log(&slot.id, token, step, StepStatus::Failed, Some(&reason))
                    .await;
                callbacks
                    .provisioning_failed(&slot.id, token, &reason)
                    .await;
            }
        }
    }

    async fn create_steps(
        &self,
        slot: &Slot,
        record: &WorkspaceRecord,
    ) -> Result<RuntimeState, CreationFailure> {
        let callbacks = &self.inner.callbacks;
        let token = &record.callback_token;
        let log = |step: Step, status: StepStatus, detail: Option<String>| async move {
            callbacks
                .boot_log(&slot.id, token, step, status, detail.as_deref())
                .await;
        };
        let repo = &record.repository;
        let repo_dir = slot.repo_dir();

        log(Step::Clone, StepStatus::Started, None).await;
        let git = self
            .git_for(&slot.id)
            .map_err(|detail| CreationFailure::Step {
                step: Step::Clone,
                detail,
            })?;
        let exists = git
            .remote_has_branch(&repo.clone_url, &repo.branch, &slot.dir)
            .await
            .map_err(at(Step::Clone))?;
        let source = if exists {
            Some(repo.branch.as_str())
        } else {
            repo.base_branch.as_deref()
        };
        git.clone(&repo.clone_url, source, &repo_dir, &slot.dir)
            .await
            .map_err(at(Step::Clone))?;
        let source_name = source.map_or_else(|| "the default branch".to_owned(), str::to_owned);
        log(
            Step::Clone,
            StepStatus::Done,
            Some(format!("cloned {source_name}")),
        )
        .await;

        log(Step::Branch, StepStatus::Started, None).await;
        let detail = if exists {
            format!("{} exists on the remote", repo.branch)
        } else {
            git.switch_create(&repo_dir, &repo.branch)
                .await
                .map_err(at(Step::Branch))?;
            format!("created {} from {source_name}", repo.branch)
        };
        log(Step::Branch, StepStatus::Done, Some(detail)).await;

        log(Step::GitIdentity, StepStatus::Started, None).await;
        git.set_identity(&repo_dir, &record.git_identity)
            .await
            .map_err(at(Step::GitIdentity))?;
        // The helper is a path on the node: of no use inside a container.
        if record.runtime == RuntimeKind::Host {
            git.install_helper(&repo_dir)
                .await
                .map_err(at(Step::GitIdentity))?;
        }
        log(Step::GitIdentity, StepStatus::Done, None).await;

        log(Step::RuntimeStart, StepStatus::Started, None).await;
        let state = self
            .runtime(record.runtime)
            .start(&slot.target())
            .await
            .map_err(|err| CreationFailure::Step {
                step: Step::RuntimeStart,
                detail: err.to_string(),
            })?;
        log(
            Step::RuntimeStart,
            StepStatus::Done,
            Some(record.runtime.as_str().to_owned()),
        )
        .await;
        Ok(state)
    }

    /// Git with the agent as credential helper for workspace `id`.
    fn git_for(&self, id: &str) -> Result<Git, String> {
        let socket = self.socket_path().map_err(|e| e.to_string())?;
        let exe = match lock(&self.inner.helper_exe).clone() {
            Some(exe) => exe,
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the agent's executable: {e}"))?,
        };
        Ok(Git::new(helper_value(&exe, id, &socket)))
    }

    /// The credential socket's path, binding it (and starting to serve it)
    /// on first use. Needs to run inside the Tokio runtime.
    pub fn socket_path(&self) -> Result<PathBuf, WorkspaceError> {
        let mut socket = lock(&self.inner.socket);
        if let Some(path) = socket.as_ref() {
            return Ok(path.clone());
        }
        let path = self.socket_location();
        let listener = credentials::bind(&path).map_err(WorkspaceError::storage(
            "cannot bind the git credential socket",
        ))?;
        tracing::info!(path = %path.display(), "git credential socket listening");
        tokio::spawn(accept_loop(listener, Arc::downgrade(&self.inner)));
        *socket = Some(path.clone());
        Ok(path)
    }

    /// `<fs_root>/run/sam/git-credential.sock`, or, when that is too long
    /// for a socket address, a directory of its own in the system's
    /// temporary directory.
    fn socket_location(&self) -> PathBuf {
        let preferred = self
            .inner
            .config
            .host_path(Path::new(RUNTIME_DIR))
            .join(SOCKET_NAME);
        if preferred.as_os_str().len() <= MAX_SOCKET_PATH {
            return preferred;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner.config.fs_root.hash(&mut hasher);
        std::env::temp_dir()
            .join(format!("sam-vm-agent-{:016x}", hasher.finish()))
            .join(SOCKET_NAME)
    }

    /// Answers the credential helper: a fresh git token, only for the
    /// protocol and host of the workspace's clone URL.
    async fn answer_credential(
        &self,
        request: CredentialRequest,
    ) -> Result<Secret, CredentialError> {
        let slot = self
            .slot(&request.workspace)
            .await
            .ok_or(CredentialError::UnknownWorkspace)?;
        let record = slot.record();
        if record.status == WorkspaceStatus::Deleting {
            return Err(CredentialError::UnknownWorkspace);
        }
        if !host_matches(
            &record.repository.clone_url,
            &request.protocol,
            &request.host,
        ) {
            tracing::warn!(workspace = %slot.id, host = %request.host, "refused git credentials for another host");
            return Err(CredentialError::HostMismatch);
        }
        let token = self
            .inner
            .callbacks
            .git_token(&slot.id, &record.callback_token)
            .await
            .map_err(|err| CredentialError::TokenUnavailable(err.to_string()))?;
        slot.remember(&token);
        tracing::info!(workspace = %slot.id, "handed a git token to git");
        Ok(token)
    }

    /// The workspace's callback token (for the session outbox's deliveries).
    pub(crate) async fn callback_token(&self, raw_id: &str) -> Option<Secret> {
        let slot = self.slot(raw_id).await?;
        let record = lock(&slot.record);
        Some(record.callback_token.clone())
    }

    /// Stages everything in the checkout, commits it if anything changed,
    /// and pushes `HEAD` to `refs/heads/<branch>` of the clone URL through
    /// the credential helper. Pushing again with nothing new is harmless.
    pub(crate) async fn publish(
        &self,
        raw_id: &str,
        request: &PublishRequest,
    ) -> Result<Published, WorkspaceError> {
        validate::branch_name("branch", &request.branch)?;
        validate_commit_message(&request.commit_message)?;
        if let Some(author) = &request.author {
            validate::identity_part("name", &author.name)?;
            validate::identity_part("email", &author.email)?;
        }
        let slot = self.slot(raw_id).await.ok_or(WorkspaceError::NotFound)?;
        let operable = |slot: &Slot| match slot.status() {
            status @ (WorkspaceStatus::Creating | WorkspaceStatus::Deleting) => {
                Err(WorkspaceError::Busy(status))
            }
            _ => Ok(()),
        };
        operable(&slot)?;
        // Not racing a stop, rebuild or delete of the same workspace.
        let _guard = slot.op.lock().await;
        operable(&slot)?;
        let repo = slot.repo_dir();
        let git = self
            .git_for(&slot.id)
            .map_err(|detail| WorkspaceError::Git {
                code: "git_unavailable",
                message: slot.scrub(&detail),
            })?;
        let failed = |code: &'static str| {
            let slot = Arc::clone(&slot);
            move |err: GitError| WorkspaceError::Git {
                code,
                message: slot.scrub(&err.to_string()),
            }
        };
        git.add_all(&repo).await.map_err(failed("git_add_failed"))?;
        let committed = git
            .has_staged_changes(&repo)
            .await
            .map_err(failed("git_status_failed"))?;
        if committed {
            git.commit(&repo, &request.commit_message, request.author.as_ref())
                .await
                .map_err(failed("git_commit_failed"))?;
        }
        let commit_sha = git.head(&repo).await.map_err(failed("git_no_commit"))?;
        git.push_head(&repo, &request.branch)
            .await
            .map_err(failed("git_push_failed"))?;
        tracing::info!(workspace = %slot.id, branch = %request.branch, committed, "published the checkout");
        Ok(Published {
            branch: request.branch.clone(),
            commit_sha,
            committed,
            pushed: true,
        })
    }

    pub async fn stop(&self, raw_id: &str) -> Result<WorkspaceView, WorkspaceError> {
        self.operate(raw_id, Operation::Stop).await
    }

    pub async fn restart(&self, raw_id: &str) -> Result<WorkspaceView, WorkspaceError> {
        self.operate(raw_id, Operation::Restart).await
    }

    pub async fn rebuild(&self, raw_id: &str) -> Result<WorkspaceView, WorkspaceError> {
        self.operate(raw_id, Operation::Rebuild).await
    }

    async fn operate(&self, raw_id: &str, op: Operation) -> Result<WorkspaceView, WorkspaceError> {
        let slot = self.slot(raw_id).await.ok_or(WorkspaceError::NotFound)?;
        let operable = |slot: &Slot| match slot.status() {
            status @ (WorkspaceStatus::Creating | WorkspaceStatus::Deleting) => {
                Err(WorkspaceError::Busy(status))
            }
            _ => Ok(()),
        };
        operable(&slot)?;
        let _guard = slot.op.lock().await;
        operable(&slot)?;
        let target = slot.target();
        let runtime = self.runtime(lock(&slot.record).runtime);
        let result = match op {
            Operation::Stop => runtime.stop(&target).await.map(|()| None),
            Operation::Restart => runtime.restart(&target).await.map(Some),
            Operation::Rebuild => runtime.rebuild(&target).await.map(Some),
        };
        match result {
            Ok(state) => slot.commit(|r| {
                r.status = if op == Operation::Stop {
                    WorkspaceStatus::Stopped
                } else {
                    WorkspaceStatus::Running
                };
                r.error = None;
                if let Some(state) = state {
                    r.runtime_state = state;
                }
            }),
            Err(err) => {
                let message = slot.scrub(&err.to_string());
                tracing::warn!(workspace = %slot.id, error = %message, "workspace operation failed");
                slot.commit_or_log(|r| {
                    r.status = WorkspaceStatus::Error;
                    r.error = Some(message);
                });
                Err(WorkspaceError::Runtime(err))
            }
        }
    }

    /// Stops the workspace's processes, removes what its runtime created
    /// and its directory, and forgets it. A creation in progress is
    /// cancelled first.
    pub async fn delete(&self, raw_id: &str) -> Result<(), WorkspaceError> {
        let slot = self.slot(raw_id).await.ok_or(WorkspaceError::NotFound)?;
        slot.cancel.send_replace(true);
        slot.commit_or_log(|r| r.status = WorkspaceStatus::Deleting);
        self.finish_delete(&slot).await
    }

    async fn finish_delete(&self, slot: &Arc<Slot>) -> Result<(), WorkspaceError> {
        let _guard = slot.op.lock().await;
        let still_here = lock(self.slots().await)
            .get(&slot.id)
            .is_some_and(|s| Arc::ptr_eq(s, slot));
        if !still_here {
            return Ok(()); // Another delete got here first.
        }
        let kind = lock(&slot.record).runtime;
        if let Err(err) = self.runtime(kind).destroy(&slot.target()).await {
            let message = slot.scrub(&err.to_string());
            slot.commit_or_log(|r| r.error = Some(message));
            return Err(WorkspaceError::Runtime(err));
        }
        match std::fs::remove_dir_all(&slot.dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(WorkspaceError::storage(
                    "cannot remove the workspace directory",
                )(err));
            }
        }
        lock(self.slots().await).remove(&slot.id);
        tracing::info!(workspace = %slot.id, "workspace deleted");
        Ok(())
    }
}

/// `POST /workspaces/{id}/git/publish`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    pub(crate) branch: String,
    pub(crate) commit_message: String,
    #[serde(default)]
    pub(crate) author: Option<GitIdentity>,
}

/// What a publish did.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Published {
    pub(crate) branch: String,
    pub(crate) commit_sha: String,
    pub(crate) committed: bool,
    pub(crate) pushed: bool,
}

/// Longest commit message accepted, in bytes.
const MAX_COMMIT_MESSAGE_BYTES: usize = 64 * 1024;

fn validate_commit_message(message: &str) -> Result<(), WorkspaceError> {
    let bad = |why: &str| WorkspaceError::Invalid {
        code: "invalid_commit_message",
        message: format!("commit_message {why}"),
    };
    if message.trim().is_empty() {
        return Err(bad("is empty"));
    }
    if message.len() > MAX_COMMIT_MESSAGE_BYTES {
        return Err(bad("is too long"));
    }
    if message.contains('\0') {
        return Err(bad("contains NUL"));
    }
    Ok(())
}

/// Whether git's `protocol` and `host` (with `:port` when not the default)
/// are those of `clone_url`.
fn host_matches(clone_url: &str, protocol: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(clone_url) else {
        return false;
    };
    let Some(name) = url.host_str() else {
        return false;
    };
    let expected = match url.port() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    };
    url.scheme() == protocol && expected.eq_ignore_ascii_case(host)
}

/// Serves the credential socket while the registry lives.
async fn accept_loop(listener: tokio::net::UnixListener, registry: Weak<Inner>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "git credential socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(inner) = registry.upgrade() else {
            return;
        };
        let registry = Workspaces { inner };
        tokio::spawn(async move {
            credentials::serve_connection(stream, |request| async move {
                registry.answer_credential(request).await
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ID: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";

    fn config(root: &Path) -> Arc<Config> {
        let vars: HashMap<String, String> = [
            ("SAM_NODE_ID", "01HZX3Y0000000000000000000"),
            // Nothing listens there: callbacks fail fast.
            ("SAM_CONTROL_PLANE_URL", "http://127.0.0.1:1"),
            ("SAM_FS_ROOT", &root.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut config = Config::from_env_map(&vars).unwrap();
        config.backoff = crate::Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
        Arc::new(config)
    }

    fn record(id: &str, status: WorkspaceStatus) -> WorkspaceRecord {
        WorkspaceRecord {
            id: id.to_owned(),
            status,
            runtime: RuntimeKind::Host,
            repository: super::super::model::RepositorySpec {
                clone_url: "https://github.com/acme/app.git".to_owned(),
                branch: "main".to_owned(),
                base_branch: None,
            },
            git_identity: super::super::model::GitIdentity {
                name: "Ada".to_owned(),
                email: "ada@example.com".to_owned(),
            },
            devcontainer_config: None,
            created_at: 1,
            error: None,
            callback_token: Secret::new("aGVhZA.Ym9keQ.c2ln"),
            runtime_state: RuntimeState::default(),
        }
    }

    fn seed(root: &Path, record: &WorkspaceRecord) -> PathBuf {
        let dir = root.join("var/lib/sam/workspaces").join(&record.id);
        std::fs::create_dir_all(dir.join(REPO_DIR)).unwrap();
        write_record(&dir, record).unwrap();
        dir
    }

    #[test]
    fn records_are_written_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = seed(root.path(), &record(ID, WorkspaceStatus::Running));
        let mode = std::fs::metadata(dir.join(RECORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let slots = read_all(&root.path().join("var/lib/sam/workspaces"));
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[ID].record().view().status, WorkspaceStatus::Running);
    }

    #[test]
    fn stray_and_unreadable_entries_are_ignored() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("var/lib/sam/workspaces");
        seed(root.path(), &record(ID, WorkspaceStatus::Stopped));
        // Lower case name, garbage, a record naming another id, a file.
        std::fs::create_dir_all(base.join(ID.to_ascii_lowercase())).unwrap();
        let garbage = base.join("01JAB3C4D5E6F7G8H9J0K1M2N4");
        std::fs::create_dir_all(&garbage).unwrap();
        std::fs::write(garbage.join(RECORD_FILE), "{").unwrap();
        let other = base.join("01JAB3C4D5E6F7G8H9J0K1M2N5");
        std::fs::create_dir_all(&other).unwrap();
        write_record(&other, &record(ID, WorkspaceStatus::Running)).unwrap();
        std::fs::write(base.join("notes.txt"), "hi").unwrap();
        let slots = read_all(&base);
        assert_eq!(slots.keys().collect::<Vec<_>>(), [ID]);
    }

    #[tokio::test]
    async fn a_restarted_agent_fails_half_created_and_finishes_half_deleted_workspaces() {
        let root = tempfile::tempdir().unwrap();
        let creating = "01JAB3C4D5E6F7G8H9J0K1M2N6";
        let deleting = "01JAB3C4D5E6F7G8H9J0K1M2N7";
        seed(root.path(), &record(ID, WorkspaceStatus::Running));
        seed(root.path(), &record(creating, WorkspaceStatus::Creating));
        let deleting_dir = seed(root.path(), &record(deleting, WorkspaceStatus::Deleting));

        let registry = Workspaces::new(config(root.path()), default_client());
        assert_eq!(registry.load().await, 3);
        let failed = registry.view(creating).await.unwrap();
        assert_eq!(failed.status, WorkspaceStatus::Error);
        assert!(failed.error.unwrap().contains("restarted"));
        // And on disk.
        let on_disk: WorkspaceRecord = serde_json::from_slice(
            &std::fs::read(registry.root().join(creating).join(RECORD_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk.status, WorkspaceStatus::Error);

        for _ in 0..200 {
            if !deleting_dir.exists() && registry.get(deleting).await.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!deleting_dir.exists());
        assert!(registry.get(deleting).await.is_none());
        assert_eq!(
            registry.view(ID).await.unwrap().status,
            WorkspaceStatus::Running
        );
        // Ids in any case find the workspace; malformed ones nothing.
        assert!(registry.get(&ID.to_ascii_lowercase()).await.is_some());
        assert!(registry.get("..").await.is_none());
    }

    #[tokio::test]
    async fn shell_commands_are_only_for_running_workspaces() {
        let root = tempfile::tempdir().unwrap();
        seed(root.path(), &record(ID, WorkspaceStatus::Stopped));
        let registry = Workspaces::new(config(root.path()), default_client());
        assert!(matches!(
            registry.shell_command(ID).await,
            Err(WorkspaceError::NotRunning)
        ));
        assert!(matches!(
            registry.shell_command("01JAB3C4D5E6F7G8H9J0K1M2N9").await,
            Err(WorkspaceError::NotFound)
        ));
        registry.restart(ID).await.unwrap();
        let spec = registry.shell_command(ID).await.unwrap();
        assert_eq!(spec.cwd, registry.root().join(ID).join(REPO_DIR));
        let mut watch = registry.watch(ID).await.unwrap();
        assert_eq!(*watch.borrow_and_update(), WorkspaceStatus::Running);
        registry.stop(ID).await.unwrap();
        assert_eq!(*watch.borrow_and_update(), WorkspaceStatus::Stopped);
        registry.delete(ID).await.unwrap();
        // Watchers see `deleting`, then the channel closes.
        while watch.changed().await.is_ok() {}
        assert_eq!(*watch.borrow(), WorkspaceStatus::Deleting);
    }

    #[test]
    fn credentials_go_only_to_the_clone_url_s_host() {
        assert!(host_matches(
            "https://github.com/a/b.git",
            "https",
            "github.com"
        ));
        assert!(host_matches(
            "https://GitHub.com/a/b.git",
            "https",
            "github.com"
        ));
        assert!(host_matches(
            "http://127.0.0.1:8080/a.git",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(host_matches(
            "https://github.com:443/a/b.git",
            "https",
            "github.com"
        ));
        assert!(!host_matches(
            "https://github.com/a/b.git",
            "http",
            "github.com"
        ));
        assert!(!host_matches(
            "https://github.com/a/b.git",
            "https",
            "evil.example"
        ));
        assert!(!host_matches(
            "https://github.com/a/b.git",
            "https",
            "github.com:8443"
        ));
        assert!(!host_matches(
            "http://127.0.0.1:8080/a.git",
            "http",
            "127.0.0.1"
        ));
        assert!(!host_matches("not a url", "https", "github.com"));
    }

    #[test]
    fn long_roots_put_the_socket_in_the_temporary_directory() {
        let short = Workspaces::new(config(Path::new("/tmp/x")), default_client());
        assert_eq!(
            short.socket_location(),
            Path::new("/tmp/x/run/sam/git-credential.sock")
        );
        let long_root = PathBuf::from(format!("/tmp/{}", "d".repeat(120)));
        let long = Workspaces::new(config(&long_root), default_client());
        let path = long.socket_location();
        assert!(
            path.as_os_str().len() <= MAX_SOCKET_PATH,
            "{}",
            path.display()
        );
        assert!(path.starts_with(std::env::temp_dir()));
        // Stable for one root, different for another.
        assert_eq!(
            path,
            Workspaces::new(config(&long_root), default_client()).socket_location()
        );
        let other = PathBuf::from(format!("/tmp/{}", "e".repeat(120)));
        assert_ne!(
            path,
            Workspaces::new(config(&other), default_client()).socket_location()
        );
    }
}
