//! The dev container runtime: the checkout is opened with the Dev Container
//! CLI (`devcontainer up`), which builds or pulls the image, creates the
//! container with the checkout mounted and runs the lifecycle commands.
//! Containers are found again by their label `sam.workspace=<ID>`; processes
//! run in them with `docker exec`.
//!
//! The configuration is `.devcontainer/<name>/devcontainer.json` when the
//! workspace names one, else whatever the repository has
//! (`.devcontainer/devcontainer.json`, `.devcontainer.json`), else a default
//! one written next to the checkout (`image: mcr.microsoft.com/devcontainers/base:ubuntu`).
//!
//! A dev container configuration is code from the repository: its
//! `initializeCommand` runs on the node, as the agent's user.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::model::RuntimeKind;
use super::runtime::{
    CommandSpec, GroupKiller, RuntimeError, RuntimeState, RuntimeTarget, WorkspaceRuntime,
    tail_lines,
};

/// The image of the default configuration.
pub const DEFAULT_IMAGE: &str = "mcr.microsoft.com/devcontainers/base:ubuntu";
/// The container label naming the workspace (`--id-label`).
pub const ID_LABEL: &str = "sam.workspace";
/// The default configuration's file, in the workspace directory.
pub const DEFAULT_CONFIG_FILE: &str = "devcontainer.default.json";
/// Building an image can take a while; hanging forever is not an option.
const UP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// What the CLIs get from the agent's environment (`node` and `docker` must
/// be on `PATH`; the rest selects the Docker engine).
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "XDG_RUNTIME_DIR",
];
/// Starts a login shell in the container: bash if it has one.
const SHELL_SCRIPT: &str =
    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi";

#[derive(Debug, Clone)]
pub struct DevcontainerRuntime {
    devcontainer: PathBuf,
    docker: PathBuf,
    image: String,
    /// The environment of `devcontainer` and `docker` processes.
    env: Vec<(OsString, OsString)>,
}

/// Which configuration `devcontainer up` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChoice {
    /// `--config <repo>/.devcontainer/<name>/devcontainer.json`.
    Named(PathBuf),
    /// The repository's own; the CLI finds it.
    Repository,
    /// `--override-config <dir>/devcontainer.default.json` (written first).
    Default(PathBuf),
}

/// What a successful `devcontainer up` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpResult {
    pub container_id: String,
    pub remote_user: Option<String>,
    pub remote_workspace_folder: Option<String>,
}

