//! What the control plane shows about a node besides its lifecycle status
//! (which lives in [`crate::lifecycle`]): heartbeat-derived health and the
//! phases recorded in the node's log.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;
use crate::lifecycle::{EventKind, LifecycleStatus};

/// Health derived from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeHealth {
    /// No heartbeat yet, or the node is not running.
    Unknown,
    Healthy,
    /// Silent for more than half the stale limit: a heartbeat or two lost.
    Stale,
    /// Silent past the stale limit: the node is about to be failed.
    Unhealthy,
}

impl NodeHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealth::Unknown => "unknown",
            NodeHealth::Healthy => "healthy",
            NodeHealth::Stale => "stale",
            NodeHealth::Unhealthy => "unhealthy",
        }
    }
}

/// Health of a node whose last heartbeat was at `last_heartbeat`, where
/// `stale_after_ms` of silence means the agent is dead.
pub fn health(
    last_heartbeat: Option<UnixMillis>,
    now: UnixMillis,
    stale_after_ms: i64,
) -> NodeHealth {
    match last_heartbeat {
        None => NodeHealth::Unknown,
        Some(at) => {
            let silent = now.saturating_sub(at);
            if silent > stale_after_ms {
                NodeHealth::Unhealthy
            } else if silent > stale_after_ms / 2 {
                NodeHealth::Stale
            } else {
                NodeHealth::Healthy
            }
        }
    }
}

/// Health as shown for a node in `status`: only running nodes have one.
pub fn health_in(
    status: LifecycleStatus,
    last_heartbeat: Option<UnixMillis>,
    now: UnixMillis,
    stale_after_ms: i64,
) -> NodeHealth {
    match status {
        LifecycleStatus::Ready | LifecycleStatus::Warm => {
            health(last_heartbeat, now, stale_after_ms)
        }
        _ => NodeHealth::Unknown,
    }
}

/// A step in a node's life, recorded with its time in the node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootPhase {
    /// The API accepted the create request.
    Requested,
    /// A create attempt failed in a way worth retrying (rate limit,
    /// transient error, no capacity in that location); another follows.
    ProviderRetrying,
    /// The provider accepted the server create call.
    ProviderCreated,
    /// The provider refused; the node fails.
    ProviderFailed,
    /// The vm-agent registered.
    AgentReady,
    /// A task or user took the node.
    Claimed,
    /// The holder let the node go; it is warm, kept for reuse.
    Released,
    /// The agent did not register in time.
    BootDeadlinePassed,
    /// The agent stopped sending heartbeats.
    HeartbeatStale,
    /// Nobody claimed the warm node in time.
    WarmTimeoutPassed,
    /// The node reached its maximum lifetime.
    MaxLifetimePassed,
    /// The node's server is being deleted.
    DestroyRequested,
    /// A delete call failed; it is retried with backoff.
    DestroyFailed,
    /// The provider confirmed the server gone.
    Destroyed,
}

impl BootPhase {
    /// The phase recorded when `event` changed a node's status to `to`,
    /// if the change is worth a log line of its own.
    pub fn for_transition(event: EventKind, to: LifecycleStatus) -> Option<BootPhase> {
        use LifecycleStatus as S;
        Some(match (event, to) {
            (EventKind::ServerCreated, _) => BootPhase::ProviderCreated,
            (EventKind::CreateFailed, _) => BootPhase::ProviderFailed,
            (EventKind::AgentReady, _) => BootPhase::AgentReady,
            (EventKind::Claim, _) => BootPhase::Claimed,
            (EventKind::Released, _) => BootPhase::Released,
            (EventKind::BootDeadlinePassed, _) => BootPhase::BootDeadlinePassed,
            (EventKind::HeartbeatStale, _) => BootPhase::HeartbeatStale,
            (EventKind::WarmTimeoutPassed, _) => BootPhase::WarmTimeoutPassed,
            (EventKind::MaxLifetimePassed, _) => BootPhase::MaxLifetimePassed,
            (EventKind::DestroyRequested, _) => BootPhase::DestroyRequested,
            (EventKind::DestroyFailed, _) => BootPhase::DestroyFailed,
            (EventKind::ServerGone, S::Destroyed) => BootPhase::Destroyed,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_degrades_with_silence() {
        let stale = 180_000;
        assert_eq!(health(None, 1_000, stale), NodeHealth::Unknown);
        assert_eq!(health(Some(0), 90_000, stale), NodeHealth::Healthy);
        assert_eq!(health(Some(0), 90_001, stale), NodeHealth::Stale);
        assert_eq!(health(Some(0), 180_001, stale), NodeHealth::Unhealthy);
        assert_eq!(
            health_in(LifecycleStatus::Booting, Some(0), 1, stale),
            NodeHealth::Unknown
        );
        assert_eq!(
            health_in(LifecycleStatus::Warm, Some(0), 1, stale),
            NodeHealth::Healthy
        );
    }

    #[test]
    fn every_status_change_of_note_has_a_phase() {
        assert_eq!(
            BootPhase::for_transition(EventKind::ServerGone, LifecycleStatus::Destroyed),
            Some(BootPhase::Destroyed)
        );
        assert_eq!(
            BootPhase::for_transition(EventKind::Heartbeat, LifecycleStatus::Ready),
            None
        );
        assert_eq!(
            BootPhase::for_transition(EventKind::DestroyRetryDue, LifecycleStatus::Destroying),
            None
        );
    }
}
