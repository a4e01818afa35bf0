//! The periodic sweep: the second and third layers that keep VMs from
//! outliving their purpose, independent of the per-node Durable Object
//! alarm (the first layer).
//!
//! - Nodes still `creating` past their boot deadline move to `error`, in
//!   case an alarm was lost.
//! - Servers carrying this deployment's labels that no live node owns are
//!   destroyed (after a grace period): a create whose answer was lost, a
//!   delete that failed half-way, a node row gone.
//! - Nodes older than the maximum lifetime are deleted.
//! - Deletes that failed half-way (`deleting`) are finished, and nodes left
//!   in `error` (whose server may still run and bill) are deleted once the
//!   user has had `error_retention_ms` to see what went wrong.
//!
//! Any one layer alone still prevents an orphan: the sweep needs nothing
//! from the alarm, and the lifetime limit needs nothing from either.

use sam_domain::node::{BootPhase, NodeEvent, NodeStatus, transition};
use std::collections::BTreeSet;

use sam_store::{CredentialRepository, NodeRecord, NodeRepository, SqlDatabase};
use sam_vault::CredentialKeys;
use serde::Serialize;

use crate::credentials::cloud_secret;
use crate::error::ControlError;
use crate::nodes::{LABEL_NODE, delete_node, deployment_selector};
use crate::ports::{BootLog, ServerProvider};

/// Nodes and servers handled per sweep, so one run stays bounded.
const BATCH: u32 = 200;

/// How the sweep judges age.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// This deployment's label value.
    pub deployment: String,
    pub boot_timeout_ms: i64,
    /// A running node silent this long has lost its agent.
    pub heartbeat_stale_ms: i64,
    /// A labelled server younger than this is left alone even if no node
    /// claims it yet.
    pub orphan_grace_ms: i64,
    /// No node lives longer than this.
    pub max_lifetime_ms: i64,
    /// How long a node in `error` stays visible before it is deleted.
    pub error_retention_ms: i64,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub accounts_checked: u64,
    pub servers_seen: u64,
    pub orphans_destroyed: u64,
    pub boots_failed: u64,
    /// Running nodes whose agent went silent.
    pub nodes_silent: u64,
    pub nodes_expired: u64,
    /// Half-finished deletes completed, and failed nodes deleted.
    pub nodes_cleaned_up: u64,
    /// Problems that did not stop the sweep (an account whose token fails,
    /// a delete the provider refused); the next run retries.
    pub failures: Vec<String>,
}

/// Layer 2 (D1 only): nodes still `creating` past their boot deadline.
pub async fn fail_overdue_boots(
    db: &impl SqlDatabase,
    boot_log: &impl BootLog,
    settings: &SweepSettings,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), ControlError> {
    let nodes = NodeRepository::new(db);
    let overdue = nodes
        .list_in_status_since_before(NodeStatus::Creating, now - settings.boot_timeout_ms, BATCH)
        .await?;
    let message = "the vm-agent did not register before the boot deadline (sweep)";
    let failed = fail_each(
        &nodes,
        &overdue,
        NodeStatus::Creating,
        &NodeEvent::BootDeadlinePassed,
        message,
        now,
    )
    .await?;
    for id in &failed {
        let _ = boot_log
            .record(id, now, BootPhase::BootDeadlinePassed, Some(message))
            .await;
    }
    report.boots_failed += failed.len() as u64;
    Ok(())
}

/// Moves each node from `from` to `error` with `message`, compare-and-set
/// (a node that moved on meanwhile is left alone); returns the ids moved.
async fn fail_each<D: SqlDatabase>(
    nodes: &NodeRepository<'_, D>,
    due: &[NodeRecord],
    from: NodeStatus,
    event: &NodeEvent,
    message: &str,
    now: i64,
) -> Result<Vec<String>, ControlError> {
    let to = transition(from, event)?;
    let mut moved = Vec::new();
    for node in due {
        if nodes
            .transition(&node.id, from, to, now, Some(message))
            .await?
        {
            moved.push(node.id.clone());
        }
    }
    Ok(moved)
}

/// Deletes each of `user_id`'s nodes in `due`; returns how many went, and
/// notes the failures (the next sweep retries them).
async fn delete_each(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    boot_log: &impl BootLog,
    user_id: &str,
    due: &[NodeRecord],
    now: i64,
    failures: &mut Vec<String>,
) -> Result<u64, ControlError> {
    let mut deleted = 0;
    for node in due.iter().filter(|n| n.user_id == user_id) {
        match delete_node(db, provider, boot_log, user_id, &node.id, now).await {
            Ok(_) => deleted += 1,
            Err(e) => failures.push(format!("deleting node {}: {e}", node.id)),
        }
    }
    Ok(deleted)
}

