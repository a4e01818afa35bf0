//! The cron sweep (`scheduled` handler): `sam_control::sweep::sweep` with
//! the Worker's bindings.

use sam_control::sweep::{SweepReport, sweep};
use worker::Env;

use crate::bindings::{WorkerNodePorts, d1, now_ms};
use crate::config::Config;
use crate::error::ApiResult;

/// Runs one sweep; failures of single nodes and accounts are in the report.
pub async fn run(env: &Env) -> ApiResult<SweepReport> {
    let config = Config::from_env(env)?;
    let db = d1(env)?;
    let ports = WorkerNodePorts::new(env, &db, Config::credential_keys(env)?);
    let report = sweep(
        &db,
        &ports.accounts(),
        &ports.log,
        &ports.log,
        &config.sweep_settings(),
        now_ms(),
    )
    .await?;
    Ok(report)
}
