//! The host runtime: a workspace's processes run on the node itself, as the
//! agent's user, in the checkout. There is no environment to start; stopping
//! a workspace ends every process of the agent's user whose working
//! directory is inside the workspace's directory.
//!
//! Isolation between host workspaces is that of one Unix user: a process
//! that changes its working directory out of the checkout escapes `stop`
//! (it is still ended when the node goes), and workspaces on one node can
//! read each other's files. Use the devcontainer runtime for more.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use rustix::process::{Pid, Signal, getpid, getuid, kill_process};

use super::model::RuntimeKind;
use super::runtime::{CommandSpec, RuntimeError, RuntimeState, RuntimeTarget, WorkspaceRuntime};

/// How long processes get to exit after SIGTERM before they get SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);
/// How long SIGKILLed processes get to disappear.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Used when the agent has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Used when the agent has no `LANG`.
const DEFAULT_LANG: &str = "C.UTF-8";
/// Variables a workspace process inherits from the agent, if set.
const INHERITED: &[&str] = &["PATH", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"];

#[derive(Debug, Clone)]
pub struct HostRuntime {
    /// The login shell: the configured one if it is an executable file,
    /// else `/bin/bash`, else `/bin/sh`.
    shell: PathBuf,
    home: PathBuf,
    /// Variables passed on from the agent's environment.
    inherited: Vec<(OsString, OsString)>,
    /// Where processes are found (the real `/proc`).
    proc_dir: PathBuf,
}

impl HostRuntime {
    /// `shell` and `home` as configured (`SHELL`, `HOME`); `inherited` are
    /// the variables a workspace process gets from the agent.
    pub fn new(shell: Option<&Path>, home: &Path, inherited: Vec<(OsString, OsString)>) -> Self {
        let shell = shell
            .filter(|s| s.is_absolute() && is_executable(s))
            .map(Path::to_path_buf)
            .or_else(|| {
                ["/bin/bash", "/bin/sh"]
                    .into_iter()
                    .map(PathBuf::from)
                    .find(|s| is_executable(s))
            })
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        Self {
            shell,
            home: home.to_path_buf(),
            inherited,
            proc_dir: PathBuf::from(crate::metrics::PROC_DIR),
        }
    }

    /// The variables of [`INHERITED`] from this process's environment.
    pub fn inherited_from_process() -> Vec<(OsString, OsString)> {
        INHERITED
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
            .collect()
    }

    pub fn shell(&self) -> &Path {
        &self.shell
    }

    fn environment(&self, ws: &RuntimeTarget) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = self.inherited.clone();
        for (name, default) in [("PATH", DEFAULT_PATH), ("LANG", DEFAULT_LANG)] {
            if !env.iter().any(|(k, _)| k == name) {
                env.push((name.into(), default.into()));
            }
        }
        env.extend([
            ("HOME".into(), self.home.clone().into_os_string()),
            ("SHELL".into(), self.shell.clone().into_os_string()),
            ("TERM".into(), "xterm-256color".into()),
            ("SAM_WORKSPACE_ID".into(), ws.id.clone().into()),
            (
                "SAM_WORKSPACE_DIR".into(),
                ws.repo_dir.clone().into_os_string(),
            ),
        ]);
        env
    }

    async fn stop_processes(&self, ws: &RuntimeTarget) -> Result<(), RuntimeError> {
        let Some(dir) = canonical(&ws.dir) else {
            return Ok(()); // No directory, no process in it.
        };
        let first = processes_in(&self.proc_dir, &dir);
        if first.is_empty() {
            return Ok(());
        }
        tracing::info!(workspace = %ws.id, processes = first.len(), "stopping workspace processes");
        signal_all(&first, Signal::TERM);
        let term_deadline = tokio::time::Instant::now() + TERM_GRACE;
        let kill_deadline = term_deadline + KILL_WAIT;
        let mut killing = false;
        loop {
            let left = processes_in(&self.proc_dir, &dir);
            if left.is_empty() {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= kill_deadline {
                return Err(RuntimeError::Failed {
                    program: "stop".to_owned(),
                    detail: format!("{} processes are still running", left.len()),
                });
            }
            if now >= term_deadline {
                if !killing {
                    tracing::warn!(workspace = %ws.id, processes = left.len(), "processes ignored SIGTERM; killing them");
                    killing = true;
                }
                // Again on every round: a dying shell may have started another child.
                signal_all(&left, Signal::KILL);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl WorkspaceRuntime for HostRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Host
    }

    fn start<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>> {
        Box::pin(async move {
            if ws.repo_dir.is_dir() {
                Ok(RuntimeState::default())
            } else {
                Err(RuntimeError::Config(
                    "the workspace has no checkout".to_owned(),
                ))
            }
        })
    }

    fn stop<'a>(&'a self, ws: &'a RuntimeTarget) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_processes(ws))
    }

    fn rebuild<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>> {
        // Nothing is built on the host: a rebuild is a restart.
        self.restart(ws)
    }

    fn destroy<'a>(&'a self, ws: &'a RuntimeTarget) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_processes(ws))
    }

    fn shell_command(&self, ws: &RuntimeTarget) -> Result<CommandSpec, RuntimeError> {
        Ok(CommandSpec {
            program: self.shell.clone(),
            args: vec!["-l".into()],
            cwd: ws.repo_dir.clone(),
            env: self.environment(ws),
        })
    }

    fn exec_command(
        &self,
        ws: &RuntimeTarget,
        argv: &[OsString],
        _tty: bool,
    ) -> Result<CommandSpec, RuntimeError> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| RuntimeError::Config("no program to run".to_owned()))?;
        Ok(CommandSpec {
            program: PathBuf::from(program),
            args: rest.to_vec(),
            cwd: ws.repo_dir.clone(),
            env: self.environment(ws),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn canonical(dir: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(dir).ok()
}

/// Processes of the agent's user (other than the agent) whose working
/// directory is `dir` (canonical) or below it.
pub(crate) fn processes_in(proc_dir: &Path, dir: &Path) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let me = getpid();
    let uid = getuid().as_raw();
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let pid = Pid::from_raw(pid)?;
            if pid == me || entry.metadata().ok()?.uid() != uid {
                return None;
            }
            // Unreadable (exited, a zombie, not ours): not a process to stop.
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            cwd.starts_with(dir).then_some(pid)
        })
        .collect()
}

