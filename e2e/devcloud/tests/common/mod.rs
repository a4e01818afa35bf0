//! Shared test harness: an in-process devcloud on 127.0.0.1:0, an
//! authenticated client, the `devcloud` binary as a child process, SAM's
//! HTTP port implemented with reqwest (for `sam_providers` clients), a tiny
//! file server standing in for the control plane's download endpoint, and
//! polling helpers.

#![allow(dead_code)] // each test crate uses a different subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::{Method, RequestBuilder, Response};
use sam_devcloud::{Config, DevCloud, FaultConfig};
use sam_providers::{HttpClient, HttpRequest, HttpResponse, TransportError};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const TOKEN: &str = "test-token";

pub struct TestCloud {
    pub devcloud: DevCloud,
    pub base: String,
    pub client: reqwest::Client,
    pub state_dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

/// Serves `router` on an ephemeral loopback port; returns the port.
pub async fn serve(router: Router) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (port, task)
}

impl TestCloud {
    pub async fn start(state_dir: &Path, boot_delay_ms: u64) -> Self {
        Self::start_with(Config {
            state_dir: state_dir.to_path_buf(),
            tokens: vec![TOKEN.into(), "second-token".into()],
            boot_delay: Duration::from_millis(boot_delay_ms),
            scaleway: None,
            faults: FaultConfig::default(),
            image_env: Vec::new(),
        })
        .await
    }

    pub async fn start_with(config: Config) -> Self {
        let state_dir = config.state_dir.clone();
        let devcloud = DevCloud::start(config).await.unwrap();
        let (port, server) = serve(devcloud.router()).await;
        TestCloud {
            devcloud,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            state_dir,
            server,
        }
    }

    /// Ends all server processes and stops serving.
    pub async fn stop(self) {
        self.devcloud.shutdown().await;
        self.server.abort();
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = self.request(method, path).bearer_auth(TOKEN);
        decode(send_json(request, body).await).await
    }

    /// A request to `path` under the base URL, without credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a server and returns the whole 201 body.
    pub async fn create(&self, body: Value) -> Value {
        let (status, body) = self.post("/v1/servers", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn server(&self, id: u64) -> Value {
        let (status, body) = self.get(&format!("/v1/servers/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["server"].clone()
    }

    pub async fn wait_status(&self, id: u64, want: &str) -> Value {
        wait_until(
            Duration::from_secs(20),
            &format!("server {id} {want}"),
            || async {
                let server = self.server(id).await;
                (server["status"] == want).then_some(server)
            },
        )
        .await
    }

    pub async fn wait_action(&self, id: u64) -> Value {
        wait_until(Duration::from_secs(20), &format!("action {id}"), || async {
            let (_, body) = self.get(&format!("/v1/actions/{id}")).await;
            (body["action"]["status"] == "success").then(|| body["action"].clone())
        })
        .await
    }

    pub fn server_dir(&self, id: u64) -> PathBuf {
        self.state_dir.join("servers").join(id.to_string())
    }

    pub fn console(&self, id: u64) -> String {
        std::fs::read_to_string(self.server_dir(id).join("console.log")).unwrap_or_default()
    }
}

/// Starts the `devcloud` binary on an ephemeral loopback port with `args`
/// and `--state-dir`; returns it with the base URL it announced.
pub async fn spawn_devcloud(state_dir: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devcloud"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("announcement in time")
        .unwrap()
        .expect("a line");
    let base = line
        .strip_prefix("devcloud listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    (child, base)
}

/// Runs the `devcloud` binary with `args` and `--state-dir` to its exit
/// (for flag combinations it must refuse).
pub async fn devcloud_exit_status(state_dir: &Path, args: &[&str]) -> ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_devcloud"))
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap()
}

/// SAM's HTTP port implemented with reqwest, so `sam_providers` clients
/// can talk to devcloud over real HTTP.
pub struct ReqwestHttp(pub reqwest::Client);

impl HttpClient for ReqwestHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            sam_providers::Method::Get => Method::GET,
            sam_providers::Method::Post => Method::POST,
            sam_providers::Method::Delete => Method::DELETE,
            sam_providers::Method::Put => Method::PUT,
            sam_providers::Method::Patch => Method::PATCH,
        };
        let mut builder = self.0.request(method, &req.url);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| TransportError::new(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::new(e.to_string()))?
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Sends `request`, with `body` as JSON if there is one.
pub async fn send_json(request: RequestBuilder, body: Option<Value>) -> Response {
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

pub async fn decode(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fake agent: records its environment, working directory and pids
/// under its root, forks a helper (to prove group killing), then waits.
pub const AGENT_SCRIPT: &str = r#"#!/bin/sh
state="$SAM_FS_ROOT/var/lib/sam"
mkdir -p "$state"
env > "$state/env.tmp"
pwd > "$state/cwd"
echo "agent started on $SAM_BIND_HOST with args: $*"
sleep 600 &
echo $! > "$state/helper.pid"
mv "$state/env.tmp" "$state/env"
echo $$ > "$state/agent.pid"
wait
"#;

/// A stand-in for the control plane's binary download endpoint.
pub async fn file_server() -> (u16, tokio::task::JoinHandle<()>) {
    let router = Router::new()
        .route(
            "/agent",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    AGENT_SCRIPT,
                )
            }),
        )
        .route(
            "/download/agent",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/agent")]).into_response() }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    serve(router).await
}

/// User-data in the shape SAM renders: config files, a unit, then runcmd
/// downloading and starting the agent.
pub fn agent_user_data(download_url: &str) -> String {
    format!(
        r#"#cloud-config
package_update: false
write_files:
  - path: /etc/sam/agent.env
    owner: root:root
    permissions: '0600'
    content: |
      # written by the control plane
      SAM_NODE_ID=node-1
      SAM_TOKEN="secret token"
  - path: /etc/systemd/system/sam-agent.service
    permissions: '0644'
    content: |
      [Unit]
      Description=SAM agent
      After=network-online.target

      [Service]
      Type=simple
      Environment=SAM_LOG=debug "SAM_GREETING=hello world"
      EnvironmentFile=/etc/sam/agent.env
      EnvironmentFile=-/etc/sam/optional.env
      ExecStart=/usr/local/bin/sam-agent --node ${{SAM_NODE_ID}} --config /etc/sam/agent.toml
      Restart=always
      RestartSec=200ms

      [Install]
      WantedBy=multi-user.target
runcmd:
  - [mkdir, -p, /var/lib/sam]
  - [curl, -fsSL, --retry, "3", --retry-delay, "0", -o, /usr/local/bin/sam-agent, "{download_url}"]
  - [chmod, "0755", /usr/local/bin/sam-agent]
  - [systemctl, daemon-reload]
  - [systemctl, restart, systemd-journald]
  - [apt-get, install, -y, git]
  - [systemctl, enable, --now, sam-agent.service]
"#
    )
}

/// Reads `/proc/<pid>/stat` state letter, `None` once the pid is gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

pub fn alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
