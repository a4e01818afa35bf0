//! Booting servers: cloud-config interpretation end to end, the agent
//! process's environment, restarts, power cycles, failures, and — above
//! all — that no process outlives its server.

// Helpers outside #[test] fns panic on purpose: the panic is the report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{TestCloud, agent_user_data, alive, file_server, read_pid, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

fn agent_server(name: &str, user_data: &str) -> Value {
    json!({
        "name": name,
        "server_type": "cx23",
        "image": "ubuntu-24.04",
        "location": "nbg1",
        "labels": {"sam.dev/node": name},
        "user_data": user_data,
    })
}

/// Waits for the agent to record its pid (written last by the script).
async fn agent_pid(root: &Path, previous: Option<i32>) -> i32 {
    let pid_file = root.join("var/lib/sam/agent.pid");
    wait_until(Duration::from_secs(20), "agent pid", || async {
        read_pid(&pid_file).filter(|p| Some(*p) != previous && alive(*p))
    })
    .await
}

fn env_of(root: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(root.join("var/lib/sam/env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

async fn wait_gone(pid: i32) {
    wait_until(
        Duration::from_secs(10),
        &format!("pid {pid} to exit"),
        || async { (!alive(pid)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn cloud_config_boots_the_agent_and_delete_kills_it() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 20).await;
    // `api.localhost` only resolves through devcloud's own resolver, and the
    // URL redirects, so this also covers `-L` and the resolver.
    let url = format!("http://api.localhost:{files_port}/download/agent");
    let created = cloud
        .create(agent_server("node-1", &agent_user_data(&url)))
        .await;
    let id = created["server"]["id"].as_u64().unwrap();
    let ip = created["server"]["public_net"]["ipv4"]["ip"]
        .as_str()
        .unwrap()
        .to_owned();

    let server = cloud.wait_status(id, "running").await;
    assert_eq!(server["public_net"]["ipv4"]["ip"], ip.as_str());
    let root = cloud.server_dir(id).join("root");
    let pid = agent_pid(&root, None).await;

    // write_files and runcmd effects, rebased under the server root.
    let env_file = root.join("etc/sam/agent.env");
    assert_eq!(mode(&env_file), 0o600);
    assert!(
        std::fs::read_to_string(&env_file)
            .unwrap()
            .contains("SAM_NODE_ID=node-1")
    );
    assert_eq!(
        mode(&root.join("etc/systemd/system/sam-agent.service")),
        0o644
    );
    let binary = root.join("usr/local/bin/sam-agent");
    assert_eq!(
        std::fs::read_to_string(&binary).unwrap(),
        common::AGENT_SCRIPT
    );
    assert_eq!(mode(&binary), 0o755);
    assert!(root.join("var/lib/sam").is_dir());

    // The process sees the declared environment plus devcloud's contract.
    let env = env_of(&root);
    assert_eq!(env["SAM_FS_ROOT"], root.to_str().unwrap());
    assert_eq!(env["SAM_BIND_HOST"], ip);
    assert_eq!(env["SAM_NODE_ID"], "node-1");
    assert_eq!(env["SAM_TOKEN"], "secret token");
    assert_eq!(env["SAM_LOG"], "debug");
    assert_eq!(env["SAM_GREETING"], "hello world");
    assert!(env["PATH"].contains("/usr/bin"));
    assert!(
        !env.contains_key("CARGO"),
        "devcloud's own environment leaked"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/sam/cwd"))
            .unwrap()
            .trim(),
        root.to_str().unwrap()
    );

    // Own process group, so the whole tree can be killed.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let pgrp: i32 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pgrp, pid);
    let helper = read_pid(&root.join("var/lib/sam/helper.pid")).unwrap();
    assert!(alive(helper));

    // The server's address is usable like a VM's own interface.
    let ip_addr: std::net::Ipv4Addr = ip.parse().unwrap();
    drop(std::net::TcpListener::bind((ip_addr, 0)).unwrap());

    let console = cloud.console(id);
    for expected in [
        "write_files: /etc/sam/agent.env",
        "curl: http://api.localhost",
        "not emulated: cloud-config module \"package_update\"",
        "not emulated: apt-get install -y git",
        "systemctl restart systemd-journald.service: OS unit",
        "agent started on ",
        "args: --node node-1 --config /etc/sam/agent.toml",
        "boot finished",
    ] {
        assert!(
            console.contains(expected),
            "console lacks {expected:?}:\n{console}"
        );
    }

    let (status, body) = cloud.delete(&format!("/v1/servers/{id}")).await;
    assert_eq!(status, 200);
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    // Once the delete action is done, the agent and its child are gone.
    assert!(!alive(pid), "agent {pid} survived delete");
    assert!(!alive(helper), "helper {helper} survived delete");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "agent left a zombie"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["orphans"], json!([]));
    cloud.stop().await;
}

#[tokio::test]
async fn restart_always_restarts_a_crashed_agent() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let url = format!("http://127.0.0.1:{files_port}/agent");
    let id = cloud
        .create(agent_server("crashy", &agent_user_data(&url)))
        .await["server"]["id"]
        .as_u64()
        .unwrap();
    let root = cloud.server_dir(id).join("root");
    let first = agent_pid(&root, None).await;
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let second = agent_pid(&root, Some(first)).await;
    assert_ne!(first, second);
    assert!(cloud.console(id).contains("main process exited"));
    cloud.stop().await;
    wait_gone(second).await;
}

#[tokio::test]
async fn failed_download_leaves_a_running_server_without_agent() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let url = format!("http://127.0.0.1:{files_port}/missing");
    let created = cloud
        .create(agent_server("broken", &agent_user_data(&url)))
        .await;
    let id = created["server"]["id"].as_u64().unwrap();
    cloud.wait_status(id, "running").await;
    // Like a real cloud, the API reports success; only the console knows.
    let start = created["next_actions"][0]["id"].as_u64().unwrap();
    assert_eq!(cloud.wait_action(start).await["status"], "success");
    let console = cloud.console(id);
    assert!(console.contains("boot failed"), "{console}");
    assert!(console.contains("404"), "{console}");
    assert!(!console.contains("started main process"), "{console}");
    let root = cloud.server_dir(id).join("root");
    // `curl -f` writes nothing on an HTTP error.
    assert!(!root.join("usr/local/bin/sam-agent").exists());
    assert!(!root.join("var/lib/sam/agent.pid").exists());
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["servers"][id.to_string()]["processes"], json!([]));
    cloud.stop().await;
}

#[tokio::test]
async fn missing_unit_and_unexecutable_binary_fail_the_boot() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let url = format!("http://127.0.0.1:{files_port}/agent");

    let no_chmod =
        agent_user_data(&url).replace("  - [chmod, \"0755\", /usr/local/bin/sam-agent]\n", "");
    let id = cloud.create(agent_server("no-chmod", &no_chmod)).await["server"]["id"]
        .as_u64()
        .unwrap();
    cloud.wait_status(id, "running").await;
    let console = cloud.console(id);
    assert!(
        console.contains("boot failed: Failed to start sam-agent.service"),
        "{console}"
    );

    let typo = agent_user_data(&url).replace(
        "enable, --now, sam-agent.service",
        "enable, --now, sam-agnet",
    );
    let id = cloud.create(agent_server("typo", &typo)).await["server"]["id"]
        .as_u64()
        .unwrap();
    cloud.wait_status(id, "running").await;
    let console = cloud.console(id);
    assert!(
        console.contains("Unit sam-agnet.service not found"),
        "{console}"
    );
    cloud.stop().await;
}

