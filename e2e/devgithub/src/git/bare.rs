//! The bare repositories on disk: one per `state::Repo`, at
//! `{state_dir}/git/{id}.git`. Keyed by id, so a rename moves nothing and
//! the URL's `owner/name` never reaches a path.
//!
//! Every git process runs with an explicit argument list (no shell), a
//! cleared environment (only `PATH`, plus `HOME` pointing at the git root
//! and no system or global config), so the user's git config cannot change
//! what devgithub does.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::OwnedMutexGuard;

/// Who devgithub's own commits (the initial README) are by.
pub(crate) const IDENTITY_NAME: &str = "devgithub";
pub(crate) const IDENTITY_EMAIL: &str = "devgithub@users.noreply.localhost";

#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    #[error("running git {args}: {source}")]
    Spawn {
        args: String,
        source: std::io::Error,
    },
    #[error("git {args} failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("git {args}: unexpected output {output:?}")]
    Output { args: String, output: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("git http-backend: {0}")]
    Cgi(String),
}

/// Ref name → object id, for `refs/heads/*` and `refs/tags/*`.
pub(crate) type Refs = BTreeMap<String, String>;

/// A `git` command with devgithub's clean environment.
pub(crate) fn command(root: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn describe(args: &[&OsStr]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `git {args}` (with `input` on stdin), returning stdout; a non-zero
/// exit is an error carrying stderr.
pub(crate) async fn run(
    root: &Path,
    git_dir: Option<&Path>,
    args: &[&OsStr],
    input: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Result<Vec<u8>, GitError> {
    let (status, stdout, stderr) = run_status(root, git_dir, args, input, env).await?;
    if status.success() {
        Ok(stdout)
    } else {
        Err(GitError::Failed {
            args: describe(args),
            status,
            stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
        })
    }
}

/// Like [`run`], but a non-zero exit is for the caller to judge.
pub(crate) async fn run_status(
    root: &Path,
    git_dir: Option<&Path>,
    args: &[&OsStr],
    input: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), GitError> {
    let mut cmd = command(root);
    if let Some(dir) = git_dir {
        cmd.arg("--git-dir").arg(dir);
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let spawn_error = |source| GitError::Spawn {
        args: describe(args),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_error)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Inputs here are a few lines; git reads them all before it
        // writes much, so writing first cannot deadlock.
        stdin.write_all(input).await.map_err(spawn_error)?;
        drop(stdin);
    }
    let output = child.wait_with_output().await.map_err(spawn_error)?;
    Ok((output.status, output.stdout, output.stderr))
}

fn one_line(args: &[&OsStr], stdout: &[u8]) -> Result<String, GitError> {
    let text = String::from_utf8_lossy(stdout).trim().to_owned();
    if text.len() == 40 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(text)
    } else {
        Err(GitError::Output {
            args: describe(args),
            output: text,
        })
    }
}

/// What a new repository starts with.
#[derive(Debug, Clone)]
pub(crate) struct Seed {
    pub readme: String,
    pub default_branch: String,
    /// Branches besides the default one, all at the initial commit.
    pub branches: Vec<String>,
    /// Author and committer date of the initial commit (RFC 3339).
    pub date: String,
}

/// The bare repositories and a lock per repository, which serializes
/// pushes (so a push's ref changes can be read off before/after
/// snapshots), creation and deletion.
#[derive(Debug)]
pub(crate) struct GitRepos {
    root: PathBuf,
    locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl GitRepos {
    pub(crate) fn new(root: PathBuf) -> Self {
        GitRepos {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// `GIT_PROJECT_ROOT`: the directory holding every `{id}.git`.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("{id}.git"))
    }

    pub(crate) fn exists(&self, id: u64) -> bool {
        self.dir(id).join("HEAD").is_file()
    }

    pub(crate) async fn lock(&self, id: u64) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(id).or_default())
        };
        lock.lock_owned().await
    }

    /// Builds the repository with git's plumbing in a scratch directory
    /// (`init --bare`, `hash-object`, `mktree`, `commit-tree`,
    /// `update-ref`), then renames it into place, so a half-built
    /// repository is never served. Returns the initial commit. The caller
    /// holds the repository's lock.
    pub(crate) async fn create(&self, id: u64, seed: &Seed) -> Result<String, GitError> {
        let scratch = self
            .root
            .join(format!(".new-{id}-{}.git", crate::ids::uuid_v4()));
        let result = self.build(&scratch, seed).await;
        let result = match result {
            Ok(commit) => tokio::fs::rename(&scratch, self.dir(id))
                .await
                .map(|()| commit)
                .map_err(|source| GitError::Io {
                    what: format!("moving {} into place", scratch.display()),
                    source,
                }),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&scratch).await;
        }
        result
    }

    async fn build(&self, dir: &Path, seed: &Seed) -> Result<String, GitError> {
        let root = self.root.as_path();
        let head = format!("refs/heads/{}", seed.default_branch);
        run(
            root,
            None,
            &[
                "init".as_ref(),
                "--bare".as_ref(),
                "--quiet".as_ref(),
                dir.as_os_str(),
            ],
            None,
            &[],
        )
        .await?;
        let dir = Some(dir);
        // Rather than `init --initial-branch` (git 2.28+).
        run(
            root,
            dir,
            &["symbolic-ref".as_ref(), "HEAD".as_ref(), head.as_ref()],
            None,
            &[],
        )
        .await?;

        let args: [&OsStr; 3] = ["hash-object".as_ref(), "-w".as_ref(), "--stdin".as_ref()];
        let blob = run(root, dir, &args, Some(seed.readme.as_bytes()), &[]).await?;
        let blob = one_line(&args, &blob)?;

        let args: [&OsStr; 1] = ["mktree".as_ref()];
        let entry = format!("100644 blob {blob}\tREADME.md\n");
        let tree = run(root, dir, &args, Some(entry.as_bytes()), &[]).await?;
        let tree = one_line(&args, &tree)?;

        let args: [&OsStr; 4] = [
            "commit-tree".as_ref(),
            tree.as_ref(),
            "-m".as_ref(),
            "Initial commit".as_ref(),
        ];
        let env = [
            ("GIT_AUTHOR_NAME", IDENTITY_NAME),
            ("GIT_AUTHOR_EMAIL", IDENTITY_EMAIL),
            ("GIT_AUTHOR_DATE", seed.date.as_str()),
            ("GIT_COMMITTER_NAME", IDENTITY_NAME),
            ("GIT_COMMITTER_EMAIL", IDENTITY_EMAIL),
            ("GIT_COMMITTER_DATE", seed.date.as_str()),
        ];
        let commit = run(root, dir, &args, None, &env).await?;
        let commit = one_line(&args, &commit)?;

        let mut updates = String::new();
        let others = seed.branches.iter().filter(|b| **b != seed.default_branch);
        for branch in std::iter::once(&seed.default_branch).chain(others) {
            // Writing to a String cannot fail.
            let _ = writeln!(updates, "create refs/heads/{branch} {commit}");
        }
        run(
            root,
            dir,
            &["update-ref".as_ref(), "--stdin".as_ref()],
            Some(updates.as_bytes()),
            &[],
        )
        .await?;
        Ok(commit)
    }

    /// Branches and tags with what they point at.
    pub(crate) async fn refs(&self, id: u64) -> Result<Refs, GitError> {
        let dir = self.dir(id);
        let out = run(
            &self.root,
            Some(&dir),
            &[
                "for-each-ref".as_ref(),
                "--format=%(objectname) %(refname)".as_ref(),
                "refs/heads/".as_ref(),
                "refs/tags/".as_ref(),
            ],
            None,
            &[],
        )
        .await?;
        Ok(parse_refs(&String::from_utf8_lossy(&out)))
    }

    /// Deletes the repository from disk, if it is there.
    pub(crate) async fn remove(&self, id: u64) -> Result<(), GitError> {
        let _guard = self.lock(id).await;
        let dir = self.dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(GitError::Io {
                what: format!("removing {}", dir.display()),
                source,
            }),
        }
    }
}

