//! Task and chat benchmarks, run by `cargo xtask bench` against its
//! release platform (ignored in `cargo xtask test`). Figures go as JSON to
//! the file named by `SAM_E2E_BENCH_OUT`.
//!
//! - `task_warm_submit_to_prompt_ms`: a task submitted while the user has a
//!   warm node, from just before `POST /api/projects/{id}/tasks` to the
//!   `created_at` of its session's `prompt_sent` message (stamped by the
//!   vm-agent on this machine, just before the prompt is written to the
//!   agent).
//! - `task_cold_overhead_ms`: the same for the first task of a fresh user,
//!   which has to create its node, minus that node's boot
//!   (`agent_ready_at − created_at`).
//! - `chat_ingest_chunks_per_s`: outbox batches posted to the chat the way
//!   the vm-agent's delivery loop does (one at a time, with the
//!   workspace's callback token) into a session whose agent has exited.

use std::time::{Duration, Instant};

use sam_auth::{Audience, Grant};
use sam_e2e::{Platform, eventually, get_json, now_ms};
use serde_json::{Value, json};

use crate::tasks::{submit_task, transcript, wait_for_task_end};
use crate::workspaces::{running_workspace, workspace_setup};

/// Tasks of fresh users (each creates its node).
const COLD_TASKS: usize = 3;
/// Tasks on the node the last cold task left warm.
const WARM_TASKS: usize = 7;
/// Messages per ingest batch (the vm-agent's batch size).
const BATCH: u64 = 256;
/// Batches posted one after another.
const SEQUENTIAL_BATCHES: u64 = 40;
/// Pairs of batches posted two at a time.
const PIPELINED_PAIRS: u64 = 20;
/// What the tasks ask: the LLM stand-in's default answer, one short turn.
const TASK_MESSAGE: &str = "Reply with a short greeting";

#[tokio::test]
#[ignore = "a benchmark: `cargo xtask bench` runs it"]
async fn bench_tasks() {
    let out = std::env::var("SAM_E2E_BENCH_OUT").expect("SAM_E2E_BENCH_OUT names the output file");
    let p = Platform::from_env();

    // Cold: the first task of a fresh user creates a node.
    let mut cold_overhead = Vec::new();
    let mut cold_samples = Vec::new();
    let mut warm_user = None;
    for i in 0..COLD_TASKS {
        let (client, _session, project) =
            sam_e2e::github_project(&p, &format!("bench-task-{i}"), "bench-tasks")
                .await
                .unwrap();
        let project_id = project["id"].as_str().unwrap().to_owned();
        let run = run_task(&p, &client, &project_id).await;
        let node: Value = get_json(&client, &p.app(&format!("/api/nodes/{}", run.node_id))).await;
        let boot = node["agent_ready_at"].as_f64().unwrap() - node["created_at"].as_f64().unwrap();
        cold_overhead.push(run.submit_to_prompt - boot);
        cold_samples.push(json!({
            "submit_to_prompt_ms": run.submit_to_prompt,
            "node_boot_ms": boot,
            "steps": run.steps,
        }));
        wait_for_warm(&client, &p, &run.node_id).await;
        if i + 1 < COLD_TASKS {
            delete_node(&client, &p, &run.node_id).await;
        } else {
            warm_user = Some((client, project_id, run.node_id));
        }
    }

    // Warm: one task after another on the node the last one left warm.
    let (client, project_id, warm_node) = warm_user.unwrap();
    let mut warm = Vec::new();
    let mut warm_samples = Vec::new();
    for _ in 0..WARM_TASKS {
        let run = run_task(&p, &client, &project_id).await;
        assert_eq!(run.node_id, warm_node, "a warm task got another node");
        warm.push(run.submit_to_prompt);
        warm_samples.push(json!({
            "submit_to_prompt_ms": run.submit_to_prompt,
            "steps": run.steps,
        }));
        wait_for_warm(&client, &p, &warm_node).await;
    }
    delete_node(&client, &p, &warm_node).await;

    let ingest = bench_ingest(&p).await;

    let figures = json!({
        "task_warm_submit_to_prompt_ms": median(&mut warm),
        "task_cold_overhead_ms": median(&mut cold_overhead),
        "chat_ingest_chunks_per_s": ingest.sequential,
        "chat_ingest_chunks_per_s_2_in_flight": ingest.pipelined,
        "samples": {
            "cold": cold_samples,
            "warm": warm_samples,
            "ingest_messages_sequential": BATCH * SEQUENTIAL_BATCHES,
            "ingest_messages_2_in_flight": ingest.pipelined_messages,
            "ingest_batches_resent_2_in_flight": ingest.resent,
        }
    });
    println!("{figures:#}");
    std::fs::write(out, figures.to_string()).unwrap();
}

