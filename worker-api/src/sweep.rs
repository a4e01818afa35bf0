//! The cron sweep (`scheduled` handler): `sam_control::sweep::sweep` with
//! the Worker's bindings and a Hetzner client per account.

use sam_control::sweep::{SweepReport, sweep};
use sam_providers::HetznerClient;
use worker::Env;

use crate::bindings::{DurableBootLog, FetchHttp, d1, now_ms};
use crate::config::Config;
use crate::error::ApiResult;

/// Runs one sweep; failures of single accounts are in the report.
pub async fn run(env: &Env) -> ApiResult<SweepReport> {
    let config = Config::from_env(env)?;
    let keys = Config::credential_keys(env)?;
    let db = d1(env)?;
    let report = sweep(
        &db,
        &keys,
        &DurableBootLog { env },
        &config.sweep_settings(),
        now_ms(),
        |token| HetznerClient::new(FetchHttp, config.hetzner_api_url.clone(), token),
    )
    .await?;
    Ok(report)
}
