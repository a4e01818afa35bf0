//! What runs a workspace once its checkout exists: the [`WorkspaceRuntime`]
//! trait and the [`CommandSpec`] that tells other parts of the agent
//! (terminals) how to start a process inside a workspace.

use std::ffi::OsString;
use std::path::PathBuf;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::model::RuntimeKind;

/// The workspace a runtime acts on.
#[derive(Debug, Clone)]
pub struct RuntimeTarget {
    /// Normalised (upper-case) workspace id.
    pub id: String,
    /// `<fs_root>/var/lib/sam/workspaces/<ID>`: everything of the workspace
    /// lives in here.
    pub dir: PathBuf,
    /// `<dir>/repo`, the checkout.
    pub repo_dir: PathBuf,
    /// `.devcontainer/<name>/devcontainer.json` to use, for dev containers.
    pub devcontainer_config: Option<String>,
    /// What the runtime reported when it last started.
    pub state: RuntimeState,
}

/// What a runtime remembers about a started workspace (persisted in
/// `workspace.json`). Empty for the host runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_workspace_folder: Option<String>,
}

/// A process to start for a workspace: run `program` with `args` in `cwd`
/// with exactly the environment `env` (start from an empty environment:
/// `env_clear()`, then add `env`). Nothing in it is secret.
///
/// The host runtime's shell is the workspace's login shell in the checkout;
/// a dev container's is `docker exec -it … <container> <shell>`, so the
/// spawner needs a PTY either way (portable-pty: `CommandBuilder::new(program)`,
/// `.args(args)`, `.cwd(cwd)`, `.env_clear()`, then each `.env(k, v)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The directory to start in (on the node; for a dev container this is
    /// the checkout on the host, the container's own directory is in `args`).
    pub cwd: PathBuf,
    /// The complete environment.
    pub env: Vec<(OsString, OsString)>,
}

impl CommandSpec {
    /// A `std::process::Command` for this spec (environment cleared first).
    pub fn to_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// The same as a `tokio::process::Command`.
    pub fn to_tokio_command(&self) -> tokio::process::Command {
        tokio::process::Command::from(self.to_command())
    }

    /// The value of `name` in [`CommandSpec::env`].
    pub fn env_var(&self, name: &str) -> Option<&OsString> {
        self.env
            .iter()
            .find(|(k, _)| k.as_os_str() == name)
            .map(|(_, v)| v)
    }
}

/// Why a runtime operation failed. Messages are safe to show (no secrets:
/// runtimes never handle any).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed: {detail}")]
    Failed { program: String, detail: String },
    #[error("{program} took too long")]
    TimedOut { program: String },
    #[error("{0}")]
    Config(String),
    #[error("the workspace has not been started")]
    NotStarted,
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Spawn { .. } => "runtime_unavailable",
            Self::Failed { .. } | Self::TimedOut { .. } | Self::Io { .. } => "runtime_failed",
            Self::Config(_) => "runtime_config_invalid",
            Self::NotStarted => "workspace_not_running",
        }
    }
}

/// A way of running workspaces. One instance serves every workspace of its
/// kind; all state a workspace needs comes in the [`RuntimeTarget`], and what
/// must survive a restart of the agent comes back as [`RuntimeState`] (the
/// registry stores it).
///
/// The registry calls these with the workspace's operation lock held, so a
/// runtime never sees two operations on one workspace at once. Every
/// operation is idempotent: stopping a stopped workspace, or destroying one
/// that never started, succeeds.
///
/// Terminals do not call the runtime directly: they ask the registry
/// (`state.workspaces.shell_command(&id).await`), which checks that the
/// workspace exists and is running and then calls
/// [`WorkspaceRuntime::shell_command`] with the stored state.
pub trait WorkspaceRuntime: Send + Sync {
    fn kind(&self) -> RuntimeKind;

    /// Prepares and starts the workspace whose checkout exists at
    /// `ws.repo_dir` (host: nothing to run; dev container: `devcontainer up`).
    fn start<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>>;

    /// Stops everything running in the workspace; the checkout stays.
    fn stop<'a>(&'a self, ws: &'a RuntimeTarget) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Stop, then start.
    fn restart<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>> {
        Box::pin(async move {
            self.stop(ws).await?;
            self.start(ws).await
        })
    }

    /// Recreates the environment from its definition (a dev container is
    /// rebuilt from its configuration); the checkout stays.
    fn rebuild<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>>;

    /// Removes everything the runtime created for the workspace outside its
    /// directory (containers). The registry then removes the directory.
    fn destroy<'a>(&'a self, ws: &'a RuntimeTarget) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// How to start an interactive login shell in the running workspace,
    /// starting in the checkout (host) or the container's workspace folder.
    fn shell_command(&self, ws: &RuntimeTarget) -> Result<CommandSpec, RuntimeError>;

    /// How to run `argv` (program and arguments, not parsed by any shell) in
    /// the running workspace, in the same place and environment as the
    /// shell. `tty`: whether the process will get a terminal.
    fn exec_command(
        &self,
        ws: &RuntimeTarget,
        argv: &[OsString],
        tty: bool,
    ) -> Result<CommandSpec, RuntimeError>;
}

/// Kills a child's whole process group (the child was started as its
/// leader, `process_group(0)`) when dropped, unless disarmed: a cancelled
/// or timed-out `git clone` takes its `git-remote-http` and credential
/// helper with it.
pub(crate) struct GroupKiller(Option<rustix::process::Pid>);

impl GroupKiller {
    pub(crate) fn new(child: &tokio::process::Child) -> Self {
        Self(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }

    /// The child finished: nothing to kill.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Gone already is fine.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Output of a finished helper process (`devcontainer`, `docker`), for error
/// messages: the last few non-empty lines of stderr (or stdout).
pub(crate) fn tail_lines(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_specs_become_commands_with_only_their_environment() {
        let spec = CommandSpec {
            program: PathBuf::from("/usr/bin/env"),
            args: vec![],
            cwd: PathBuf::from("/"),
            env: vec![("ONLY".into(), "this".into())],
        };
        let output = spec.to_command().output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "ONLY=this\n");
        assert_eq!(spec.env_var("ONLY").unwrap(), "this");
        assert_eq!(spec.env_var("PATH"), None);
    }

    #[test]
    fn tails_keep_the_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\n b \nc\n", 2), "b; c");
        assert_eq!(tail_lines("", 3), "");
    }
}