fn signal_all(pids: &[Pid], signal: Signal) {
    for pid in pids {
        // It may have exited meanwhile; nothing to do then.
        let _ = kill_process(*pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    fn target(dir: &Path) -> RuntimeTarget {
        RuntimeTarget {
            id: "01JAB3C4D5E6F7G8H9J0K1M2N3".to_owned(),
            dir: dir.to_path_buf(),
            repo_dir: dir.join("repo"),
            devcontainer_config: None,
            state: RuntimeState::default(),
        }
    }

    fn runtime() -> HostRuntime {
        HostRuntime::new(
            None,
            Path::new("/home/dev"),
            vec![("PATH".into(), "/usr/bin:/bin".into())],
        )
    }

    #[test]
    fn the_shell_is_a_login_shell_in_the_checkout_with_a_clean_environment() {
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        let spec = runtime().shell_command(&ws).unwrap();
        assert!(spec.program.ends_with("bash") || spec.program.ends_with("sh"));
        assert_eq!(spec.args, vec![OsString::from("-l")]);
        assert_eq!(spec.cwd, ws.repo_dir);
        assert_eq!(spec.env_var("HOME").unwrap(), "/home/dev");
        assert_eq!(spec.env_var("PATH").unwrap(), "/usr/bin:/bin");
        assert_eq!(spec.env_var("SAM_WORKSPACE_ID").unwrap(), ws.id.as_str());
        assert_eq!(spec.env_var("TERM").unwrap(), "xterm-256color");
        // Nothing of the agent's own environment beyond what was inherited.
        assert!(
            spec.env
                .iter()
                .all(|(k, _)| !k.to_string_lossy().starts_with("SAM_")
                    || k.to_string_lossy().starts_with("SAM_WORKSPACE_"))
        );
    }

    #[test]
    fn a_configured_shell_is_used_only_if_executable() {
        let rt = HostRuntime::new(Some(Path::new("/bin/sh")), Path::new("/"), vec![]);
        assert_eq!(rt.shell(), Path::new("/bin/sh"));
        let rt = HostRuntime::new(Some(Path::new("/nonexistent/zsh")), Path::new("/"), vec![]);
        assert_ne!(rt.shell(), Path::new("/nonexistent/zsh"));
        let rt = HostRuntime::new(Some(Path::new("relative/sh")), Path::new("/"), vec![]);
        assert_ne!(rt.shell(), Path::new("relative/sh"));
        // A default PATH and LANG are supplied when the agent has none.
        let dir = tempfile::tempdir().unwrap();
        let spec = rt.shell_command(&target(dir.path())).unwrap();
        assert_eq!(spec.env_var("PATH").unwrap(), DEFAULT_PATH);
        assert_eq!(spec.env_var("LANG").unwrap(), DEFAULT_LANG);
    }

    #[test]
    fn exec_runs_the_program_in_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        std::fs::create_dir(&ws.repo_dir).unwrap();
        let spec = runtime().exec_command(&ws, &["pwd".into()], false).unwrap();
        let out = spec.to_command().output().unwrap();
        let printed = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert_eq!(
            std::fs::canonicalize(printed).unwrap(),
            std::fs::canonicalize(&ws.repo_dir).unwrap()
        );
        assert!(runtime().exec_command(&ws, &[], false).is_err());
    }

    #[tokio::test]
    async fn start_needs_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        assert!(matches!(
            runtime().start(&ws).await,
            Err(RuntimeError::Config(_))
        ));
        std::fs::create_dir(&ws.repo_dir).unwrap();
        assert_eq!(runtime().start(&ws).await.unwrap(), RuntimeState::default());
    }

    #[tokio::test]
    async fn stop_ends_the_processes_running_in_the_workspace_only() {
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        std::fs::create_dir_all(ws.repo_dir.join("sub")).unwrap();
        let other = tempfile::tempdir().unwrap();
        let spawn = |cwd: &Path, script: &str| {
            std::process::Command::new("/bin/sh")
                .args(["-c", script])
                .current_dir(cwd)
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut inside = spawn(&ws.repo_dir, "exec sleep 300");
        let mut deeper = spawn(&ws.repo_dir.join("sub"), "exec sleep 300");
        // Ignores SIGTERM: needs the SIGKILL after the grace period.
        let mut stubborn = spawn(&ws.repo_dir, "trap '' TERM; while :; do sleep 1; done");
        let mut outside = spawn(other.path(), "exec sleep 300");
        let dir_c = canonical(&ws.dir).unwrap();
        // Wait until all three are visible with their working directories.
        for _ in 0..100 {
            if processes_in(Path::new("/proc"), &dir_c).len() >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        runtime().stop(&ws).await.unwrap();
        for child in [&mut inside, &mut deeper, &mut stubborn] {
            let status = child.wait().unwrap();
            assert!(!status.success(), "{status:?}");
        }
        assert_eq!(
            outside.try_wait().unwrap(),
            None,
            "a process outside was stopped"
        );
        outside.kill().unwrap();
        outside.wait().unwrap();
        // Stopping again (nothing running) succeeds; so does a missing dir.
        runtime().stop(&ws).await.unwrap();
        runtime()
            .stop(&target(&dir.path().join("gone")))
            .await
            .unwrap();
    }
}
