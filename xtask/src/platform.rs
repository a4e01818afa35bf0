//! Starts the whole platform on this machine: the stand-ins for Hetzner
//! (`devcloud`), GitHub (`devgithub`) and the model APIs agents call
//! (`llmstub`), and the API Worker under `wrangler dev`, with local D1, KV,
//! R2 and Durable Object state in one directory.
//!
//! `cargo xtask dev` keeps state in `.sam/dev` (reused by the next run);
//! tests and benchmarks use a fresh temporary directory and free ports.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{Service, free_port, run, wait_for};
use crate::secrets;
use crate::setup::Tools;

/// How to start the platform.
#[derive(Debug, Clone)]
pub struct Options {
    /// `wrangler dev` port; `None` picks a free one.
    pub port: Option<u16>,
    pub state_dir: PathBuf,
    /// Build profile of the native binaries (`debug` or `release`).
    pub profile: &'static str,
    pub boot_delay_ms: u64,
    /// Extra `[vars]` for the Worker (e.g. a short heartbeat interval in tests).
    pub vars: BTreeMap<String, String>,
    /// Put the recording proxy (`e2e/recorder`) in front of the Worker and
    /// append every exchange to this file (tests only).
    pub record_responses: Option<PathBuf>,
}

/// A running local platform; dropping it stops every process it started.
pub struct Platform {
    pub port: u16,
    pub devcloud_url: String,
    pub devgithub_url: String,
    /// The LLM stand-in agents are pointed at.
    pub llmstub_url: String,
    pub state_dir: PathBuf,
    pub hetzner_token: String,
    /// `(secret key, project id)` the local Scaleway stand-in accepts.
    pub scaleway: (String, String),
    /// Where the recording proxy writes, when there is one.
    pub record: Option<PathBuf>,
    /// The vm-agent binary the platform serves to its VMs.
    pub vm_agent: PathBuf,
    // Field order matters: wrangler stops before the stand-ins (and the VMs).
    recorder: Option<Service>,
    wrangler: Service,
    devgithub: Service,
    devcloud: Service,
    llmstub: Service,
}

impl Platform {
    pub fn api_url(&self) -> String {
        format!("http://api.sam.localhost:{}", self.port)
    }

    pub fn app_url(&self) -> String {
        format!("http://app.sam.localhost:{}", self.port)
    }

