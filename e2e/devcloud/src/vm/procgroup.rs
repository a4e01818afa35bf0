//! Ending process groups for good: SIGTERM, a grace period, then SIGKILL.
//!
//! Every service runs in its own process group, so whatever it forks
//! (shells, helpers, agent sessions) dies with it, the way systemd's
//! control-group kill mode cleans up after a unit.

use std::fs;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Child;

use crate::state::ProcessRecord;

/// How long a group gets between SIGTERM and SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// The kernel's start time of `pid` (clock ticks since boot), used to tell
/// a process from a later one that reused its pid.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after the last ')' are well-formed. starttime is field 22.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// State letter and process group of `pid`, from `/proc/<pid>/stat`.
fn state_and_group(pid: &str) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether any process of the group is still running. Zombies do not
/// count: orphans are reparented to PID 1, which in some containers never
/// reaps them, and a zombie holds no resources worth waiting for.
fn group_alive(pgid: i32) -> bool {
    // Signal 0 probes without delivering; ESRCH means no member at all.
    if matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH)) {
        return false;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return true;
    };
    entries.filter_map(Result::ok).any(|entry| {
        entry
            .file_name()
            .to_str()
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
            .and_then(state_and_group)
            .is_some_and(|(state, pgrp)| pgrp == pgid && !matches!(state, 'Z' | 'X'))
    })
}

pub(crate) fn signal_group(pgid: i32, signal: Signal) {
    if let Err(e) = killpg(Pid::from_raw(pgid), signal)
        && e != Errno::ESRCH
    {
        tracing::warn!(pgid, %signal, error = %e, "signalling process group failed");
    }
}

/// Terminates the group led by `pgid`. When `leader` is our own child it is
/// reaped too, so no zombie is left behind.
pub(crate) async fn terminate(pgid: i32, mut leader: Option<&mut Child>) {
    if pgid <= 1 {
        return;
    }
    let deadline = Instant::now() + GRACE;
    signal_group(pgid, Signal::SIGTERM);
    // A stopped (frozen) process only sees the SIGTERM once continued.
    signal_group(pgid, Signal::SIGCONT);
    let mut leader_reaped = leader.is_none();
    if let Some(child) = leader.as_deref_mut() {
        leader_reaped = tokio::time::timeout(GRACE, child.wait()).await.is_ok();
    }
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if group_alive(pgid) {
        signal_group(pgid, Signal::SIGKILL);
    }
    if !leader_reaped && let Some(child) = leader {
        let _ = child.wait().await;
    }
}

/// SIGKILLs the group led by `pgid` at once, like a crash or a machine
/// that lost power, and waits (at most the grace period) until it is gone.
pub(crate) async fn kill(pgid: i32, leader: Option<&mut Child>) {
    if pgid <= 1 {
        return;
    }
    let deadline = Instant::now() + GRACE;
    signal_group(pgid, Signal::SIGKILL);
    if let Some(child) = leader {
        let _ = tokio::time::timeout(GRACE, child.wait()).await;
    }
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills a group left behind by an earlier devcloud that died without
/// cleaning up, if it is still the same process.
pub(crate) async fn kill_stale(record: &ProcessRecord) {
    if start_ticks(record.pid) == Some(record.start_ticks) {
        tracing::warn!(
            pid = record.pid,
            "killing process group left by a previous devcloud"
        );
        terminate(record.pid, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_start_time() {
        let me = i32::try_from(std::process::id()).unwrap();
        let first = start_ticks(me).unwrap();
        assert_eq!(start_ticks(me), Some(first));
        assert_eq!(start_ticks(i32::MAX), None);
    }

    #[tokio::test]
    async fn terminate_kills_children_of_the_leader_too() {
        let mut child = tokio::process::Command::new("/bin/sh")
            .args(["-c", "sleep 600 & echo $! ; wait"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = i32::try_from(child.id().unwrap()).unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        // Read the grandchild's pid once the shell has printed it.
        loop {
            let mut buf = [0u8; 32];
            let n = tokio::io::AsyncReadExt::read(&mut out, &mut buf)
                .await
                .unwrap();
            line.extend_from_slice(&buf[..n]);
            if line.ends_with(b"\n") || n == 0 {
                break;
            }
        }
        let sleeper: i32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
        assert!(start_ticks(sleeper).is_some());
        terminate(pgid, Some(&mut child)).await;
        assert!(!group_alive(pgid));
        assert!(!matches!(state_and_group(&sleeper.to_string()), Some((s, _)) if s != 'Z'));
        assert!(!std::path::Path::new(&format!("/proc/{pgid}")).exists());
    }
}
