//! Node lifecycle as seen by the control plane.
//!
//! ```text
//!   creating ──agent ready──▶ running
//!      │  └─provider failure / boot deadline──▶ error
//!      └──────────────┬───────────────────────────┘
//!                 delete requested
//!                     ▼
//!                 deleting ──server gone──▶ deleted
//! ```
//!
//! The transition function is total over (status, event): every pair either
//! yields the next status or a [`TransitionError`] that callers turn into a
//! 409, so no request can move a node into a state the diagram lacks.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Persisted status of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Creating,
    Running,
    Deleting,
    Deleted,
    Error,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 5] = [
        NodeStatus::Creating,
        NodeStatus::Running,
        NodeStatus::Deleting,
        NodeStatus::Deleted,
        NodeStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Creating => "creating",
            NodeStatus::Running => "running",
            NodeStatus::Deleting => "deleting",
            NodeStatus::Deleted => "deleted",
            NodeStatus::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, NodeStatus::Deleted)
    }
}

/// Something that happened to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The provider accepted the create request.
    ServerCreated,
    /// The provider refused or failed the create request.
    ServerCreateFailed,
    /// The vm-agent called `/ready` with a valid node token.
    AgentReady,
    /// The vm-agent sent a heartbeat.
    Heartbeat,
    /// The agent did not register before the boot deadline.
    BootDeadlinePassed,
    /// A running node's agent stopped sending heartbeats.
    HeartbeatsStopped,
    /// A user (or a sweep) asked for the node to go away.
    DeleteRequested,
    /// The provider confirmed the server is gone (or never existed).
    ServerDeleted,
}

/// A (status, event) pair the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node that is {} cannot accept {event:?}", from.as_str())]
pub struct TransitionError {
    pub from: NodeStatus,
    pub event: NodeEvent,
}

impl TransitionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match (self.from, &self.event) {
            (NodeStatus::Deleted | NodeStatus::Deleting, _) => "node_deleted",
            (_, NodeEvent::Heartbeat) => "node_not_running",
            _ => "invalid_node_transition",
        }
    }
}

/// The status after `event`, or why it is not allowed.
pub fn transition(from: NodeStatus, event: &NodeEvent) -> Result<NodeStatus, TransitionError> {
    use NodeEvent as E;
    use NodeStatus as S;
    let next = match (from, event) {
        (S::Creating, E::ServerCreated) => S::Creating,
        (S::Creating, E::ServerCreateFailed | E::BootDeadlinePassed)
        | (S::Running, E::HeartbeatsStopped) => S::Error,
        // A restarted agent re-announces itself; that is not an error.
        (S::Creating | S::Running, E::AgentReady) | (S::Running, E::Heartbeat) => S::Running,
        (S::Creating | S::Running | S::Error | S::Deleting, E::DeleteRequested) => S::Deleting,
        (S::Deleting, E::ServerDeleted) => S::Deleted,
        _ => {
            return Err(TransitionError {
                from,
                event: event.clone(),
            });
        }
    };
    Ok(next)
}

/// When a node in `status` since `since` must have moved on, if ever.
///
/// A creating node that misses its deadline becomes `error`; nothing else
/// has a deadline yet (warm pools and lifetimes arrive with the nodes issue).
pub fn deadline(status: NodeStatus, since: UnixMillis, boot_timeout_ms: i64) -> Option<UnixMillis> {
    match status {
        NodeStatus::Creating => Some(since.saturating_add(boot_timeout_ms)),
        _ => None,
    }
}

/// Health derived from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeHealth {
    /// No heartbeat yet.
    Unknown,
    Healthy,
    Stale,
}

impl NodeHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealth::Unknown => "unknown",
            NodeHealth::Healthy => "healthy",
            NodeHealth::Stale => "stale",
        }
    }
}

