//! `devgithub` binary: parse flags, bind, announce the address, serve
//! until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sam_devgithub::{AppConfig, Config, DevGitHub, WebhookConfig};

/// Local stand-in for GitHub: OAuth web flow, REST API, one GitHub App
/// with installations, and signed webhooks.
#[derive(Debug, Parser)]
#[command(name = "devgithub", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory for state.json and the port file.
    #[arg(long)]
    state_dir: PathBuf,
    /// OAuth client id of the app.
    #[arg(long)]
    client_id: String,
    /// OAuth client secret of the app.
    #[arg(long)]
    client_secret: String,
    /// Numeric GitHub App id (the JWT `iss`).
    #[arg(long)]
    app_id: u64,
    /// App slug, as in /apps/{slug}/installations/new.
    #[arg(long)]
    app_slug: String,
    /// PEM file with the app's RSA public key (verifies its JWTs).
    #[arg(long)]
    app_public_key_pem: PathBuf,
    /// Where webhooks are POSTed; none are sent without it.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Secret for X-Hub-Signature-256.
    #[arg(long)]
    webhook_secret: Option<String>,
    /// Where the install flow redirects afterwards.
    #[arg(long)]
    setup_url: Option<String>,
    /// Registered OAuth callback URL; redirect_uri must live under it.
    #[arg(long)]
    callback_url: Option<String>,
    /// Base URL in clone_url, html_url and Link headers
    /// [default: http://<bound address>].
    #[arg(long)]
    public_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sam_standin_kit::init_logging();
    let args = Args::parse();

    let public_key_pem = std::fs::read_to_string(&args.app_public_key_pem)
        .with_context(|| format!("reading {}", args.app_public_key_pem.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;

    let devgithub = DevGitHub::start(Config {
        state_dir: args.state_dir.clone(),
        public_url: Some(args.public_url.unwrap_or_else(|| format!("http://{addr}"))),
        app: AppConfig {
            id: args.app_id,
            slug: args.app_slug,
            client_id: args.client_id,
            client_secret: args.client_secret,
            public_key_pem,
            callback_url: args.callback_url,
            setup_url: args.setup_url,
        },
        webhook: args.webhook_url.map(|url| WebhookConfig {
            url,
            secret: args.webhook_secret,
            retry_delay: Duration::from_millis(500),
            max_attempts: 4,
        }),
        oauth_code_ttl: Duration::from_secs(600),
        installation_token_ttl: Duration::from_secs(3600),
    })
    .context("starting devgithub")?;

    let shutdown = sam_standin_kit::shutdown_signal();
    sam_standin_kit::announce("devgithub", &args.state_dir, addr).context("announcing")?;

    axum::serve(listener, devgithub.router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")
}