    /// Environment for processes (e2e tests, benchmarks) that talk to this platform.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SAM_E2E_PORT".into(), self.port.to_string()),
            ("SAM_E2E_DEVCLOUD_URL".into(), self.devcloud_url.clone()),
            ("SAM_E2E_DEVGITHUB_URL".into(), self.devgithub_url.clone()),
            ("SAM_E2E_LLMSTUB_URL".into(), self.llmstub_url.clone()),
            ("SAM_E2E_HETZNER_TOKEN".into(), self.hetzner_token.clone()),
            (
                "SAM_E2E_SCALEWAY_SECRET_KEY".into(),
                self.scaleway.0.clone(),
            ),
            (
                "SAM_E2E_SCALEWAY_PROJECT_ID".into(),
                self.scaleway.1.clone(),
            ),
            (
                "SAM_E2E_STATE_DIR".into(),
                self.state_dir.display().to_string(),
            ),
            (
                "SAM_E2E_VM_AGENT_BINARY".into(),
                self.vm_agent.display().to_string(),
            ),
            (
                "SAM_E2E_RECORD".into(),
                self.record
                    .as_ref()
                    .map(|r| r.display().to_string())
                    .unwrap_or_default(),
            ),
        ]
    }

    /// Whether every service is still running.
    pub fn alive(&mut self) -> bool {
        !self.wrangler.exited()
            && !self.devcloud.exited()
            && !self.devgithub.exited()
            && !self.llmstub.exited()
            && !self.recorder.as_mut().is_some_and(Service::exited)
    }

    pub fn stop(self) {
        drop(self);
    }

    pub fn start(tools: &Tools, opts: &Options) -> Result<Self> {
        let root = &tools.root;
        std::fs::create_dir_all(&opts.state_dir)?;
        let state_dir = opts.state_dir.canonicalize()?;
        let logs = state_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let secrets = secrets::ensure(root)?;
        let hetzner_token = secrets.get("HETZNER_TOKEN").cloned().unwrap_or_default();
        let scaleway = (
            secrets
                .get("SCALEWAY_SECRET_KEY")
                .cloned()
                .unwrap_or_default(),
            secrets
                .get("SCALEWAY_PROJECT_ID")
                .cloned()
                .unwrap_or_default(),
        );
        let target = target_dir(root).join(opts.profile);

        crate::agents::ensure_installed(&target.join("vm-agent"))?;

        // 1. The stand-ins: the model APIs, Hetzner and GitHub.
        let mut cmd = Command::new(target.join("llmstub"));
        cmd.args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir.join("llmstub"))
            .arg("--script")
            .arg(root.join("e2e/llmstub/scripts/platform.json"));
        let (llmstub, llmstub_url) = start_stand_in("llmstub", cmd, &logs)?;
        let mut cmd = Command::new(target.join("devcloud"));
        cmd.args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir.join("devcloud"))
            .args([
                "--token",
                &hetzner_token,
                "--boot-delay-ms",
                &opts.boot_delay_ms.to_string(),
            ])
            // The VMs' "image" comes with the coding agents installed.
            .arg("--image-env")
            .arg(format!(
                "SAM_AGENTS_DIR={}",
                crate::agents::agents_dir().display()
            ));
        for (flag, name) in [
            ("--scaleway-secret-key", "SCALEWAY_SECRET_KEY"),
            ("--scaleway-project-id", "SCALEWAY_PROJECT_ID"),
        ] {
            cmd.arg(flag)
                .arg(secrets.get(name).map_or("", String::as_str));
        }
        let (devcloud, devcloud_url) = start_stand_in("devcloud", cmd, &logs)?;
        // The Worker's port is chosen now: GitHub's webhooks and install
        // redirects must know where the platform will listen.
        let port = match opts.port {
            Some(p) => p,
            None => free_port()?,
        };
        let app_key = secrets::github_app_key(root)?;
        let mut secrets = secrets;
        secrets.insert(
            "GITHUB_APP_PRIVATE_KEY".into(),
            std::fs::read_to_string(&app_key.private_pem).context("read the GitHub App key")?,
        );
        let webhook_secret =
            secrets::webhook_secret(secrets.get("WEBHOOK_KEYS").map_or("", String::as_str));
        let mut cmd = Command::new(target.join("devgithub"));
        cmd.args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir.join("devgithub"))
            .args(["--client-id", secrets::GITHUB_CLIENT_ID, "--client-secret"])
            .arg(
                secrets
                    .get("GITHUB_CLIENT_SECRET")
                    .cloned()
                    .unwrap_or_default(),
            )
            .args([
                "--app-id",
                "1",
                "--app-slug",
                "sam-local",
                "--app-public-key-pem",
            ])
            .arg(&app_key.public_pem)
            .arg("--webhook-url")
            .arg(format!(
                "http://api.sam.localhost:{port}/api/github/webhook"
            ))
            // `=`: a random base64url secret may start with `-`, which
            // would read as a flag.
            .arg(format!("--webhook-secret={webhook_secret}"))
            .arg("--setup-url")
            .arg(format!("http://app.sam.localhost:{port}/github/setup"));
        let (devgithub, devgithub_url) = start_stand_in("devgithub", cmd, &logs)?;

        // 2. Worker configuration for this run.
        let mut vars = opts.vars.clone();
        vars.insert("PUBLIC_PORT".into(), port.to_string());
        vars.insert("HETZNER_API_URL".into(), format!("{devcloud_url}/v1"));
        vars.insert("SCALEWAY_API_URL".into(), devcloud_url.clone());
        vars.insert("GITHUB_WEB_URL".into(), devgithub_url.clone());
        vars.insert("GITHUB_API_URL".into(), devgithub_url.clone());
        vars.insert("GITHUB_CLIENT_ID".into(), secrets::GITHUB_CLIENT_ID.into());
        vars.insert("GITHUB_APP_ID".into(), "1".into());
        vars.insert("GITHUB_APP_SLUG".into(), "sam-local".into());
        vars.insert("AGENT_ANTHROPIC_BASE_URL".into(), llmstub_url.clone());
        vars.insert("AGENT_OPENAI_BASE_URL".into(), llmstub_url.clone());
        vars.insert("AGENT_GEMINI_BASE_URL".into(), llmstub_url.clone());
        let config = write_wrangler_config(root, &state_dir, &vars, &secrets)?;
        let persist = state_dir.join("wrangler-state");

        // 3. D1 migrations and the vm-agent binary in local R2.
        run(
            "wrangler d1 migrations apply",
            tools
                .wrangler()
                .args(["d1", "migrations", "apply", "DB", "--local", "--config"])
                .arg(&config)
                .arg("--persist-to")
                .arg(&persist)
                .env("CI", "true"),
        )?;
        run(
            "wrangler r2 object put (vm-agent)",
            tools
                .wrangler()
                .args([
                    "r2",
                    "object",
                    "put",
                    "sam/vm-agent/x86_64/vm-agent",
                    "--local",
                    "--config",
                ])
                .arg(&config)
                .arg("--persist-to")
                .arg(&persist)
                .arg("--file")
                .arg(target.join("vm-agent"))
                .stdout(std::process::Stdio::null()),
        )?;

        // 4. The Worker, behind the recording proxy when asked: the proxy
        // takes the public port, wrangler a private one.
        let worker_port = if opts.record_responses.is_some() {
            free_port()?
        } else {
            port
        };
        let mut cmd = tools.wrangler();
        cmd.args(["dev", "--config"])
            .arg(&config)
            .args(["--ip", "127.0.0.1", "--port", &worker_port.to_string()])
            // `/__scheduled` runs the cron sweep on demand (tests, and by hand).
            .arg("--test-scheduled")
            .args(["--inspector-port", &free_port()?.to_string()])
            .arg("--persist-to")
            .arg(&persist)
            .args([
                "--show-interactive-dev-session=false",
                // `info` keeps the Worker's own console output and one line
                // per request: the logs an operator reads (and that the
                // secrets_never_leak test searches).
                "--log-level",
                "info",
            ])
            .env("CI", "true");
        let wrangler = Service::spawn("wrangler", cmd, &logs.join("wrangler.log"))?;
        let recorder = match &opts.record_responses {
            Some(record) => {
                let mut cmd = Command::new(target.join("recorder"));
                cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--upstream"])
                    .arg(format!("http://127.0.0.1:{worker_port}"))
                    .arg("--record")
                    .arg(record)
                    .arg("--state-dir")
                    .arg(state_dir.join("recorder"));
                Some(start_stand_in("recorder", cmd, &logs)?.0)
            }
            None => None,
        };
        let mut platform = Self {
            record: opts.record_responses.clone(),
            vm_agent: target.join("vm-agent"),
            recorder,
            port,
            devcloud_url,
            devgithub_url,
            llmstub_url,
            state_dir,
            hetzner_token,
            scaleway,
            wrangler,
            devgithub,
            devcloud,
            llmstub,
        };
        let log = logs.join("wrangler.log");
        wait_for("the API to answer /health", Duration::from_secs(90), || {
            // Stop waiting at once if wrangler or devcloud died.
            // Ask wrangler itself: the recording proxy answers 502 until then.
            !platform.alive() || health_status(worker_port).is_some()
        })
        .with_context(|| format!("see {}", log.display()))?;
        if !platform.alive() {
            bail!(
                "a platform process exited during start-up; see {}",
                logs.display()
            );
        }
        Ok(platform)
    }
}

