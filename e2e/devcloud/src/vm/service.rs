//! Running one service unit's main process: spawn it in its own process
//! group with the unit's environment, restart it per `Restart=`, and end
//! the whole group when asked.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::console::Console;
use super::procgroup;
use super::unit::ServiceSpec;
use crate::state::{ProcessRecord, Store};

/// systemd's default PATH for services.
const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// systemd's default start rate limit: at most 5 starts in 10 s.
const START_LIMIT_BURST: usize = 5;
const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);

/// What the supervisor needs to know about the machine it runs on.
#[derive(Clone)]
pub(crate) struct Host {
    pub server_id: u64,
    pub root: PathBuf,
    pub ipv4: Ipv4Addr,
    pub console: Console,
    pub store: Arc<Store>,
    /// What the machine image presets in every service's environment.
    pub image_env: Vec<(String, String)>,
}

/// How a running service is to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    /// SIGTERM, SIGKILL after the grace period (systemd's `stop`).
    Terminate,
    /// SIGKILL at once (a crash, or a machine that vanished).
    Kill,
}

/// A running service; dropping it without [`ServiceHandle::stop`] still
/// ends the process group, but without waiting for it.
pub(crate) struct ServiceHandle {
    pub unit: String,
    /// The current main process (and group leader); 0 between restarts.
    pid: Arc<AtomicI32>,
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

impl ServiceHandle {
    /// Ends the process group and waits until it is gone.
    pub(crate) async fn stop(self) {
        self.end(Stop::Terminate).await;
    }

    /// SIGKILLs the process group, without restart, and waits until it is
    /// gone.
    pub(crate) async fn kill(self) {
        self.end(Stop::Kill).await;
    }

    async fn end(self, how: Stop) {
        let _ = self.stop.send(how);
        let _ = self.task.await;
    }

    /// Sends `signal` to the current process group; returns its id, `None`
    /// while the service is between two runs.
    pub(crate) fn signal(&self, signal: Signal) -> Option<i32> {
        let pgid = self.pid.load(Ordering::Relaxed);
        (pgid > 1).then(|| {
            procgroup::signal_group(pgid, signal);
            pgid
        })
    }
}

/// Spawns the first instance synchronously, so a bad binary fails the
/// `systemctl start` that asked for it, then supervises it in the background.
pub(crate) fn launch(spec: ServiceSpec, host: Host) -> Result<ServiceHandle, String> {
    let (child, record) = spawn(&spec, &host)?;
    let (stop, stop_rx) = watch::channel(Stop::Run);
    let unit = spec.unit.clone();
    let guard = GroupGuard(Some(record.pid));
    let pid = Arc::new(AtomicI32::new(record.pid));
    let task = tokio::spawn(supervise(
        child,
        record,
        guard,
        spec,
        host,
        stop_rx,
        Arc::clone(&pid),
    ));
    Ok(ServiceHandle {
        unit,
        pid,
        stop,
        task,
    })
}

fn spawn(spec: &ServiceSpec, host: &Host) -> Result<(Child, ProcessRecord), String> {
    let (stdout, stderr) = host
        .console
        .process_streams()
        .map_err(|e| format!("opening console: {e}"))?;
    let child = Command::new(&spec.program)
        .args(&spec.args)
        // A unit sees only its declared environment, as under systemd.
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .envs(host.image_env.iter().map(|(k, v)| (k, v)))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        // devcloud's contract with the agent: resolve absolute paths under
        // the server root and bind on the server's own address.
        .env("SAM_FS_ROOT", &host.root)
        .env("SAM_BIND_HOST", host.ipv4.to_string())
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        // Last line of defence if a handle is dropped mid-flight.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("executing {}: {e}", spec.program.display()))?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let record = ProcessRecord {
        pid,
        start_ticks: procgroup::start_ticks(pid).unwrap_or(0),
    };
    host.store
        .update(|w| match w.servers.get_mut(&host.server_id) {
            Some(server) => server.processes.push(record.clone()),
            // Deleted meanwhile: still remembered, so a crash cannot leak it.
            None => w.orphans.push(record.clone()),
        });
    host.console
        .line(format!("{}: started main process {pid}", spec.unit));
    Ok((child, record))
}

/// SIGKILLs a process group when dropped while armed: if the supervisor is
/// dropped mid-flight (runtime shutdown after a panic, an early return in
/// `main`), the group still dies instead of outliving devcloud.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Resolves with how to stop once a stop was requested or the handle is
/// gone.
async fn stop_requested(rx: &mut watch::Receiver<Stop>) -> Stop {
    loop {
        let how = *rx.borrow_and_update();
        if how != Stop::Run {
            return how;
        }
        if rx.changed().await.is_err() {
            return Stop::Terminate;
        }
    }
}

async fn supervise(
    mut child: Child,
    mut record: ProcessRecord,
    mut guard: GroupGuard,
    spec: ServiceSpec,
    host: Host,
    mut stop_rx: watch::Receiver<Stop>,
    current: Arc<AtomicI32>,
) {
    let mut starts: VecDeque<Instant> = VecDeque::from([Instant::now()]);
    loop {
        let exit = tokio::select! {
            status = child.wait() => Ok(status),
            how = stop_requested(&mut stop_rx) => Err(how),
        };
        let status = match exit {
            Ok(status) => status,
            Err(how) => {
                if how == Stop::Kill {
                    procgroup::kill(record.pid, Some(&mut child)).await;
                } else {
                    procgroup::terminate(record.pid, Some(&mut child)).await;
                }
                guard.0 = None;
                current.store(0, Ordering::Relaxed);
                host.store.update(|w| w.forget_process(&record));
                let ended = if how == Stop::Kill {
                    "killed"
                } else {
                    "stopped"
                };
                host.console.line(format!("{}: {ended}", spec.unit));
                return;
            }
        };
        // Like systemd, end whatever the main process left in its group.
        procgroup::terminate(record.pid, None).await;
        guard.0 = None;
        current.store(0, Ordering::Relaxed);
        host.store.update(|w| w.forget_process(&record));
        let Ok(status) = status else {
            return;
        };
        host.console
            .line(format!("{}: main process exited, {status}", spec.unit));
        if !spec.restart.applies(status) {
            return;
        }
        let now = Instant::now();
        while starts
            .front()
            .is_some_and(|t| now.duration_since(*t) > START_LIMIT_INTERVAL)
        {
            starts.pop_front();
        }
        if starts.len() >= START_LIMIT_BURST {
            host.console.line(format!(
                "{}: start request repeated too quickly, refusing to start",
                spec.unit
            ));
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(spec.restart_sec) => {}
            _ = stop_requested(&mut stop_rx) => return,
        }
        match spawn(&spec, &host) {
            Ok((c, r)) => {
                child = c;
                record = r;
                guard.0 = Some(record.pid);
                current.store(record.pid, Ordering::Relaxed);
                starts.push_back(Instant::now());
            }
            Err(e) => {
                host.console
                    .line(format!("{}: restart failed: {e}", spec.unit));
                return;
            }
        }
    }
}
