//! devcloud: a local stand-in for the Hetzner Cloud API (and a subset of
//! Scaleway's Instance API on the same listener).
//!
//! The control plane reaches it only through its base-URL setting, so the
//! HTTP surface mirrors api.hetzner.cloud's wire format (paths, JSON shapes,
//! error envelope, status codes). Behind that surface a "server" is a
//! directory plus the processes its cloud-init user-data would have started:
//! devcloud interprets the subset of cloud-config SAM renders (write_files,
//! runcmd with curl/chmod/mkdir/systemctl) with every absolute path rebased
//! under the server's own root directory, and gives each server its own
//! loopback IPv4 address so agents bind like they would on a VM's interface.
//!
//! The library exposes [`DevCloud`] (state, fleet of emulated machines and the
//! axum router) so tests can drive it without a binary; `main.rs` only adds
//! the CLI, the listening socket and signal handling.
//!
//! For chaos tests, [`FaultConfig`] and the `/_devcloud/...` admin API
//! inject faults: 429/5xx answers (optionally after the request took
//! effect), failing or slow first boots, servers that vanish, and agents
//! that are killed or frozen.

mod api;
mod catalog;
mod clock;
mod config;
mod devcloud;
mod faults;
mod labels;
mod state;
mod vm;

pub use config::{Config, ScalewayCredential};
pub use devcloud::{DevCloud, StartError};
pub use faults::{
    ApiFaultKind, ApiFaultSpec, ApiSelector, BootFaultKind, BootFaultSpec, FaultConfig,
};
