//! Runtime configuration shared by the API and the machine emulation.

use std::path::PathBuf;
use std::time::Duration;

use crate::faults::FaultConfig;

/// What a devcloud instance needs to know; the CLI builds it from flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `state.json`, the `port` file and one directory per server.
    pub state_dir: PathBuf,
    /// Bearer tokens the API accepts (any of them, like project tokens).
    pub tokens: Vec<String>,
    /// How long a new or powered-on server sits in `initializing` before its
    /// user-data is interpreted; emulates hypervisor and kernel boot time.
    pub boot_delay: Duration,
    /// The one Scaleway credential the `/instance/v1` API accepts; without
    /// it every Scaleway route answers 401 `denied_authentication`.
    pub scaleway: Option<ScalewayCredential>,
    /// Fault rules in force from the start, and the seed of their dice.
    pub faults: FaultConfig,
    /// Environment every service on every VM gets, as a machine image
    /// would preset it (e.g. `SAM_AGENTS_DIR`: coding agents installed on
    /// the image, so each VM need not download them again).
    pub image_env: Vec<(String, String)>,
}

/// A Scaleway IAM secret key and the project it may use.
#[derive(Clone)]
pub struct ScalewayCredential {
    pub secret_key: String,
    pub project_id: String,
}

/// Hand-written so logging a config never prints the secret key.
impl std::fmt::Debug for ScalewayCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalewayCredential")
            .field("secret_key", &"[redacted]")
            .field("project_id", &self.project_id)
            .finish()
    }
}

impl Config {
    pub(crate) fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    pub(crate) fn server_dir(&self, id: u64) -> PathBuf {
        self.state_dir.join("servers").join(id.to_string())
    }
}
