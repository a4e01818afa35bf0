//! `cargo xtask bench`: measures the spine and writes
//! `docs/benchmarks.json` (flat object of numbers) and `docs/benchmarks.md`.
//!
//! Everything is measured in one run on this machine: the release Worker
//! under `wrangler dev`, release vm-agents booted by devcloud.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::dev::build_all;
use crate::platform::{Options, Platform};
use crate::process::free_port;
use crate::{setup, worker};

const HEALTH_REQUESTS: usize = 300;
const NODE_RUNS: usize = 7;
const BOOT_DELAY_MS: u64 = 500;
/// Claims timed for `warm_claim_ms`.
const WARM_CLAIMS: usize = 30;
/// Nodes the sweep is timed over (`sweep_ms_per_100_nodes`).
const SWEEP_NODES: usize = 100;
const SWEEP_RUNS: usize = 5;

pub fn run() -> Result<()> {
    let tools = setup::run(false)?;
    build_all(&tools, true)?;
    let wasm = std::fs::read(worker::wasm_path(&tools)).context("read the release wasm")?;
    let wasm_gzip = gzip_len(&wasm)?;

    let state = std::env::temp_dir().join(format!("sam-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let vm_agent_port = free_port()?;
    let vars = BTreeMap::from([
        ("NODE_HEARTBEAT_INTERVAL_SECS".to_owned(), "60".to_owned()),
        ("VM_AGENT_PORT".to_owned(), vm_agent_port.to_string()),
        ("MAX_NODES_PER_USER".to_owned(), "150".to_owned()),
    ]);
    let platform = Platform::start(
        &tools,
        &Options {
            port: None,
            state_dir: state.clone(),
            profile: "release",
            boot_delay_ms: BOOT_DELAY_MS,
            vars,
            record_responses: None,
        },
    )?;
    let client = client(platform.port)?;
    let api = platform.api_url();

    // /health latency over one keep-alive connection.
    for _ in 0..20 {
        client
            .get(format!("{api}/health"))
            .send()?
            .error_for_status()?;
    }
    let mut health = Vec::with_capacity(HEALTH_REQUESTS);
    for _ in 0..HEALTH_REQUESTS {
        let start = Instant::now();
        client
            .get(format!("{api}/health"))
            .send()?
            .error_for_status()?
            .bytes()?;
        health.push(start.elapsed().as_secs_f64() * 1000.0);
    }

    // Node create → running, and the vm-agent's own start-up and footprint.
    let resp = client
        .post(format!("{api}/api/auth/dev-login"))
        .json(&json!({ "login": "bench" }))
        .send()?;
    if !resp.status().is_success() {
        bail!("sign-in failed: {}", resp.status());
    }
    client
        .put(format!("{api}/api/credentials/cloud/hetzner"))
        .json(&json!({ "token": platform.hetzner_token }))
        .send()?
        .error_for_status()?;
    let mut overhead = Vec::new();
    let mut start_to_ready = Vec::new();
    let mut rss = Vec::new();
    for i in 0..NODE_RUNS {
        let node: Value = client
            .post(format!("{api}/api/nodes"))
            .json(&json!({ "provider": "hetzner", "size": "small", "name": format!("bench-{i}") }))
            .send()?
            .error_for_status()?
            .json()?;
        let id = node["id"].as_str().context("node id")?.to_owned();
        let running = wait_running(&client, &api, &id)?;
        let created_at = running["created_at"].as_f64().context("created_at")?;
        let ready_at = running["agent_ready_at"]
            .as_f64()
            .context("agent_ready_at")?;
        #[allow(clippy::cast_precision_loss)]
        overhead.push(ready_at - created_at - BOOT_DELAY_MS as f64);
        if let Some(pid) = find_agent_pid(&id) {
            start_to_ready.push(ready_at - process_start_ms(pid)?);
            std::thread::sleep(Duration::from_secs(3));
            rss.push(rss_kib(pid)?);
        }
        client
            .delete(format!("{api}/api/nodes/{id}"))
            .send()?
            .error_for_status()?;
    }
    let mut warm_claim = time_warm_claims(&client, &api)?;
    // Before the sweep's figures, which make every later boot fail.
    let workspaces = e2e_bench(
        &tools.root,
        &platform,
        vm_agent_port,
        &state,
        &E2E_BENCHES[0],
    )?;
    let tasks = e2e_bench(
        &tools.root,
        &platform,
        vm_agent_port,
        &state,
        &E2E_BENCHES[1],
    )?;
    let restart = e2e_bench(
        &tools.root,
        &platform,
        vm_agent_port,
        &state,
        &E2E_BENCHES[2],
    )?;
    let mut sweep = time_sweep(&client, &api, &platform.devcloud_url)?;
    platform.stop();
    let _ = std::fs::remove_dir_all(&state);
    if start_to_ready.is_empty() {
        bail!("could not find any vm-agent process to measure");
    }

    let figures = BTreeMap::from([
        ("worker_wasm_bytes", to_f64(wasm.len())),
        ("worker_wasm_gzip_bytes", to_f64(wasm_gzip)),
        ("api_health_p50_ms", round2(percentile(&mut health, 50.0))),
        ("api_health_p99_ms", round2(percentile(&mut health, 99.0))),
        ("vm_agent_idle_rss_kib", median(&mut rss)),
        (
            "vm_agent_start_to_ready_ms",
            round2(median(&mut start_to_ready)),
        ),
        ("node_ready_overhead_ms", round2(median(&mut overhead))),
        // Issue 4's name for the same measurement: a node created for the
        // request (not taken from the warm pool).
        ("node_cold_overhead_ms", round2(median(&mut overhead))),
        ("warm_claim_ms", round2(median(&mut warm_claim))),
        ("sweep_ms_per_100_nodes", round2(median(&mut sweep))),
    ]);
    let mut figures = figures;
    for (bench, written) in E2E_BENCHES.iter().zip([&workspaces, &tasks, &restart]) {
        for key in bench.keys {
            let value = written[*key].as_f64().with_context(|| {
                format!(
                    "{} ({}) wrote no number `{key}` to SAM_E2E_BENCH_OUT: {written}",
                    bench.label, bench.test
                )
            })?;
            figures.insert(key, round2(value));
        }
    }
    write_reports(&tools.root, &figures, start_to_ready.len())?;
    for (k, v) in &figures {
        println!("{k} = {v}");
    }
    Ok(())
}

/// An end-to-end test run against the bench's platform, which writes its
/// figures as JSON to the file named by `SAM_E2E_BENCH_OUT`.
struct E2eBench {
    label: &'static str,
    /// The test's path in the `e2e` test binary, for `--exact`.
    test: &'static str,
    /// The figures taken from its JSON.
    keys: &'static [&'static str],
}

const E2E_BENCHES: [E2eBench; 3] = [
    // Drives workspaces and terminals the way the browser does.
    E2eBench {
        label: "the workspace benchmark",
        test: "bench::bench_workspaces",
        keys: &[
            "workspace_create_overhead_ms",
            "terminal_echo_p50_ms",
            "terminal_echo_p99_ms",
            "pty_throughput_mib_s",
        ],
    },
    // Tasks from submit to the agent's prompt, and chat ingest.
    E2eBench {
        label: "the task benchmark",
        test: "bench_tasks::bench_tasks",
        keys: &[
            "task_warm_submit_to_prompt_ms",
            "task_cold_overhead_ms",
            "chat_ingest_chunks_per_s",
            "chat_ingest_chunks_per_s_2_in_flight",
        ],
    },
    // Kills a vm-agent while its outbox holds undelivered messages.
    E2eBench {
        label: "the outbox restart test",
        test: "outbox_restart::outbox_survives_agent_restart",
        keys: &["messages_lost_under_restart"],
    },
];

/// Runs `bench.test` (ignored or not) against this platform and returns
/// the JSON it wrote.
fn e2e_bench(
    root: &Path,
    platform: &Platform,
    vm_agent_port: u16,
    state: &Path,
    bench: &E2eBench,
) -> Result<Value> {
    let out = state.join(format!("bench-{}.json", bench.test.replace("::", "-")));
    let _ = std::fs::remove_file(&out);
    let status = std::process::Command::new("cargo")
        .current_dir(root)
        .args([
            "test",
            "-p",
            "sam-e2e",
            "--test",
            "e2e",
            "--",
            "--include-ignored",
            "--exact",
            bench.test,
            "--nocapture",
        ])
        .envs(platform.env())
        .env("SAM_E2E_VM_AGENT_PORT", vm_agent_port.to_string())
        .env("SAM_E2E_BENCH_OUT", &out)
        .status()
        .with_context(|| format!("run {}", bench.label))?;
    if !status.success() {
        bail!("{} ({}) failed ({status})", bench.label, bench.test);
    }
    let text = std::fs::read_to_string(&out).with_context(|| {
        format!(
            "{} ({}) wrote no {} (did the test run? `--exact {}` matched no test if it does not exist)",
            bench.label,
            bench.test,
            out.display(),
            bench.test
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// Times [`WARM_CLAIMS`] claims of a warm node (`POST /api/nodes/claim`:
/// find the user's warm nodes, compare-and-set the claim, arm the node's
/// timer), releasing it again between claims (not timed).
fn time_warm_claims(client: &reqwest::blocking::Client, api: &str) -> Result<Vec<f64>> {
    let node: Value = client
        .post(format!("{api}/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "bench-warm" }))
        .send()?
        .error_for_status()?
        .json()?;
    let id = node["id"].as_str().context("node id")?.to_owned();
    wait_running(client, api, &id)?;
    client
        .post(format!("{api}/api/nodes/{id}/release"))
        .json(&json!({}))
        .send()?
        .error_for_status()?;
    let mut times = Vec::with_capacity(WARM_CLAIMS);
    for i in 0..WARM_CLAIMS {
        let claim_id = format!("bench-{i}");
        let start = Instant::now();
        let claimed: Value = client
            .post(format!("{api}/api/nodes/claim"))
            .json(&json!({ "claim_id": claim_id }))
            .send()?
            .error_for_status()?
            .json()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        if claimed["node"]["id"].as_str() != Some(id.as_str()) {
            bail!("claim {i} took another node: {claimed}");
        }
        client
            .post(format!("{api}/api/nodes/{id}/release"))
            .json(&json!({ "claim_id": claim_id }))
            .send()?
            .error_for_status()?;
    }
    client
        .delete(format!("{api}/api/nodes/{id}"))
        .send()?
        .error_for_status()?;
    Ok(times)
}

/// Creates [`SWEEP_NODES`] nodes whose servers never boot an agent (a
/// devcloud boot fault), so they stay `creating` and their servers exist,
/// then times [`SWEEP_RUNS`] runs of the cron sweep over them (the sweep
/// checks each node and lists and checks each labelled server).
fn time_sweep(client: &reqwest::blocking::Client, api: &str, devcloud: &str) -> Result<Vec<f64>> {
    reqwest::blocking::Client::new()
        .post(format!("{devcloud}/_devcloud/boot-faults"))
        .json(&json!({ "api": "hetzner", "kind": "fail", "probability": 1.0 }))
        .send()?
        .error_for_status()?;
    for i in 0..SWEEP_NODES {
        client
            .post(format!("{api}/api/nodes"))
            .json(&json!({ "provider": "hetzner", "size": "small", "name": format!("sweep-{i}") }))
            .send()?
            .error_for_status()?;
    }
    let mut times = Vec::with_capacity(SWEEP_RUNS);
    for _ in 0..SWEEP_RUNS {
        let start = Instant::now();
        client
            .get(format!("{api}/__scheduled?cron=*/5+*+*+*+*"))
            .send()?
            .error_for_status()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

fn client(port: u16) -> Result<reqwest::blocking::Client> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ORIGIN,
        reqwest::header::HeaderValue::from_str(&format!("http://api.sam.localhost:{port}"))?,
    );
    Ok(reqwest::blocking::Client::builder()
        .default_headers(headers)
        .resolve("api.sam.localhost", addr)
        .cookie_store(true)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn wait_running(client: &reqwest::blocking::Client, api: &str, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let node: Value = client.get(format!("{api}/api/nodes/{id}")).send()?.json()?;
        match node["status"].as_str() {
            Some("ready") => return Ok(node),
            Some("error" | "destroying" | "destroyed") => {
                bail!("node {id} failed: {}", node["error_message"])
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    bail!("node {id} did not become ready")
}

/// The vm-agent process of a node: the one whose environment names it.
fn find_agent_pid(node_id: &str) -> Option<u32> {
    let needle = format!("SAM_NODE_ID={node_id}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "vm-agent"
                && environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
            .then_some(pid)
        })
}

/// A process's start time in Unix milliseconds, from /proc.
fn process_start_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Field 22 (starttime, clock ticks since boot) comes after the `(comm)` field.
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let start_ticks: f64 = after_comm
        .split_whitespace()
        .nth(19)
        .context("starttime")?
        .parse()?;
    let boot_secs: f64 = std::fs::read_to_string("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .context("btime")?
        .trim()
        .parse()?;
    // Linux reports starttime in USER_HZ, which is 100 on every supported platform.
    Ok((boot_secs + start_ticks / 100.0) * 1000.0)
}

fn rss_kib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let idx = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[idx.min(values.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[allow(clippy::cast_precision_loss)]
fn to_f64(n: usize) -> f64 {
    n as f64
}

fn write_reports(root: &Path, figures: &BTreeMap<&str, f64>, node_runs: usize) -> Result<()> {
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs)?;
    let json: serde_json::Map<String, Value> = figures
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    std::fs::write(
        docs.join("benchmarks.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;

    let f = |k: &str| figures.get(k).copied().unwrap_or(f64::NAN);
    let mut md = String::new();
    writeln!(md, "# Benchmarks")?;
    writeln!(md)?;
    writeln!(
        md,
        "Written by `cargo xtask bench`; every figure below comes from one run on a 2-core machine."
    )?;
    writeln!(md, "The machine-readable copy is `docs/benchmarks.json`.")?;
    writeln!(md)?;
    writeln!(md, "| key | value | target | how it is measured |")?;
    writeln!(md, "|---|---|---|---|")?;
    writeln!(
        md,
        "| `worker_wasm_bytes` | {} | | size of the release `index_bg.wasm` (opt-level s, LTO, wasm-opt) |",
        f("worker_wasm_bytes")
    )?;
    writeln!(
        md,
        "| `worker_wasm_gzip_bytes` | {} | ≤ 1,572,864 (1.5 MiB) | the same, gzip level 9 |",
        f("worker_wasm_gzip_bytes")
    )?;
    writeln!(
        md,
        "| `api_health_p50_ms` | {} | | `GET /health` (all four binding checks) through `wrangler dev`, {HEALTH_REQUESTS} sequential requests on one keep-alive connection after 20 warm-up requests |",
        f("api_health_p50_ms")
    )?;
    writeln!(
        md,
        "| `api_health_p99_ms` | {} | | the same requests, 99th percentile |",
        f("api_health_p99_ms")
    )?;
    writeln!(
        md,
        "| `vm_agent_idle_rss_kib` | {} | ≤ 15,360 (15 MiB) | median over {node_runs} release vm-agents booted by devcloud: `VmRSS` 3 s after registering, idle between heartbeats |",
        f("vm_agent_idle_rss_kib")
    )?;
    writeln!(
        md,
        "| `vm_agent_start_to_ready_ms` | {} | | median over {node_runs} nodes: the Worker's `agent_ready_at` minus the process start time from `/proc/<pid>/stat` |",
        f("vm_agent_start_to_ready_ms")
    )?;
    writeln!(
        md,
        "| `node_ready_overhead_ms` | {} | ≤ 1,000 | median over {NODE_RUNS} nodes of `agent_ready_at − created_at − boot delay ({BOOT_DELAY_MS} ms)`: API create, provider call, cloud-init emulation, agent download from R2, start and registration |",
        f("node_ready_overhead_ms")
    )?;
    writeln!(
        md,
        "| `node_cold_overhead_ms` | {} | | the same figure under issue 4's name: a node created for the request rather than claimed from the warm pool |",
        f("node_cold_overhead_ms")
    )?;
    writeln!(
        md,
        "| `warm_claim_ms` | {} | | median of {WARM_CLAIMS} claims of a warm node (`POST /api/nodes/claim`, client-side): list the user's warm nodes, compare-and-set the claim in D1, arm the node's alarm |",
        f("warm_claim_ms")
    )?;
    writeln!(
        md,
        "| `sweep_ms_per_100_nodes` | {} | | median of {SWEEP_RUNS} runs of the cron sweep (`GET /__scheduled`) over {SWEEP_NODES} nodes whose servers exist but never boot: D1 queries, one provider listing, a D1 lookup per server |",
        f("sweep_ms_per_100_nodes")
    )?;
    writeln!(
        md,
        "| `workspace_create_overhead_ms` | {} | | median of 5 workspaces (host runtime): the API's `ready_at − created_at` minus the clone's own time from the workspace's creation log: the API's create, the vm-agent's branch, identity and runtime steps, and every step's callback |",
        f("workspace_create_overhead_ms")
    )?;
    writeln!(
        md,
        "| `terminal_echo_p50_ms` | {} | ≤ 5 | median of 400 keystrokes (after 20 warm-up ones), each sent alone as a WebSocket frame to `ws-<id>.`/terminals/…/ws through `wrangler dev`'s Worker proxy, until its echo (from `cat` under the terminal's line discipline) comes back on the same socket |",
        f("terminal_echo_p50_ms")
    )?;
    writeln!(
        md,
        "| `terminal_echo_p99_ms` | {} | | the same keystrokes, 99th percentile |",
        f("terminal_echo_p99_ms")
    )?;
    writeln!(
        md,
        "| `pty_throughput_mib_s` | {} | | 64 MiB written by `head -c … /dev/zero \\| tr '\\0' x` in a terminal, received by a WebSocket client attached to the vm-agent directly (first byte to the end marker; every frame read) |",
        f("pty_throughput_mib_s")
    )?;
    writeln!(
        md,
        "| `task_warm_submit_to_prompt_ms` | {} | ≤ 1,500 | median of 7 tasks (`claude-code`, one short turn from the LLM stand-in) run one after another on the node the previous task left warm: from just before `POST /api/projects/{{id}}/tasks` (client clock) to the `created_at` the vm-agent stamps on the session's `prompt_sent` message (same machine): claim, workspace (clone), agent start, prompt |",
        f("task_warm_submit_to_prompt_ms")
    )?;
    writeln!(
        md,
        "| `task_cold_overhead_ms` | {} | | median of 3 tasks, each the first of a fresh user (so it creates its node): the same submit → `prompt_sent` minus the node's boot (`agent_ready_at − created_at` of `GET /api/nodes/{{id}}`) |",
        f("task_cold_overhead_ms")
    )?;
    writeln!(
        md,
        "| `chat_ingest_chunks_per_s` | {} | ≥ 5,000 | 40 batches of 256 `agent_message_chunk` updates posted one after another (as the vm-agent's delivery loop does) to `POST /api/workspaces/{{wid}}/sessions/{{sid}}/messages` with a workspace callback token, into a session whose agent has exited; messages acknowledged per second over the whole run, after one warm-up batch |",
        f("chat_ingest_chunks_per_s")
    )?;
    writeln!(
        md,
        "| `chat_ingest_chunks_per_s_2_in_flight` | {} | | the same with two batches in flight (20 pairs; a second batch that reaches the chat first is dropped as a gap and sent again): distinct messages stored per second |",
        f("chat_ingest_chunks_per_s_2_in_flight")
    )?;
    writeln!(
        md,
        "| `messages_lost_under_restart` | {} | 0 | written by the end-to-end test `outbox_restart::outbox_survives_agent_restart`: session messages missing from the chat after the vm-agent is killed and restarted while its outbox holds undelivered messages |",
        f("messages_lost_under_restart")
    )?;
    std::fs::write(docs.join("benchmarks.md"), md)?;
    Ok(())
}
