//! Drives nodes through [`sam_domain::lifecycle`]: load the row, apply the
//! event, write it back compare-and-set, then perform what the new state
//! asks for (a delete call, the next alarm).
//!
//! Every route, callback, alarm and sweep that changes a node goes through
//! [`advance`] and [`settle`], so there is one place where a node's state
//! changes and one place where its side effects happen.

use sam_domain::lifecycle::{
    Event, EventKind, LifecycleConfig, LifecycleStatus, NodeState, apply, deadline, on_deadline,
};
use sam_domain::node::BootPhase;
use sam_store::{NodeRecord, NodeRepository, SqlDatabase};

use crate::error::ControlError;
use crate::nodes::node_selector;
use crate::ports::{BootLog, CloudAccounts, NodeTimer, ServerProvider};

/// Reload-and-apply rounds before a write that keeps losing races gives
/// up (each lost round means another request changed the node).
const MAX_WRITE_ROUNDS: usize = 8;

/// Bound on the steps one [`settle`] takes (each is a state change; a
/// node needs at most a handful from any state to `destroyed`).
const MAX_SETTLE_STEPS: usize = 16;

/// The lifecycle durations for one node: the platform's, with the node's
/// own warm timeout (its project's) when it has one.
pub fn node_config(platform: &LifecycleConfig, node: &NodeRecord) -> LifecycleConfig {
    LifecycleConfig {
        warm_timeout_ms: node.warm_timeout_ms.unwrap_or(platform.warm_timeout_ms),
        ..*platform
    }
}

/// One event applied to a node.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The node's state before the event.
    pub before: NodeState,
    /// The node as stored after it.
    pub node: NodeRecord,
    pub event: EventKind,
}

impl Applied {
    /// Nothing happened yet: the starting point for [`settle`].
    pub fn unchanged(node: NodeRecord) -> Self {
        Self {
            before: node.state(),
            node,
            event: EventKind::Heartbeat,
        }
    }

    /// Whether the event changed the node (a no-op leaves the version).
    pub fn changed(&self) -> bool {
        u64::try_from(self.node.version).ok() != Some(self.before.version)
    }

    fn status(&self) -> LifecycleStatus {
        self.node.status()
    }
}

/// Applies `event` to the stored node, compare-and-set on its version: on
/// a lost race the node is reloaded and the event applied again, so the
/// event is judged against the state that won (that is what makes claims
/// exclusive). A refused event is a [`ControlError::Transition`].
pub async fn advance(
    db: &impl SqlDatabase,
    platform: &LifecycleConfig,
    node_id: &str,
    event: &Event,
    now: i64,
) -> Result<Applied, ControlError> {
    let nodes = NodeRepository::new(db);
    for _ in 0..MAX_WRITE_ROUNDS {
        let mut node = nodes.get(node_id).await?.ok_or(ControlError::NotFound)?;
        let before = node.state();
        let cfg = node_config(platform, &node);
        let after = apply(&before, event, now, &cfg)?;
        if after.version != before.version {
            let due = deadline(&after, &cfg);
            if !nodes
                .save_state(node_id, before.version, &after, due)
                .await?
            {
                continue;
            }
            node.set_state(&after, due);
        }
        return Ok(Applied {
            before,
            node,
            event: event.kind(),
        });
    }
    Err(ControlError::NodeBusy)
}

/// Everything a node's new state asks for, until nothing more is due now:
/// log the change, call the provider's delete when a delete is owed (and
/// record its outcome), apply any timed event already due (an `error` node
/// moves on to `destroying` at once), and finally arm the node's timer for
/// its next deadline. Returns the node as stored.
pub async fn settle<A: CloudAccounts>(
    db: &impl SqlDatabase,
    accounts: &A,
    boot_log: &impl BootLog,
    timer: &impl NodeTimer,
    platform: &LifecycleConfig,
    mut applied: Applied,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    let node_id = applied.node.id.clone();
    let driven = drive(db, accounts, boot_log, platform, &mut applied, now).await;
    let node = match driven {
        Ok(()) => refresh_deadline(db, platform, applied.node).await?,
        // One of our own follow-up events lost to a concurrent change (a
        // racing request confirmed the server gone first): what is stored
        // is the truth.
        Err(ControlError::Transition(_) | ControlError::NodeBusy) => {
            let stored = NodeRepository::new(db)
                .get(&node_id)
                .await?
                .ok_or(ControlError::NotFound)?;
            refresh_deadline(db, platform, stored).await?
        }
        Err(e) => {
            // Still arm what is stored, so the failure is retried.
            if let Ok(Some(stored)) = NodeRepository::new(db).get(&node_id).await
                && let Some(at) = stored.deadline_at
            {
                let _ = timer.wake_at(&node_id, at).await;
            }
            return Err(e);
        }
    };
    if let Some(at) = node.deadline_at {
        // The timer is the first layer; the sweep finds the node by its
        // stored deadline if arming fails.
        let _ = timer.wake_at(&node_id, at).await;
    }
    Ok(node)
}

