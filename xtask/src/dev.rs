//! `cargo xtask dev`: the local platform for a person to use.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Result;

use crate::platform::{Options, Platform};
use crate::process::run;
use crate::{setup, worker};

pub fn run_dev(port: u16) -> Result<()> {
    let tools = setup::run(false)?;
    build_all(&tools, false)?;
    let opts = Options {
        port: Some(port),
        state_dir: tools.root.join(".sam/dev"),
        profile: "debug",
        boot_delay_ms: 2000,
        vars: BTreeMap::new(),
        record_responses: None,
    };
    let platform = Platform::start(&tools, &opts)?;
    println!();
    println!("SAM is running locally.");
    println!("  Web app:  {}", platform.app_url());
    println!(
        "  API:      {}  (try {}/health)",
        platform.api_url(),
        platform.api_url()
    );
    println!(
        "  Cloud:    {}  (local Hetzner stand-in)",
        platform.devcloud_url
    );
    println!(
        "  GitHub:   {}  (local GitHub stand-in)",
        platform.devgithub_url
    );
    println!("  State:    {}", platform.state_dir.display());
    println!("Press Ctrl-C to stop every process started here.");
    // The signal handler (installed in main) stops the platform's process
    // groups and exits; until then, watch that both services stay up.
    let mut platform = platform;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if !platform.alive() {
            platform.stop();
            anyhow::bail!("a platform process exited; logs are in .sam/dev/logs");
        }
    }
}

/// Builds the Worker (wasm) and the native binaries the platform runs.
pub fn build_all(tools: &setup::Tools, release: bool) -> Result<()> {
    worker::build(tools, release)?;
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "sam-vm-agent",
        "-p",
        "sam-devcloud",
        "-p",
        "sam-devgithub",
        "-p",
        "sam-recorder",
        "-p",
        "sam-llmstub",
    ])
    .current_dir(&tools.root);
    if release {
        cmd.arg("--release");
    }
    run("cargo build (vm-agent, stand-ins)", &mut cmd)
}
