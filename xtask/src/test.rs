//! `cargo xtask test`: every check and test, with one summary.
//!
//! Order: fmt → clippy (host, wasm32) → migration gate → unit tests → build
//! the platform → end-to-end tests against a fresh platform on free ports
//! with isolated state. Each check and test prints its name and result; the
//! run ends with `N passed, N failed` and exits non-zero on any failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::dev::build_all;
use crate::platform::{Options, Platform};
use crate::process::free_port;
use crate::setup::{self, Tools};

/// Crates that only build for wasm32 (excluded from host clippy and tests).
const WASM_CRATES: &[&str] = &["sam-worker-api", "sam-durable-objects"];

/// Pure crates the Worker links: linted for wasm32 too.
const WORKER_PURE_CRATES: &[&str] = &[
    "sam-domain",
    "sam-wire",
    "sam-auth",
    "sam-store",
    "sam-providers",
    "sam-control",
    "sam-cloud-init",
    "sam-web",
    "sam-vault",
];

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(name.to_owned());
        }
    }

    /// A named check that is one command.
    fn check(&mut self, name: &str, cmd: &mut Command) {
        println!("check {name} ...");
        let ok = cmd.status().is_ok_and(|s| s.success());
        println!("check {name} ... {}", if ok { "ok" } else { "FAILED" });
        self.record(name, ok);
    }

    /// Runs `cargo test`, echoing its output and counting each test line;
    /// returns the names of the tests that ran. A build failure, a crashed
    /// test binary or running past `limit` (the whole process group is then
    /// killed) counts as a failure too.
    fn cargo_test(&mut self, label: &str, cmd: &mut Command, limit: Duration) -> Vec<String> {
        println!("--- {label}");
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn();
        let Ok(mut child) = child else {
            self.record(label, false);
            return Vec::new();
        };
        crate::process::register(child.id());
        let timed_out = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (timed_out, done) = (Arc::clone(&timed_out), Arc::clone(&done));
            let pgid = i32::try_from(child.id()).ok();
            std::thread::spawn(move || {
                let deadline = Instant::now() + limit;
                while Instant::now() < deadline {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                timed_out.store(true, Ordering::SeqCst);
                if let Some(pgid) = pgid {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            })
        };
        let before = self.failed.len();
        let mut ran = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                if let Some((name, result)) = parse_test_line(&line) {
                    self.record(name, result == "ok");
                    ran.push(name.to_owned());
                }
            }
        }
        let ok = child.wait().is_ok_and(|s| s.success());
        crate::process::unregister(child.id());
        done.store(true, Ordering::SeqCst);
        let _ = watchdog.join();
        if timed_out.load(Ordering::SeqCst) {
            self.record(
                &format!("{label} (killed after {} s)", limit.as_secs()),
                false,
            );
        } else if !ok && self.failed.len() == before {
            self.record(&format!("{label} (cargo test exited with failure)"), false);
        }
        ran
    }
}

/// `test some::name ... ok` → (`some::name`, `ok`).
fn parse_test_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.rsplit_once(" ... ")?;
    let result = result.split_whitespace().next()?;
    matches!(result, "ok" | "FAILED").then_some((name, result))
}

/// Tests the issues name; the e2e tier fails if any of them did not run.
const REQUIRED_E2E: &[&str] = &[
    "j00_health_reports_every_binding",
    "j01_sign_in_first_user_superadmin",
    "j02_signup_approval",
    "j04_add_hetzner_token_then_node_uses_it",
    "j06_project_from_github_repo",
    "j07_agent_key_and_project_override",
    "j08_task_to_pull_request",
    "j09_warm_reuse_then_destroy",
    "j10_follow_up_conversation",
    "j11_cancel_and_stop",
    "j15_node_manage_and_observe",
    "warm_pool_claim_release_expire",
    "j12_terminal_reattach_scrollback",
    "j13_port_forward_dev_server",
    "j14_workspace_lifecycle",
    "j16_interactive_agent_in_workspace",
    "outbox_survives_agent_restart",
    "ui_workspace_terminal_in_chromium",
    "ui_task_chat_in_chromium",
    "j17_files_and_diff",
    "j23_pat_token_login",
    "authz_cross_user_matrix",
    "token_scope_matrix",
    "vault_rotation_keeps_sessions_and_credentials",
    CHAOS_TEST,
    LEAK_TEST,
];