fn parse_refs(listing: &str) -> Refs {
    listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(sha, name)| (name.to_owned(), sha.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_listings_parse() {
        let refs = parse_refs(
            "1111111111111111111111111111111111111111 refs/heads/main\n\
             2222222222222222222222222222222222222222 refs/heads/feature/x\n",
        );
        assert_eq!(refs.len(), 2);
        assert_eq!(
            refs["refs/heads/feature/x"],
            "2222222222222222222222222222222222222222"
        );
    }

    #[tokio::test]
    async fn builds_a_repository_with_a_readme_on_every_branch() {
        let dir = tempfile::tempdir().unwrap();
        let repos = GitRepos::new(dir.path().to_path_buf());
        let seed = Seed {
            readme: "# hello\n".into(),
            default_branch: "trunk".into(),
            branches: vec!["trunk".into(), "develop".into(), "feature/x".into()],
            date: "2024-01-02T03:04:05Z".into(),
        };
        let commit = repos.create(7, &seed).await.unwrap();
        assert!(repos.exists(7));
        let refs = repos.refs(7).await.unwrap();
        let names: Vec<_> = refs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "refs/heads/develop",
                "refs/heads/feature/x",
                "refs/heads/trunk"
            ]
        );
        assert!(refs.values().all(|sha| *sha == commit));
        let readme = run(
            repos.root(),
            Some(&repos.dir(7)),
            &["show".as_ref(), "HEAD:README.md".as_ref()],
            None,
            &[],
        )
        .await
        .unwrap();
        assert_eq!(readme, b"# hello\n");
        // Only the final directory is left behind.
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["7.git"]);
        repos.remove(7).await.unwrap();
        assert!(!repos.exists(7));
    }
}
