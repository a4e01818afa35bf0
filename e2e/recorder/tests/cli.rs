//! The `recorder` binary as the harness runs it: the announcement line,
//! the port file, proxying, a clean exit on SIGTERM (event streams still
//! open included).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn announces_proxies_records_and_exits_on_sigterm_despite_open_streams() {
    let upstream = common::serve(common::upstream_router()).await;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let record = dir.path().join("responses.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--upstream", &format!("http://{upstream}/")])
        .arg("--record")
        .arg(&record)
        .arg("--state-dir")
        .arg(&state_dir)
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
        .strip_prefix("recorder listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        std::fs::read_to_string(state_dir.join("port")).unwrap(),
        port.to_string()
    );

    let response = common::client()
        .get(format!("{base}/hello?x=1"))
        .header("host", "api.localhost:9999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["host"], "api.localhost:9999");
    assert_eq!(echo["path"], "/hello");
    let records = common::read_records(&record);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["path"], "/hello");

    // An event stream that never ends must not keep the recorder up.
    let mut events = common::client()
        .get(format!("{base}/events/endless"))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    assert_eq!(first, "data: hello\n\n");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exit in time")
        .unwrap();
    assert!(status.success(), "{status}");
    let rest = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("the stream ended in time");
    assert!(
        rest.is_err(),
        "an aborted stream, not a clean end: {rest:?}"
    );
    let records = common::read_records(&record);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["path"], "/events/endless");
    assert_eq!(records[1]["body"], "data: hello\n\n");
    assert_eq!(records[1]["complete"], false);
}

#[tokio::test]
async fn refuses_a_bad_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args(["--upstream", "localhost:8787"])
        .arg("--record")
        .arg(dir.path().join("r.jsonl"))
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("upstream"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!dir.path().join("port").exists());
}