/// Health of a node whose last heartbeat was at `last_heartbeat`.
pub fn health(
    last_heartbeat: Option<UnixMillis>,
    now: UnixMillis,
    stale_after_ms: i64,
) -> NodeHealth {
    match last_heartbeat {
        None => NodeHealth::Unknown,
        Some(at) if now.saturating_sub(at) > stale_after_ms => NodeHealth::Stale,
        Some(_) => NodeHealth::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVENTS: [NodeEvent; 7] = [
        NodeEvent::ServerCreated,
        NodeEvent::ServerCreateFailed,
        NodeEvent::AgentReady,
        NodeEvent::Heartbeat,
        NodeEvent::BootDeadlinePassed,
        NodeEvent::DeleteRequested,
        NodeEvent::ServerDeleted,
    ];

    #[test]
    fn happy_path_create_boot_delete() {
        let mut s = NodeStatus::Creating;
        for e in [
            NodeEvent::ServerCreated,
            NodeEvent::AgentReady,
            NodeEvent::Heartbeat,
            NodeEvent::DeleteRequested,
            NodeEvent::ServerDeleted,
        ] {
            s = transition(s, &e).unwrap();
        }
        assert_eq!(s, NodeStatus::Deleted);
    }

    #[test]
    fn provider_failure_leaves_error_not_creating() {
        assert_eq!(
            transition(NodeStatus::Creating, &NodeEvent::ServerCreateFailed),
            Ok(NodeStatus::Error)
        );
        assert_eq!(
            transition(NodeStatus::Creating, &NodeEvent::BootDeadlinePassed),
            Ok(NodeStatus::Error)
        );
    }

    #[test]
    fn heartbeat_before_ready_is_refused_with_code() {
        let err = transition(NodeStatus::Creating, &NodeEvent::Heartbeat).unwrap_err();
        assert_eq!(err.code(), "node_not_running");
        let err = transition(NodeStatus::Deleted, &NodeEvent::AgentReady).unwrap_err();
        assert_eq!(err.code(), "node_deleted");
    }

    #[test]
    fn only_creating_has_a_deadline() {
        assert_eq!(deadline(NodeStatus::Creating, 100, 50), Some(150));
        for s in [NodeStatus::Running, NodeStatus::Deleted, NodeStatus::Error] {
            assert_eq!(deadline(s, 100, 50), None);
        }
    }

    #[test]
    fn health_from_heartbeats() {
        assert_eq!(health(None, 1000, 100), NodeHealth::Unknown);
        assert_eq!(health(Some(950), 1000, 100), NodeHealth::Healthy);
        assert_eq!(health(Some(800), 1000, 100), NodeHealth::Stale);
    }

    proptest! {
        /// Whatever happens, a deleted node stays deleted and every status
        /// reached is one of the diagram's, reached only through allowed edges.
        #[test]
        fn deleted_is_absorbing(events in proptest::collection::vec(0usize..EVENTS.len(), 0..40)) {
            let mut status = NodeStatus::Creating;
            let mut was_deleted = false;
            for i in events {
                if let Ok(next) = transition(status, &EVENTS[i]) {
                    status = next;
                }
                if was_deleted {
                    prop_assert_eq!(status, NodeStatus::Deleted);
                }
                was_deleted |= status == NodeStatus::Deleted;
            }
        }

        /// `deleted` is only ever reached through `deleting`.
        #[test]
        fn deleted_only_via_deleting(from in 0usize..5, e in 0usize..EVENTS.len()) {
            let from = NodeStatus::ALL[from];
            if let Ok(NodeStatus::Deleted) = transition(from, &EVENTS[e]) {
                prop_assert!(matches!(from, NodeStatus::Deleting | NodeStatus::Deleted));
            }
        }
    }
}

/// A step of a node's boot, recorded with its time in the node's boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootPhase {
    /// The API accepted the create request.
    Requested,
    /// The provider accepted the server create call.
    ProviderCreated,
    /// A create attempt failed in a way worth retrying (rate limit,
    /// transient error, no capacity in that location); another follows.
    ProviderRetrying,
    /// The provider refused; the node is in `error`.
    ProviderFailed,
    /// The vm-agent registered.
    AgentReady,
    /// The agent did not register in time; the node is in `error`.
    BootDeadlinePassed,
    DeleteRequested,
    Deleted,
}

impl BootPhase {
    /// Whether the boot is over (no deadline applies any more).
    pub fn ends_boot(self) -> bool {
        !matches!(
            self,
            BootPhase::Requested | BootPhase::ProviderRetrying | BootPhase::ProviderCreated
        )
    }
}
