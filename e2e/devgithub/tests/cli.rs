//! The `devgithub` binary as an orchestrator runs it: the announcement
//! line, the port file, serving with the configured app, a clean SIGTERM
//! exit, and refusal to start on bad input.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{APP_PUBLIC_KEY, CLIENT_ID, app_jwt, decode};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn command(state_dir: &Path, key: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devgithub"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state_dir)
        .args(["--client-id", CLIENT_ID, "--client-secret", "s3cret"])
        .args([
            "--app-id",
            &common::APP_ID.to_string(),
            "--app-slug",
            "sam-test",
        ])
        .arg("--app-public-key-pem")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn announces_serves_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pub.pem");
    std::fs::write(&key, APP_PUBLIC_KEY).unwrap();
    let state_dir = dir.path().join("state");
    let mut child = command(&state_dir, &key).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("announcement in time")
        .unwrap()
        .expect("a line");
    let base = line
        .strip_prefix("devgithub listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        std::fs::read_to_string(state_dir.join("port")).unwrap(),
        port.to_string()
    );

    let client = reqwest::Client::new();
    let (status, app) = decode(
        client
            .get(format!("{base}/app"))
            .bearer_auth(app_jwt())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["slug"], "sam-test");
    let (status, repo) = decode(
        client
            .post(format!("{base}/_devgithub/repos"))
            .json(&json!({"owner": "acme", "name": "api"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(repo["clone_url"], format!("{base}/acme/api.git"));

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("devgithub exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(state_dir.join("state.json").exists());
}

#[tokio::test]
async fn refuses_bad_keys_and_missing_flags() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("not-a-key.pem");
    std::fs::write(&key, "hello").unwrap();
    let status = command(dir.path(), &key).status().await.unwrap();
    assert!(!status.success());

    let status = Command::new(env!("CARGO_BIN_EXE_devgithub"))
        .arg("--state-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!status.success());
    assert!(!dir.path().join("port").exists());
}