/// Layer 2 (D1 only): running nodes whose agent stopped heartbeating move
/// to `error` (and are cleaned up like any failed node).
pub async fn fail_silent_nodes(
    db: &impl SqlDatabase,
    settings: &SweepSettings,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), ControlError> {
    let nodes = NodeRepository::new(db);
    let silent = nodes
        .list_running_silent_since(now - settings.heartbeat_stale_ms, BATCH)
        .await?;
    let message = "the vm-agent stopped sending heartbeats (sweep)";
    let failed = fail_each(
        &nodes,
        &silent,
        NodeStatus::Running,
        &NodeEvent::HeartbeatsStopped,
        message,
        now,
    )
    .await?;
    report.nodes_silent += failed.len() as u64;
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
        let owned = node.is_some_and(|n| n.status() != NodeStatus::Deleted);
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

/// Layer 3 (one cloud account): deletes the account owner's nodes older
/// than the maximum lifetime, whatever their state.
pub async fn expire_old_nodes(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    boot_log: &impl BootLog,
    user_id: &str,
    settings: &SweepSettings,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), ControlError> {
    let expired = NodeRepository::new(db)
        .list_alive_created_before(now - settings.max_lifetime_ms, BATCH)
        .await?;
    report.nodes_expired += delete_each(
        db,
        provider,
        boot_log,
        user_id,
        &expired,
        now,
        &mut report.failures,
    )
    .await?;
    Ok(())
}

/// Layer 2 (one cloud account): finishes the account owner's deletes that
/// failed half-way and deletes their nodes left in `error` past the
/// retention time, so neither keeps a server running.
pub async fn clean_up_failed_nodes(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    boot_log: &impl BootLog,
    user_id: &str,
    settings: &SweepSettings,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), ControlError> {
    let nodes = NodeRepository::new(db);
    let mut due = nodes
        .list_in_status_since_before(NodeStatus::Deleting, now, BATCH)
        .await?;
    due.extend(
        nodes
            .list_in_status_since_before(
                NodeStatus::Error,
                now - settings.error_retention_ms,
                BATCH,
            )
            .await?,
    );
    report.nodes_cleaned_up += delete_each(
        db,
        provider,
        boot_log,
        user_id,
        &due,
        now,
        &mut report.failures,
    )
    .await?;
    Ok(())
}

/// One whole sweep: the D1 layers, then, for every Hetzner account users
/// have given us (opened with the vault; users sharing an account are
/// swept once for orphans), the provider layers. `provider_for` builds a
/// client acting with an account's token. Failures of single accounts are
/// in the report; the next run retries them.
pub async fn sweep<P: ServerProvider>(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    boot_log: &impl BootLog,
    settings: &SweepSettings,
    now: i64,
    provider_for: impl Fn(String) -> P,
) -> Result<SweepReport, ControlError> {
    let mut report = SweepReport::default();
    fail_overdue_boots(db, boot_log, settings, now, &mut report).await?;
    fail_silent_nodes(db, settings, now, &mut report).await?;
    let credentials = CredentialRepository::new(db);
    // Tokens already swept for orphans, held only for this run.
    let mut swept_accounts = BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = credentials.page_after(&after, 100).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for credential in page.iter().filter(|c| c.provider == "hetzner") {
            let user = credential.user_id.as_str();
            let token = match cloud_secret(db, keys, user, "hetzner").await {
                Ok(secret) => match secret.expose_str() {
                    Ok(token) => token.to_owned(),
                    Err(e) => {
                        report
                            .failures
                            .push(format!("credential of {user}: {}", e.code()));
                        continue;
                    }
                },
                Err(e) => {
                    report
                        .failures
                        .push(format!("credential of {user}: {}", e.code()));
                    continue;
                }
            };
            let first_time = swept_accounts.insert(token.clone());
            let provider = provider_for(token);
            if first_time {
                destroy_orphans(db, &provider, settings, now, &mut report).await?;
            }
            clean_up_failed_nodes(db, &provider, boot_log, user, settings, now, &mut report)
                .await?;
            expire_old_nodes(db, &provider, boot_log, user, settings, now, &mut report).await?;
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
