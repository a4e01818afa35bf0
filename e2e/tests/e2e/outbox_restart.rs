//! `outbox_survives_agent_restart`: the vm-agent is killed mid-turn
//! repeatedly; the chat ends with every message exactly once, in order.
//!
//! A node's vm-agent runs under devcloud's service supervisor
//! (`Restart=always`, `RestartSec=2` from our cloud-init). The test starts
//! real coding-agent sessions (Claude Code from npm, against the LLM
//! stand-in) in a workspace, SIGKILLs the node's vm-agent at different
//! moments of a turn (the agent starting, a prompt just sent, a tool
//! running, twice in a row), and lets the supervisor start it again. Each
//! restarted vm-agent ends the sessions its predecessor left (their agents
//! killed, `agent_exited` with `reason: vm_agent_restarted`) and delivers
//! what its outbox holds.
//!
//! At the end every session's chat is compared with the vm-agent's own
//! outbox file on the node: the same messages (seq, time, kind, payload),
//! 1..n, no gaps, no repeats, each ending with exactly one last message.
//! With `SAM_E2E_BENCH_OUT` set, `{"messages_lost_under_restart",
//! "messages_checked"}` is written there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sam_e2e::{Platform, eventually, get_json};
use serde_json::{Value, json};

use crate::workspaces::{WorkspaceSetup, running_workspace, workspace_setup};

/// How long an agent may take to start, or the chat to settle.
const SLOW: Duration = Duration::from_secs(120);

/// The node's vm-agent process: its pid and its filesystem root.
#[derive(Debug, Clone)]
struct VmAgent {
    pid: u32,
    fs_root: PathBuf,
}

/// The node's running vm-agent, found like `cargo xtask bench` does: the
/// `vm-agent` process whose environment names the node.
fn find_vm_agent(node_id: &str) -> Option<VmAgent> {
    let needle = format!("SAM_NODE_ID={node_id}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            if comm.trim() != "vm-agent" || !alive(pid) {
                return None;
            }
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !vars.contains(&needle.as_bytes()) {
                return None;
            }
            let fs_root = vars
                .iter()
                .find_map(|kv| kv.strip_prefix(b"SAM_FS_ROOT="))
                .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))?;
            Some(VmAgent { pid, fs_root })
        })
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Running processes started with `HOME` under the session's private home.
fn session_processes(session_id: &str) -> Vec<u32> {
    let suffix = format!("/sessions/{session_id}/home");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let home = environ
                .split(|b| *b == 0)
                .find_map(|kv| kv.strip_prefix(b"HOME="))?;
            (String::from_utf8_lossy(home).ends_with(&suffix) && alive(pid)).then_some(pid)
        })
        .collect()
}

/// SIGKILLs the node's vm-agent and waits until the supervisor has
/// started the next one; returns it.
async fn kill_vm_agent(node_id: &str, victim: &VmAgent) -> VmAgent {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &victim.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {}", victim.pid);
    eventually(
        "the supervisor to restart the vm-agent",
        Duration::from_secs(30),
        || async {
            Ok(find_vm_agent(node_id)
                .filter(|a| a.pid != victim.pid)
                .filter(|_| !alive(victim.pid)))
        },
    )
    .await
    .unwrap()
}

/// Starts an agent session in the workspace with a first message; returns
/// its id.
async fn start_session(p: &Platform, s: &WorkspaceSetup, ws_id: &str, message: &str) -> String {
    let resp = s
        .client
        .post(p.app(&format!("/api/workspaces/{ws_id}/sessions")))
        .json(
            &json!({ "agent": "claude-code", "message": message, "permission_policy": "approve" }),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["project_id"], s.project_id.as_str());
    body["session_id"].as_str().unwrap().to_owned()
}

/// Every stored message of the session, page by page.
async fn chat_messages(p: &Platform, s: &WorkspaceSetup, session_id: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
        let page: Value = get_json(
            &s.client,
            &p.app(&format!(
                "/api/projects/{}/sessions/{session_id}/messages?after={after}&limit=1000",
                s.project_id
            )),
        )
        .await;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        all.extend(messages);
    }
}

fn kinds(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let kind = m["kind"].as_str().unwrap_or("?");
            match kind {
                "update" => format!(
                    "update:{}",
                    m["payload"]["update"]["sessionUpdate"]
                        .as_str()
                        .unwrap_or("?")
                ),
                _ => kind.to_owned(),
            }
        })
        .collect()
}

/// Whether the chat's last prompt has been sent and its turn has not
/// ended: what `during_turn` of the session's end must say.
fn turn_in_flight(messages: &[Value]) -> bool {
    messages
        .iter()
        .rev()
        .find_map(|m| match m["kind"].as_str() {
            Some("prompt_sent") => Some(true),
            Some("turn_ended" | "turn_failed") => Some(false),
            _ => None,
        })
        .unwrap_or(false)
}

fn is_last(kind: &str) -> bool {
    kind == "agent_exited" || kind == "agent_start_failed"
}