/// Runs after every other end-to-end test: it searches what they left behind.
const LEAK_TEST: &str = "secrets_never_leak";
const CHAOS_TEST: &str = "chaos_provider_faults_no_orphans";

/// End-to-end tests run one at a time after the rest, in this order.
const SOLO_TESTS: [(&str, &str); 2] = [
    ("chaos under provider faults", CHAOS_TEST),
    ("secret leak search", LEAK_TEST),
];

pub fn run(lint: bool, unit: bool, e2e_filter: Option<&str>) -> Result<()> {
    let mut tally = Tally::default();
    let tools = match setup::run(true) {
        Ok(tools) => tools,
        Err(e) => {
            println!("setup ... FAILED: {e:#}");
            tally.record("setup", false);
            return finish(&tally);
        }
    };
    let root = tools.root.clone();
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(&root);
        c
    };

    if lint {
        tally.check("fmt", cargo().args(["fmt", "--all", "--", "--check"]));
        let mut host = cargo();
        host.args(["clippy", "--workspace", "--all-targets"]);
        for krate in WASM_CRATES {
            host.args(["--exclude", krate]);
        }
        tally.check("clippy_host", host.args(["--", "-D", "warnings"]));
        let mut wasm = wasm_cargo(&tools);
        wasm.args(["clippy", "--target", "wasm32-unknown-unknown"]);
        for krate in WASM_CRATES.iter().chain(WORKER_PURE_CRATES) {
            wasm.args(["-p", krate]);
        }
        tally.check("clippy_wasm32", wasm.args(["--", "-D", "warnings"]));
    }
    if unit {
        unit_tier(&root, &mut tally);
    }
    match build_all(&tools, false).and_then(|()| build_port_echo(&tools.root)) {
        Ok(()) => e2e(&tools, e2e_filter, &mut tally),
        Err(e) => {
            println!("build the platform ... FAILED: {e:#}");
            tally.record("build_platform", false);
        }
    }

    finish(&tally)
}

/// The app the port-forwarding tests start inside a workspace
/// (`vm-agent/examples/port_echo.rs`).
fn build_port_echo(root: &std::path::Path) -> Result<()> {
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "-p",
            "sam-vm-agent",
            "--example",
            "port_echo",
        ])
        .status()?;
    if !status.success() {
        anyhow::bail!("cargo build --example port_echo failed ({status})");
    }
    Ok(())
}

fn port_echo_path(root: &std::path::Path) -> std::path::PathBuf {
    crate::platform::target_dir(root).join("debug/examples/port_echo")
}

