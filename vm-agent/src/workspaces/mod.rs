//! Workspaces: a project's repository checked out on this node, run by a
//! [`WorkspaceRuntime`] (`host` or `devcontainer`), managed by the control
//! plane through `/workspaces` (see `docs/workspaces.md` and [`routes`]).
//!
//! - [`Workspaces`] (the registry, `AppState::workspaces`) knows every
//!   workspace, persists each in its `workspace.json`, serialises operations
//!   per workspace, and creates workspaces in the background: clone (only
//!   through the agent's credential helper), branch, git identity, runtime
//!   start, each step reported to the control plane's boot log, then ready
//!   or provisioning-failed.
//! - [`HostRuntime`] and [`DevcontainerRuntime`] implement
//!   [`WorkspaceRuntime`].
//! - [`git_credential_main`] is the `vm-agent git-credential` subcommand git
//!   runs as its credential helper; it asks the running agent over a Unix
//!   socket.
//!
//! Other parts of the agent use a workspace like this:
//!
//! ```no_run
//! # async fn demo(state: sam_vm_agent::AppState, id: &str) -> Result<(), sam_vm_agent::WorkspaceError> {
//! // Its directory and checkout (files, git views):
//! let info = state.workspaces.get(id).await.ok_or(sam_vm_agent::WorkspaceError::NotFound)?;
//! let _checkout = info.repo_dir;
//! // A terminal's shell (409 `workspace_not_running` unless running):
//! let spec = state.workspaces.shell_command(id).await?;
//! let _child = spec.to_command(); // or program/args/cwd/env into a PTY builder
//! // Follow its status (the management routes themselves end a workspace's
//! // terminals when it stops and its cookie sessions when it is deleted):
//! let _status = state.workspaces.watch(id).await;
//! # Ok(()) }
//! ```

mod callbacks;
mod credentials;
mod devcontainer;
mod git;
mod host;
mod model;
mod registry;
mod routes;
mod runtime;
mod scrub;
mod validate;

pub use credentials::{GIT_USERNAME, git_credential_main};
pub use devcontainer::{
    ConfigChoice, DEFAULT_CONFIG_FILE, DEFAULT_IMAGE, DevcontainerRuntime, ID_LABEL, UpResult,
    parse_up_output,
};
pub use host::HostRuntime;
pub(crate) use host::processes_in;
pub use model::{
    CreateWorkspace, GitIdentity, RepositorySpec, RuntimeKind, Secret, WorkspaceStatus,
    WorkspaceView,
};
pub(crate) use registry::{PublishRequest, Published, default_client};
pub use registry::{
    RECORD_FILE, REPO_DIR, WORKSPACES_DIR, WorkspaceError, WorkspaceInfo, Workspaces,
};
pub(crate) use routes::routes;
pub use runtime::{CommandSpec, RuntimeError, RuntimeState, RuntimeTarget, WorkspaceRuntime};
