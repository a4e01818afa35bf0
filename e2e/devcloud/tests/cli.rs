//! The `devcloud` binary as an orchestrator runs it: the announcement
//! line, the port file, and a clean SIGTERM shutdown that leaves no
//! agent process behind.

// Helpers outside #[test] fns panic on purpose: the panic is the report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{agent_user_data, alive, devcloud_exit_status, file_server, read_pid, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Starts the binary and returns it with the base URL it announced, after
/// checking that URL against the port file.
async fn spawn_devcloud(state_dir: &std::path::Path) -> (tokio::process::Child, String) {
    let (child, base) = common::spawn_devcloud(
        state_dir,
        &["--token", "t1", "--token", "t2", "--boot-delay-ms", "10"],
    )
    .await;
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        std::fs::read_to_string(state_dir.join("port")).unwrap(),
        port.to_string()
    );
    (child, base)
}

async fn create_agent_server(base: &str, files_port: u16) -> u64 {
    let created: Value = reqwest::Client::new()
        .post(format!("{base}/v1/servers"))
        .bearer_auth("t2")
        .json(&json!({
            "name": "cli-node",
            "server_type": "cx33",
            "image": "ubuntu-24.04",
            "location": "hel1",
            "user_data": agent_user_data(&format!("http://127.0.0.1:{files_port}/agent")),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["server"]["id"].as_u64().unwrap()
}

async fn wait_agent(root: &std::path::Path, previous: Option<i32>) -> i32 {
    let pid_file = root.join("var/lib/sam/agent.pid");
    wait_until(Duration::from_secs(20), "agent", || async {
        read_pid(&pid_file).filter(|p| alive(*p) && Some(*p) != previous)
    })
    .await
}

fn signal(child: &tokio::process::Child, signal: Signal) {
    kill(
        Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()),
        signal,
    )
    .unwrap();
}

#[tokio::test]
async fn announces_serves_and_shuts_down_cleanly() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_devcloud(dir.path()).await;
    let id = create_agent_server(&base, files_port).await;
    let root = dir.path().join(format!("servers/{id}/root"));
    let agent = wait_agent(&root, None).await;
    let helper = read_pid(&root.join("var/lib/sam/helper.pid")).unwrap();

    signal(&child, Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("devcloud exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!alive(agent), "agent survived devcloud shutdown");
    assert!(!alive(helper), "agent's child survived devcloud shutdown");

    // The server is still "running" in state, to be booted again.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["servers"][id.to_string()]["status"], "running");
}

#[tokio::test]
async fn restart_after_a_crash_kills_leftover_agents() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_devcloud(dir.path()).await;
    let id = create_agent_server(&base, files_port).await;
    let root = dir.path().join(format!("servers/{id}/root"));
    let orphan = wait_agent(&root, None).await;

    // SIGKILL gives devcloud no chance to clean up; its agents live on.
    signal(&child, Signal::SIGKILL);
    child.wait().await.unwrap();
    assert!(alive(orphan));

    let (mut child, _base) = spawn_devcloud(dir.path()).await;
    let fresh = wait_agent(&root, Some(orphan)).await;
    assert!(
        !alive(orphan),
        "the crashed devcloud's agent was not killed"
    );
    signal(&child, Signal::SIGTERM);
    assert!(child.wait().await.unwrap().success());
    assert!(!alive(fresh));
}

#[tokio::test]
async fn refuses_to_start_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let status = devcloud_exit_status(dir.path(), &[]).await;
    assert!(!status.success());
}