/// Starts a stand-in that announces `<name> listening on <url>`; returns it and the URL.
fn start_stand_in(name: &str, cmd: Command, logs: &Path) -> Result<(Service, String)> {
    let (service, line) = Service::spawn_until_line(
        name,
        cmd,
        &logs.join(format!("{name}.log")),
        &format!("{name} listening on"),
        Duration::from_secs(30),
    )?;
    let url = line
        .rsplit(' ')
        .next()
        .with_context(|| format!("{name} announced no URL"))?
        .to_owned();
    Ok((service, url))
}

/// Cargo's target directory.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from)
}

/// Writes a run-specific wrangler config (absolute paths, no build step,
/// `vars` merged in) plus its `.dev.vars`, returning the config path.
fn write_wrangler_config(
    root: &Path,
    state_dir: &Path,
    vars: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let text = std::fs::read_to_string(root.join("wrangler.toml")).context("read wrangler.toml")?;
    let mut config: toml::Table = text.parse().context("parse wrangler.toml")?;
    // The wasm is built by xtask before start-up; wrangler must not rebuild it.
    config.remove("build");
    config.insert(
        "main".into(),
        root.join("worker-api/build/index.js")
            .display()
            .to_string()
            .into(),
    );
    if let Some(toml::Value::Array(dbs)) = config.get_mut("d1_databases") {
        for db in dbs {
            if let Some(t) = db.as_table_mut() {
                t.insert(
                    "migrations_dir".into(),
                    root.join("migrations").display().to_string().into(),
                );
            }
        }
    }
    let table = config
        .entry("vars")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = table.as_table_mut() {
        for (k, v) in vars {
            t.insert(k.clone(), v.clone().into());
        }
    }
    let path = state_dir.join("wrangler.toml");
    std::fs::write(&path, toml::to_string(&config)?)?;
    // wrangler reads secrets from .dev.vars beside the config it was given.
    secrets::write_dev_vars(&state_dir.join(".dev.vars"), secrets)?;
    Ok(path)
}

/// One plain HTTP/1.1 GET of `/health` on the API host; the status code if it answered.
pub fn health_status(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: api.sam.localhost:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
