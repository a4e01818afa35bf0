//! Control-plane use cases over ports.
//!
//! Each use case takes its collaborators as parameters — the SQL database,
//! the cloud provider, the boot log, the signing key — plus `now` and
//! randomness, so route handlers in the Worker stay thin: decode, call one
//! function here, encode.

pub mod agent_client;
pub mod agent_credentials;
pub mod chat_sessions;
pub mod cloud;
pub mod credentials;
mod error;
pub mod github;
pub mod identity;
pub mod lifecycle;
mod nodes;
mod ports;
pub mod projects;
mod reseal;
pub mod retry;
pub mod sweep;
pub mod tasks;
pub mod workspace_access;
pub mod workspaces;

pub use error::ControlError;
pub use nodes::{
    NodePorts, NodeSettings, claim_project, claim_warm_node, create_node, delete_node,
    deployment_selector, label_value, list_nodes, node_view, record_heartbeat, record_ready,
    release_node, stop_node, user_claim,
};
pub use ports::{
    AgentError, BootLog, CloudAccounts, NodeAgent, NodeTimer, OpenedAccount, RetryRuntime,
    ServerProvider, SessionAgent, WorkspaceAction,
};