/// Waits until the session's chat satisfies `done`; returns its messages.
async fn wait_for_chat(
    p: &Platform,
    s: &WorkspaceSetup,
    session_id: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    let deadline = Instant::now() + SLOW;
    while Instant::now() < deadline {
        last = chat_messages(p, s, session_id).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting for {what} in session {session_id}: {:?}",
        kinds(&last)
    );
}

fn has(kind: &'static str) -> impl Fn(&[Value]) -> bool {
    move |ms| ms.iter().any(|m| m["kind"] == kind)
}

fn has_update(update: &'static str) -> impl Fn(&[Value]) -> bool {
    move |ms| {
        ms.iter()
            .any(|m| m["kind"] == "update" && m["payload"]["update"]["sessionUpdate"] == update)
    }
}

fn ended(ms: &[Value]) -> bool {
    ms.iter().any(|m| is_last(m["kind"].as_str().unwrap_or("")))
}

/// One message as the vm-agent's outbox file holds it.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    seq: u64,
    created_at: i64,
    kind: String,
    payload: Value,
}

/// The outbox on the node: per session, its last seq, whether every
/// message was delivered, and the messages still in the file.
struct OutboxFile {
    sessions: BTreeMap<String, (u64, Vec<Stored>)>,
    pending: u64,
}

fn read_outbox(fs_root: &std::path::Path) -> OutboxFile {
    let path = fs_root.join("var/lib/sam/outbox.sqlite3");
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut sessions: BTreeMap<String, (u64, Vec<Stored>)> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT session_id, last_seq FROM sessions")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
        .unwrap()
    {
        let (id, last) = row.unwrap();
        sessions.insert(id, (last, Vec::new()));
    }
    let mut stmt = conn
        .prepare(
            "SELECT session_id, seq, created_at, kind, payload FROM messages \
             ORDER BY session_id, seq",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Stored {
                    seq: r.get(1)?,
                    created_at: r.get(2)?,
                    kind: r.get(3)?,
                    payload: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                },
            ))
        })
        .unwrap();
    for row in rows {
        let (id, message) = row.unwrap();
        sessions.entry(id).or_default().1.push(message);
    }
    let pending: u64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE delivered_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    OutboxFile { sessions, pending }
}

