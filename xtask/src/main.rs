//! `cargo xtask`: every automation of the repository.
//!
//! - `dev`: install what is missing, build, start the local platform.
//! - `test`: the same setup, then fmt, clippy (host and wasm), unit tests and
//!   the end-to-end tier against a freshly started platform.
//! - `bench`: measure and write `docs/benchmarks.{md,json}`.
//! - `setup`, `build-worker`, `migrations`: the pieces, callable alone.

mod agents;
mod bench;
mod dev;
mod platform;
mod process;
mod secrets;
mod setup;
mod test;
mod worker;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "SAM's automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install toolchains and packages that are missing (idempotent).
    Setup {
        /// Also install what the tests need (cloud-init, Chromium).
        #[arg(long)]
        test: bool,
    },
    /// Build the API Worker to wasm.
    BuildWorker {
        #[arg(long)]
        release: bool,
    },
    /// Start the whole platform locally.
    Dev {
        /// Port for `wrangler dev` (app.sam.localhost:PORT and api.sam.localhost:PORT).
        #[arg(long, default_value_t = 8787)]
        port: u16,
    },
    /// Run every check and test; exits non-zero on any failure.
    Test {
        /// Skip fmt and clippy (quicker local iterations).
        #[arg(long)]
        no_lint: bool,
        /// Only run e2e tests whose name contains this.
        #[arg(long)]
        e2e_filter: Option<String>,
        /// Skip everything but the end-to-end tier.
        #[arg(long)]
        e2e_only: bool,
    },
    /// Run the benchmarks and write docs/benchmarks.{md,json}.
    Bench,
    /// Migration safety gate: check, or lock new migrations.
    Migrations {
        #[arg(long)]
        lock: bool,
    },
}

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    process::install_cleanup_on_signal()?;
    match cli.command {
        Command::Setup { test } => setup::run(test).map(|_| ()),
        Command::BuildWorker { release } => {
            let tools = setup::run(false)?;
            worker::build(&tools, release)
        }
        Command::Dev { port } => dev::run_dev(port),
        Command::Test {
            no_lint,
            e2e_filter,
            e2e_only,
        } => test::run(!no_lint && !e2e_only, !e2e_only, e2e_filter.as_deref()),
        Command::Bench => bench::run(),
        Command::Migrations { lock } => migrations(lock),
    }
}

fn migrations(lock: bool) -> Result<()> {
    let root = repo_root();
    if lock {
        let added = sam_migrations::lock_tree(&root)?;
        println!("locked {} new migration file(s)", added.len());
        return Ok(());
    }
    let report = sam_migrations::check_tree(&root)?;
    if report.is_clean() {
        println!("migrations: ok");
        Ok(())
    } else {
        anyhow::bail!("migration gate failed:\n{report}")
    }
}
