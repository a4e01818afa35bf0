//! A vm-agent that starts after its predecessor died (SIGKILL, crash) ends
//! the sessions that one left: it kills what is left of their agents' process
//! groups, only if they are still ours, and appends their last message so
//! the chat learns the session was interrupted. Real processes, a real
//! outbox file; the whole agent in process against a fake control plane.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{NODE_ID, wait_until, write_token};
use sam_vm_agent::acp::recover::{Recovered, recover, start_ticks};
use sam_vm_agent::outbox::{AgentProcess, Mark, Message, Outbox, OutboxStore, Route};
use sam_vm_agent::{Agent, Config};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;

const BUSY: &str = "01JBUSY0000000000000000000";
const IDLE: &str = "01J1D1E0000000000000000000";
const LEADERLESS: &str = "01J1EADER1E550000000000000";
const REUSED: &str = "01JREVSED00000000000000000";
const UNSTARTED: &str = "01JVNSTARTED0000000000000X";
const ENDED: &str = "01JENDED000000000000000000";
/// The session of the whole-agent test (tests run in parallel, and
/// recovery finds processes by their session's HOME).
const INHERITED: &str = "01J1NHER1TED00000000000000";

/// A stand-in agent in its own process group, with the session's private
/// HOME, like sessions spawn them: `script` runs under `sh`, and every line
/// it prints (pids) is returned.
async fn spawn_agent(
    root: &Path,
    session: &str,
    script: &str,
    lines: usize,
) -> (tokio::process::Child, Vec<i32>) {
    let home = root.join(format!("var/lib/sam/ws/sessions/{session}/home"));
    std::fs::create_dir_all(&home).unwrap();
    let mut child = tokio::process::Command::new("/bin/sh")
        .args(["-c", script])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    for _ in 0..lines {
        let line = out.next_line().await.unwrap().unwrap();
        pids.push(line.trim().parse().unwrap());
    }
    (child, pids)
}

fn pid_of(child: &tokio::process::Child) -> i32 {
    i32::try_from(child.id().unwrap()).unwrap()
}

fn process(pid: i32) -> AgentProcess {
    let pid = u32::try_from(pid).unwrap();
    AgentProcess {
        pid,
        start_ticks: start_ticks(pid).unwrap(),
    }
}

/// Running, i.e. existing and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        state != "Z" && state != "X"
    })
}

fn route() -> Route {
    Route {
        workspace_id: "01JWS00000000000000000000W".to_owned(),
        callback_token: "callback-token-of-the-workspace".to_owned(),
    }
}

async fn append(outbox: &Outbox, session: &str, kind: &str, mark: Mark) {
    outbox
        .append_marked(session, kind, "{}".to_owned(), 1, mark)
        .await
        .unwrap();
}

/// The messages of `session` still in the outbox, in order.
async fn stored(outbox: &Outbox, session: &str) -> Vec<Message> {
    outbox
        .pending(10_000, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.session_id == session)
        .map(|b| b.messages)
        .unwrap_or_default()
}

fn last_payload(messages: &[Message]) -> (String, Value) {
    let last = messages.last().unwrap();
    (
        last.kind.clone(),
        serde_json::from_str(&last.payload).unwrap(),
    )
}

