//! Shared test harness: an in-process devcloud on 127.0.0.1:0, an
//! authenticated client, a tiny file server standing in for the control
//! plane's download endpoint, and polling helpers.

#![allow(dead_code)] // each test crate uses a different subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::{Method, Response};
use sam_devcloud::{Config, DevCloud};
use serde_json::Value;

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
        let devcloud = DevCloud::start(Config {
            state_dir: state_dir.to_path_buf(),
            tokens: vec![TOKEN.into(), "second-token".into()],
            boot_delay: Duration::from_millis(boot_delay_ms),
            scaleway: None,
        })
        .await
        .unwrap();
        let (port, server) = serve(devcloud.router()).await;
        TestCloud {
            devcloud,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            state_dir: state_dir.to_path_buf(),
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
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        decode(request.send().await.unwrap()).await
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
