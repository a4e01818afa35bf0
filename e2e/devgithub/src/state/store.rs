//! The world behind a mutex, written to `state.json` after every change.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::World;

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

pub(crate) struct Store {
    path: PathBuf,
    world: Mutex<World>,
}

impl Store {
    /// Loads `path` if it exists, else starts empty.
    pub(crate) fn open(path: PathBuf) -> Result<Self, StoreError> {
        let world = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => World::default(),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Store {
            path,
            world: Mutex::new(world),
        })
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves data coherent enough for a
        // dev tool; keep serving rather than failing every later request.
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.lock())
    }

    /// Mutates the world and persists it before releasing the lock, so the
    /// file always reflects a state the API has already answered with.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut world = self.lock();
        let result = f(&mut world);
        if let Err(e) = write_atomically(&self.path, &world) {
            tracing::error!(path = %self.path.display(), error = %e, "persisting state failed");
        }
        result
    }
}

fn write_atomically(path: &Path, world: &World) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(world).map_err(io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_keeps_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = Store::open(path.clone()).unwrap();
        let first = store.update(|w| {
            let id = w.next_account_id;
            w.next_account_id += 1;
            id
        });
        drop(store);
        let store = Store::open(path).unwrap();
        assert_eq!(store.read(|w| w.next_account_id), first + 1);
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_silent_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(Store::open(path), Err(StoreError::Parse { .. })));
    }
}
