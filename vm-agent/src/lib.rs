//! The SAM node agent.
//!
//! One `vm-agent` runs on every node. It serves a small HTTP API for the
//! control plane (`/health`, `/system-info`, guarded by control-plane-signed
//! tokens) and calls back to the control plane: once to report the node
//! ready, then periodically with a heartbeat carrying resource metrics.
//!
//! The binary (`src/main.rs`) only sets up logging, the runtime and signal
//! handling; everything else lives here so tests can run a whole agent
//! in-process against a fake control plane.

mod agent;
mod callback;
mod config;
mod error;
mod jwks;
mod metrics;
mod resolver;
mod server;

pub use agent::Agent;
pub use callback::Backoff;
pub use config::{Config, ConfigError};
pub use error::AgentError;
pub use jwks::KeyCache;
pub use metrics::{collect_metrics, parse_loadavg, parse_meminfo, parse_uptime};
pub use resolver::{LocalhostResolver, loopback_addr};
pub use server::{AppState, router};

/// The version reported in `/health`, the ready call and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
