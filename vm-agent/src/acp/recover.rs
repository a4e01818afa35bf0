//! What a vm-agent does at start-up about the sessions of its predecessor
//! (killed, crashed, restarted by its supervisor): their agents cannot be
//! talked to any more (their stdio went with the old process), so each
//! session that has not had its last message is ended here.
//!
//! - Its agent's process group is SIGKILLed if it is still there and still
//!   ours: the leader's pid and start time were recorded when it was
//!   spawned ([`AgentProcess`]), so a later process that got the same pid
//!   is never touched. Any other process started with the session's
//!   private home as `HOME` (`…/sessions/<session id>/home`) is killed
//!   too: what is left of the group once its leader is gone, or a tool
//!   that moved to a process group of its own.
//! - Its last message is appended: `agent_exited` `{"code": null,
//!   "signal": null, "during_turn", "reason": "vm_agent_restarted"}`
//!   (`during_turn`: a prompt was sent and its turn never ended), or
//!   `agent_start_failed` `{"code": "vm_agent_restarted", "message"}` when
//!   the agent had not started yet. The chat then shows the session
//!   interrupted, and a task fails its step at once instead of waiting for
//!   its deadline.

use std::time::{Duration, Instant};

use super::events::kinds;
use crate::outbox::{AgentProcess, Mark, Outbox, OutboxError};

/// How long to wait for a killed group to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// One session ended by [`recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub session_id: String,
    /// `agent_exited` or `agent_start_failed`.
    pub kind: &'static str,
    pub during_turn: bool,
    /// Processes of its agent that were still running and were killed.
    pub killed: usize,
}

/// Ends every session the outbox knows that has not had its last message
/// (see the module documentation). Meant for start-up, before any session
/// of this vm-agent exists. A session whose last message cannot be stored
/// is logged and left for the next start.
pub async fn recover(outbox: &Outbox) -> Result<Vec<Recovered>, OutboxError> {
    let mut recovered = Vec::new();
    for session in outbox.open_sessions().await? {
        let killed = match session.process {
            Some(process) => {
                let id = session.session_id.clone();
                tokio::task::spawn_blocking(move || end_agent(&id, process))
                    .await
                    .unwrap_or(0)
            }
            None => 0,
        };
        let (kind, payload) = if session.started {
            (kinds::AGENT_EXITED, kinds::agent_lost(session.turn_open))
        } else {
            (
                kinds::AGENT_START_FAILED,
                kinds::failure(
                    kinds::VM_AGENT_RESTARTED,
                    "the vm-agent restarted before the agent started",
                ),
            )
        };
        let during_turn = session.started && session.turn_open;
        match outbox
            .append_marked(
                &session.session_id,
                kind,
                payload.to_string(),
                super::now_ms(),
                Mark::Last,
            )
            .await
        {
            Ok(seq) => {
                tracing::warn!(session = %session.session_id, kind, seq, during_turn, killed, "ended a session of the previous vm-agent");
                recovered.push(Recovered {
                    session_id: session.session_id,
                    kind,
                    during_turn,
                    killed,
                });
            }
            Err(err) => {
                tracing::error!(session = %session.session_id, code = err.code(), %err, "cannot end a session of the previous vm-agent");
            }
        }
    }
    Ok(recovered)
}

/// Kills what is left of the session's agent; returns how many processes
/// were running and got SIGKILL.
fn end_agent(session_id: &str, process: AgentProcess) -> usize {
    let Ok(pgid) = i32::try_from(process.pid) else {
        return 0;
    };
    if pgid <= 1 {
        return 0;
    }
    let home = format!("/sessions/{session_id}/home");
    let leader = proc_stat(pgid);
    // The leader itself, with the recorded start time (a zombie too: while
    // it is unreaped its pid, and so its group id, cannot be reused).
    let ours = leader.is_some_and(|s| s.start_ticks == process.start_ticks && s.pgrp == pgid);
    // Its whole group if the leader is ours; and, in any group (the leader
    // gone, or a tool that moved to a session of its own), every process
    // started with the session's private HOME.
    let mut targets: Vec<i32> = live_processes()
        .into_iter()
        .filter(|(pid, stat)| {
            (ours && stat.pgrp == pgid) || home_of(*pid).is_some_and(|h| h.ends_with(&home))
        })
        .map(|(pid, _)| pid)
        .collect();
    targets.sort_unstable();
    if targets.is_empty() {
        return 0;
    }
    if ours && let Some(group) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    for pid in targets
        .iter()
        .copied()
        .filter_map(rustix::process::Pid::from_raw)
    {
        // Gone already is fine.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    while targets.iter().any(|pid| is_live(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    targets.len()
}

/// What `/proc/<pid>/stat` says that matters here.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    state: char,
    pgrp: i32,
    start_ticks: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after the last ')' are plain: state is field 3, the process
    // group field 5, the start time field 22.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    let start_ticks = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        start_ticks,
    })
}

/// The start time of `pid` in clock ticks since boot, if it exists.
pub fn start_ticks(pid: u32) -> Option<u64> {
    proc_stat(i32::try_from(pid).ok()?).map(|s| s.start_ticks)
}

fn is_live(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// The running (not zombie) processes, but this one.
fn live_processes() -> Vec<(i32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid > 1 && *pid != me)
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .filter(|(_, stat)| !matches!(stat.state, 'Z' | 'X'))
        .collect()
}

/// `HOME` in the environment `pid` was started with.
fn home_of(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"HOME="))
        .map(|home| String::from_utf8_lossy(home).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_stat() {
        let me = std::process::id();
        let stat = proc_stat(i32::try_from(me).unwrap()).unwrap();
        assert!(matches!(stat.state, 'R' | 'S'), "{}", stat.state);
        assert!(stat.pgrp > 0);
        assert_eq!(start_ticks(me), Some(stat.start_ticks));
        assert!(start_ticks(u32::try_from(i32::MAX).unwrap()).is_none());
        assert!(
            home_of(i32::try_from(me).unwrap()).is_some() || std::env::var_os("HOME").is_none()
        );
    }
}
