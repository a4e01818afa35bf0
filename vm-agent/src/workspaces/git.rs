//! Running `git` for a workspace's checkout.
//!
//! Every invocation is `git` with explicit arguments (no shell), no terminal
//! prompts, no askpass program, and exactly one credential helper: the agent
//! binary's `git-credential` subcommand, which gets a token from the running
//! agent over its socket. Credentials therefore never appear in an argument,
//! an environment variable or a file; git holds them in memory only.
//!
//! Git runs a helper through the shell (`sh -c "<helper> get"`); a helper
//! value starting with `/` is run as is, one starting with `!` is a shell
//! snippet. The value is built from the agent's path, the workspace id (a
//! ULID) and the socket path, quoted for the shell when needed.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::model::GitIdentity;
use super::runtime::{GroupKiller, tail_lines};

const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);
const CLONE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a git command failed. `detail` is git's own output and may, in
/// principle, contain anything: scrub it before it leaves the agent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    #[error("cannot run git")]
    Spawn(#[source] std::io::Error),
    #[error("git {action} failed: {detail}")]
    Failed {
        action: &'static str,
        detail: String,
    },
    #[error("git {action} took too long")]
    TimedOut { action: &'static str },
}

/// The `credential.helper` value that makes git ask the agent.
pub(crate) fn helper_value(exe: &Path, workspace_id: &str, socket: &Path) -> String {
    let exe = exe.to_string_lossy();
    let socket = shell_word(&socket.to_string_lossy());
    let rest = format!("git-credential --workspace {workspace_id} --socket {socket}");
    if exe.starts_with('/') && is_shell_safe(&exe) {
        format!("{exe} {rest}")
    } else {
        format!("!{} {rest}", shell_word(&exe))
    }
}

fn is_shell_safe(word: &str) -> bool {
    !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ',' | ':' | '@')
        })
}

/// `word` as one shell word.
fn shell_word(word: &str) -> String {
    if is_shell_safe(word) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs git for one workspace.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    /// The `credential.helper` value (see [`helper_value`]).
    helper: String,
}

impl Git {
    pub(crate) fn new(helper: String) -> Self {
        Self { helper }
    }

    async fn run(
        &self,
        action: &'static str,
        args: &[&OsStr],
        cwd: &Path,
        timeout: Duration,
    ) -> Result<String, GitError> {
        let helper = format!("credential.helper={}", self.helper);
        let child = tokio::process::Command::new("git")
            // An empty value resets the helper list: only ours is asked.
            .args([
                "-c",
                "credential.helper=",
                "-c",
                &helper,
                "-c",
                "core.askPass=",
            ])
            .args(args)
            .current_dir(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(GitError::Spawn)?;
        let group = GroupKiller::new(&child);
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| GitError::TimedOut { action })?
            .map_err(GitError::Spawn)?;
        group.disarm();
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let useful: String = stderr
            .lines()
            .filter(|l| !l.starts_with("Cloning into"))
            .collect::<Vec<_>>()
            .join("\n");
        let detail = tail_lines(&useful, 4);
        Err(GitError::Failed {
            action,
            detail: if detail.is_empty() {
                format!("exit status {}", output.status)
            } else {
                detail
            },
        })
    }

    /// Whether the remote has `refs/heads/<branch>`.
    pub(crate) async fn remote_has_branch(
        &self,
        url: &str,
        branch: &str,
        cwd: &Path,
    ) -> Result<bool, GitError> {
        let wanted = format!("refs/heads/{branch}");
        let stdout = self
            .run(
                "ls-remote",
                &[
                    OsStr::new("ls-remote"),
                    OsStr::new("--heads"),
                    OsStr::new("--"),
                    OsStr::new(url),
                    OsStr::new(&wanted),
                ],
                cwd,
                REMOTE_TIMEOUT,
            )
            .await?;
        // The pattern also matches `refs/heads/x/<branch>`: compare exactly.
        Ok(stdout
            .lines()
            .filter_map(|line| line.split('\t').nth(1))
            .any(|name| name == wanted))
    }

