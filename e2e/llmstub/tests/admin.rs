//! The stand-in's own surface: the request log, swapping the script at
//! run time, API keys (with each API's error format), model lists, unknown
//! paths, and the binary as an orchestrator runs it.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{EDIT_FILE, send, start, start_edit_file};
use sam_llmstub::{Config, Script};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn requests(t: &common::TestStub) -> Vec<Value> {
    let (status, _, text) = send(t.client.get(format!("{}/_llmstub/requests", t.base))).await;
    assert_eq!(status, 200);
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn request_log_records_and_clears() {
    let t = start_edit_file().await;
    send(
        t.client
            .post(format!("{}/v1/messages?beta=true", t.base))
            .header("x-api-key", "k")
            .json(&json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "stream": true,
                "messages": [{"role": "user", "content": "create hello.txt"}],
                "tools": [{"name": "Write", "input_schema": {"type": "object", "properties": {"file_path": {}, "content": {}}}}]
            })),
    )
    .await;
    send(
        t.client
            .post(format!("{}/v1/responses", t.base))
            .bearer_auth("k")
            .json(&json!({"model": "gpt-5.3-codex", "input": "generate a title", "stream": false})),
    )
    .await;
    let log = requests(&t).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["api"], "anthropic");
    assert_eq!(log[0]["kind"], "generate");
    assert_eq!(log[0]["path"], "/v1/messages");
    assert_eq!(log[0]["model"], "claude-sonnet-4-5");
    assert_eq!(log[0]["stream"], true);
    assert_eq!(log[0]["last_user_text"], "create hello.txt");
    assert_eq!(log[0]["offered_tools"], json!(["Write"]));
    assert_eq!(log[0]["has_tool_result"], false);
    assert_eq!(log[0]["matched_rule"], 3);
    assert_eq!(log[0]["rule_name"], "create-file");
    assert_eq!(log[0]["reply_tool"], "Write");
    assert_eq!(log[1]["api"], "responses");
    assert_eq!(log[1]["rule_name"], "side-call");
    assert_eq!(log[1]["reply_text"], "Hello from llmstub.");
    assert!(log[1]["seq"].as_u64() > log[0]["seq"].as_u64());

    let (status, _, _) = send(t.client.delete(format!("{}/_llmstub/requests", t.base))).await;
    assert_eq!(status, 204);
    assert!(requests(&t).await.is_empty());
}

#[tokio::test]
async fn script_can_be_replaced_at_run_time() {
    let t = start(Config::default()).await;
    let (status, _, text) = send(
        t.client
            .put(format!("{}/_llmstub/script", t.base))
            .body(r#"{"rules": [{"when": {"typo_field": 1}, "reply": {"text": "x"}}]}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("typo_field"), "{text}");

    let (status, _, _) = send(t.client.put(format!("{}/_llmstub/script", t.base)).body(
        r#"[{"name": "pong", "when": {"last_user_contains": "ping"}, "reply": {"text": "pong"}}]"#,
    ))
    .await;
    assert_eq!(status, 204);
    let (_, _, text) = send(t.client.get(format!("{}/_llmstub/script", t.base))).await;
    let script: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(script["rules"][0]["name"], "pong");

    let (_, _, text) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("k")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "PING"}]})),
    )
    .await;
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "pong");
}

#[tokio::test]
async fn keys_are_checked_in_each_apis_error_format() {
    let t = start(Config {
        script: Script::from_json(EDIT_FILE).unwrap(),
        require_key: Some("right".into()),
    })
    .await;
    let body =
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]});

    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/messages", t.base))
            .header("x-api-key", "wrong")
            .json(&body),
    )
    .await;
    assert_eq!(status, 401);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");

    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("wrong")
            .json(&body),
    )
    .await;
    assert_eq!(status, 401);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");

    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/responses", t.base))
            .json(&json!({"model": "m", "input": "hi"})),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains("invalid_api_key"));

    let (status, _, text) = send(
        t.client
            .post(format!(
                "{}/v1beta/models/g:generateContent?key=wrong",
                t.base
            ))
            .json(&json!({"contents": []})),
    )
    .await;
    assert_eq!(status, 401);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(error["error"]["code"], 401);

    let (status, _, _) = send(
        t.client
            .post(format!("{}/v1/messages", t.base))
            .header("x-api-key", "right")
            .json(&body),
    )
    .await;
    assert_eq!(status, 200);
    let log = requests(&t).await;
    assert_eq!(
        log.iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [401, 401, 401, 401, 200]
    );
}

#[tokio::test]
async fn any_key_by_default_but_not_none_and_bad_json_is_a_400() {
    let t = start(Config::default()).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("anything-at-all")
            .json(&body),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .json(&body),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/messages", t.base))
            .header("x-api-key", "k")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn model_lists_and_unknown_paths() {
    let t = start(Config::default()).await;
    let (status, _, text) = send(t.client.get(format!("{}/v1/models", t.base))).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["object"], "list");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-5.3-codex")
    );

    let (_, _, text) = send(
        t.client
            .get(format!("{}/v1/models", t.base))
            .header("anthropic-version", "2023-06-01"),
    )
    .await;
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(list["has_more"], false);

    let (_, _, text) = send(t.client.get(format!("{}/v1beta/models", t.base))).await;
    let list: Value = serde_json::from_str(&text).unwrap();
    assert!(
        list["models"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("models/")
    );

    let (status, _, _) = send(t.client.post(format!("{}/v1/embeddings", t.base))).await;
    assert_eq!(status, 404);
    let entries = requests(&t).await;
    let newest = entries.last().unwrap();
    assert_eq!(newest["kind"], "unknown");
    assert_eq!(newest["path"], "/v1/embeddings");
}

#[tokio::test]
async fn binary_announces_serves_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.json");
    std::fs::write(&script, EDIT_FILE).unwrap();
    let state_dir = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmstub"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state_dir)
        .arg("--script")
        .arg(&script)
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
        .strip_prefix("llmstub listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        std::fs::read_to_string(state_dir.join("port")).unwrap(),
        port.to_string()
    );

    let (status, _, text) = send(
        reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth("k")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("Hello from llmstub."), "{text}");

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn binary_refuses_a_bad_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.json");
    std::fs::write(&script, r#"{"rules": [{"reply": {}}]}"#).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_llmstub"))
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--script")
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!status.success());
    assert!(!dir.path().join("port").exists());
}