#[tokio::test]
async fn power_cycle_starts_enabled_units_without_rerunning_cloud_init() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let url = format!("http://127.0.0.1:{files_port}/agent");
    let id = cloud
        .create(agent_server("cycle", &agent_user_data(&url)))
        .await["server"]["id"]
        .as_u64()
        .unwrap();
    let root = cloud.server_dir(id).join("root");
    let first = agent_pid(&root, None).await;
    let helper = read_pid(&root.join("var/lib/sam/helper.pid")).unwrap();

    let (status, body) = cloud
        .post(&format!("/v1/servers/{id}/actions/poweroff"), json!({}))
        .await;
    assert_eq!(status, 201);
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    assert_eq!(cloud.server(id).await["status"], "off");
    assert!(!alive(first) && !alive(helper), "poweroff left processes");

    let (status, body) = cloud
        .post(&format!("/v1/servers/{id}/actions/poweron"), json!({}))
        .await;
    assert_eq!(status, 201);
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    let second = agent_pid(&root, Some(first)).await;
    let console = cloud.console(id);
    assert_eq!(
        console.matches("cloud-init: running user-data").count(),
        1,
        "{console}"
    );
    assert!(console.contains("cloud-init already ran"), "{console}");
    cloud.stop().await;
    wait_gone(second).await;
}

