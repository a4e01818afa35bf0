//! The coding agents local VMs run, installed once per machine.
//!
//! devcloud's VMs get `SAM_AGENTS_DIR` pointing here, as a machine image
//! with the agents preinstalled would; the vm-agent installs an agent that
//! is missing on first use. Installing ahead of time (with the vm-agent's
//! own installer, so the layout is the same) keeps the first task of a run
//! from waiting for npm.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::process::run;
use crate::setup::cache_dir;

/// The agents tests run and `cargo xtask dev` offers first.
pub const PREINSTALLED: &[&str] = &["claude-code", "openai-codex"];

/// Where agents are installed (`SAM_AGENTS_DIR` overrides).
pub fn agents_dir() -> PathBuf {
    std::env::var_os("SAM_AGENTS_DIR").map_or_else(|| cache_dir().join("agents"), PathBuf::from)
}

/// Installs [`PREINSTALLED`] with `vm_agent` (idempotent: present agents
/// are skipped).
pub fn ensure_installed(vm_agent: &Path) -> Result<()> {
    let mut cmd = Command::new(vm_agent);
    cmd.arg("install-agents")
        .arg("--dir")
        .arg(agents_dir())
        .args(PREINSTALLED);
    run("install the coding agents (npm)", &mut cmd)
}
