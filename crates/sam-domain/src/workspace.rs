//! A workspace's life as the control plane sees it.
//!
//! ```text
//!   creating ──ready──▶ running ──stop──▶ stopping ──stopped──▶ stopped
//!      │                  ▲  │                                   │
//!      │ failed           │  └──────────restart──────────────────┤
//!      ▼                  └──────────────started─────────────────┘
//!    error
//!   (any but deleted) ──delete──▶ deleting ──gone──▶ deleted
//! ```
//!
//! Like [`crate::lifecycle`], [`apply`] is total over (status, event): it
//! yields the next status or a [`WorkspaceTransitionError`] with a stable
//! code, a repeated request is a no-op rather than an error, and callers
//! persist with compare-and-set on the status they loaded.

use serde::{Deserialize, Serialize};

/// Where a workspace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// The vm-agent is cloning and starting the runtime.
    Creating,
    Running,
    /// A stop was sent to the vm-agent; waiting for it to confirm.
    Stopping,
    Stopped,
    /// Creation failed (the reason is kept); it can only be deleted.
    Error,
    Deleting,
    /// Terminal: its directory on the node is gone.
    Deleted,
}

impl WorkspaceStatus {
    pub const ALL: [WorkspaceStatus; 7] = [
        WorkspaceStatus::Creating,
        WorkspaceStatus::Running,
        WorkspaceStatus::Stopping,
        WorkspaceStatus::Stopped,
        WorkspaceStatus::Error,
        WorkspaceStatus::Deleting,
        WorkspaceStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Creating => "creating",
            WorkspaceStatus::Running => "running",
            WorkspaceStatus::Stopping => "stopping",
            WorkspaceStatus::Stopped => "stopped",
            WorkspaceStatus::Error => "error",
            WorkspaceStatus::Deleting => "deleting",
            WorkspaceStatus::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether the browser may reach it (terminals, files, ports).
    pub fn is_reachable(self) -> bool {
        self == WorkspaceStatus::Running
    }
}

/// Something that happened to a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceEvent {
    /// The vm-agent reported the workspace ready (`POST …/ready`).
    Ready,
    /// The vm-agent reported creation failed (`POST …/provisioning-failed`).
    ProvisioningFailed,
    StopRequested,
    /// The vm-agent confirmed the stop.
    Stopped,
    /// Restart (from stopped) or rebuild was sent; the vm-agent confirms
    /// with [`WorkspaceEvent::Ready`].
    StartRequested,
    DeleteRequested,
    /// The vm-agent confirmed the directory gone (or the node is gone).
    Gone,
}

impl WorkspaceEvent {
    pub const ALL: [WorkspaceEvent; 7] = [
        WorkspaceEvent::Ready,
        WorkspaceEvent::ProvisioningFailed,
        WorkspaceEvent::StopRequested,
        WorkspaceEvent::Stopped,
        WorkspaceEvent::StartRequested,
        WorkspaceEvent::DeleteRequested,
        WorkspaceEvent::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceEvent::Ready => "ready",
            WorkspaceEvent::ProvisioningFailed => "provisioning_failed",
            WorkspaceEvent::StopRequested => "stop_requested",
            WorkspaceEvent::Stopped => "stopped",
            WorkspaceEvent::StartRequested => "start_requested",
            WorkspaceEvent::DeleteRequested => "delete_requested",
            WorkspaceEvent::Gone => "gone",
        }
    }
}

/// Why [`apply`] refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceTransitionError {
    #[error("a workspace that is {} cannot accept {}", from.as_str(), event.as_str())]
    Invalid {
        from: WorkspaceStatus,
        event: WorkspaceEvent,
    },
    #[error("the workspace is deleted")]
    Deleted,
}

impl WorkspaceTransitionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkspaceTransitionError::Invalid { .. } => "invalid_transition",
            WorkspaceTransitionError::Deleted => "workspace_deleted",
        }
    }
}

/// The status after `event`, or why it is refused. An event that asks for
/// what already holds (stop a stopped workspace, delete a deleting one)
/// returns the same status.
pub fn apply(
    from: WorkspaceStatus,
    event: WorkspaceEvent,
) -> Result<WorkspaceStatus, WorkspaceTransitionError> {
    use WorkspaceEvent as E;
    use WorkspaceStatus as S;
    let to = match (from, event) {
        (S::Deleted | S::Deleting, E::Gone) | (S::Deleted, E::DeleteRequested) => S::Deleted,
        (S::Deleted, _) => return Err(WorkspaceTransitionError::Deleted),
        (S::Creating | S::Running, E::Ready) => S::Running,
        (S::Creating | S::Error, E::ProvisioningFailed) => S::Error,
        (S::Running | S::Stopping, E::StopRequested) => S::Stopping,
        (S::Stopped, E::StopRequested) | (S::Stopping | S::Stopped, E::Stopped) => S::Stopped,
        (S::Stopped | S::Running, E::StartRequested) => S::Creating,
        (_, E::DeleteRequested) => S::Deleting,
        _ => return Err(WorkspaceTransitionError::Invalid { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkspaceEvent as E;
    use WorkspaceStatus as S;
    use proptest::prelude::*;

    #[test]
    fn the_happy_paths() {
        let running = apply(S::Creating, E::Ready).unwrap();
        assert_eq!(running, S::Running);
        let stopping = apply(running, E::StopRequested).unwrap();
        assert_eq!(apply(stopping, E::Stopped).unwrap(), S::Stopped);
        assert_eq!(apply(S::Stopped, E::StartRequested).unwrap(), S::Creating);
        assert_eq!(apply(S::Creating, E::ProvisioningFailed).unwrap(), S::Error);
        assert_eq!(apply(S::Error, E::DeleteRequested).unwrap(), S::Deleting);
        assert_eq!(apply(S::Deleting, E::Gone).unwrap(), S::Deleted);
    }

    #[test]
    fn refusals_have_stable_codes() {
        assert_eq!(
            apply(S::Error, E::StartRequested).unwrap_err().code(),
            "invalid_transition"
        );
        assert_eq!(
            apply(S::Deleted, E::Ready).unwrap_err().code(),
            "workspace_deleted"
        );
        assert_eq!(
            apply(S::Creating, E::Stopped).unwrap_err().code(),
            "invalid_transition"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert_eq!(S::parse("exploded"), None);
    }

    proptest! {
        /// Along any sequence of events: deleted is absorbing, `deleted`
        /// is only reached through `deleting`, and a failed workspace
        /// never runs again.
        #[test]
        fn invariants_hold_along_random_sequences(events in proptest::collection::vec(0usize..7, 0..40)) {
            let mut status = S::Creating;
            for e in events {
                let event = E::ALL[e];
                let Ok(next) = apply(status, event) else { continue };
                if status == S::Deleted {
                    prop_assert_eq!(next, S::Deleted);
                }
                if next == S::Deleted {
                    prop_assert!(matches!(status, S::Deleting | S::Deleted));
                }
                if status == S::Error {
                    prop_assert!(matches!(next, S::Error | S::Deleting));
                }
                status = next;
            }
        }

        /// Repeating an accepted event never moves the workspace further.
        #[test]
        fn accepted_requests_are_idempotent(s in 0usize..7, e in 0usize..7) {
            let (from, event) = (S::ALL[s], E::ALL[e]);
            if let Ok(once) = apply(from, event)
                && matches!(event, E::StopRequested | E::DeleteRequested)
            {
                prop_assert_eq!(apply(once, event), Ok(once));
            }
        }
    }
}