/// The steps of [`settle`] up to the point where nothing more is due.
async fn drive<A: CloudAccounts>(
    db: &impl SqlDatabase,
    accounts: &A,
    boot_log: &impl BootLog,
    platform: &LifecycleConfig,
    applied: &mut Applied,
    now: i64,
) -> Result<(), ControlError> {
    let node_id = applied.node.id.clone();
    for _ in 0..MAX_SETTLE_STEPS {
        log_change(boot_log, applied, now).await;
        let deleting = delete_owed(applied);
        let next = if deleting {
            Some(destroy_servers(accounts, &applied.node).await)
        } else {
            on_deadline(
                &applied.node.state(),
                now,
                &node_config(platform, &applied.node),
            )
        };
        let Some(event) = next else { break };
        *applied = advance(db, platform, &node_id, &event, now).await?;
        // A retry failing the same way changes nothing in the state, but
        // every failed delete call belongs in the node's log.
        if let (true, false, Event::DestroyFailed { reason }) =
            (deleting, applied.changed(), &event)
        {
            let _ = boot_log
                .record(&node_id, now, BootPhase::DestroyFailed, Some(reason))
                .await;
        }
    }
    Ok(())
}

/// The node with its stored deadline recomputed under the current
/// settings: they may have changed since it was written (a longer stale
/// limit, a migrated row), and a stale past deadline would make the alarm
/// ring again at once for nothing.
async fn refresh_deadline(
    db: &impl SqlDatabase,
    platform: &LifecycleConfig,
    mut node: NodeRecord,
) -> Result<NodeRecord, ControlError> {
    let due = deadline(&node.state(), &node_config(platform, &node));
    if due == node.deadline_at {
        return Ok(node);
    }
    let nodes = NodeRepository::new(db);
    let version = u64::try_from(node.version).unwrap_or(0);
    if nodes.set_deadline(&node.id, version, due).await? {
        node.deadline_at = due;
        Ok(node)
    } else {
        // Changed meanwhile; whoever changed it stored a fresh deadline.
        nodes.get(&node.id).await?.ok_or(ControlError::NotFound)
    }
}

/// Runs whatever is due for a node now (its alarm rang, or the sweep found
/// it overdue) and re-arms its timer. Returns the node as stored.
pub async fn run_due<A: CloudAccounts>(
    db: &impl SqlDatabase,
    accounts: &A,
    boot_log: &impl BootLog,
    timer: &impl NodeTimer,
    platform: &LifecycleConfig,
    node_id: &str,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    let node = NodeRepository::new(db)
        .get(node_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    settle(
        db,
        accounts,
        boot_log,
        timer,
        platform,
        Applied::unchanged(node),
        now,
    )
    .await
}

/// Whether the change just made obliges us to call the provider's delete:
/// on entering `destroying`, when a retry fell due, and when a server
/// turned up for a node already on its way out.
fn delete_owed(applied: &Applied) -> bool {
    applied.changed()
        && applied.status() == LifecycleStatus::Destroying
        && matches!(
            applied.event,
            EventKind::DestroyRequested
                | EventKind::WarmTimeoutPassed
                | EventKind::MaxLifetimePassed
                | EventKind::DestroyRetryDue
                | EventKind::ServerCreated
        )
}

/// Deletes the node's server (the recorded one, or whatever carries the
/// node's label if none was recorded) and says how it went, as the event
/// to apply. Deleting a server that is already gone succeeds.
async fn destroy_servers<A: CloudAccounts>(accounts: &A, node: &NodeRecord) -> Event {
    let failed = |reason: String| Event::DestroyFailed { reason };
    let provider = match accounts.open(&node.user_id, &node.provider).await {
        Ok(opened) => opened.provider,
        Err(e) => return failed(format!("cannot open the cloud account: {e}")),
    };
    let server_ids = match &node.provider_server_id {
        Some(id) => vec![id.clone()],
        None => match provider.find_servers(&node_selector(&node.id)).await {
            Ok(servers) => servers.into_iter().map(|s| s.id).collect(),
            Err(e) => return failed(format!("cannot look up the node's servers: {e}")),
        },
    };
    for id in server_ids {
        if let Err(e) = provider.delete_server(&id).await {
            return failed(format!("deleting server {id}: {e}"));
        }
    }
    Event::ServerGone
}

/// One boot-log line per change worth seeing.
async fn log_change(boot_log: &impl BootLog, applied: &Applied, now: i64) {
    if !applied.changed() {
        return;
    }
    let node = &applied.node;
    let Some(phase) = BootPhase::for_transition(applied.event, node.status()) else {
        return;
    };
    let detail = match phase {
        BootPhase::ProviderCreated => node
            .provider_server_id
            .as_ref()
            .map(|s| format!("server {s}")),
        BootPhase::AgentReady => node.agent_version.as_ref().map(|v| format!("vm-agent {v}")),
        BootPhase::Claimed => node.claimed_by.as_ref().map(|c| format!("claimed by {c}")),
        BootPhase::DestroyFailed => node.destroy_error.clone(),
        BootPhase::ProviderFailed | BootPhase::BootDeadlinePassed | BootPhase::HeartbeatStale => {
            node.error_message.clone()
        }
        _ => None,
    };
    let _ = boot_log
        .record(&node.id, now, phase, detail.as_deref())
        .await;
}
