//! One terminal: a shell on a PTY, its scrollback and its watchers.
//!
//! Three plain threads per terminal do the blocking work (portable-pty's
//! reader and writer are blocking): one reads output into the
//! [`Scrollback`] and wakes attached sockets through a `watch` channel; one
//! writes input that sockets queue on a small bounded channel (so a client
//! typing into a shell that does not read waits, instead of queueing without
//! end); one waits for the shell to exit and records its status once the
//! output has drained. Attached sockets only ever read the scrollback, so
//! however slow a client is, a terminal holds at most
//! [`SCROLLBACK_BYTES`] of output.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::scrollback::Scrollback;
use crate::access::now_ms;
use crate::workspaces::CommandSpec;

/// Output kept per terminal, replayed to every client that attaches.
pub(crate) const SCROLLBACK_BYTES: usize = 256 * 1024;
/// Input chunks queued for the writer thread.
const INPUT_QUEUE: usize = 64;
/// How long the exit status waits for the last output to be read. A
/// background job may keep the terminal open after the shell is gone; the
/// exit is reported anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Between the hang-up sent on close and the kill.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Why a terminal could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PtyError {
    #[error("cannot start the shell: {0}")]
    Spawn(String),
    #[error("cannot resize the terminal: {0}")]
    Resize(String),
}

/// A terminal as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TerminalView {
    pub(crate) id: String,
    pub(crate) created_at: i64,
    pub(crate) last_activity_at: i64,
    pub(crate) alive: bool,
    pub(crate) cols: u16,
    pub(crate) rows: u16,
    /// How the shell ended (`0`, `1`, `signal Hangup`…), once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exit_status: Option<String>,
}

/// What a client following the output gets next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Bytes from the requested offset on.
    Bytes(Vec<u8>),
    /// Nothing new yet.
    UpToDate,
    /// Everything was read and the shell has exited with this status.
    Exited(String),
    /// The terminal was deleted.
    Closed,
    /// Bytes from the requested offset were dropped already.
    Lagged,
}

pub(crate) struct Terminal {
    id: String,
    created_at: i64,
    shared: Arc<Shared>,
    /// Kept for resizing, and so the terminal stays open; dropped on close.
    master: Mutex<Option<Box<dyn MasterPty + Send>>>,
    /// The shell: leader of its own session and process group.
    pid: Option<i32>,
}

struct Shared {
    state: Mutex<State>,
    /// Input for the writer thread; taken when the shell exits or the
    /// terminal closes, which ends that thread.
    input: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    /// Bumped on output, exit and close.
    changed: watch::Sender<()>,
}

struct State {
    scrollback: Scrollback,
    cols: u16,
    rows: u16,
    last_activity_at: i64,
    exit_status: Option<String>,
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn output(&self, bytes: &[u8]) {
        {
            let mut state = self.state();
            state.scrollback.push(bytes);
            state.last_activity_at = now_ms();
        }
        self.changed.send_replace(());
    }

    fn exited(&self, status: String) {
        self.state().exit_status = Some(status);
        self.stop_input();
        self.changed.send_replace(());
    }

