//! A read-only view of a workspace's git state.
//!
//! - `GET /workspaces/{id}/git/status` → `{branch, head, upstream, ahead,
//!   behind, files: [{path, orig_path?, index, worktree}], truncated}`, from
//!   `git status --porcelain=v2 --branch -z --untracked-files=all`. `branch`
//!   is null when HEAD is detached, `head` (the commit) when there is none
//!   yet; `ahead`/`behind` are 0 without an upstream. `index` and `worktree`
//!   are git's one-letter codes (`.` unchanged, `M`, `T`, `A`, `D`, `R`,
//!   `C`, `U`; `?` for both of an untracked file); `orig_path` is the old
//!   path of a rename or copy.
//! - `GET …/git/diff[?path=<p>][&staged=true]` → `{path, diff, truncated}`:
//!   a unified diff of the working tree against HEAD (against the empty tree
//!   before the first commit), untracked files included as new-file diffs;
//!   with `staged=true`, the index against HEAD instead. `path` limits it to
//!   one file or directory: it is confined like every file route's path
//!   first (a deleted file may be named), then passed to git after `--` as a
//!   literal pathspec. The diff is at most [`MAX_DIFF_BYTES`]; `truncated`
//!   says whether there was more. Invalid UTF-8 is shown as U+FFFD.
//!
//! The checkout is the one the workspace registry names, under the same
//! rules as the file routes (`crate::files::workspace_checkout`: 404
//! `not_found` for an unknown workspace, 409 `workspace_not_ready` while it
//! is being created or deleted).
//!
//! git runs without a shell, with explicit arguments, `-C <checkout>`, no
//! pager, colour, external diff or textconv, no optional locks (the index is
//! never written), `GIT_TERMINAL_PROMPT=0`, `core.quotepath=false`, git's
//! repository discovery fenced at the checkout, and a timeout. Its stderr is
//! logged, never returned: a failure is a stable `git_failed`. Untracked
//! files are read by the agent itself through [`crate::confine`], so a link
//! among them shows as a link, never as what it points to.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use crate::access::authorize_workspace;
use crate::confine::{ConfineError, RelPath, Resolve, Root};
use crate::files::{blocking, confine_error, invalid_query, workspace_checkout};
use crate::server::{ApiError, AppState};

/// A diff is cut after this many bytes.
pub const MAX_DIFF_BYTES: usize = 2 * 1024 * 1024;
/// Bounds on git's output that the agent parses.
const MAX_STATUS_BYTES: usize = 16 * 1024 * 1024;
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;
/// What git's stderr may put in the log.
const MAX_STDERR_BYTES: u64 = 4096;
/// Every git call ends by then, finished or killed.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);
/// git's own heuristic: a NUL in the first 8000 bytes makes a file binary.
const BINARY_PROBE_BYTES: usize = 8000;

/// The git routes, to merge into the agent's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{id}/git/status", get(status))
        .route("/workspaces/{id}/git/diff", get(diff))
}

// ---------------------------------------------------------------- running git

#[derive(Debug, thiserror::Error)]
enum GitError {
    #[error("the workspace is not a git repository")]
    NotARepository,
    #[error("git took too long")]
    Timeout,
    #[error("git could not read the repository")]
    Failed,
    #[error("git could not be run")]
    Unavailable,
}

impl From<GitError> for ApiError {
    fn from(err: GitError) -> Self {
        let (status, code) = match err {
            GitError::NotARepository => (StatusCode::CONFLICT, "not_a_git_repository"),
            GitError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "git_timeout"),
            GitError::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "git_failed"),
            GitError::Unavailable => (StatusCode::INTERNAL_SERVER_ERROR, "git_unavailable"),
        };
        ApiError::new(status, code, &err.to_string())
    }
}

/// What git printed, at most `limit` bytes of it.
struct Output {
    stdout: Vec<u8>,
    truncated: bool,
    success: bool,
}

/// Environment variables that would point git elsewhere than the checkout
/// or change what it runs; never inherited.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_EXTERNAL_DIFF",
    "GIT_DIFF_OPTS",
    "GIT_PAGER",
    "GIT_EDITOR",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_TRACE",
];

