//! The devcontainer runtime against a real Docker engine and the real Dev
//! Container CLI. Needs both, and pulls
//! `mcr.microsoft.com/devcontainers/base:ubuntu`, so it is ignored by
//! default; run it with `cargo test -p sam-vm-agent --test
//! workspaces_devcontainer -- --ignored --nocapture`. Without Docker (or the
//! CLI) it says so loudly and does nothing.
//!
//! (Command construction and output parsing are unit-tested in
//! `src/workspaces/devcontainer.rs`, with stand-in CLIs.)

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::NODE_ID;
use common::git_http::GitHttp;
use common::workspace_cp::WorkspaceCp;
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;

const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2P0";

fn available(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Containers carrying the workspace's label (`all`: stopped ones too).
fn containers(all: bool) -> Vec<String> {
    let mut args = vec!["ps", "-q"];
    if all {
        args.push("-a");
    }
    let filter = format!("label=sam.workspace={WS}");
    args.extend(["--filter", &filter]);
    let out = std::process::Command::new("docker")
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
#[ignore = "needs a Docker engine and the devcontainer CLI (run with --ignored)"]
async fn a_devcontainer_workspace_runs_in_its_container() {
    if !available("docker", &["info"]) {
        println!("SKIPPED: no Docker engine");
        eprintln!("SKIPPED: no Docker engine");
        return;
    }
    if !available("devcontainer", &["--version"]) {
        println!("SKIPPED: no devcontainer CLI (npm install -g @devcontainers/cli)");
        eprintln!("SKIPPED: no devcontainer CLI (npm install -g @devcontainers/cli)");
        return;
    }

    let token = "ghs_devcontainer_test_token_0001";
    let cp = WorkspaceCp::start(Some(token)).await;
    let git = GitHttp::start(token).await;
    git.create_repo("app.git", &["feature"]);
    let root = tempfile::tempdir().unwrap();
    let vars = [
        ("SAM_NODE_ID", NODE_ID.to_owned()),
        ("SAM_CONTROL_PLANE_URL", cp.url()),
        ("SAM_FS_ROOT", root.path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let agent =
        sam_vm_agent::Agent::new(sam_vm_agent::Config::from_env_map(&vars).unwrap()).unwrap();
    agent
        .workspaces()
        .set_credential_helper(PathBuf::from(env!("CARGO_BIN_EXE_vm-agent")));
    let workspaces = agent.workspaces().clone();
    let router = agent.router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();

    let resp = http
        .post(format!("http://{addr}/workspaces"))
        .bearer_auth(cp.token())
        .json(&json!({
            "id": WS,
            "repository": { "clone_url": git.url("app.git"), "branch": "feature" },
            "git_identity": { "name": "Ada", "email": "ada@example.com" },
            "runtime": "devcontainer",
            "callback_token": cp.callback_token(WS),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let outcome = cp.outcome(WS).await;
    assert_eq!(outcome.kind, "ready", "{:?}", outcome.body);
    assert_eq!(containers(false).len(), 1);

    // The checkout is mounted in the container; commands run there.
    let spec = workspaces
        .exec_command(WS, &["cat".into(), "BRANCH".into()], false)
        .await
        .unwrap();
    let out = spec.to_tokio_command().output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "feature\n");
    let shell = workspaces.shell_command(WS).await.unwrap();
    assert!(shell.args.iter().any(|a| a == "-t"));

    let op = |path: &'static str| {
        let (http, token) = (http.clone(), cp.token());
        async move {
            http.post(format!("http://{addr}/workspaces/{WS}/{path}"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(900))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(op("stop").await, StatusCode::OK);
    assert!(containers(false).is_empty());
    assert_eq!(containers(true).len(), 1);
    assert_eq!(op("restart").await, StatusCode::OK);
    assert_eq!(containers(false).len(), 1);
    assert_eq!(op("rebuild").await, StatusCode::OK);
    assert_eq!(containers(true).len(), 1);

    let status = http
        .delete(format!("http://{addr}/workspaces/{WS}"))
        .bearer_auth(cp.token())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(containers(true).is_empty());
    assert!(!root.path().join("var/lib/sam/workspaces").join(WS).exists());
}
