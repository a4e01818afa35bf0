//! Workspace benchmarks, run by `cargo xtask bench` against its release
//! platform (ignored in `cargo xtask test`): they reuse the end-to-end
//! helpers to reach a running workspace the way a browser does, then time
//! it. Figures go as JSON to the file named by `SAM_E2E_BENCH_OUT`.

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use sam_e2e::Platform;
use sam_e2e::workspace_host::{WorkspaceHost, read_until, type_into, upgrade_to};
use sam_wire::{NodeView, WorkspaceView};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::workspaces::{running_workspace, workspace_setup};

/// Workspaces created for `workspace_create_overhead_ms`.
const CREATES: usize = 5;
/// Keystrokes timed for `terminal_echo_*`.
const KEYSTROKES: usize = 400;
/// Bytes the shell writes for `pty_throughput_mib_s`.
const THROUGHPUT_BYTES: usize = 64 * 1024 * 1024;
/// Floods tried before giving up (see `flood`).
const FLOOD_ATTEMPTS: usize = 3;

#[tokio::test]
#[ignore = "a benchmark: `cargo xtask bench` runs it"]
async fn bench_workspaces() {
    let out = std::env::var("SAM_E2E_BENCH_OUT").expect("SAM_E2E_BENCH_OUT names the output file");
    let p = Platform::from_env();
    let s = workspace_setup(&p, "bench-workspaces").await;

    // Creation overhead: created → ready, minus the clone's own time.
    let mut overhead = Vec::new();
    let mut last = None;
    for i in 0..CREATES {
        let ws = running_workspace(&p, &s, &format!("bench-{i}")).await;
        let log: Value = sam_e2e::get_json(
            &s.client,
            &p.app(&format!("/api/workspaces/{}/events", ws.id)),
        )
        .await;
        let at = |step: &str, status: &str| {
            log["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["step"] == step && e["status"] == status)
                .and_then(|e| e["at"].as_f64())
                .unwrap_or_else(|| panic!("no {step}:{status} in {log}"))
        };
        let clone_ms = at("clone", "done") - at("clone", "started");
        #[allow(clippy::cast_precision_loss)]
        let total = (ws.ready_at.unwrap() - ws.created_at) as f64;
        overhead.push(total - clone_ms);
        last = Some(ws);
    }
    let ws: WorkspaceView = last.unwrap();
    let host = WorkspaceHost::open(&p, &s.client, &ws.id).await.unwrap();

    // Echo: one keystroke at a time into `cat` (the terminal's line
    // discipline echoes it), through the Worker's ws-<id> proxy.
    let tid = host.new_terminal().await.unwrap();
    let mut socket = host.attach(&tid).await.unwrap();
    type_into(&mut socket, "cat; echo cat-ended-$((1+1))\r")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drain(&mut socket).await;
    let mut echo = Vec::with_capacity(KEYSTROKES);
    for i in 0..KEYSTROKES + 20 {
        let key = b'a' + u8::try_from(i % 26).unwrap();
        let start = Instant::now();
        socket
            .send(Message::Binary(vec![key].into()))
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Binary(bytes)))) if bytes.contains(&key) => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("no echo for keystroke {i}: {other:?}"),
            }
        }
        // The first keystrokes warm the path up.
        if i >= 20 {
            echo.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        if i % 64 == 63 {
            socket
                .send(Message::Binary(b"\n".to_vec().into()))
                .await
                .unwrap();
            drain(&mut socket).await;
        }
    }
    socket
        .send(Message::Binary(b"\n\x04".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut socket, "cat-ended-2", Duration::from_secs(10))
        .await
        .unwrap();

    // Throughput: the vm-agent's PTY → a WebSocket client attached to the
    // vm-agent directly (the node's own address, the workspace cookie).
    let node: NodeView =
        sam_e2e::get_json(&s.client, &p.app(&format!("/api/nodes/{}", s.node_id))).await;
    let agent_port: u16 = std::env::var("SAM_E2E_VM_AGENT_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let direct = format!(
        "ws://{}:{agent_port}/workspaces/{}/terminals/{tid}/ws",
        node.ip_address.clone().unwrap(),
        ws.id
    );
    let ip: std::net::IpAddr = node.ip_address.unwrap().parse().unwrap();
    // A client that falls more than the scrollback behind is dropped by
    // the vm-agent (1011 `too slow`), which a busy machine can cause: then
    // the flood runs again on a new socket, with its own end marker.
    let mut measured = None;
    for attempt in 1..=FLOOD_ATTEMPTS {
        let mut socket = upgrade_to(
            (ip, agent_port).into(),
            &direct,
            &[("cookie", host.cookie.as_str())],
        )
        .await
        .unwrap();
        drain(&mut socket).await;
        let command = format!(
            "head -c {THROUGHPUT_BYTES} /dev/zero | tr '\\0' x; echo; echo flood-done-$((3+4))-{attempt}\r"
        );
        type_into(&mut socket, &command).await.unwrap();
        match flood(&mut socket, &format!("flood-done-7-{attempt}")).await {
            Ok(figures) => {
                measured = Some(figures);
                break;
            }
            Err(e) => {
                println!("flood attempt {attempt}: {e}");
                // Let the shell finish writing before the next attempt.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    let (received, seconds) = measured.expect("every flood attempt was cut short");
    #[allow(clippy::cast_precision_loss)]
    let throughput = received as f64 / (1024.0 * 1024.0) / seconds;

    let figures = json!({
        "workspace_create_overhead_ms": median(&mut overhead),
        "terminal_echo_p50_ms": percentile(&mut echo, 50.0),
        "terminal_echo_p99_ms": percentile(&mut echo, 99.0),
        "pty_throughput_mib_s": throughput,
        "samples": {
            "creates": CREATES,
            "keystrokes": echo.len(),
            "throughput_bytes": received,
        }
    });
    println!("{figures}");
    std::fs::write(out, figures.to_string()).unwrap();
}

/// Reads the flood until `marker`: the bytes received and the seconds from
/// the first `x` to the marker; or why the socket ended first.
async fn flood(
    socket: &mut sam_e2e::NodeEventSocket,
    marker: &str,
) -> Result<(usize, f64), String> {
    let mut received = 0usize;
    let mut first: Option<Instant> = None;
    let mut tail = Vec::<u8>::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), socket.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                if bytes.contains(&b'x') && first.is_none() {
                    first = Some(Instant::now());
                }
                received += bytes.len();
                tail.extend_from_slice(&bytes);
                if tail.len() > 64 {
                    tail.drain(..tail.len() - 64);
                }
                if String::from_utf8_lossy(&tail).contains(marker) {
                    let seconds = first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64());
                    return Ok((received, seconds));
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(format!("closed after {received} bytes: {frame:?}"));
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("ended after {received} bytes: {other:?}")),
        }
    }
}

/// Reads whatever arrives within 200 ms.
async fn drain(socket: &mut sam_e2e::NodeEventSocket) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), socket.next()).await {}
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}