/// Runs `git -C <root> <safety options> <args>` and collects at most
/// `limit` bytes of its stdout.
async fn git(root: &Path, args: &[OsString], limit: usize) -> Result<Output, GitError> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(root)
        .args([
            "--no-pager",
            "--literal-pathspecs",
            "--no-optional-locks",
            "-c",
            "core.quotepath=false",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "color.ui=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Never discover a repository above the checkout.
    if let Some(parent) = root.parent() {
        command.env("GIT_CEILING_DIRECTORIES", parent);
    }
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    let mut child = command.spawn().map_err(|err| {
        tracing::warn!(error = %err, "could not run git");
        GitError::Unavailable
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(GitError::Unavailable);
    };
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.take(MAX_STDERR_BYTES).read_to_end(&mut text).await;
        text
    });
    let run = async {
        let mut out = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let read = stdout.take(cap).read_to_end(&mut out).await;
        let truncated = out.len() > limit;
        if truncated {
            out.truncate(limit);
            // Enough has been read; git is not waited for.
            let _ = child.start_kill();
        }
        let status = child.wait().await;
        (
            out,
            truncated,
            read.is_ok() && status.is_ok_and(|s| s.success()),
        )
    };
    let Ok((stdout, truncated, success)) = tokio::time::timeout(GIT_TIMEOUT, run).await else {
        tracing::warn!(args = ?args, "git timed out");
        return Err(GitError::Timeout);
    };
    if !success && !truncated {
        let text = stderr.await.unwrap_or_default();
        tracing::warn!(
            args = ?args,
            stderr = %String::from_utf8_lossy(&text),
            "git failed"
        );
    }
    Ok(Output {
        stdout,
        truncated,
        success: success || truncated,
    })
}

/// Like [`git`], but a failure is an error.
async fn git_ok(root: &Path, args: &[OsString], limit: usize) -> Result<Output, GitError> {
    let output = git(root, args, limit).await?;
    if output.success {
        Ok(output)
    } else {
        Err(GitError::Failed)
    }
}

fn args<const N: usize>(list: [&str; N]) -> Vec<OsString> {
    list.into_iter().map(OsString::from).collect()
}

/// The checkout must have its own `.git` directory (not a link, not a file
/// pointing elsewhere): git then reads nothing of any other repository.
async fn check_repo(root: &Path) -> Result<(), GitError> {
    match tokio::fs::symlink_metadata(root.join(".git")).await {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        _ => Err(GitError::NotARepository),
    }
}

/// Authorises the request; returns the workspace's checkout (see
/// [`workspace_checkout`] for when there is none).
async fn authorized_root(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: Result<UrlPath<String>, PathRejection>,
) -> Result<PathBuf, ApiError> {
    let raw_id = raw_id.map_or_else(|_| String::new(), |UrlPath(id)| id);
    let id = authorize_workspace(state, headers, &raw_id).await?;
    workspace_checkout(state, &id).await
}

// ---------------------------------------------------------------- status

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct GitStatus {
    pub branch: Option<String>,
    pub head: Option<String>,
    pub upstream: Option<String>,
    pub ahead: u64,
    pub behind: u64,
    pub files: Vec<FileStatus>,
    pub truncated: bool,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_path: Option<String>,
    pub index: String,
    pub worktree: String,
}