/// Prints the failures and the closing `N passed, N failed` line; exits 1 on any failure.
fn finish(tally: &Tally) -> Result<()> {
    println!();
    if !tally.failed.is_empty() {
        println!("failed:");
        for name in &tally.failed {
            println!("  {name}");
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if tally.failed.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// The migration gate and every crate's unit and integration tests.
fn unit_tier(root: &std::path::Path, tally: &mut Tally) {
    let gate = sam_migrations::check_tree(root);
    let gate_ok = match &gate {
        Ok(report) if report.is_clean() => true,
        Ok(report) => {
            println!("{report}");
            false
        }
        Err(e) => {
            println!("{e}");
            false
        }
    };
    println!(
        "check migration_gate ... {}",
        if gate_ok { "ok" } else { "FAILED" }
    );
    tally.record("migration_gate", gate_ok);

    let mut unit = Command::new("cargo");
    unit.current_dir(root).args([
        "test",
        "--no-fail-fast",
        "--workspace",
        "--exclude",
        "sam-e2e",
    ]);
    for krate in WASM_CRATES {
        unit.args(["--exclude", krate]);
    }
    tally.cargo_test("unit tests", &mut unit, Duration::from_secs(30 * 60));
}

/// `cargo` with the environment wasm builds need (the Debian fallback).
fn wasm_cargo(tools: &Tools) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&tools.root);
    tools.with_wasm_env(&mut cmd);
    cmd
}

fn e2e(tools: &Tools, filter: Option<&str>, tally: &mut Tally) {
    let state = std::env::temp_dir().join(format!("sam-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let vm_agent_port = free_port().unwrap_or(18443);
    let vars = BTreeMap::from([
        ("NODE_HEARTBEAT_INTERVAL_SECS".to_owned(), "1".to_owned()),
        ("NODE_BOOT_TIMEOUT_SECS".to_owned(), "120".to_owned()),
        ("VM_AGENT_PORT".to_owned(), vm_agent_port.to_string()),
        ("MAX_NODES_PER_USER".to_owned(), "25".to_owned()),
        // The sweep test creates stray servers and sweeps at once.
        ("ORPHAN_GRACE_SECS".to_owned(), "0".to_owned()),
    ]);
    let opts = Options {
        port: None,
        state_dir: state.clone(),
        profile: "debug",
        boot_delay_ms: 300,
        vars,
        record_responses: Some(state.join("responses.jsonl")),
    };
    let platform = match Platform::start(tools, &opts) {
        Ok(p) => p,
        Err(e) => {
            println!("start the platform ... FAILED: {e:#}");
            tally.record("start_platform", false);
            return;
        }
    };
    println!(
        "platform up at {} (state {})",
        platform.api_url(),
        state.display()
    );
    let e2e_cmd = || {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&tools.root)
            .args([
                "test",
                "--no-fail-fast",
                "-p",
                "sam-e2e",
                "--",
                "--test-threads=3",
            ])
            .envs(platform.env())
            .env("SAM_E2E_VM_AGENT_PORT", vm_agent_port.to_string())
            .env(
                "SAM_E2E_ARTIFACTS",
                crate::platform::target_dir(&tools.root).join("e2e-artifacts"),
            )
            .env("SAM_E2E_PORT_ECHO", port_echo_path(&tools.root))
            .env("SAM_E2E_NODE", &tools.node)
            .env("SAM_E2E_WRANGLER_JS", &tools.wrangler_js);
        cmd
    };
    let before = tally.failed.len();
    // Every flow first; then, alone, the test that searches everything the
    // flows left behind (logs, recorded responses) for secrets.
    let mut flows = e2e_cmd();
    if let Some(f) = filter {
        flows.arg(f);
    }
    for (_, test) in SOLO_TESTS {
        flows.args(["--skip", test]);
    }
    let mut ran = tally.cargo_test("end-to-end tests", &mut flows, Duration::from_secs(20 * 60));
    // Tests that must run alone: the chaos test's faults would break the
    // others; the leak search looks at what all of them left behind.
    for (label, test) in SOLO_TESTS {
        if filter.is_some_and(|f| !test.contains(f)) {
            continue;
        }
        let mut solo = e2e_cmd();
        // The chaos test prints its counts; show them.
        solo.args([test, "--show-output"]);
        ran.extend(tally.cargo_test(label, &mut solo, Duration::from_secs(10 * 60)));
    }
    // A filter that matches nothing, or a required journey that vanished,
    // must not pass silently.
    if ran.is_empty() {
        println!("end-to-end tests ... FAILED: no test ran");
        tally.record("end-to-end tests (none ran)", false);
    }
    if filter.is_none() {
        for required in REQUIRED_E2E {
            if !ran.iter().any(|name| name.ends_with(required)) {
                println!("{required} ... FAILED: did not run");
                tally.record(required, false);
            }
        }
    }
    platform.stop();
    if tally.failed.len() == before {
        let _ = std::fs::remove_dir_all(&state);
    } else {
        println!("e2e state and logs kept in {}", state.display());
    }
}
