//! Running one service unit's main process: spawn it in its own process
//! group with the unit's environment, restart it per `Restart=`, and end
//! the whole group when asked.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

/// A running service; dropping it without [`ServiceHandle::stop`] still
/// ends the process group, but without waiting for it.
pub(crate) struct ServiceHandle {
    pub unit: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServiceHandle {
    /// Ends the process group and waits until it is gone.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Spawns the first instance synchronously, so a bad binary fails the
/// `systemctl start` that asked for it, then supervises it in the background.
pub(crate) fn launch(spec: ServiceSpec, host: Host) -> Result<ServiceHandle, String> {
    let (child, record) = spawn(&spec, &host)?;
    let (stop, stop_rx) = watch::channel(false);
    let unit = spec.unit.clone();
    let guard = GroupGuard(Some(record.pid));
    let task = tokio::spawn(supervise(child, record, guard, spec, host, stop_rx));
    Ok(ServiceHandle { unit, stop, task })
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

/// Resolves when a stop was requested or the handle is gone.
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn supervise(
    mut child: Child,
    mut record: ProcessRecord,
    mut guard: GroupGuard,
    spec: ServiceSpec,
    host: Host,
    mut stop_rx: watch::Receiver<bool>,
) {
    let mut starts: VecDeque<Instant> = VecDeque::from([Instant::now()]);
    loop {
        let exit = tokio::select! {
            status = child.wait() => Some(status),
            () = stop_requested(&mut stop_rx) => None,
        };
        let Some(status) = exit else {
            procgroup::terminate(record.pid, Some(&mut child)).await;
            guard.0 = None;
            host.store.update(|w| w.forget_process(&record));
            host.console.line(format!("{}: stopped", spec.unit));
            return;
        };
        // Like systemd, end whatever the main process left in its group.
        procgroup::terminate(record.pid, None).await;
        guard.0 = None;
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
            () = stop_requested(&mut stop_rx) => return,
        }
        match spawn(&spec, &host) {
            Ok((c, r)) => {
                child = c;
                record = r;
                guard.0 = Some(record.pid);
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