    fn stop_input(&self) {
        drop(
            self.input
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    fn input(&self) -> Option<mpsc::Sender<Vec<u8>>> {
        self.input
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Terminal {
    /// Starts `spec` (the workspace registry's shell command: program,
    /// arguments, directory and the complete environment, nothing of the
    /// agent's own added) on a new PTY of `cols` × `rows`. Blocking (fork,
    /// exec).
    pub(crate) fn spawn(
        id: String,
        spec: &CommandSpec,
        cols: u16,
        rows: u16,
    ) -> Result<Arc<Self>, PtyError> {
        let spawn_error = |err: &dyn std::fmt::Display| PtyError::Spawn(err.to_string());
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .map_err(|err| spawn_error(&format_args!("{err:#}")))?;
        let mut command = CommandBuilder::new(&spec.program);
        command.args(&spec.args);
        command.env_clear();
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        command.cwd(&spec.cwd);
        let mut child = pair
            .slave
            .spawn_command(command)
            .map_err(|err| spawn_error(&format_args!("{err:#}")))?;
        // Only the shell holds the terminal's other end now, so reads end
        // once the last process using it is gone.
        drop(pair.slave);
        let pid = child.process_id().and_then(|pid| i32::try_from(pid).ok());
        let io = pair
            .master
            .try_clone_reader()
            .and_then(|reader| Ok((reader, pair.master.take_writer()?)));
        let (reader, writer) = match io {
            Ok(io) => io,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_error(&format_args!("{err:#}")));
            }
        };

        let now = now_ms();
        let (input, queued) = mpsc::channel(INPUT_QUEUE);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                scrollback: Scrollback::new(SCROLLBACK_BYTES),
                cols,
                rows,
                last_activity_at: now,
                exit_status: None,
                closed: false,
            }),
            input: Mutex::new(Some(input)),
            changed: watch::channel(()).0,
        });
        let (drained, output_done) = std_mpsc::channel();
        let threads = start_threads(
            &id,
            (reader, Arc::clone(&shared), drained),
            (writer, queued),
            (child, Arc::clone(&shared), output_done),
        );
        let terminal = Arc::new(Self {
            id,
            created_at: now,
            shared,
            master: Mutex::new(Some(pair.master)),
            pid,
        });
        if let Err(err) = threads {
            terminal.close();
            return Err(spawn_error(&err));
        }
        Ok(terminal)
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The shell's pid while it runs (and the terminal is open): once the
    /// shell has exited its pid may belong to anybody.
    pub(crate) fn live_pid(&self) -> Option<i32> {
        let state = self.shared.state();
        (state.exit_status.is_none() && !state.closed)
            .then_some(self.pid)
            .flatten()
    }

    pub(crate) fn view(&self) -> TerminalView {
        let state = self.shared.state();
        TerminalView {
            id: self.id.clone(),
            created_at: self.created_at,
            last_activity_at: state.last_activity_at,
            alive: state.exit_status.is_none(),
            cols: state.cols,
            rows: state.rows,
            exit_status: state.exit_status.clone(),
        }
    }

    /// Changes whenever there is something new to [`Self::read`].
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.shared.changed.subscribe()
    }

    /// Where a newly attached client starts: the oldest byte still held.
    pub(crate) fn replay_start(&self) -> u64 {
        self.shared.state().scrollback.start()
    }

    /// The next thing for a client that has had the output up to `from`.
    pub(crate) fn read(&self, from: u64, max: usize) -> Output {
        let state = self.shared.state();
        if state.closed {
            return Output::Closed;
        }
        match state.scrollback.read(from, max) {
            Err(_) => Output::Lagged,
            Ok(bytes) if !bytes.is_empty() => Output::Bytes(bytes),
            Ok(_) => match &state.exit_status {
                Some(status) => Output::Exited(status.clone()),
                None => Output::UpToDate,
            },
        }
    }

    /// Queues input for the shell; waits while the queue is full. Returns
    /// `false` once the terminal no longer takes input.
    pub(crate) async fn write(&self, bytes: Vec<u8>) -> bool {
        let Some(input) = self.shared.input() else {
            return false;
        };
        self.shared.state().last_activity_at = now_ms();
        input.send(bytes).await.is_ok()
    }

    /// Resizes the terminal (the shell gets `SIGWINCH`).
    pub(crate) fn resize(&self, cols: u16, rows: u16) -> Result<(), PtyError> {
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(master) = master.as_ref() {
            master
                .resize(PtySize {
                    rows,
                    cols,
                    pixel_width: 0,
                    pixel_height: 0,
                })
                .map_err(|err| PtyError::Resize(format!("{err:#}")))?;
        }
        let mut state = self.shared.state();
        state.cols = cols;
        state.rows = rows;
        Ok(())
    }

    /// Closes the terminal: attached clients are told, the shell's session
    /// is hung up and, if still there a moment later, killed.
    pub(crate) fn close(&self) {
        let alive = {
            let mut state = self.shared.state();
            if state.closed {
                return;
            }
            state.closed = true;
            state.exit_status.is_none()
        };
        self.shared.stop_input();
        self.shared.changed.send_replace(());
        drop(
            self.master
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let Some(pid) = self.pid else {
            return;
        };
        signal_session(pid, alive, rustix::process::Signal::HUP);
        // What survives the hang-up (the shell, or a job that ignores it and
        // would hold the terminal open) is killed. The group only while the
        // shell is alive: once it is reaped its pid is free for reuse.
        let shared = Arc::clone(&self.shared);
        let escalate = thread::Builder::new()
            .name("pty-kill".to_owned())
            .spawn(move || {
                thread::sleep(KILL_GRACE);
                let alive = shared.state().exit_status.is_none();
                signal_session(pid, alive, rustix::process::Signal::KILL);
            });
        if escalate.is_err() {
            signal_session(pid, alive, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Terminal {
    /// A terminal nobody holds any more takes its processes with it.
    fn drop(&mut self) {
        self.close();
    }
}

type ReaderParts = (Box<dyn Read + Send>, Arc<Shared>, std_mpsc::Sender<()>);
type WriterParts = (Box<dyn Write + Send>, mpsc::Receiver<Vec<u8>>);
type WaiterParts = (
    Box<dyn Child + Send + Sync>,
    Arc<Shared>,
    std_mpsc::Receiver<()>,
);

fn start_threads(
    id: &str,
    (mut reader, output, drained): ReaderParts,
    (mut writer, mut queued): WriterParts,
    (mut child, status, output_done): WaiterParts,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("pty-read-{id}"))
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => output.output(&buf[..n]),
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: the last process using the terminal is gone.
                    Err(_) => break,
                }
            }
            let _ = drained.send(());
        })?;
    thread::Builder::new()
        .name(format!("pty-write-{id}"))
        .spawn(move || {
            while let Some(bytes) = queued.blocking_recv() {
                if writer
                    .write_all(&bytes)
                    .and_then(|()| writer.flush())
                    .is_err()
                {
                    break;
                }
            }
        })?;
    thread::Builder::new()
        .name(format!("pty-wait-{id}"))
        .spawn(move || {
            let exit = child.wait();
            let _ = output_done.recv_timeout(DRAIN_GRACE);
            status.exited(match exit {
                Ok(exit) => exit_text(&exit),
                Err(_) => "unknown".to_owned(),
            });
        })?;
    Ok(())
}