impl From<UpResult> for RuntimeState {
    fn from(up: UpResult) -> Self {
        RuntimeState {
            container_id: Some(up.container_id),
            remote_user: up.remote_user,
            remote_workspace_folder: up.remote_workspace_folder,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpOutput {
    outcome: String,
    container_id: Option<String>,
    remote_user: Option<String>,
    remote_workspace_folder: Option<String>,
    message: Option<String>,
    description: Option<String>,
}

/// Reads the result of `devcontainer up` from its stdout: the last line
/// that is a JSON object with an `outcome` (log lines may come before it).
pub fn parse_up_output(stdout: &str) -> Result<UpResult, RuntimeError> {
    let failed = |detail: String| RuntimeError::Failed {
        program: "devcontainer up".to_owned(),
        detail,
    };
    let output = stdout
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<UpOutput>(l).ok())
        .ok_or_else(|| failed("no result on its output".to_owned()))?;
    if output.outcome != "success" {
        let detail = [output.message, output.description]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        return Err(failed(if detail.is_empty() {
            format!("outcome {}", output.outcome)
        } else {
            detail
        }));
    }
    let container_id = output
        .container_id
        .filter(|id| is_container_id(id))
        .ok_or_else(|| failed("no valid containerId in its result".to_owned()))?;
    let remote_user = output
        .remote_user
        .filter(|u| !u.is_empty() && !u.starts_with('-') && !u.chars().any(char::is_control));
    let remote_workspace_folder = output
        .remote_workspace_folder
        .filter(|f| f.starts_with('/') && !f.chars().any(char::is_control));
    Ok(UpResult {
        container_id,
        remote_user,
        remote_workspace_folder,
    })
}

/// A Docker container id (full or short, lower-case hex).
fn is_container_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

impl DevcontainerRuntime {
    /// `devcontainer` and `docker` as given (paths or names looked up on
    /// `PATH`), running with `env`.
    pub fn new(
        devcontainer: impl Into<PathBuf>,
        docker: impl Into<PathBuf>,
        env: Vec<(OsString, OsString)>,
    ) -> Self {
        Self {
            devcontainer: devcontainer.into(),
            docker: docker.into(),
            image: DEFAULT_IMAGE.to_owned(),
            env,
        }
    }

    /// `devcontainer` and `docker` from `PATH`, with the Docker-related
    /// variables of this process's environment.
    pub fn from_process() -> Self {
        let env = INHERITED
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
            .collect();
        Self::new("devcontainer", "docker", env)
    }

    /// Uses `image` for repositories without a configuration.
    #[must_use]
    pub fn with_default_image(mut self, image: &str) -> Self {
        image.clone_into(&mut self.image);
        self
    }

    /// Decides which configuration to use for `ws`.
    pub fn config_choice(&self, ws: &RuntimeTarget) -> Result<ConfigChoice, RuntimeError> {
        if let Some(name) = &ws.devcontainer_config {
            let path = ws
                .repo_dir
                .join(".devcontainer")
                .join(name)
                .join("devcontainer.json");
            // It must be a file inside the checkout, not a link out of it.
            let inside = match (
                std::fs::canonicalize(&path),
                std::fs::canonicalize(&ws.repo_dir),
            ) {
                (Ok(file), Ok(repo)) => file.starts_with(repo) && file.is_file(),
                _ => false,
            };
            return if inside {
                Ok(ConfigChoice::Named(path))
            } else {
                Err(RuntimeError::Config(format!(
                    "the repository has no .devcontainer/{name}/devcontainer.json"
                )))
            };
        }
        let has_own = [".devcontainer/devcontainer.json", ".devcontainer.json"]
            .iter()
            .any(|p| ws.repo_dir.join(p).is_file());
        Ok(if has_own {
            ConfigChoice::Repository
        } else {
            ConfigChoice::Default(ws.dir.join(DEFAULT_CONFIG_FILE))
        })
    }

    /// The default configuration's JSON.
    pub fn default_config(&self) -> String {
        serde_json::json!({ "image": self.image }).to_string()
    }

    /// The `devcontainer` arguments that bring `ws` up.
    pub fn up_args(
        &self,
        ws: &RuntimeTarget,
        choice: &ConfigChoice,
        remove_existing: bool,
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "up".into(),
            "--workspace-folder".into(),
            ws.repo_dir.clone().into_os_string(),
            "--id-label".into(),
            label(ws).into(),
        ];
        match choice {
            ConfigChoice::Named(path) => {
                args.extend(["--config".into(), path.clone().into_os_string()]);
            }
            ConfigChoice::Default(path) => {
                args.extend(["--override-config".into(), path.clone().into_os_string()]);
            }
            ConfigChoice::Repository => {}
        }
        if remove_existing {
            args.push("--remove-existing-container".into());
        }
        args
    }

    /// The `docker` arguments that run `argv` in the workspace's container.
    pub fn exec_args(
        &self,
        ws: &RuntimeTarget,
        argv: &[OsString],
        tty: bool,
    ) -> Result<Vec<OsString>, RuntimeError> {
        let container = ws
            .state
            .container_id
            .as_deref()
            .ok_or(RuntimeError::NotStarted)?;
        if argv.is_empty() {
            return Err(RuntimeError::Config("no program to run".to_owned()));
        }
        let mut docker_args: Vec<OsString> = vec!["exec".into(), "-i".into()];
        if tty {
            docker_args.push("-t".into());
        }
        if let Some(user) = &ws.state.remote_user {
            docker_args.extend(["-u".into(), user.into()]);
        }
        if let Some(folder) = &ws.state.remote_workspace_folder {
            docker_args.extend(["-w".into(), folder.into()]);
        }
        if tty {
            docker_args.extend(["-e".into(), "TERM=xterm-256color".into()]);
        }
        docker_args.extend(["-e".into(), format!("SAM_WORKSPACE_ID={}", ws.id).into()]);
        docker_args.push(container.into());
        docker_args.extend(argv.iter().cloned());
        Ok(docker_args)
    }

    fn spec(&self, ws: &RuntimeTarget, args: Vec<OsString>) -> CommandSpec {
        CommandSpec {
            program: self.docker.clone(),
            args,
            cwd: ws.repo_dir.clone(),
            env: self.env.clone(),
        }
    }

    /// Runs a CLI to completion; its stdout on success.
    async fn run(
        &self,
        program: &Path,
        args: &[OsString],
        cwd: &Path,
        timeout: Duration,
    ) -> Result<String, RuntimeError> {
        let name = program.display().to_string();
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                program: name.clone(),
                source,
            })?;
        let group = GroupKiller::new(&child);
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| RuntimeError::TimedOut {
                program: name.clone(),
            })?
            .map_err(|source| RuntimeError::Io {
                context: format!("{name} did not finish"),
                source,
            })?;
        group.disarm();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            // `devcontainer up` reports its own failure as JSON on stdout.
            if let Err(err @ RuntimeError::Failed { .. }) = parse_up_output(&stdout)
                && program == self.devcontainer
                && stdout.contains("\"outcome\"")
            {
                return Err(err);
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let detail = tail_lines(
                if stderr.trim().is_empty() {
                    &stdout
                } else {
                    &stderr
                },
                3,
            );
            Err(RuntimeError::Failed {
                program: name,
                detail: if detail.is_empty() {
                    format!("exit status {}", output.status)
                } else {
                    detail
                },
            })
        }
    }

    async fn up(
        &self,
        ws: &RuntimeTarget,
        remove_existing: bool,
    ) -> Result<RuntimeState, RuntimeError> {
        let choice = self.config_choice(ws)?;
        if let ConfigChoice::Default(path) = &choice {
            std::fs::write(path, self.default_config()).map_err(|source| RuntimeError::Io {
                context: "cannot write the default dev container configuration".to_owned(),
                source,
            })?;
        }
        let args = self.up_args(ws, &choice, remove_existing);
        let stdout = self
            .run(&self.devcontainer, &args, &ws.dir, UP_TIMEOUT)
            .await?;
        Ok(parse_up_output(&stdout)?.into())
    }

    /// Ids of the workspace's containers (`all`: stopped ones too).
    async fn containers(&self, ws: &RuntimeTarget, all: bool) -> Result<Vec<String>, RuntimeError> {
        let mut args: Vec<OsString> = vec!["ps".into(), "-q".into(), "--no-trunc".into()];
        if all {
            args.push("-a".into());
        }
        args.extend(["--filter".into(), format!("label={}", label(ws)).into()]);
        let cwd = existing_dir(ws);
        let stdout = self.run(&self.docker, &args, cwd, DOCKER_TIMEOUT).await?;
        Ok(stdout
            .lines()
            .map(str::trim)
            .filter(|id| is_container_id(id))
            .map(str::to_owned)
            .collect())
    }

    async fn docker_on_all(
        &self,
        ws: &RuntimeTarget,
        verb: &[&str],
        all: bool,
    ) -> Result<(), RuntimeError> {
        let ids = self.containers(ws, all).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let args: Vec<OsString> = verb
            .iter()
            .map(OsString::from)
            .chain(ids.into_iter().map(OsString::from))
            .collect();
        self.run(&self.docker, &args, existing_dir(ws), DOCKER_TIMEOUT)
            .await
            .map(drop)
    }
}