/// One task, submitted and followed to its end.
struct TaskRun {
    node_id: String,
    /// Submit (client clock) → the session's `prompt_sent` (vm-agent clock).
    submit_to_prompt: f64,
    /// Milliseconds from the submit to each step the run entered, and to
    /// the session's first messages.
    steps: Value,
}

async fn run_task(p: &Platform, client: &reqwest::Client, project_id: &str) -> TaskRun {
    let submitted = now_ms();
    let task = submit_task(client, p, project_id, TASK_MESSAGE, "claude-code").await;
    let ended = wait_for_task_end(client, p, task["id"].as_str().unwrap()).await;
    assert_eq!(ended["task"]["status"], "completed", "{ended}");
    let session_id = ended["task"]["session_id"].as_str().unwrap();
    let t = transcript(client, p, project_id, session_id).await;
    let at = |kind: &str| {
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == kind)
            .and_then(|m| m["created_at"].as_i64())
    };
    let prompt_sent = at("prompt_sent").unwrap_or_else(|| panic!("no prompt_sent in {t}"));
    let mut steps = serde_json::Map::new();
    for change in ended["status_log"].as_array().unwrap() {
        let status = change["to_status"].as_str().unwrap().to_owned();
        steps
            .entry(status)
            .or_insert_with(|| json!(change["at"].as_i64().unwrap() - submitted));
    }
    for kind in ["session_started", "prompt_sent", "turn_ended"] {
        if let Some(when) = at(kind) {
            steps.insert(kind.to_owned(), json!(when - submitted));
        }
    }
    #[allow(clippy::cast_precision_loss)]
    TaskRun {
        node_id: ended["task"]["node_id"].as_str().unwrap().to_owned(),
        submit_to_prompt: (prompt_sent - submitted) as f64,
        steps: Value::Object(steps),
    }
}

/// Waits until the task's clean-up has released its node.
async fn wait_for_warm(client: &reqwest::Client, p: &Platform, node_id: &str) {
    sam_e2e::wait_for_node(client, &p.app(&format!("/api/nodes/{node_id}")), "warm")
        .await
        .unwrap();
}

async fn delete_node(client: &reqwest::Client, p: &Platform, node_id: &str) {
    let resp = client
        .delete(p.app(&format!("/api/nodes/{node_id}")))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "delete node {node_id}: {}",
        resp.text().await.unwrap()
    );
}

struct Ingest {
    sequential: f64,
    pipelined: f64,
    pipelined_messages: u64,
    resent: u64,
}