#[tokio::test]
async fn a_restarted_vm_agent_ends_the_sessions_it_inherited_and_kills_only_our_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outbox = Outbox::new(OutboxStore::open(&OutboxStore::default_path(root)).unwrap());
    for session in [BUSY, IDLE, LEADERLESS, REUSED, UNSTARTED, ENDED] {
        outbox.set_route(session, route()).await.unwrap();
    }

    // Mid-turn: the agent (group leader) and a tool it ran, in its group.
    append(&outbox, BUSY, "session_started", Mark::None).await;
    append(&outbox, BUSY, "prompt_sent", Mark::TurnStarted).await;
    append(&outbox, BUSY, "update", Mark::None).await;
    let (mut busy, busy_tool) = spawn_agent(root, BUSY, "sleep 300 & echo $!; wait", 1).await;
    outbox
        .set_agent_process(BUSY, process(pid_of(&busy)))
        .await
        .unwrap();

    // Between turns, its agent already gone on its own.
    append(&outbox, IDLE, "session_started", Mark::None).await;
    append(&outbox, IDLE, "prompt_sent", Mark::TurnStarted).await;
    append(&outbox, IDLE, "turn_ended", Mark::TurnEnded).await;
    let (mut idle, _) = spawn_agent(root, IDLE, "exit 0", 0).await;
    let idle_process = process(pid_of(&idle));
    idle.wait().await.unwrap();
    outbox.set_agent_process(IDLE, idle_process).await.unwrap();

    // The leader exited; its tool lives on in the group, beside a process
    // of the same group that is not the session's (another HOME).
    append(&outbox, LEADERLESS, "session_started", Mark::None).await;
    append(&outbox, LEADERLESS, "prompt_sent", Mark::TurnStarted).await;
    let (mut leaderless, left) = spawn_agent(
        root,
        LEADERLESS,
        "sleep 300 & echo $!; HOME=/elsewhere sleep 300 & echo $!",
        2,
    )
    .await;
    let leaderless_process = process(pid_of(&leaderless));
    leaderless.wait().await.unwrap();
    outbox
        .set_agent_process(LEADERLESS, leaderless_process)
        .await
        .unwrap();

    // The recorded pid now belongs to another process (other start time):
    // it must survive.
    append(&outbox, REUSED, "session_started", Mark::None).await;
    let (mut stranger, _) = spawn_agent(root, "someone-else", "exec sleep 300", 0).await;
    let mut reused = process(pid_of(&stranger));
    reused.start_ticks -= 1;
    outbox.set_agent_process(REUSED, reused).await.unwrap();

    // Created, but the agent never got to start; and one that ended well.
    append(&outbox, ENDED, "session_started", Mark::None).await;
    append(&outbox, ENDED, "agent_exited", Mark::Last).await;

    assert!(alive(pid_of(&busy)) && alive(busy_tool[0]));
    let mut got = recover(&outbox).await.unwrap();
    got.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    let expect = |session: &str, kind: &'static str, during_turn: bool, killed: usize| Recovered {
        session_id: session.to_owned(),
        kind,
        during_turn,
        killed,
    };
    let mut expected = vec![
        expect(BUSY, "agent_exited", true, 2),
        expect(IDLE, "agent_exited", false, 0),
        expect(LEADERLESS, "agent_exited", true, 1),
        expect(REUSED, "agent_exited", false, 0),
        expect(UNSTARTED, "agent_start_failed", false, 0),
    ];
    expected.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    assert_eq!(got, expected);

    // The busy agent and its tool are gone; the leader is our child, so
    // it is reaped here.
    let status = tokio::time::timeout(Duration::from_secs(5), busy.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(wait_until(Duration::from_secs(5), || !alive(busy_tool[0])).await);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(left[0])).await,
        "the session's process left in the group"
    );
    assert!(
        alive(left[1]),
        "a process of the group that is not the session's"
    );
    assert!(alive(pid_of(&stranger)), "a process that reused the pid");

    // Each open session got its last message, after everything it had.
    let busy_messages = stored(&outbox, BUSY).await;
    assert_eq!(
        busy_messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        last_payload(&busy_messages),
        (
            "agent_exited".to_owned(),
            json!({"code": null, "signal": null, "during_turn": true, "reason": "vm_agent_restarted"})
        )
    );
    assert_eq!(
        last_payload(&stored(&outbox, IDLE).await).1["during_turn"],
        false
    );
    let (kind, payload) = last_payload(&stored(&outbox, UNSTARTED).await);
    assert_eq!(kind, "agent_start_failed");
    assert_eq!(payload["code"], "vm_agent_restarted");
    assert_eq!(
        stored(&outbox, ENDED).await.len(),
        2,
        "an ended session is left alone"
    );

    // Once is enough: the next start finds nothing to end.
    assert_eq!(recover(&outbox).await.unwrap(), []);

    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(left[1]).unwrap(),
        rustix::process::Signal::KILL,
    );
    stranger.start_kill().unwrap();
    stranger.wait().await.unwrap();
}

// --- The whole agent: recovery runs at start-up, before delivery. --------