/// `0`, `127`, or `signal <name>` for a shell killed by a signal.
fn exit_text(status: &ExitStatus) -> String {
    match status.signal() {
        Some(signal) => format!("signal {signal}"),
        None => status.exit_code().to_string(),
    }
}

/// Sends `signal` to every process in the shell's session (jobs the shell
/// moved to process groups of their own included) and, if `group`, to the
/// shell's process group.
fn signal_session(sid: i32, group: bool, signal: rustix::process::Signal) {
    let Some(leader) = rustix::process::Pid::from_raw(sid) else {
        return;
    };
    if group {
        let _ = rustix::process::kill_process_group(leader, signal);
    }
    for pid in session_members(Path::new(crate::metrics::PROC_DIR), sid) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

/// The processes whose session id is `sid`, from `/proc/<pid>/stat`.
fn session_members(proc_dir: &Path, sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat"))
                .ok()
                .and_then(|stat| stat_session(&stat))
                == Some(sid)
        })
        .collect()
}

/// The session id in a `/proc/<pid>/stat` line: the fourth field after the
/// parenthesised command name (which may itself contain spaces and `)`).
fn stat_session(stat: &str) -> Option<i32> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_read_after_the_command_name() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4240 34816 4242 4194560 0 0";
        assert_eq!(stat_session(stat), Some(4240));
        assert_eq!(stat_session("garbage"), None);
    }

    #[test]
    fn exit_statuses_read_as_codes_or_signals() {
        assert_eq!(exit_text(&ExitStatus::with_exit_code(0)), "0");
        assert_eq!(exit_text(&ExitStatus::with_exit_code(127)), "127");
        assert_eq!(
            exit_text(&ExitStatus::with_signal("Hangup")),
            "signal Hangup"
        );
    }

    #[test]
    fn this_process_is_found_in_its_session() {
        let me = i32::try_from(std::process::id()).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let sid = stat_session(&stat).unwrap();
        assert!(session_members(Path::new("/proc"), sid).contains(&me));
    }
}
