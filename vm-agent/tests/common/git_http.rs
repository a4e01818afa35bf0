//! A git server for the workspace tests: bare repositories served over smart
//! HTTP by `git http-backend` (run as CGI by a small axum handler), behind
//! Basic authentication with user `x-access-token` and a password the test
//! chooses, so clones only work through the agent's credential helper.
//!
//! While it serves an authenticated request (when git's processes hold the
//! password), it looks through every process's argv and environment for the
//! password and records where it found it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

pub const GIT_USER: &str = "x-access-token";

#[derive(Default)]
pub struct GitState {
    root: PathBuf,
    /// The password the server accepts.
    pub password: Mutex<String>,
    /// How long each request is held before it is served.
    pub delay: Mutex<Duration>,
    pub unauthenticated: AtomicUsize,
    pub authenticated: AtomicUsize,
    pub refused: AtomicUsize,
    /// Where the password was seen outside git's memory (`/proc/<pid>/…`).
    pub leaks: Mutex<Vec<String>>,
}

pub struct GitHttp {
    pub addr: SocketAddr,
    pub state: Arc<GitState>,
    _root: tempfile::TempDir,
}

impl GitHttp {
    pub async fn start(password: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let state = Arc::new(GitState {
            root: root.path().to_path_buf(),
            password: Mutex::new(password.to_owned()),
            ..GitState::default()
        });
        let app = Router::new().fallback(serve).with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            state,
            _root: root,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.addr.port())
    }

    pub fn root(&self) -> &Path {
        &self.state.root
    }

    pub fn leaks(&self) -> Vec<String> {
        self.state.leaks.lock().unwrap().clone()
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Creates the bare repository `name` whose branches each carry one
    /// commit on top of `main`, with a file `BRANCH` naming the branch.
    /// Returns each branch's commit id.
    pub fn create_repo(&self, name: &str, branches: &[&str]) -> Vec<(String, String)> {
        let bare = self.root().join(name);
        git(
            self.root(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                bare.to_str().unwrap(),
            ],
        );
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        git(w, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(w.join("README.md"), "# test repository\n").unwrap();
        std::fs::write(w.join("BRANCH"), "main\n").unwrap();
        git(w, &["add", "."]);
        git(w, &["commit", "--quiet", "-m", "initial"]);
        let mut heads = vec![("main".to_owned(), git(w, &["rev-parse", "HEAD"]))];
        for branch in branches.iter().filter(|b| **b != "main") {
            git(w, &["switch", "--quiet", "-c", branch, "main"]);
            std::fs::write(w.join("BRANCH"), format!("{branch}\n")).unwrap();
            git(w, &["commit", "--quiet", "-am", &format!("on {branch}")]);
            heads.push(((*branch).to_owned(), git(w, &["rev-parse", "HEAD"])));
        }
        git(w, &["push", "--quiet", "--all", bare.to_str().unwrap()]);
        heads
    }
}

/// Runs git for fixtures (with an identity and no outside configuration);
/// returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Fixture",
            "-c",
            "user.email=fixture@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every `/proc/<pid>/cmdline` and `/proc/<pid>/environ` (that this user may
/// read) containing `needle`.
pub fn scan_processes(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        for file in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file))
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                found.push(format!(
                    "/proc/{pid}/{file} ({})",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
    }
    found
}

fn authorized(state: &GitState, headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let expected = format!("{GIT_USER}:{}", state.password.lock().unwrap());
    Some(decoded == expected.as_bytes())
}

async fn serve(State(state): State<Arc<GitState>>, request: Request) -> Response {
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let (parts, body) = request.into_parts();
    match authorized(&state, &parts.headers) {
        None => {
            state.unauthenticated.fetch_add(1, Ordering::SeqCst);
            return challenge();
        }
        Some(false) => {
            state.refused.fetch_add(1, Ordering::SeqCst);
            return challenge();
        }
        Some(true) => {
            state.authenticated.fetch_add(1, Ordering::SeqCst);
        }
    }
    let password = state.password.lock().unwrap().clone();
    let leaks = scan_processes(&password);
    state.leaks.lock().unwrap().extend(leaks);

    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", GIT_USER)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.unwrap();
    feed.await.unwrap();
    cgi_response(&output.stdout)
}

fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"sam-test-git\"")],
    )
        .into_response()
}

/// Turns CGI output (headers, empty line, body) into a response.
fn cgi_response(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return (StatusCode::BAD_GATEWAY, "bad CGI output").into_response();
    };
    let head = String::from_utf8_lossy(&out[..end]);
    let mut response = Response::new(Body::from(out[end + sep..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
