//! The periodic sweep: the second layer that keeps VMs from outliving
//! their purpose, independent of the per-node alarm (the first layer).
//!
//! - Nodes past their stored deadline get what the alarm would have done
//!   (boot deadline, stale heartbeats, warm timeout, maximum lifetime,
//!   delete retries), in case an alarm was lost.
//! - Servers carrying this deployment's labels that no live node owns are
//!   destroyed after a grace period: a create whose answer was lost, a
//!   second server from a retried create, a node row gone.
//!
//! The third layer is the maximum lifetime inside the state machine: every
//! running status has it as a deadline, so even a node whose heartbeats
//! keep it healthy is destroyed in the end. Any one layer alone still
//! prevents an orphan: the sweep needs nothing from the alarm.

use std::collections::BTreeSet;

use sam_domain::lifecycle::{LifecycleConfig, LifecycleStatus};
use sam_store::{CredentialRepository, NodeRepository, SqlDatabase};
use serde::Serialize;

use crate::error::ControlError;
use crate::lifecycle::run_due;
use crate::nodes::{LABEL_NODE, deployment_selector};
use crate::ports::{BootLog, CloudAccounts, NodeTimer, ServerProvider};

/// Nodes handled per sweep, so one run stays bounded.
const BATCH: u32 = 200;

/// How the sweep judges age.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// This deployment's label value.
    pub deployment: String,
    /// A labelled server younger than this is left alone even if no node
    /// claims it yet.
    pub orphan_grace_ms: i64,
    pub lifecycle: LifecycleConfig,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Overdue nodes whose due events were applied.
    pub nodes_due: u64,
    /// Of those, the ones that ended destroyed.
    pub nodes_destroyed: u64,
    pub accounts_checked: u64,
    pub servers_seen: u64,
    pub orphans_destroyed: u64,
    /// Problems that did not stop the sweep (an account whose token fails,
    /// a delete the provider refused); the next run retries.
    pub failures: Vec<String>,
}

/// Layer 2 (D1 and the owners' accounts): every node past its deadline
/// gets what its alarm would have done.
pub async fn run_overdue_nodes<A: CloudAccounts>(
    db: &impl SqlDatabase,
    accounts: &A,
    boot_log: &impl BootLog,
    timer: &impl NodeTimer,
    settings: &SweepSettings,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), ControlError> {
    let due = NodeRepository::new(db).list_due(now, BATCH).await?;
    for node in due {
        report.nodes_due += 1;
        match run_due(
            db,
            accounts,
            boot_log,
            timer,
            &settings.lifecycle,
            &node.id,
            now,
        )
        .await
        {
            Ok(after) if after.status() == LifecycleStatus::Destroyed => {
                report.nodes_destroyed += 1;
            }
            Ok(after) => {
                if after.status() == LifecycleStatus::Destroying
                    && let Some(reason) = after.destroy_error
                {
                    report
                        .failures
                        .push(format!("destroying node {}: {reason}", node.id));
                }
            }
            Err(e) => report.failures.push(format!("node {}: {e}", node.id)),
        }
    }
    Ok(())
}

/// Layer 2 (one cloud account): destroys this deployment's servers that no
/// live node owns. Servers of other deployments are never touched.
pub async fn destroy_orphans(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    settings: &SweepSettings,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), ControlError> {
    report.accounts_checked += 1;
    let servers = match provider
        .find_servers(&deployment_selector(&settings.deployment))
        .await
    {
        Ok(servers) => servers,
        Err(e) => {
            report.failures.push(format!("listing servers: {e}"));
            return Ok(());
        }
    };
    let nodes = NodeRepository::new(db);
    for server in servers {
        report.servers_seen += 1;
        let node = match server.labels.get(LABEL_NODE) {
            Some(node_id) => nodes.get(node_id).await?,
            None => None,
        };
        // A live node owns its recorded server; while it has none recorded
        // yet (its create is in flight) it owns whatever carries its label.
        let owned = node.is_some_and(|n| {
            n.status() != LifecycleStatus::Destroyed
                && n.provider_server_id
                    .as_ref()
                    .is_none_or(|id| *id == server.id)
        });
        // The node row is written before its server is requested, so a
        // server without a live node is an orphan; the grace period only
        // covers clocks and replication lag.
        let old_enough = created_ms(&server.created)
            .is_none_or(|created| now - created >= settings.orphan_grace_ms);
        if owned || !old_enough {
            continue;
        }
        match provider.delete_server(&server.id).await {
            Ok(_) => report.orphans_destroyed += 1,
            Err(e) => report
                .failures
                .push(format!("destroying orphan server {}: {e}", server.id)),
        }
    }
    Ok(())
}

/// One whole sweep: overdue nodes, then every cloud account users have
/// given us (users sharing an account are swept once) for orphans.
/// Failures of single nodes and accounts are in the report; the next run
/// retries them.
pub async fn sweep<A: CloudAccounts>(
    db: &impl SqlDatabase,
    accounts: &A,
    boot_log: &impl BootLog,
    timer: &impl NodeTimer,
    settings: &SweepSettings,
    now: i64,
) -> Result<SweepReport, ControlError> {
    let mut report = SweepReport::default();
    run_overdue_nodes(db, accounts, boot_log, timer, settings, now, &mut report).await?;
    let credentials = CredentialRepository::new(db);
    let mut swept_accounts = BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = credentials.page_after(&after, 100).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for credential in &page {
            let user = credential.user_id.as_str();
            let opened = match accounts.open(user, &credential.provider).await {
                Ok(opened) => opened,
                // Only providers nodes can be created at are swept.
                Err(ControlError::UnknownCloudProvider(_)) => continue,
                Err(e) => {
                    report
                        .failures
                        .push(format!("credential of {user}: {}", e.code()));
                    continue;
                }
            };
            if swept_accounts.insert(opened.account) {
                destroy_orphans(db, &opened.provider, settings, now, &mut report).await?;
            }
        }
    }
    Ok(report)
}

/// A provider timestamp (RFC 3339) in Unix milliseconds.
fn created_ms(raw: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::created_ms;

    #[test]
    fn provider_times_parse() {
        assert_eq!(created_ms("1970-01-01T00:00:01+00:00"), Some(1000));
        assert_eq!(created_ms("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(created_ms("yesterday"), None);
    }
}
