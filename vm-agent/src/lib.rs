//! The SAM node agent.
//!
//! One `vm-agent` runs on every node. It serves a small HTTP API for the
//! control plane (`/health`; `/system-info`, `/logs` and `/logs/stream`,
//! guarded by control-plane-signed tokens) and calls back to the control
//! plane: once to report the node ready, then periodically with a heartbeat
//! carrying resource metrics.
//!
//! It also keeps its own last 2000 log lines in memory ([`LogBuffer`], fed by
//! the [`LogLayer`] that `main` installs beside the stdout logger), so the
//! control plane can read and follow them over the API.
//!
//! The binary (`src/main.rs`) only sets up logging, the runtime and signal
//! handling; everything else lives here so tests can run a whole agent
//! in-process against a fake control plane.

mod access;
pub mod acp;
mod agent;
mod callback;
mod config;
mod confine;
mod error;
mod files;
mod gitview;
mod jwks;
mod logs;
mod metrics;
pub mod outbox;
mod ports;
mod resolver;
mod server;
mod terminals;
pub mod workspaces;

pub use agent::Agent;
pub use callback::Backoff;
pub use config::{Config, ConfigError};
pub use error::AgentError;
pub use jwks::KeyCache;
pub use logs::{LogBuffer, LogLayer, LogLine, MAX_MESSAGE_BYTES};
pub use metrics::{collect_metrics, parse_loadavg, parse_meminfo, parse_uptime};
pub use resolver::{LocalhostResolver, loopback_addr};
pub use server::{AppState, router};
pub use workspaces::{
    CommandSpec, CreateWorkspace, DevcontainerRuntime, GitIdentity, HostRuntime, RepositorySpec,
    RuntimeError, RuntimeKind, RuntimeState, RuntimeTarget, WorkspaceError, WorkspaceInfo,
    WorkspaceRuntime, WorkspaceStatus, WorkspaceView, Workspaces, git_credential_main,
};

/// The version reported in `/health`, the ready call and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