/// Chat ingest: a session bound to a running workspace whose agent has
/// exited (so no vm-agent delivers to it any more), continued with
/// synthetic `agent_message_chunk` updates under the workspace's callback
/// token, as the vm-agent's delivery loop would send them.
async fn bench_ingest(p: &Platform) -> Ingest {
    let s = workspace_setup(p, "bench-chat").await;
    let ws = running_workspace(p, &s, "bench-chat").await;
    let resp = s
        .client
        .post(p.app(&format!("/api/workspaces/{}/sessions", ws.id)))
        .json(&json!({ "agent": "claude-code" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    let sid = started["session_id"].as_str().unwrap().to_owned();
    let pid = s.project_id.clone();

    // Stop the agent once it has started, then wait for its last message.
    let has = |t: &Value, kind: &str| {
        t["messages"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["kind"] == kind))
    };
    let first = eventually(
        "the session's agent to start",
        Duration::from_secs(120),
        || async {
            let t = transcript(&s.client, p, &pid, &sid).await;
            Ok((has(&t, "session_started") || has(&t, "agent_start_failed")).then_some(t))
        },
    )
    .await
    .unwrap();
    assert!(has(&first, "session_started"), "{first}");
    let resp = s
        .client
        .post(p.app(&format!("/api/projects/{pid}/sessions/{sid}/stop")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "stop: {}",
        resp.text().await.unwrap()
    );
    let exited = eventually(
        "the session's agent_exited",
        Duration::from_secs(60),
        || async {
            let t = transcript(&s.client, p, &pid, &sid).await;
            Ok(has(&t, "agent_exited").then_some(t))
        },
    )
    .await
    .unwrap();
    let mut acked = exited["session"]["acked_up_to"].as_u64().unwrap();

    let token = p.signing_key().unwrap().issue(
        &p.issuer(),
        &Grant::workspace(Audience::WorkspaceCallback, &s.node_id, &ws.id, 3600),
        now_ms(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p.port));
    let http = reqwest::Client::builder()
        .resolve("api.sam.localhost", addr)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = p.api(&format!(
        "/api/workspaces/{}/sessions/{sid}/messages",
        ws.id
    ));
    let post = |from: u64| {
        let body = batch(from);
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let ack: Value = resp.json().await.unwrap();
            assert_eq!(status, 200, "{ack}");
            ack["acked_up_to"].as_u64().unwrap()
        }
    };

    // Warm-up (not timed).
    acked = post(acked + 1).await;

    // One batch at a time, as the vm-agent sends them.
    let start = Instant::now();
    let from = acked;
    for _ in 0..SEQUENTIAL_BATCHES {
        let ack = post(acked + 1).await;
        assert_eq!(ack, acked + BATCH, "the chat took the whole batch");
        acked = ack;
    }
    #[allow(clippy::cast_precision_loss)]
    let sequential = (acked - from) as f64 / start.elapsed().as_secs_f64();

    // Two at a time: the second may reach the chat first and be dropped as
    // a gap; it is then sent again with the next pair.
    let start = Instant::now();
    let from = acked;
    let mut resent = 0;
    for _ in 0..PIPELINED_PAIRS {
        let (a, b) = tokio::join!(post(acked + 1), post(acked + 1 + BATCH));
        let ack = a.max(b);
        if ack < acked + 2 * BATCH {
            resent += 1;
        }
        acked = ack;
    }
    let pipelined_messages = acked - from;
    #[allow(clippy::cast_precision_loss)]
    let pipelined = pipelined_messages as f64 / start.elapsed().as_secs_f64();

    // Every message is in the chat, in order.
    let last: Value = get_json(
        &s.client,
        &p.app(&format!(
            "/api/projects/{pid}/sessions/{sid}/messages?after={}&limit=10",
            acked - 1
        )),
    )
    .await;
    assert_eq!(
        last["session"]["acked_up_to"].as_u64(),
        Some(acked),
        "{last}"
    );
    assert_eq!(last["messages"][0]["seq"].as_u64(), Some(acked), "{last}");
    delete_node(&s.client, p, &s.node_id).await;

    Ingest {
        sequential,
        pipelined,
        pipelined_messages,
        resent,
    }
}

/// [`BATCH`] `agent_message_chunk` updates numbered from `from`.
fn batch(from: u64) -> Value {
    let now = now_ms();
    let messages: Vec<Value> = (from..from + BATCH)
        .map(|seq| {
            json!({
                "seq": seq,
                "created_at": now,
                "kind": "update",
                "payload": { "update": {
                    "sessionUpdate": "agent_message_chunk",
                    "content": { "type": "text", "text": format!("chunk {seq}: the quick brown fox jumps over the lazy dog. ") },
                } },
            })
        })
        .collect();
    json!({ "messages": messages })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
