//! A whole agent router with one workspace, for the file and git routes:
//! requests go through the real router in-process
//! (`tower::ServiceExt::oneshot`), authorised with a management token from
//! the fake control plane. The workspace is created for real (`POST
//! /workspaces`, see [`crate::common::provision`]), then its checkout is
//! emptied so that each test arranges it as it needs.
//!
//! Layout under one temporary directory:
//!
//! ```text
//! <tmp>/fsroot/                                   SAM_FS_ROOT
//! <tmp>/fsroot/var/lib/sam/workspaces/<WS>/repo   the checkout (the root)
//! <tmp>/fsroot/var/lib/sam/workspaces/<WS>/workspace.json  (the registry's)
//! <tmp>/fsroot/run/sam/git-credential.sock
//! <tmp>/outside/                                  never to be touched
//! ```

#![allow(dead_code)] // each test binary uses a different part

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use sam_auth::{Audience, SigningKey};
use sam_vm_agent::Agent;
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;

use crate::common::provision::{self, Source};
use crate::common::{FakeControlPlane, NODE_ID, config};

/// The workspace every test uses.
pub const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";

pub struct Workspace {
    pub cp: FakeControlPlane,
    pub key: SigningKey,
    pub router: Router,
    pub token: String,
    pub tmp: tempfile::TempDir,
    /// The checkout.
    pub repo: PathBuf,
    /// A directory outside the checkout.
    pub outside: PathBuf,
    pub source: Source,
    /// The workspace's callback token: a secret the agent keeps in
    /// `workspace.json`, next to the checkout.
    pub callback_token: String,
}

/// What a request got back.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

impl Workspace {
    /// An agent with workspace [`WS`] running, its checkout empty (not a
    /// git repository any more).
    pub async fn start() -> Self {
        let cp = FakeControlPlane::start().await;
        let key = SigningKey::from_seed([7; 32]);
        cp.serve_keys(&[&key]);
        let token = cp.token(&key, Audience::NodeManagement, NODE_ID);
        let source = Source::start(&cp).await;
        let tmp = tempfile::tempdir().unwrap();
        let fs_root = tmp.path().join("fsroot");
        let repo = fs_root.join("var/lib/sam/workspaces").join(WS).join("repo");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let agent = Agent::new(config(&cp, &fs_root)).unwrap();
        source.equip(&agent);
        let router = agent.router();
        let callback_token = provision::callback_token(&cp, &key, WS);
        let ws = Self {
            cp,
            key,
            router,
            token,
            tmp,
            repo,
            outside,
            source,
            callback_token,
        };
        let mut body = ws.source.create_body(&ws.cp, &ws.key, WS);
        body["callback_token"] = ws.callback_token.clone().into();
        ws.create(&body).await;
        provision::empty(&ws.repo);
        ws
    }

    /// Creates a workspace (`body` as for `POST /workspaces`) and waits
    /// until it runs.
    pub async fn create(&self, body: &serde_json::Value) {
        let id = body["id"].as_str().unwrap();
        let reply = self.post_json("/workspaces", body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json());
        let path = format!("/workspaces/{id}");
        provision::until_running(async || self.get(&path).await.json()).await;
    }

    /// `POST uri` with a JSON body.
    pub async fn post_json(&self, uri: &str, body: &serde_json::Value) -> Reply {
        self.send(
            self.authorized(Method::POST, uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// `POST uri` without a body (`/workspaces/{id}/stop`…).
    pub async fn post(&self, uri: &str) -> Reply {
        self.send(
            self.authorized(Method::POST, uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.send(
            self.authorized(Method::DELETE, uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub fn fs_root(&self) -> PathBuf {
        self.tmp.path().join("fsroot")
    }

    /// `/workspaces/<WS>/<route>?path=<path, fully percent-encoded>`.
    pub fn url(route: &str, path: &str) -> String {
        format!("/workspaces/{WS}/{route}?path={}", encode(path))
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn authorized(&self, method: Method, uri: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(
            self.authorized(Method::GET, uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn get_with(&self, uri: &str, name: header::HeaderName, value: &str) -> Reply {
        self.send(
            self.authorized(Method::GET, uri)
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Uploads `files` (name, content) into directory `dir`.
    pub async fn upload(&self, dir: &str, files: &[(&str, &[u8])]) -> Reply {
        self.upload_to(&Self::url("files/upload", dir), files).await
    }

    pub async fn upload_to(&self, uri: &str, files: &[(&str, &[u8])]) -> Reply {
        let (content_type, body) = multipart(files);
        self.send(
            self.authorized(Method::POST, uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }
}

/// Percent-encodes every byte but unreserved ASCII.
pub fn encode(raw: &str) -> String {
    let mut out = String::new();
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

pub const BOUNDARY: &str = "----sam-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body with one `file` part per entry (plus a plain
/// form field, which the server ignores).
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    for (name, content) in files {
        let quoted = name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{quoted}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Runs git in `dir` (test setup; panics on failure).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A digest of everything under `dir`: names, kinds, link targets, contents
/// and permissions (not times), in a stable order.
pub fn hash_tree(dir: &Path) -> String {
    let mut hash = Sha256::new();
    hash_into(dir, Path::new(""), &mut hash);
    hex::encode(hash.finalize())
}

fn hash_into(base: &Path, rel: &Path, hash: &mut Sha256) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = base.join(rel);
    let Ok(metadata) = std::fs::symlink_metadata(&path) else {
        hash.update(b"missing\0");
        return;
    };
    hash.update(rel.as_os_str().as_encoded_bytes());
    hash.update(metadata.permissions().mode().to_le_bytes());
    if metadata.file_type().is_symlink() {
        hash.update(b"link\0");
        hash.update(
            std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_encoded_bytes(),
        );
    } else if metadata.is_dir() {
        hash.update(b"dir\0");
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            hash_into(base, &rel.join(name), hash);
        }
    } else if metadata.is_file() {
        hash.update(b"file\0");
        hash.update(std::fs::read(&path).unwrap());
    } else {
        // The agent's credential socket, say: nothing to read.
        hash.update(b"other\0");
    }
    hash.update(b"\0");
}