/// One message the control plane holds: seq, kind, payload.
type Held = (u64, String, Value);

#[derive(Default)]
struct Delivered {
    /// Per session, what is held; and the bearer of each batch.
    messages: Mutex<HashMap<String, Vec<Held>>>,
    bearers: Mutex<Vec<String>>,
}

async fn take_messages(
    State(state): State<Arc<Delivered>>,
    UrlPath((_wid, sid)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        state
            .bearers
            .lock()
            .unwrap()
            .push(auth.to_str().unwrap().to_owned());
    }
    let mut all = state.messages.lock().unwrap();
    let held = all.entry(sid).or_default();
    for m in body["messages"].as_array().unwrap() {
        let seq = m["seq"].as_u64().unwrap();
        if seq == held.len() as u64 + 1 {
            held.push((
                seq,
                m["kind"].as_str().unwrap().to_owned(),
                m["payload"].clone(),
            ));
        }
    }
    let acked = held.len();
    (StatusCode::OK, Json(json!({ "acked_up_to": acked }))).into_response()
}

async fn node_call() -> Response {
    (StatusCode::OK, Json(json!({}))).into_response()
}

#[tokio::test]
async fn the_agent_ends_inherited_sessions_at_start_up_and_delivers_their_end() {
    // A control plane: registration and heartbeats, and the session
    // messages endpoint, which takes what continues each session's run.
    let delivered = Arc::new(Delivered::default());
    let app = Router::new()
        .route("/api/nodes/{id}/{kind}", post(node_call))
        .route(
            "/api/workspaces/{wid}/sessions/{sid}/messages",
            post(take_messages),
        )
        .with_state(Arc::clone(&delivered));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        // What the killed vm-agent left: a session mid-turn, its agent
        // still running.
        let outbox = Outbox::new(OutboxStore::open(&OutboxStore::default_path(root)).unwrap());
        outbox.set_route(INHERITED, route()).await.unwrap();
        append(&outbox, INHERITED, "session_started", Mark::None).await;
        append(&outbox, INHERITED, "prompt_sent", Mark::TurnStarted).await;
    }
    let (mut orphan, tool) = spawn_agent(root, INHERITED, "sleep 300 & echo $!; wait", 1).await;
    {
        let outbox = Outbox::new(OutboxStore::open(&OutboxStore::default_path(root)).unwrap());
        outbox
            .set_agent_process(INHERITED, process(pid_of(&orphan)))
            .await
            .unwrap();
    }

    let vars: HashMap<String, String> = [
        ("SAM_NODE_ID", NODE_ID.to_owned()),
        (
            "SAM_CONTROL_PLANE_URL",
            format!("http://api.localhost:{cp_port}"),
        ),
        ("SAM_FS_ROOT", root.display().to_string()),
        ("SAM_BIND_HOST", "127.0.0.1".to_owned()),
        ("SAM_VM_AGENT_PORT", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    write_token(root, "node-callback-token");
    let agent = Agent::new(Config::from_env_map(&vars).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent.serve(listener, async move {
        let _ = stopped.await;
    }));

    let status = tokio::time::timeout(Duration::from_secs(10), orphan.wait())
        .await
        .expect("the inherited agent was not killed")
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(wait_until(Duration::from_secs(5), || !alive(tool[0])).await);
    assert!(
        wait_until(Duration::from_secs(10), || {
            delivered
                .messages
                .lock()
                .unwrap()
                .get(INHERITED)
                .is_some_and(|m| m.len() == 3)
        })
        .await,
        "the session's end was not delivered"
    );
    let held = delivered.messages.lock().unwrap()[INHERITED].clone();
    let kinds: Vec<&str> = held.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["session_started", "prompt_sent", "agent_exited"]);
    assert_eq!(held[2].2["reason"], "vm_agent_restarted");
    assert_eq!(held[2].2["during_turn"], true);
    // The workspace is not in this agent's registry: the token stored with
    // the session's route is used.
    let bearers = delivered.bearers.lock().unwrap().clone();
    assert!(!bearers.is_empty());
    assert!(
        bearers
            .iter()
            .all(|b| b == "Bearer callback-token-of-the-workspace"),
        "{bearers:?}"
    );

    stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
}
