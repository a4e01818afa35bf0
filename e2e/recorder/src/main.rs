//! `recorder` binary: parse flags, bind, announce the address, proxy until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use futures::FutureExt as _;
use sam_recorder::Config;

/// Recording reverse proxy for the end-to-end harness: forwards every
/// request to the upstream unchanged and appends each response to a
/// JSON-lines file.
#[derive(Debug, Parser)]
#[command(name = "recorder", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Base URL requests are forwarded to, e.g. http://127.0.0.1:41234.
    #[arg(long)]
    upstream: String,
    /// JSON-lines file each exchange is appended to.
    #[arg(long)]
    record: PathBuf,
    /// Directory for the port file (created if missing).
    #[arg(long)]
    state_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sam_standin_kit::init_logging();
    let args = Args::parse();

    // One signal for both: event streams still open end (recorded as
    // incomplete) so that the graceful shutdown does not wait on them.
    let shutdown = sam_standin_kit::shutdown_signal().boxed().shared();
    let router = sam_recorder::router_with_shutdown(
        Config {
            upstream: args.upstream.clone(),
            record: args.record.clone(),
        },
        shutdown.clone(),
    )
    .context("starting recorder")?;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(upstream = %args.upstream, record = %args.record.display(), "recording");
    sam_standin_kit::announce("recorder", &args.state_dir, addr).context("announcing")?;

    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")
}
