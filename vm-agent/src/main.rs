//! `vm-agent`: the node agent binary. Sets up logging (to stdout, and into
//! the in-memory buffer the API serves as `/logs`), a single-threaded runtime
//! (the agent is mostly idle; one thread keeps its memory small) and signal
//! handling, then hands over to the library.
//!
//! `vm-agent git-credential --workspace <ID> --socket <path> <action>` is
//! the credential helper git runs for workspace checkouts: it only talks to
//! the running agent (stdout belongs to git, so nothing is logged).
//!
//! `vm-agent install-agents --dir <dir> <agent>...` installs coding agents
//! from the catalog the way sessions do (a machine image, or a developer's
//! machine, can have them ready before the first session).

use std::io::IsTerminal as _;

use anyhow::Context as _;
use sam_vm_agent::{Agent, Config, LogBuffer};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "git-credential") {
        let code = sam_vm_agent::git_credential_main(
            args.get(2..).unwrap_or_default(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        std::process::exit(code);
    }

    if args.get(1).is_some_and(|a| a == "install-agents") {
        return install_agents(args.get(2..).unwrap_or_default());
    }

    let logs = LogBuffer::new();
    // The filter is global: the buffer keeps exactly what stdout shows.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .compact()
                .with_ansi(std::io::stdout().is_terminal()),
        )
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(logs.layer())
        .init();

    let config = Config::from_env().context("invalid configuration")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Install handlers before anything else so an early SIGTERM is not
        // the default "terminate at once".
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
            }
        };
        let agent = Agent::new(config)?.with_log_buffer(logs);
        agent.run(shutdown).await?;
        Ok(())
    })
}

/// `install-agents --dir <dir> <agent>...`: installs each named agent of
/// the built-in catalog into `dir` (skipping those already there).
fn install_agents(args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    use sam_vm_agent::acp::catalog::Catalog;
    use sam_vm_agent::acp::install::Installer;

    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    let (Some(flag), Some(dir)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: vm-agent install-agents --dir <dir> <agent>...");
    };
    anyhow::ensure!(
        flag == "--dir",
        "usage: vm-agent install-agents --dir <dir> <agent>..."
    );
    let catalog = Catalog::builtin().context("the built-in agent catalog")?;
    let installer = Installer::new(dir.into(), Installer::default_path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        for name in args {
            let spec = catalog
                .get(&name)
                .with_context(|| format!("no agent {name:?} in the catalog"))?;
            let bin = installer
                .ensure(spec)
                .await
                .with_context(|| format!("installing {name}"))?;
            println!("{name}: {}", bin.display());
        }
        Ok(())
    })
}