/// `sam.workspace=<ID>`.
fn label(ws: &RuntimeTarget) -> String {
    format!("{ID_LABEL}={}", ws.id)
}

/// A directory that exists to run `docker` in (the workspace's may be gone).
fn existing_dir(ws: &RuntimeTarget) -> &Path {
    if ws.dir.is_dir() {
        &ws.dir
    } else {
        Path::new("/")
    }
}

impl WorkspaceRuntime for DevcontainerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Devcontainer
    }

    fn start<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>> {
        Box::pin(self.up(ws, false))
    }

    fn stop<'a>(&'a self, ws: &'a RuntimeTarget) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.docker_on_all(ws, &["stop"], false))
    }

    fn rebuild<'a>(
        &'a self,
        ws: &'a RuntimeTarget,
    ) -> BoxFuture<'a, Result<RuntimeState, RuntimeError>> {
        Box::pin(self.up(ws, true))
    }

    fn destroy<'a>(&'a self, ws: &'a RuntimeTarget) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.docker_on_all(ws, &["rm", "-f"], true))
    }

    fn shell_command(&self, ws: &RuntimeTarget) -> Result<CommandSpec, RuntimeError> {
        let argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), SHELL_SCRIPT.into()];
        Ok(self.spec(ws, self.exec_args(ws, &argv, true)?))
    }

    fn exec_command(
        &self,
        ws: &RuntimeTarget,
        argv: &[OsString],
        tty: bool,
    ) -> Result<CommandSpec, RuntimeError> {
        Ok(self.spec(ws, self.exec_args(ws, argv, tty)?))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const ID: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";
    const CONTAINER: &str = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn target(dir: &Path) -> RuntimeTarget {
        RuntimeTarget {
            id: ID.to_owned(),
            dir: dir.to_path_buf(),
            repo_dir: dir.join("repo"),
            devcontainer_config: None,
            state: RuntimeState::default(),
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn up_output_success_is_parsed_after_log_lines() {
        let stdout = format!(
            "[2024-01-01T00:00:00.000Z] Start: Run: docker buildx version\n\
             {{\"outcome\":\"success\",\"containerId\":\"{CONTAINER}\",\"remoteUser\":\"vscode\",\"remoteWorkspaceFolder\":\"/workspaces/repo\"}}\n"
        );
        let up = parse_up_output(&stdout).unwrap();
        assert_eq!(
            up,
            UpResult {
                container_id: CONTAINER.to_owned(),
                remote_user: Some("vscode".to_owned()),
                remote_workspace_folder: Some("/workspaces/repo".to_owned()),
            }
        );
        assert_eq!(
            RuntimeState::from(up).container_id.as_deref(),
            Some(CONTAINER)
        );
    }

    #[test]
    fn up_output_errors_carry_the_cli_message() {
        let stdout = r#"{"outcome":"error","message":"Command failed: docker pull x","description":"An error occurred setting up the container."}"#;
        match parse_up_output(stdout) {
            Err(RuntimeError::Failed { program, detail }) => {
                assert_eq!(program, "devcontainer up");
                assert_eq!(
                    detail,
                    "Command failed: docker pull x: An error occurred setting up the container."
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_up_output(r#"{"outcome":"error"}"#),
            Err(RuntimeError::Failed { detail, .. }) if detail == "outcome error"
        ));
    }

    #[test]
    fn up_output_without_a_usable_result_is_an_error() {
        for stdout in [
            "",
            "just logs\n",
            "{not json}",
            r#"{"outcome":"success"}"#,
            r#"{"outcome":"success","containerId":"--privileged"}"#,
            r#"{"outcome":"success","containerId":"ABCDEF0123456789"}"#,
        ] {
            assert!(parse_up_output(stdout).is_err(), "{stdout:?}");
        }
        // Odd user or folder values are dropped, not passed to docker exec.
        let up = parse_up_output(&format!(
            r#"{{"outcome":"success","containerId":"{CONTAINER}","remoteUser":"-u0","remoteWorkspaceFolder":"relative"}}"#
        ))
        .unwrap();
        assert_eq!(up.remote_user, None);
        assert_eq!(up.remote_workspace_folder, None);
    }

    #[test]
    fn the_configuration_is_chosen_from_the_request_then_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let mut ws = target(dir.path());
        std::fs::create_dir_all(ws.repo_dir.join(".devcontainer/python")).unwrap();
        let rt = DevcontainerRuntime::new("devcontainer", "docker", vec![]);

        // Nothing in the repository: the default, next to the checkout.
        assert_eq!(
            rt.config_choice(&ws).unwrap(),
            ConfigChoice::Default(dir.path().join(DEFAULT_CONFIG_FILE))
        );
        std::fs::write(ws.repo_dir.join(".devcontainer.json"), "{}").unwrap();
        assert_eq!(rt.config_choice(&ws).unwrap(), ConfigChoice::Repository);

        // A named one must exist inside the checkout.
        ws.devcontainer_config = Some("python".to_owned());
        assert!(matches!(
            rt.config_choice(&ws),
            Err(RuntimeError::Config(_))
        ));
        let named = ws.repo_dir.join(".devcontainer/python/devcontainer.json");
        std::fs::write(&named, "{}").unwrap();
        assert_eq!(
            rt.config_choice(&ws).unwrap(),
            ConfigChoice::Named(named.clone())
        );

        // A link out of the checkout is refused.
        let outside = dir.path().join("outside.json");
        std::fs::write(&outside, "{}").unwrap();
        std::fs::create_dir_all(ws.repo_dir.join(".devcontainer/evil")).unwrap();
        std::os::unix::fs::symlink(
            &outside,
            ws.repo_dir.join(".devcontainer/evil/devcontainer.json"),
        )
        .unwrap();
        ws.devcontainer_config = Some("evil".to_owned());
        assert!(matches!(
            rt.config_choice(&ws),
            Err(RuntimeError::Config(_))
        ));
    }

    #[test]
    fn up_command_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        let rt = DevcontainerRuntime::new("devcontainer", "docker", vec![]);
        let repo = ws.repo_dir.display().to_string();
        let base = [
            "up",
            "--workspace-folder",
            &repo,
            "--id-label",
            &format!("sam.workspace={ID}"),
        ]
        .map(str::to_owned)
        .to_vec();

        assert_eq!(
            strings(&rt.up_args(&ws, &ConfigChoice::Repository, false)),
            base
        );

        let named = ws.repo_dir.join(".devcontainer/python/devcontainer.json");
        let mut expected = base.clone();
        expected.extend(["--config".to_owned(), named.display().to_string()]);
        assert_eq!(
            strings(&rt.up_args(&ws, &ConfigChoice::Named(named), false)),
            expected
        );

        let default = dir.path().join(DEFAULT_CONFIG_FILE);
        let mut expected = base.clone();
        expected.extend([
            "--override-config".to_owned(),
            default.display().to_string(),
            "--remove-existing-container".to_owned(),
        ]);
        assert_eq!(
            strings(&rt.up_args(&ws, &ConfigChoice::Default(default), true)),
            expected
        );

        assert_eq!(
            rt.default_config(),
            r#"{"image":"mcr.microsoft.com/devcontainers/base:ubuntu"}"#
        );
        assert_eq!(
            rt.with_default_image("alpine:3").default_config(),
            r#"{"image":"alpine:3"}"#
        );
    }

    #[test]
    fn exec_and_shell_command_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut ws = target(dir.path());
        let rt = DevcontainerRuntime::new(
            "devcontainer",
            "/usr/bin/docker",
            vec![("PATH".into(), "/usr/bin".into())],
        );
        assert!(matches!(
            rt.shell_command(&ws),
            Err(RuntimeError::NotStarted)
        ));

        ws.state = RuntimeState {
            container_id: Some(CONTAINER.to_owned()),
            remote_user: Some("vscode".to_owned()),
            remote_workspace_folder: Some("/workspaces/repo".to_owned()),
        };
        let shell = rt.shell_command(&ws).unwrap();
        assert_eq!(shell.program, Path::new("/usr/bin/docker"));
        assert_eq!(shell.cwd, ws.repo_dir);
        assert_eq!(shell.env_var("PATH").unwrap(), "/usr/bin");
        assert_eq!(
            strings(&shell.args),
            [
                "exec",
                "-i",
                "-t",
                "-u",
                "vscode",
                "-w",
                "/workspaces/repo",
                "-e",
                "TERM=xterm-256color",
                "-e",
                &format!("SAM_WORKSPACE_ID={ID}"),
                CONTAINER,
                "/bin/sh",
                "-c",
                SHELL_SCRIPT,
            ]
        );

        ws.state.remote_user = None;
        ws.state.remote_workspace_folder = None;
        let exec = rt
            .exec_command(&ws, &["git".into(), "status".into()], false)
            .unwrap();
        assert_eq!(
            strings(&exec.args),
            [
                "exec",
                "-i",
                "-e",
                &format!("SAM_WORKSPACE_ID={ID}"),
                CONTAINER,
                "git",
                "status"
            ]
        );
        assert!(rt.exec_command(&ws, &[], false).is_err());
    }

    /// A stand-in for a CLI: records its arguments, prints `stdout`, exits
    /// with `code`.
    fn fake_cli(dir: &Path, name: &str, stdout: &str, code: i32) -> PathBuf {
        let path = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\ncat <<'EOF'\n{stdout}\nEOF\necho 'some progress on stderr' >&2\nexit {code}\n",
            log.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn calls(dir: &Path, name: &str) -> Vec<String> {
        std::fs::read_to_string(dir.join(format!("{name}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn start_runs_devcontainer_up_with_the_default_config_and_keeps_its_result() {
        let bin = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        std::fs::create_dir_all(&ws.repo_dir).unwrap();
        let devcontainer = fake_cli(
            bin.path(),
            "devcontainer",
            &format!(
                r#"{{"outcome":"success","containerId":"{CONTAINER}","remoteUser":"vscode","remoteWorkspaceFolder":"/workspaces/repo"}}"#
            ),
            0,
        );
        let docker = fake_cli(bin.path(), "docker", CONTAINER, 0);
        let rt = DevcontainerRuntime::new(
            &devcontainer,
            &docker,
            vec![("PATH".into(), "/usr/bin:/bin".into())],
        );

        let state = rt.start(&ws).await.unwrap();
        assert_eq!(state.container_id.as_deref(), Some(CONTAINER));
        assert_eq!(state.remote_user.as_deref(), Some("vscode"));
        let default = dir.path().join(DEFAULT_CONFIG_FILE);
        assert_eq!(
            std::fs::read_to_string(&default).unwrap(),
            rt.default_config()
        );
        assert_eq!(
            calls(bin.path(), "devcontainer"),
            [format!(
                "up --workspace-folder {} --id-label sam.workspace={ID} --override-config {}",
                ws.repo_dir.display(),
                default.display()
            )]
        );

        rt.rebuild(&ws).await.unwrap();
        assert!(calls(bin.path(), "devcontainer")[1].ends_with("--remove-existing-container"));

        rt.stop(&ws).await.unwrap();
        rt.destroy(&ws).await.unwrap();
        assert_eq!(
            calls(bin.path(), "docker"),
            [
                format!("ps -q --no-trunc --filter label=sam.workspace={ID}"),
                format!("stop {CONTAINER}"),
                format!("ps -q --no-trunc -a --filter label=sam.workspace={ID}"),
                format!("rm -f {CONTAINER}"),
            ]
        );
    }

    #[tokio::test]
    async fn failures_of_the_clis_are_reported_with_their_message() {
        let bin = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ws = target(dir.path());
        std::fs::create_dir_all(&ws.repo_dir).unwrap();
        let devcontainer = fake_cli(
            bin.path(),
            "devcontainer",
            r#"{"outcome":"error","message":"Command failed: docker run","description":"An error occurred setting up the container."}"#,
            1,
        );
        let docker = fake_cli(bin.path(), "docker", "", 1);
        let rt = DevcontainerRuntime::new(&devcontainer, &docker, vec![]);
        match rt.start(&ws).await {
            Err(RuntimeError::Failed { detail, .. }) => {
                assert!(detail.starts_with("Command failed: docker run"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        match rt.stop(&ws).await {
            Err(RuntimeError::Failed { detail, .. }) => {
                assert_eq!(detail, "some progress on stderr");
            }
            other => panic!("{other:?}"),
        }

        let missing =
            DevcontainerRuntime::new(bin.path().join("nope"), bin.path().join("nope"), vec![]);
        let err = missing.start(&ws).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Spawn { .. }), "{err:?}");
        assert_eq!(err.code(), "runtime_unavailable");
    }
}
