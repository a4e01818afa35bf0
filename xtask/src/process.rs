//! Child processes that never outlive us.
//!
//! Every long-running child is started in its own process group and killed
//! as a group (SIGTERM, then SIGKILL) when its guard drops, so wrangler's
//! workerd and devcloud's vm-agents go with them. Kill by our own pgid,
//! never by process name: other runs may be going on the same machine.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Process groups we started and have not stopped yet, so a signal handler
/// can stop them when the user presses Ctrl-C or CI times out.
static LIVE_GROUPS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

pub fn register(pid: u32) {
    if let (Ok(pid), Ok(mut groups)) = (i32::try_from(pid), LIVE_GROUPS.lock()) {
        groups.push(pid);
    }
}

pub fn unregister(pid: u32) {
    if let (Ok(pid), Ok(mut groups)) = (i32::try_from(pid), LIVE_GROUPS.lock()) {
        groups.retain(|g| *g != pid);
    }
}

/// On SIGINT/SIGTERM: kill every process group still registered, then exit.
pub fn install_cleanup_on_signal() -> Result<()> {
    ctrlc::set_handler(|| {
        eprintln!("stopping every process started here…");
        if let Ok(groups) = LIVE_GROUPS.lock() {
            for g in groups.iter() {
                let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
            }
            // Give devcloud time to stop its VMs' process groups (it waits
            // up to 2 s for each before SIGKILL) before we force everything.
            let deadline = Instant::now() + Duration::from_secs(6);
            while Instant::now() < deadline && groups.iter().any(|g| group_alive(*g)) {
                thread::sleep(Duration::from_millis(100));
            }
            for g in groups.iter() {
                let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
            }
        }
        std::process::exit(130);
    })
    .context("install the signal handler")
}

/// Whether any process of group `pgid` is still alive (zombies do not count:
/// PID 1 does not reap them on these machines).
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // Fields after `(comm)`: state, ppid, pgrp.
        let mut fields = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace())
            .into_iter()
            .flatten();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

/// A running child process group.
pub struct Service {
    child: Child,
}

impl Service {
    /// Starts `cmd` in a new process group with output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        register(child.id());
        Ok(Self { child })
    }

    /// Starts `cmd` and waits for a stdout line containing `marker`, returning it.
    /// The rest of the output keeps flowing to `log`.
    pub fn spawn_until_line(
        name: &str,
        mut cmd: Command,
        log: &Path,
        marker: &str,
        timeout: Duration,
    ) -> Result<(Self, String)> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(out.try_clone()?)
            .process_group(0);
        let mut child = cmd.spawn().with_context(|| format!("start {name}"))?;
        register(child.id());
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        let marker = marker.to_owned();
        thread::spawn(move || {
            let mut out = out;
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                use std::io::Write as _;
                let _ = writeln!(out, "{line}");
                if !sent && line.contains(&marker) {
                    let _ = tx.send(line);
                    sent = true;
                }
            }
        });
        let service = Self { child };
        match rx.recv_timeout(timeout) {
            Ok(line) => Ok((service, line)),
            Err(_) => bail!(
                "{name} did not become ready within {timeout:?}; see {}",
                log.display()
            ),
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Stops the whole process group.
    pub fn stop(&mut self) {
        let Ok(raw) = i32::try_from(self.child.id()) else {
            return;
        };
        let group = Pid::from_raw(raw);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Grandchildren (workerd, vm-agents) may outlive their parent.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        unregister(self.child.id());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command to completion, failing with its name if it fails.
pub fn run(name: &str, cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("start {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `check` returns true or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}
