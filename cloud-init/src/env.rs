//! Names of the variables in `/etc/sam/vm-agent.env`.
//!
//! Shared so the vm-agent reads exactly what the renderer writes.

/// The node's id.
pub const NODE_ID: &str = "SAM_NODE_ID";
/// Base URL of the control plane.
pub const CONTROL_PLANE_URL: &str = "SAM_CONTROL_PLANE_URL";
/// Path of the file holding the callback token (never the token itself).
pub const CALLBACK_TOKEN_FILE: &str = "SAM_CALLBACK_TOKEN_FILE";
/// Heartbeat interval in whole seconds.
pub const HEARTBEAT_INTERVAL_SECS: &str = "SAM_HEARTBEAT_INTERVAL_SECS";
/// TCP port the agent listens on.
pub const VM_AGENT_PORT: &str = "SAM_VM_AGENT_PORT";
/// The web app's origin (CORS and cookie origin checks).
pub const APP_ORIGIN: &str = "SAM_APP_ORIGIN";
