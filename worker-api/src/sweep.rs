//! The cron sweep (`scheduled` handler): one pass of `sam_control::sweep`
//! over D1 and every Hetzner account a user has given us.

use std::collections::BTreeSet;

use sam_control::sweep::{
    SweepReport, clean_up_failed_nodes, destroy_orphans, expire_old_nodes, fail_overdue_boots,
    fail_silent_nodes,
};
use sam_providers::HetznerClient;
use sam_store::CredentialRepository;
use sha2::Digest as _;
use worker::Env;

use crate::bindings::{DurableBootLog, FetchHttp, d1, now_ms};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};

/// Runs one sweep; failures of single accounts are in the report.
pub async fn run(env: &Env) -> ApiResult<SweepReport> {
    let config = Config::from_env(env)?;
    let settings = config.sweep_settings();
    let keys = Config::credential_keys(env)?;
    let db = d1(env)?;
    let boot_log = DurableBootLog { env };
    let now = now_ms();
    let mut report = SweepReport::default();
    fail_overdue_boots(&db, &boot_log, &settings, now, &mut report).await?;
    fail_silent_nodes(&db, &settings, now, &mut report).await?;

    let credentials = CredentialRepository::new(&db);
    // Users may share one cloud account; list its servers once.
    let mut swept_accounts = BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = credentials.page_after(&after, 100).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for credential in page.iter().filter(|c| c.provider == "hetzner") {
            let token = match sam_control::credentials::cloud_secret(
                &db,
                &keys,
                &credential.user_id,
                "hetzner",
            )
            .await
            {
                Ok(secret) => secret
                    .expose_str()
                    .map_err(|e| ApiError::internal("credential", &e))?
                    .to_owned(),
                Err(e) => {
                    report.failures.push(format!(
                        "opening the credential of {}: {}",
                        credential.user_id,
                        e.code()
                    ));
                    continue;
                }
            };
            // Kept in memory for this run only, as a digest, never the token.
            let account = hex::encode(sha2::Sha256::digest(token.as_bytes()));
            let provider = HetznerClient::new(FetchHttp, config.hetzner_api_url.clone(), token);
            if swept_accounts.insert(account) {
                destroy_orphans(&db, &provider, &settings, now, &mut report).await?;
            }
            clean_up_failed_nodes(
                &db,
                &provider,
                &boot_log,
                &credential.user_id,
                &settings,
                now,
                &mut report,
            )
            .await?;
            expire_old_nodes(
                &db,
                &provider,
                &boot_log,
                &credential.user_id,
                &settings,
                now,
                &mut report,
            )
            .await?;
        }
    }
    Ok(report)
}
