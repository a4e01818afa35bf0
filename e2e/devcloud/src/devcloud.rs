//! [`DevCloud`]: one instance's state, machines and router, assembled.

use std::io;
use std::sync::Arc;

use axum::Router;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::faults::Faults;
use crate::state::{Store, StoreError};
use crate::vm::Fleet;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating state directory {path}: {source}")]
    StateDir { path: String, source: io::Error },
    #[error(transparent)]
    State(#[from] StoreError),
    #[error("building HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("invalid fault rule: {0}")]
    Fault(String),
}

/// A running devcloud: persisted state, emulated machines and the API.
#[derive(Clone)]
pub struct DevCloud {
    state: AppState,
}

impl std::fmt::Debug for DevCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCloud")
            .field("state_dir", &self.state.config.state_dir)
            .finish_non_exhaustive()
    }
}

impl DevCloud {
    /// Loads state from `config.state_dir` and boots again the servers
    /// that were on when the previous instance stopped. Must run inside a
    /// Tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let servers_dir = config.state_dir.join("servers");
        std::fs::create_dir_all(&servers_dir).map_err(|source| StartError::StateDir {
            path: servers_dir.display().to_string(),
            source,
        })?;
        let faults = Arc::new(Faults::new(&config.faults).map_err(StartError::Fault)?);
        tracing::info!(seed = faults.seed(), "fault injection seed");
        let config = Arc::new(config);
        let store = Arc::new(Store::open(config.state_file())?);
        let fleet = Fleet::new(Arc::clone(&store), Arc::clone(&config), Arc::clone(&faults))?;
        fleet.recover().await;
        Ok(DevCloud {
            state: AppState {
                store,
                fleet,
                config,
                faults,
            },
        })
    }

    /// The Hetzner- and Scaleway-compatible APIs plus the `/_devcloud/`
    /// admin API, ready to serve on any listener.
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// Ends every server's processes (SIGTERM, then SIGKILL after 2 s) and
    /// waits until they are gone. Server records keep their status, so the
    /// next start boots them again, like VMs surviving a control-plane
    /// restart.
    pub async fn shutdown(&self) {
        self.state.fleet.halt_all().await;
    }
}