async fn status(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<GitStatus>, ApiError> {
    let root = authorized_root(&state, &headers, raw_id).await?;
    check_repo(&root).await?;
    let output = git_ok(
        &root,
        &args([
            "status",
            "--porcelain=v2",
            "--branch",
            "-z",
            "--untracked-files=all",
        ]),
        MAX_STATUS_BYTES,
    )
    .await?;
    let mut status = parse_status(&output.stdout, output.truncated);
    status.truncated = output.truncated;
    Ok(Json(status))
}

/// Parses `git status --porcelain=v2 --branch -z`: NUL-terminated records;
/// a rename or copy record is followed by one more holding the old path.
/// Paths are the rest of their record after a fixed number of fields, so
/// spaces and newlines in them survive. When the output was `truncated`,
/// its last, possibly partial, record is dropped. Unknown records are
/// skipped.
pub fn parse_status(out: &[u8], truncated: bool) -> GitStatus {
    let complete = if truncated {
        out.iter()
            .rposition(|b| *b == 0)
            .map_or(&out[..0], |end| &out[..end])
    } else {
        out
    };
    let mut status = GitStatus::default();
    let mut records = complete.split(|b| *b == 0);
    while let Some(record) = records.next() {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match record.first() {
            Some(b'#') => parse_header(&text(record), &mut status),
            Some(b'1') => {
                let fields: Vec<&[u8]> = record.splitn(9, |b| *b == b' ').collect();
                if let [_, xy, _, _, _, _, _, _, path] = fields[..] {
                    status.files.push(entry(xy, text(path), None));
                }
            }
            Some(b'2') => {
                let fields: Vec<&[u8]> = record.splitn(10, |b| *b == b' ').collect();
                let orig = records.next().map(text);
                if let [_, xy, _, _, _, _, _, _, _, path] = fields[..] {
                    status.files.push(entry(xy, text(path), orig));
                }
            }
            Some(b'u') => {
                let fields: Vec<&[u8]> = record.splitn(11, |b| *b == b' ').collect();
                if let [_, xy, _, _, _, _, _, _, _, _, path] = fields[..] {
                    status.files.push(entry(xy, text(path), None));
                }
            }
            Some(b'?') => {
                if let Some(path) = record.get(2..) {
                    status.files.push(FileStatus {
                        path: text(path),
                        orig_path: None,
                        index: "?".to_owned(),
                        worktree: "?".to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    status
}

fn entry(xy: &[u8], path: String, orig_path: Option<String>) -> FileStatus {
    let code = |i: usize| {
        xy.get(i)
            .filter(|b| b.is_ascii_graphic())
            .map_or_else(|| ".".to_owned(), |b| char::from(*b).to_string())
    };
    FileStatus {
        path,
        orig_path,
        index: code(0),
        worktree: code(1),
    }
}

fn parse_header(line: &str, status: &mut GitStatus) {
    let mut words = line.splitn(3, ' ');
    let (Some("#"), Some(key), Some(value)) = (words.next(), words.next(), words.next()) else {
        return;
    };
    match key {
        "branch.oid" if value != "(initial)" => status.head = Some(value.to_owned()),
        "branch.head" if value != "(detached)" => status.branch = Some(value.to_owned()),
        "branch.upstream" => status.upstream = Some(value.to_owned()),
        "branch.ab" => {
            for word in value.split(' ') {
                if let Some(n) = word.strip_prefix('+') {
                    status.ahead = n.parse().unwrap_or(0);
                } else if let Some(n) = word.strip_prefix('-') {
                    status.behind = n.parse().unwrap_or(0);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------- diff

#[derive(Deserialize)]
struct DiffQuery {
    path: Option<String>,
    #[serde(default)]
    staged: bool,
}

#[derive(Serialize)]
struct DiffView {
    path: String,
    diff: String,
    truncated: bool,
}

async fn diff(
    State(state): State<AppState>,
    raw_id: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<DiffView>, ApiError> {
    let root = authorized_root(&state, &headers, raw_id).await?;
    let Query(query) = query.map_err(|rejection| invalid_query(&rejection))?;
    let rel = RelPath::parse(query.path.as_deref().unwrap_or("")).map_err(confine_error)?;
    // The pathspec git gets: the path resolved under the checkout (links in
    // its directories followed, the rest as written), or none.
    let pathspec = if rel.is_root() {
        None
    } else {
        let root = root.clone();
        let rel = rel.clone();
        Some(
            blocking(move || {
                let root = Root::open(&root).map_err(confine_error)?;
                let resolved = root
                    .resolve(&rel, Resolve::Lenient)
                    .map_err(confine_error)?;
                Ok(OsString::from_vec(resolved.to_bytes()))
            })
            .await?,
        )
    };
    check_repo(&root).await?;

    let mut command = args(["diff", "--no-ext-diff", "--no-textconv", "--no-color", "-M"]);
    if query.staged {
        command.push("--cached".into());
    } else {
        command.push(head_or_empty_tree(&root).await?);
    }
    command.push("--".into());
    command.extend(pathspec.clone());
    let output = git_ok(&root, &command, MAX_DIFF_BYTES).await?;
    let mut text = output.stdout;
    let mut truncated = output.truncated;

    if !query.staged && !truncated {
        let mut command = args(["ls-files", "--others", "--exclude-standard", "-z", "--"]);
        command.extend(pathspec);
        let untracked = git_ok(&root, &command, MAX_LIST_BYTES).await?;
        let root = root.clone();
        let (joined, cut) = blocking(move || {
            let root = Root::open(&root).map_err(confine_error)?;
            let mut cut = untracked.truncated;
            for path in untracked.stdout.split(|b| *b == 0) {
                if path.is_empty() {
                    continue;
                }
                if text.len() >= MAX_DIFF_BYTES {
                    cut = true;
                    break;
                }
                match new_file_diff(&root, path, MAX_DIFF_BYTES - text.len()) {
                    Ok(Some(piece)) => text.extend_from_slice(&piece),
                    Ok(None) => {}
                    // Gone, or not readable since git listed it: left out.
                    Err(err) => tracing::debug!(code = err.code(), "untracked file skipped"),
                }
            }
            Ok((text, cut))
        })
        .await?;
        text = joined;
        truncated = cut;
    }
    if text.len() > MAX_DIFF_BYTES {
        truncated = true;
        text.truncate(MAX_DIFF_BYTES);
    }
    if truncated {
        // End on a whole line.
        if let Some(end) = text.iter().rposition(|b| *b == b'\n') {
            text.truncate(end + 1);
        }
    }
    Ok(Json(DiffView {
        path: rel.as_str(),
        diff: String::from_utf8_lossy(&text).into_owned(),
        truncated,
    }))
}

/// `HEAD` if there is a commit, otherwise the empty tree (in the
/// repository's own hash format).
async fn head_or_empty_tree(root: &Path) -> Result<OsString, GitError> {
    let head = git(
        root,
        &args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]),
        1024,
    )
    .await?;
    if head.success {
        return Ok("HEAD".into());
    }
    let empty = git_ok(
        root,
        &args(["hash-object", "-t", "tree", "/dev/null"]),
        1024,
    )
    .await?;
    let oid = String::from_utf8_lossy(&empty.stdout).trim().to_owned();
    if oid.is_empty() || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::Failed);
    }
    Ok(oid.into())
}

/// The diff creating untracked `path` (as git lists it, relative to the
/// checkout), reading at most about `budget` bytes of it; `None` for what
/// git would not show (not a file or link, or a name that is not UTF-8).
fn new_file_diff(root: &Root, path: &[u8], budget: usize) -> Result<Option<Vec<u8>>, ConfineError> {
    let Ok(name) = std::str::from_utf8(path) else {
        return Ok(None);
    };
    let resolved = root.resolve(&RelPath::parse(name)?, Resolve::Parent)?;
    let metadata = root.lstat(&resolved)?;
    let (mode, content) = if metadata.file_type().is_symlink() {
        ("120000", root.read_link(&resolved)?)
    } else if metadata.is_file() {
        let (file, metadata) = root.open_file(&resolved)?;
        let mode = if metadata.permissions().mode() & 0o111 == 0 {
            "100644"
        } else {
            "100755"
        };
        let limit = u64::try_from(budget.max(BINARY_PROBE_BYTES) + 1).unwrap_or(u64::MAX);
        let mut content = Vec::new();
        file.take(limit).read_to_end(&mut content)?;
        (mode, content)
    } else {
        return Ok(None);
    };
    Ok(Some(render_new_file(name, mode, &content)))
}

/// A git-style diff that creates `name` with `content`.
pub fn render_new_file(name: &str, mode: &str, content: &[u8]) -> Vec<u8> {
    let a = quote_path("a/", name);
    let b = quote_path("b/", name);
    let mut out = format!("diff --git {a} {b}\nnew file mode {mode}\n").into_bytes();
    if content.is_empty() {
        return out;
    }
    let probe = &content[..content.len().min(BINARY_PROBE_BYTES)];
    if probe.contains(&0) {
        out.extend_from_slice(format!("Binary files /dev/null and {b} differ\n").as_bytes());
        return out;
    }
    let lines: Vec<&[u8]> = content.split_inclusive(|c| *c == b'\n').collect();
    let hunk = if lines.len() == 1 {
        "@@ -0,0 +1 @@".to_owned()
    } else {
        format!("@@ -0,0 +1,{} @@", lines.len())
    };
    // Like git (and GNU diff), a name with a space ends in a tab here, so
    // that `patch` knows where it ends.
    let tab = if b.contains(' ') { "\t" } else { "" };
    out.extend_from_slice(format!("--- /dev/null\n+++ {b}{tab}\n{hunk}\n").as_bytes());
    for line in &lines {
        out.push(b'+');
        out.extend_from_slice(line);
    }
    if content.last() != Some(&b'\n') {
        out.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
    out
}

/// `prefix` + `name`, C-quoted the way git quotes paths when they contain a
/// quote, a backslash or a control character (with `core.quotepath=false`,
/// other non-ASCII characters stay as they are).
pub fn quote_path(prefix: &str, name: &str) -> String {
    let needs = |c: char| c == '"' || c == '\\' || c.is_ascii_control();
    if !name.chars().any(needs) {
        return format!("{prefix}{name}");
    }
    let mut out = String::from("\"");
    for c in prefix.chars().chain(name.chars()) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:03o}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_v2_records_parse_with_awkward_paths() {
        let out = b"# branch.oid 1234abcd\0# branch.head main\0# branch.upstream origin/main\0\
# branch.ab +2 -3\0\
1 .M N... 100644 100644 100644 aaaa bbbb a file with spaces.txt\0\
1 A. N... 000000 100644 100644 0000 cccc new\nline\0\
2 R. N... 100644 100644 100644 dddd dddd R100 renamed to.txt\0renamed from.txt\0\
u UU N... 100644 100644 100644 100644 e f g conflict.txt\0\
? untracked dir/x y\0! ignored\0";
        let status = parse_status(out, false);
        assert_eq!(status.branch.as_deref(), Some("main"));
        assert_eq!(status.head.as_deref(), Some("1234abcd"));
        assert_eq!(status.upstream.as_deref(), Some("origin/main"));
        assert_eq!((status.ahead, status.behind), (2, 3));
        let files: Vec<(&str, Option<&str>, &str, &str)> = status
            .files
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.orig_path.as_deref(),
                    f.index.as_str(),
                    f.worktree.as_str(),
                )
            })
            .collect();
        assert_eq!(
            files,
            [
                ("a file with spaces.txt", None, ".", "M"),
                ("new\nline", None, "A", "."),
                ("renamed to.txt", Some("renamed from.txt"), "R", "."),
                ("conflict.txt", None, "U", "U"),
                ("untracked dir/x y", None, "?", "?"),
            ]
        );
    }

    #[test]
    fn detached_initial_and_truncated_outputs() {
        let status = parse_status(
            b"# branch.oid (initial)\0# branch.head (detached)\0? a\0? partial-na",
            true,
        );
        assert_eq!(status.branch, None);
        assert_eq!(status.head, None);
        assert_eq!(status.files.len(), 1);
        // Garbage does not panic.
        let status = parse_status(b"1\x002 R.\0u\0?\0#\0# branch.ab +x -y\0", false);
        assert!(status.files.is_empty());
        assert_eq!((status.ahead, status.behind), (0, 0));
    }

    #[test]
    fn new_file_diffs_look_like_gits() {
        assert_eq!(
            String::from_utf8(render_new_file("a.txt", "100644", b"one\ntwo\n")).unwrap(),
            "diff --git a/a.txt b/a.txt\nnew file mode 100644\n--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n"
        );
        assert_eq!(
            String::from_utf8(render_new_file("x", "100755", b"solo")).unwrap(),
            "diff --git a/x b/x\nnew file mode 100755\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+solo\n\\ No newline at end of file\n"
        );
        assert_eq!(
            String::from_utf8(render_new_file("a b", "100644", b"x\n")).unwrap(),
            "diff --git a/a b b/a b\nnew file mode 100644\n--- /dev/null\n+++ b/a b\t\n@@ -0,0 +1 @@\n+x\n"
        );
        assert_eq!(
            String::from_utf8(render_new_file("bin", "100644", b"a\0b")).unwrap(),
            "diff --git a/bin b/bin\nnew file mode 100644\nBinary files /dev/null and b/bin differ\n"
        );
        assert_eq!(
            String::from_utf8(render_new_file("e", "100644", b"")).unwrap(),
            "diff --git a/e b/e\nnew file mode 100644\n"
        );
        assert_eq!(
            quote_path("a/", "tab\there \"q\""),
            "\"a/tab\\there \\\"q\\\"\""
        );
        assert_eq!(quote_path("b/", "ünï cödé"), "b/ünï cödé");
        assert_eq!(quote_path("b/", "bell\u{7}\u{1}"), "\"b/bell\\a\\001\"");
    }
}
