//! The agent's error type. Only fatal conditions end up here: everything the
//! agent can recover from (a heartbeat that failed, a control plane briefly
//! down) is logged and retried instead.
//!
//! Messages leave the underlying cause to `source()`, so printing the chain
//! (as `main` does) shows each part once.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),

    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),

    #[error("cannot read the callback token from {path}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("callback token file {path} is empty")]
    EmptyTokenFile { path: PathBuf },

    /// The control plane refused registration for good (4xx other than 429):
    /// retrying with the same token cannot succeed.
    #[error("control plane rejected registration with HTTP {status} ({code}): {message}")]
    RegistrationRejected {
        status: u16,
        code: String,
        message: String,
    },
}