    /// Clones `url` into `dest` (which must not exist): only `branch`, or
    /// only the remote's default branch.
    pub(crate) async fn clone(
        &self,
        url: &str,
        branch: Option<&str>,
        dest: &Path,
        cwd: &Path,
    ) -> Result<(), GitError> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("clone"), OsStr::new("--single-branch")];
        if let Some(branch) = branch {
            args.extend([OsStr::new("--branch"), OsStr::new(branch)]);
        }
        args.extend([OsStr::new("--"), OsStr::new(url), dest.as_os_str()]);
        self.run("clone", &args, cwd, CLONE_TIMEOUT).await.map(drop)
    }

    /// Creates `branch` at the current commit and switches to it.
    pub(crate) async fn switch_create(&self, repo: &Path, branch: &str) -> Result<(), GitError> {
        self.run(
            "switch",
            &[OsStr::new("switch"), OsStr::new("-c"), OsStr::new(branch)],
            repo,
            LOCAL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Sets `user.name`/`user.email` in the checkout's config.
    pub(crate) async fn set_identity(
        &self,
        repo: &Path,
        identity: &GitIdentity,
    ) -> Result<(), GitError> {
        for (key, value) in [
            ("user.name", &identity.name),
            ("user.email", &identity.email),
        ] {
            self.config(repo, &[key, value]).await?;
        }
        Ok(())
    }

    /// Makes the agent the checkout's only credential helper, so `git pull`
    /// and `git push` in a workspace terminal get tokens the same way.
    pub(crate) async fn install_helper(&self, repo: &Path) -> Result<(), GitError> {
        self.config(repo, &["--add", "credential.helper", ""])
            .await?;
        self.config(repo, &["--add", "credential.helper", &self.helper])
            .await
    }

    /// Stages everything in the checkout (new, changed and deleted files).
    pub(crate) async fn add_all(&self, repo: &Path) -> Result<(), GitError> {
        self.run(
            "add",
            &[OsStr::new("add"), OsStr::new("--all")],
            repo,
            LOCAL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Whether the index differs from `HEAD` (or there is no `HEAD` yet
    /// and something is staged).
    pub(crate) async fn has_staged_changes(&self, repo: &Path) -> Result<bool, GitError> {
        let stdout = self
            .run(
                "status",
                &[
                    OsStr::new("status"),
                    OsStr::new("--porcelain"),
                    OsStr::new("--untracked-files=no"),
                ],
                repo,
                LOCAL_TIMEOUT,
            )
            .await?;
        // Staged entries have a status letter in the first column.
        Ok(stdout
            .lines()
            .any(|line| line.chars().next().is_some_and(|c| c != ' ' && c != '?')))
    }

    /// Commits the index with `message`; `author` overrides the checkout's
    /// identity for this commit only. Hooks do not run: the commit is the
    /// platform's, not the repository's tooling's.
    pub(crate) async fn commit(
        &self,
        repo: &Path,
        message: &str,
        author: Option<&GitIdentity>,
    ) -> Result<(), GitError> {
        let name;
        let email;
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(author) = author {
            name = format!("user.name={}", author.name);
            email = format!("user.email={}", author.email);
            args.extend([
                OsStr::new("-c"),
                OsStr::new(&name),
                OsStr::new("-c"),
                OsStr::new(&email),
            ]);
        }
        args.extend([
            OsStr::new("-c"),
            OsStr::new("core.hooksPath=/dev/null"),
            OsStr::new("commit"),
            OsStr::new("--quiet"),
            OsStr::new("--no-gpg-sign"),
            OsStr::new("-m"),
            OsStr::new(message),
        ]);
        self.run("commit", &args, repo, LOCAL_TIMEOUT)
            .await
            .map(drop)
    }

    /// The commit `HEAD` points at.
    pub(crate) async fn head(&self, repo: &Path) -> Result<String, GitError> {
        let stdout = self
            .run(
                "rev-parse",
                &[
                    OsStr::new("rev-parse"),
                    OsStr::new("--verify"),
                    OsStr::new("HEAD"),
                ],
                repo,
                LOCAL_TIMEOUT,
            )
            .await?;
        Ok(stdout.trim().to_owned())
    }

    /// Pushes `HEAD` to `refs/heads/<branch>` of `origin`, through the
    /// agent's credential helper.
    pub(crate) async fn push_head(&self, repo: &Path, branch: &str) -> Result<(), GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        self.run(
            "push",
            &[
                OsStr::new("push"),
                OsStr::new("--quiet"),
                OsStr::new("origin"),
                OsStr::new(&refspec),
            ],
            repo,
            REMOTE_TIMEOUT,
        )
        .await
        .map(drop)
    }

    async fn config(&self, repo: &Path, args: &[&str]) -> Result<(), GitError> {
        let mut all: Vec<&OsStr> = vec![OsStr::new("config"), OsStr::new("--local")];
        all.extend(args.iter().map(OsStr::new));
        self.run("config", &all, repo, LOCAL_TIMEOUT)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_values_run_the_agent_binary_directly_when_they_can() {
        assert_eq!(
            helper_value(
                Path::new("/usr/local/bin/vm-agent"),
                "01JAB3C4D5E6F7G8H9J0K1M2N3",
                Path::new("/run/sam/git-credential.sock")
            ),
            "/usr/local/bin/vm-agent git-credential --workspace 01JAB3C4D5E6F7G8H9J0K1M2N3 --socket /run/sam/git-credential.sock"
        );
        // Paths with spaces or quotes are quoted; an unsafe program path
        // needs the `!` form, as git would otherwise not see it as absolute.
        assert_eq!(
            helper_value(
                Path::new("/opt/my agent/vm-agent"),
                "01JAB3C4D5E6F7G8H9J0K1M2N3",
                Path::new("/tmp/it's here/s.sock")
            ),
            r"!'/opt/my agent/vm-agent' git-credential --workspace 01JAB3C4D5E6F7G8H9J0K1M2N3 --socket '/tmp/it'\''s here/s.sock'"
        );
    }

    #[test]
    fn quoted_words_survive_the_shell() {
        for word in [
            "plain",
            "with space",
            "it's",
            "$(touch /tmp/x)",
            "a\"b",
            "`id`",
        ] {
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &format!("printf %s {}", shell_word(word))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
