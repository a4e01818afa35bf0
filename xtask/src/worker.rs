//! Builds the API Worker (wasm) with `worker-build`, offline.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::process::run;
use crate::setup::Tools;

/// Builds `worker-api` into `worker-api/build/` (what `wrangler.toml`'s `main` points at).
pub fn build(tools: &Tools, release: bool) -> Result<()> {
    let mut cmd = Command::new(&tools.worker_build);
    if release {
        cmd.arg("--release");
    } else {
        cmd.arg("--dev");
    }
    cmd.current_dir(tools.root.join("worker-api"))
        // worker-build would download these; point it at the pinned local copies.
        .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
        .env("ESBUILD_BIN", &tools.esbuild)
        .env("WASM_OPT_BIN", &tools.wasm_opt)
        .env("SAM_BUILD_VERSION", build_version());
    run("worker-build", tools.with_wasm_env(&mut cmd))
}

/// The built wasm module.
pub fn wasm_path(tools: &Tools) -> PathBuf {
    tools.root.join("worker-api/build/index_bg.wasm")
}

/// `<crate version>+<short git sha>` when git knows, else the crate version.
pub fn build_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let sha = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match sha {
        Some(sha) if !sha.is_empty() => format!("{version}+{sha}"),
        _ => version.to_owned(),
    }
}
