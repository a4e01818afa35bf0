//! Shared plumbing of the local stand-ins (devcloud, devgithub).
//!
//! Both binaries log to stderr, announce themselves with one stdout line
//! (`<name> listening on <url>`, which `cargo xtask` waits for) plus a port
//! file, and stop on SIGINT/SIGTERM: [`init_logging`], [`announce`] and
//! [`shutdown_signal`]. [`JsonStore`] keeps a stand-in's whole state behind a mutex and writes it
//! to a JSON file after every change, so a restarted stand-in comes back
//! with the servers, users or installations it had.

use std::fs;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Logs to stderr (stdout carries the announcement), filtered by `RUST_LOG`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Writes the port to `<state_dir>/port` and prints the one line an
/// orchestrator waits for, flushed so a pipe sees it at once.
pub fn announce(name: &str, state_dir: &Path, addr: SocketAddr) -> io::Result<()> {
    fs::write(state_dir.join("port"), addr.port().to_string())?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{name} listening on http://{addr}")?;
    stdout.flush()
}

/// A future that resolves on SIGINT or SIGTERM. SIGTERM is watched from
/// this call on, not from the future's first poll: a process that
/// announced itself and is stopped at once must shut down cleanly rather
/// than die of the default action. Call it before [`announce`].
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    async move {
        let mut term = match term {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A state value `W` behind a mutex, persisted to one JSON file.
#[derive(Debug)]
pub struct JsonStore<W> {
    path: PathBuf,
    world: Mutex<W>,
}

impl<W: Serialize + DeserializeOwned + Default> JsonStore<W> {
    /// Loads `path` if it exists, else starts from `W::default()`.
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let world = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => W::default(),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Self {
            path,
            world: Mutex::new(world),
        })
    }

    fn lock(&self) -> MutexGuard<'_, W> {
        // A panic while holding the lock leaves data coherent enough for a
        // dev tool; keep serving rather than failing every later request.
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn read<R>(&self, f: impl FnOnce(&W) -> R) -> R {
        f(&self.lock())
    }

    /// Mutates the state and persists it before releasing the lock, so the
    /// file always reflects a state the API has already answered with.
    pub fn update<R>(&self, f: impl FnOnce(&mut W) -> R) -> R {
        let mut world = self.lock();
        let result = f(&mut world);
        if let Err(e) = write_atomically(&self.path, &*world) {
            tracing::error!(path = %self.path.display(), error = %e, "persisting state failed");
        }
        result
    }
}

fn write_atomically<W: Serialize>(path: &Path, world: &W) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(world).map_err(io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Counter {
        next: u64,
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store: JsonStore<Counter> = JsonStore::open(path.clone()).unwrap();
        store.update(|c| c.next += 2);
        drop(store);
        let again: JsonStore<Counter> = JsonStore::open(path).unwrap();
        assert_eq!(again.read(|c| c.next), 2);
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            JsonStore::<Counter>::open(path),
            Err(StoreError::Parse { .. })
        ));
    }
}
