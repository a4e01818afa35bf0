//! Runtime configuration shared by the API and the machine emulation.

use std::path::PathBuf;
use std::time::Duration;

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
}

impl Config {
    pub(crate) fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    pub(crate) fn server_dir(&self, id: u64) -> PathBuf {
        self.state_dir.join("servers").join(id.to_string())
    }
}