#[tokio::test]
async fn devcloud_restart_kills_and_reboots_agents() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let url = format!("http://127.0.0.1:{files_port}/agent");
    let id = cloud
        .create(agent_server("survivor", &agent_user_data(&url)))
        .await["server"]["id"]
        .as_u64()
        .unwrap();
    let root = cloud.server_dir(id).join("root");
    let first = agent_pid(&root, None).await;
    let helper = read_pid(&root.join("var/lib/sam/helper.pid")).unwrap();

    cloud.stop().await;
    assert!(!alive(first) && !alive(helper), "shutdown left processes");

    let cloud = TestCloud::start(dir.path(), 10).await;
    assert_eq!(cloud.server(id).await["status"], "running");
    let second = agent_pid(&root, Some(first)).await;
    assert_ne!(first, second);
    cloud.stop().await;
    wait_gone(second).await;
}

#[tokio::test]
async fn boots_the_user_data_sam_renders() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let control_plane = format!("http://api.localhost:{files_port}");
    let download = format!("{control_plane}/agent?arch=x86_64");
    let user_data = sam_cloud_init::render(&sam_cloud_init::NodeBootstrap {
        node_id: "01HZY8J3K4M5N6P7Q8R9S0T1V2",
        hostname: "sam-node-1",
        control_plane_url: &control_plane,
        agent_download_url: &download,
        callback_token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJub2RlIn0.c2lnbmF0dXJl",
        heartbeat_interval_secs: 5,
        vm_agent_port: 8443,
        app_origin: "http://app.localhost:8787",
    })
    .unwrap();
    let created = cloud.create(agent_server("sam-node-1", &user_data)).await;
    let id = created["server"]["id"].as_u64().unwrap();
    let root = cloud.server_dir(id).join("root");
    let pid = agent_pid(&root, None).await;
    assert_eq!(cloud.wait_status(id, "running").await["name"], "sam-node-1");

    let binary = root.join(sam_cloud_init::AGENT_BINARY_PATH.trim_start_matches('/'));
    assert_eq!(mode(&binary), 0o755);
    let token = root.join(sam_cloud_init::CALLBACK_TOKEN_PATH.trim_start_matches('/'));
    assert_eq!(mode(&token), 0o600);
    assert!(
        root.join(sam_cloud_init::JOURNALD_CONF_PATH.trim_start_matches('/'))
            .is_file()
    );
    let env = env_of(&root);
    assert_eq!(
        env[sam_cloud_init::env::NODE_ID],
        "01HZY8J3K4M5N6P7Q8R9S0T1V2"
    );
    assert_eq!(env[sam_cloud_init::env::CONTROL_PLANE_URL], control_plane);
    assert_eq!(
        env[sam_cloud_init::env::CALLBACK_TOKEN_FILE],
        sam_cloud_init::CALLBACK_TOKEN_PATH
    );
    assert_eq!(env[sam_cloud_init::env::VM_AGENT_PORT], "8443");
    assert_eq!(
        env["SAM_BIND_HOST"],
        created["server"]["public_net"]["ipv4"]["ip"]
            .as_str()
            .unwrap()
    );
    let console = cloud.console(id);
    assert!(!console.contains("boot failed"), "{console}");
    assert!(
        console.contains("not emulated: cloud-config module \"hostname\""),
        "{console}"
    );

    cloud.delete(&format!("/v1/servers/{id}")).await;
    wait_gone(pid).await;
    cloud.stop().await;
}

#[test]
fn agents_die_even_if_devcloud_is_dropped_without_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (agent, helper) = runtime.block_on(async {
        let (files_port, _files) = file_server().await;
        let cloud = TestCloud::start(dir.path(), 10).await;
        let url = format!("http://127.0.0.1:{files_port}/agent");
        let created = cloud
            .create(agent_server("dropped", &agent_user_data(&url)))
            .await;
        let root = cloud
            .server_dir(created["server"]["id"].as_u64().unwrap())
            .join("root");
        let agent = agent_pid(&root, None).await;
        let helper = read_pid(&root.join("var/lib/sam/helper.pid")).unwrap();
        (agent, helper)
        // `cloud` is dropped here without `stop()`, as on a panic.
    });
    drop(runtime);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (alive(agent) || alive(helper)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(agent), "agent outlived its devcloud");
    assert!(!alive(helper), "helper outlived its devcloud");
}
