//! `llmstub` binary: parse flags, load the script, bind, announce the
//! address, serve until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sam_llmstub::{Config, LlmStub, Script};

/// Local stand-in for the Anthropic, OpenAI (Responses, Chat Completions)
/// and Gemini APIs, answering from a script of rules.
#[derive(Debug, Parser)]
#[command(name = "llmstub", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory for the port file.
    #[arg(long)]
    state_dir: PathBuf,
    /// JSON script of rules (default: every request gets a short text).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Accept only this API key (default: any non-empty key).
    #[arg(long)]
    require_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sam_standin_kit::init_logging();
    let args = Args::parse();

    let script = match &args.script {
        Some(path) => Script::load(path).context("loading the script")?,
        None => Script::default(),
    };
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let stub = LlmStub::new(Config {
        script,
        require_key: args.require_key,
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = sam_standin_kit::shutdown_signal();
    sam_standin_kit::announce("llmstub", &args.state_dir, addr).context("announcing")?;

    axum::serve(listener, stub.router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")
}
