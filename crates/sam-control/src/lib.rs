//! Control-plane use cases over ports.
//!
//! Each use case takes its collaborators as parameters — the SQL database,
//! the cloud provider, the boot log, the signing key — plus `now` and
//! randomness, so route handlers in the Worker stay thin: decode, call one
//! function here, encode.

pub mod agent_credentials;
pub mod credentials;
mod error;
pub mod github;
pub mod identity;
mod nodes;
mod ports;
pub mod projects;
mod reseal;
pub mod retry;
pub mod sweep;

pub use error::ControlError;
pub use nodes::{
    NodeSettings, create_node, delete_node, deployment_selector, label_value, list_nodes,
    node_view, record_heartbeat, record_ready,
};
pub use ports::{BootLog, RetryRuntime, ServerProvider};
