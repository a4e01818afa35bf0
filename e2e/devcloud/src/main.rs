//! `devcloud` binary: parse flags, serve the API, announce the address,
//! and on SIGINT/SIGTERM end every emulated server's processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sam_devcloud::{
    ApiFaultSpec, BootFaultSpec, Config, DevCloud, FaultConfig, ScalewayCredential,
};

/// Local stand-in for the Hetzner Cloud API whose servers are local processes.
#[derive(Debug, Parser)]
#[command(name = "devcloud", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory for state.json, the port file and server roots.
    #[arg(long)]
    state_dir: PathBuf,
    /// Accepted API token (repeatable).
    #[arg(long = "token", required = true)]
    tokens: Vec<String>,
    /// Emulated boot time before user-data runs, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    boot_delay_ms: u64,
    /// Secret key the Scaleway API (`/instance/v1`) accepts as `X-Auth-Token`.
    #[arg(long, requires = "scaleway_project_id")]
    scaleway_secret_key: Option<String>,
    /// The one Scaleway project that key may use.
    #[arg(long, requires = "scaleway_secret_key")]
    scaleway_project_id: Option<String>,
    /// Seed of the fault rules' dice (default: from the clock, logged).
    #[arg(long)]
    fault_seed: Option<u64>,
    /// An API fault rule in force from the start, as JSON (the body of
    /// `POST /_devcloud/faults`); repeatable.
    #[arg(long = "fault", value_name = "JSON", value_parser = parse_api_fault)]
    faults: Vec<ApiFaultSpec>,
    /// A boot fault rule in force from the start, as JSON (the body of
    /// `POST /_devcloud/boot-faults`); repeatable.
    #[arg(long = "boot-fault", value_name = "JSON", value_parser = parse_boot_fault)]
    boot_faults: Vec<BootFaultSpec>,
    /// `NAME=VALUE` set in every VM service's environment, as a machine
    /// image would; repeatable.
    #[arg(long = "image-env", value_name = "NAME=VALUE", value_parser = parse_image_env)]
    image_env: Vec<(String, String)>,
}

fn parse_image_env(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{name:?} is not an environment variable name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_api_fault(raw: &str) -> Result<ApiFaultSpec, String> {
    serde_json::from_str::<ApiFaultSpec>(raw)
        .map_err(|e| e.to_string())?
        .normalized()
}

fn parse_boot_fault(raw: &str) -> Result<BootFaultSpec, String> {
    serde_json::from_str::<BootFaultSpec>(raw)
        .map_err(|e| e.to_string())?
        .normalized()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sam_standin_kit::init_logging();
    let args = Args::parse();

    let devcloud = DevCloud::start(Config {
        state_dir: args.state_dir.clone(),
        tokens: args.tokens,
        boot_delay: Duration::from_millis(args.boot_delay_ms),
        image_env: args.image_env,
        scaleway: args.scaleway_secret_key.zip(args.scaleway_project_id).map(
            |(secret_key, project_id)| ScalewayCredential {
                secret_key,
                project_id,
            },
        ),
        faults: FaultConfig {
            seed: args.fault_seed,
            api: args.faults,
            boot: args.boot_faults,
        },
    })
    .await
    .context("starting devcloud")?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = sam_standin_kit::shutdown_signal();
    sam_standin_kit::announce("devcloud", &args.state_dir, addr).context("announcing")?;

    let served = axum::serve(listener, devcloud.router())
        .with_graceful_shutdown(shutdown)
        .await;
    devcloud.shutdown().await;
    served.context("serving")
}
