//! A server's console log: boot steps written by devcloud plus the stdout
//! and stderr of every process started on the server, in one file, the way
//! a VM's serial console interleaves cloud-init and service output.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use crate::clock::now_rfc3339;

#[derive(Debug, Clone)]
pub(crate) struct Console {
    path: PathBuf,
    server_id: u64,
}

impl Console {
    pub(crate) fn new(path: PathBuf, server_id: u64) -> Self {
        Console { path, server_id }
    }

    fn open(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
    }

    /// Appends one timestamped line; logging must never fail a boot, so
    /// errors only reach the devcloud log.
    pub(crate) fn line(&self, msg: impl Display) {
        tracing::info!(server = self.server_id, "{msg}");
        let text = format!("{} devcloud-init: {msg}\n", now_rfc3339());
        if let Err(e) = self.open().and_then(|mut f| f.write_all(text.as_bytes())) {
            tracing::warn!(path = %self.path.display(), error = %e, "console write failed");
        }
    }

    /// Two append-mode handles for a child's stdout and stderr; O_APPEND
    /// keeps concurrent writers from overwriting each other.
    pub(crate) fn process_streams(&self) -> io::Result<(File, File)> {
        let out = self.open()?;
        let err = out.try_clone()?;
        Ok((out, err))
    }
}