#[tokio::test]
async fn outbox_survives_agent_restart() {
    let began = Instant::now();
    let p = Platform::from_env();
    let s = workspace_setup(&p, "outbox-restart").await;
    let ws = running_workspace(&p, &s, "outbox-restart").await;
    let mut agent = find_vm_agent(&s.node_id).expect("the node's vm-agent process");
    println!(
        "vm-agent {} of node {} (root {})",
        agent.pid,
        s.node_id,
        agent.fs_root.display()
    );
    let mut sessions: Vec<(String, &'static str)> = Vec::new();
    let mut kills = 0;
    // Sessions whose agent was lost with a turn in flight.
    let mut mid_turn = 0;

    // A session whose turn is over: its agent is idle when the vm-agent
    // dies, so it ends with `during_turn: false`.
    let calm = start_session(&p, &s, &ws.id, "Please create hello.txt with a greeting").await;
    wait_for_chat(&p, &s, &calm, "the first turn to end", has("turn_ended")).await;
    sessions.push((calm, "idle"));

    // Mid-turn, at different moments: the agent still starting (its
    // session may not have begun), the prompt just sent, the model's
    // answer streaming in, and two kills in a row (the second before the
    // restarted vm-agent has delivered much).
    let moments: [(&str, &'static str); 4] = [
        ("Please take your time and wait", "agent working"),
        ("Please take your time, then answer", "prompt sent"),
        ("Please take your time before you start", "starting"),
        ("Please take your time; no hurry", "killed twice"),
    ];
    for (message, moment) in moments {
        let sid = start_session(&p, &s, &ws.id, message).await;
        match moment {
            // The model's first words: its tool call comes next.
            "agent working" => {
                wait_for_chat(
                    &p,
                    &s,
                    &sid,
                    "the agent's first words",
                    has_update("agent_message_chunk"),
                )
                .await;
            }
            "prompt sent" | "killed twice" => {
                wait_for_chat(&p, &s, &sid, "the prompt to be sent", has("prompt_sent")).await;
            }
            _ => {}
        }
        let before = chat_messages(&p, &s, &sid).await;
        println!(
            "kill {} ({moment}): session {sid} at {:?}",
            kills + 1,
            kinds(&before)
        );
        agent = kill_vm_agent(&s.node_id, &agent).await;
        kills += 1;
        if moment == "killed twice" {
            // The new one dies before it has (likely) delivered anything.
            agent = kill_vm_agent(&s.node_id, &agent).await;
            kills += 1;
        }
        let chat = wait_for_chat(&p, &s, &sid, "the session's last message", ended).await;
        let last = chat.last().unwrap();
        assert!(
            is_last(last["kind"].as_str().unwrap()),
            "{:?}",
            kinds(&chat)
        );
        match last["kind"].as_str().unwrap() {
            "agent_exited" => {
                assert_eq!(last["payload"]["reason"], "vm_agent_restarted", "{last}");
                assert_eq!(last["payload"]["code"], Value::Null, "{last}");
                let in_flight = turn_in_flight(&chat);
                assert_eq!(last["payload"]["during_turn"], in_flight, "{last}");
                if in_flight {
                    mid_turn += 1;
                }
            }
            _ => assert_eq!(last["payload"]["code"], "vm_agent_restarted", "{last}"),
        }
        // Nothing of the session's agent outlives the restart.
        if let Some(started) = chat.iter().find(|m| m["kind"] == "session_started") {
            let pid = u32::try_from(started["payload"]["agent_pid"].as_u64().unwrap()).unwrap();
            assert!(!alive(pid), "the agent {pid} of session {sid} still runs");
        }
        assert_eq!(
            session_processes(&sid),
            Vec::<u32>::new(),
            "processes of {sid}"
        );
        sessions.push((sid, moment));
    }

    // The calm session was ended by the first restart too.
    let calm_chat = wait_for_chat(&p, &s, &sessions[0].0, "the idle session's end", ended).await;
    let calm_end = calm_chat.last().unwrap();
    assert_eq!(calm_end["kind"], "agent_exited", "{:?}", kinds(&calm_chat));
    assert_eq!(calm_end["payload"]["during_turn"], false, "{calm_end}");
    assert_eq!(
        calm_end["payload"]["reason"], "vm_agent_restarted",
        "{calm_end}"
    );

    // Delivery settles: nothing pending on the node, and every session's
    // chat as long as its outbox counter.
    let outbox = eventually("the outbox to be delivered", SLOW, || {
        let (p, s, root) = (&p, &s, agent.fs_root.clone());
        async move {
            let outbox = read_outbox(&root);
            if outbox.pending > 0 {
                return Ok(None);
            }
            for (id, (last_seq, _)) in &outbox.sessions {
                if chat_messages(p, s, id).await.len() as u64 != *last_seq {
                    return Ok(None);
                }
            }
            Ok(Some(outbox))
        }
    })
    .await
    .unwrap();

    // Every session in the outbox is one of ours, and the other way round.
    let ours: Vec<&String> = sessions.iter().map(|(id, _)| id).collect();
    let stored: Vec<&String> = outbox.sessions.keys().collect();
    let mut ours_sorted = ours.clone();
    ours_sorted.sort();
    assert_eq!(stored, ours_sorted, "the outbox's sessions");

    let mut checked = 0u64;
    let mut lost = 0u64;
    let mut problems = Vec::new();
    for (id, moment) in &sessions {
        let (last_seq, stored) = &outbox.sessions[id];
        let chat = chat_messages(&p, &s, id).await;
        let chat_seqs: Vec<u64> = chat.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = (1..=*last_seq).collect();
        if chat_seqs != expected {
            problems.push(format!(
                "{id} ({moment}): chat seqs {chat_seqs:?}, outbox 1..={last_seq}"
            ));
        }
        // Nothing was pruned during the test (delivered messages stay ten
        // minutes), so the file still holds the whole session.
        if stored.len() as u64 != *last_seq {
            problems.push(format!(
                "{id}: the outbox holds {} of {last_seq} messages",
                stored.len()
            ));
        }
        for m in stored {
            checked += 1;
            let in_chat = chat.iter().find(|c| c["seq"].as_u64() == Some(m.seq));
            let same = in_chat.is_some_and(|c| {
                c["kind"] == m.kind.as_str()
                    && c["payload"] == m.payload
                    && c["created_at"].as_i64() == Some(m.created_at)
            });
            if !same {
                lost += 1;
                problems.push(format!(
                    "{id}: seq {} {} is {:?} in the chat",
                    m.seq,
                    m.kind,
                    in_chat.map(|c| c["kind"].clone())
                ));
            }
        }
        // Exactly one last message, and it is last.
        let kinds = kinds(&chat);
        let lasts = kinds.iter().filter(|k| is_last(k)).count();
        if lasts != 1 || !kinds.last().is_some_and(|k| is_last(k)) {
            problems.push(format!("{id} ({moment}): {kinds:?}"));
        }
        println!(
            "session {id} ({moment}): {} messages: {kinds:?}",
            chat.len()
        );
    }

    println!(
        "outbox_survives_agent_restart: {kills} kills, {} sessions ({mid_turn} ended mid-turn), {checked} messages checked, {lost} lost, {:.1}s",
        sessions.len(),
        began.elapsed().as_secs_f64()
    );
    if let Ok(out) = std::env::var("SAM_E2E_BENCH_OUT") {
        std::fs::write(
            &out,
            json!({ "messages_lost_under_restart": lost, "messages_checked": checked }).to_string(),
        )
        .unwrap();
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(lost, 0);
    assert!(checked > 0);
    assert!(
        mid_turn >= 2,
        "only {mid_turn} sessions were interrupted mid-turn: the kills came too late"
    );
}
