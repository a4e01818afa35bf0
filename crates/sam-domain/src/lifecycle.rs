//! The node lifecycle with warm reuse, lifetimes and destroy retries.
//!
//! A pure state machine over a [`NodeState`] record (a node's D1 row).
//! Nothing here performs I/O or reads a clock; the caller
//! (`sam_control::lifecycle`) passes `now` (Unix milliseconds) and performs
//! the side effects a new status implies (call the provider's delete on
//! entering `destroying`, set the Durable Object alarm to [`deadline`], ...).
//!
//! ```text
//!                  server created            agent ready (claimed)
//!   provisioning ───────────────▶ booting ─────────────────────────▶ ready
//!     │                              │                        released │ ▲ claim
//!     │                              │ agent ready (unclaimed)        ▼ │ (exclusive)
//!     │                              └─────────────────────────────▶ warm
//!     │ create failed (fatal),
//!     │ boot deadline
//!     ▼
//!   error ◀── boot deadline (booting), heartbeat stale (ready, warm)
//!     │ at once: its deadline is the moment it was entered
//!     ▼
//!   destroying ◀── destroy requested (any live status), max lifetime
//!     │   ▲  │       (booting, ready, warm), warm timeout (warm)
//!     │   └──┘ destroy failed, retry due: capped exponential backoff
//!     │ server gone
//!     ▼
//!   destroyed (terminal)
//! ```
//!
//! The agent may also register while the node is still `provisioning` (it
//! beat the create response); that is taken as if the node were `booting`.
//!
//! Rules that hold everywhere, and why:
//!
//! - [`apply`] is total: every (status, event) pair yields the next state or
//!   a [`TransitionError`] with a stable [`code`](TransitionError::code), so
//!   no request, alarm or provider callback can move a node off the diagram.
//! - Every accepted change increments [`NodeState::version`]; an event that
//!   changes nothing (a repeated delete request, a duplicate report) returns
//!   the state unchanged, version included, so there is nothing to persist.
//!   Callers persist with compare-and-set on the version they loaded and, on
//!   a conflict, reload and apply again. That is what makes claims
//!   exclusive: two claims computed from the same warm state both produce
//!   version + 1, the store accepts the first, and the second, re-applied to
//!   the now-ready state, is refused with `node_not_claimable`.
//! - Every status but `destroyed` has a [`deadline`], so a node left alone
//!   always ends up destroyed: `error` owns a server (or may: a create
//!   request can still be in flight) and moves on to `destroying` at once,
//!   and `destroying` retries the delete until the provider confirms it gone.
//!   A Durable Object alarm handler is therefore: load, [`on_deadline`],
//!   [`apply`], persist, set the alarm to the new [`deadline`].
//! - Timed events are refused before they are due (`deadline_not_reached`),
//!   so a stale alarm or a racing sweep cannot cut a node's time short.
//! - Time never runs backwards for one node: an event stamped before the
//!   node's latest recorded time (clock skew between isolates) is treated as
//!   happening at that time.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStatus {
    /// The create request was (or is being) sent to the provider.
    Provisioning,
    /// The provider created the server; waiting for the vm-agent to register.
    Booting,
    /// The agent registered and the node is claimed by a task or user.
    Ready,
    /// Idle, kept for reuse until the warm timeout.
    Warm,
    /// Delete requested; retried until the provider confirms the server gone.
    Destroying,
    /// The server is gone. Terminal.
    Destroyed,
    /// Something failed. The node may still own a server, so this always
    /// leads to `destroying`.
    Error,
}

impl LifecycleStatus {
    pub const ALL: [LifecycleStatus; 7] = [
        LifecycleStatus::Provisioning,
        LifecycleStatus::Booting,
        LifecycleStatus::Ready,
        LifecycleStatus::Warm,
        LifecycleStatus::Destroying,
        LifecycleStatus::Destroyed,
        LifecycleStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStatus::Provisioning => "provisioning",
            LifecycleStatus::Booting => "booting",
            LifecycleStatus::Ready => "ready",
            LifecycleStatus::Warm => "warm",
            LifecycleStatus::Destroying => "destroying",
            LifecycleStatus::Destroyed => "destroyed",
            LifecycleStatus::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, LifecycleStatus::Destroyed)
    }
}

/// Durations that drive the lifecycle's deadlines, in milliseconds.
///
/// All values are expected to be non-negative. A per-project warm timeout
/// is simply a different `warm_timeout_ms` for that node's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    /// From creation until the agent must have registered.
    pub boot_timeout_ms: i64,
    /// How long an idle node is kept for reuse.
    pub warm_timeout_ms: i64,
    /// From creation until the node is destroyed whatever it is doing: a
    /// cost safety net.
    pub max_lifetime_ms: i64,
    /// Silence after which a registered agent is considered dead.
    pub heartbeat_stale_ms: i64,
    /// First delete retry delay; doubled per attempt.
    pub destroy_backoff_base_ms: i64,
    /// Cap on the delete retry delay.
    pub destroy_backoff_max_ms: i64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        const SECOND: i64 = 1_000;
        const MINUTE: i64 = 60 * SECOND;
        LifecycleConfig {
            boot_timeout_ms: 15 * MINUTE,
            warm_timeout_ms: 30 * MINUTE,
            max_lifetime_ms: 24 * 60 * MINUTE,
            heartbeat_stale_ms: 3 * MINUTE,
            destroy_backoff_base_ms: SECOND,
            destroy_backoff_max_ms: 5 * MINUTE,
        }
    }
}

/// The persisted lifecycle record of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub status: LifecycleStatus,
    /// Incremented on every accepted change; the compare-and-set token.
    pub version: u64,
    pub created_at: UnixMillis,
    /// When the current status was entered.
    pub status_since: UnixMillis,
    /// The agent's registration or latest heartbeat.
    pub last_heartbeat_at: Option<UnixMillis>,
    /// The provider's id for the server, once the create call returned it.
    pub server_id: Option<String>,
    /// The task or user holding the node. Always set in `ready`, never in
    /// `warm`; in `provisioning`/`booting` it decides which of the two the
    /// agent's registration leads to.
    pub claimed_by: Option<String>,
    /// Delete calls issued so far (1 on entering `destroying`).
    pub destroy_attempts: u32,
    /// When the latest delete call was issued or reported failed; the next
    /// retry is due [`destroy_backoff_ms`] after it.
    pub last_destroy_at: Option<UnixMillis>,
    /// Why the node entered `error` (or, while `provisioning`, the latest
    /// retryable create failure).
    pub error: Option<String>,
    /// Why the latest delete call failed.
    pub destroy_error: Option<String>,
}

impl NodeState {
    /// A node whose create request is about to be sent, on behalf of
    /// `claimed_by` (a task or user), or for the warm pool when `None`.
    /// Stored with version 0.
    pub fn new(now: UnixMillis, claimed_by: Option<String>) -> Self {
        NodeState {
            status: LifecycleStatus::Provisioning,
            version: 0,
            created_at: now,
            status_since: now,
            last_heartbeat_at: None,
            server_id: None,
            claimed_by,
            destroy_attempts: 0,
            last_destroy_at: None,
            error: None,
            destroy_error: None,
        }
    }

    /// Whether a [`Event::Claim`] at `now` would be accepted: the node is
    /// warm, its agent is alive and it has lifetime left (a claim on a node
    /// about to be destroyed would only fail the task later).
    pub fn is_claimable(&self, now: UnixMillis, cfg: &LifecycleConfig) -> bool {
        self.status == LifecycleStatus::Warm
            && now < max_lifetime_at(self, cfg)
            && now < heartbeat_stale_at(self, cfg)
    }

    /// The latest time recorded on this node; events never happen before it.
    fn latest_time(&self) -> UnixMillis {
        [self.last_heartbeat_at, self.last_destroy_at]
            .into_iter()
            .flatten()
            .fold(self.status_since, i64::max)
    }

    fn enter(&mut self, status: LifecycleStatus, now: UnixMillis) {
        self.status = status;
        self.status_since = now;
    }

    /// Enter `destroying`; the caller issues the first delete call.
    fn start_destroying(&mut self, now: UnixMillis) {
        self.enter(LifecycleStatus::Destroying, now);
        self.destroy_attempts = 1;
        self.last_destroy_at = Some(now);
    }
}

/// Something that happened to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The provider accepted the create request.
    ServerCreated {
        server_id: String,
    },
    /// The provider refused or failed the create request. A retryable
    /// failure (rate limit, capacity) keeps the node provisioning so the
    /// caller may try again before the boot deadline.
    CreateFailed {
        reason: String,
        retryable: bool,
    },
    /// The vm-agent registered (or re-registered after a restart).
    AgentReady,
    /// The vm-agent sent a heartbeat.
    Heartbeat,
    /// The holder is done with the node; it becomes warm. Names the claim so
    /// that a late or repeated release cannot free the next holder's node.
    Released {
        claim_id: String,
    },
    /// Take a warm node. Exclusive (see the module docs).
    Claim {
        claim_id: String,
    },
    BootDeadlinePassed,
    WarmTimeoutPassed,
    MaxLifetimePassed,
    HeartbeatStale,
    /// A user, sweep or alarm asked for the node to go away.
    DestroyRequested,
    /// The delete retry backoff elapsed; the caller issues another delete.
    DestroyRetryDue,
    /// A delete call failed; retried after [`destroy_backoff_ms`].
    DestroyFailed {
        reason: String,
    },
    /// The provider confirmed the server is gone (or never existed).
    ServerGone,
}

/// The name of an [`Event`], without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ServerCreated,
    CreateFailed,
    AgentReady,
    Heartbeat,
    Released,
    Claim,
    BootDeadlinePassed,
    WarmTimeoutPassed,
    MaxLifetimePassed,
    HeartbeatStale,
    DestroyRequested,
    DestroyRetryDue,
    DestroyFailed,
    ServerGone,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::ServerCreated,
        EventKind::CreateFailed,
        EventKind::AgentReady,
        EventKind::Heartbeat,
        EventKind::Released,
        EventKind::Claim,
        EventKind::BootDeadlinePassed,
        EventKind::WarmTimeoutPassed,
        EventKind::MaxLifetimePassed,
        EventKind::HeartbeatStale,
        EventKind::DestroyRequested,
        EventKind::DestroyRetryDue,
        EventKind::DestroyFailed,
        EventKind::ServerGone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ServerCreated => "server_created",
            EventKind::CreateFailed => "create_failed",
            EventKind::AgentReady => "agent_ready",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Released => "released",
            EventKind::Claim => "claim",
            EventKind::BootDeadlinePassed => "boot_deadline_passed",
            EventKind::WarmTimeoutPassed => "warm_timeout_passed",
            EventKind::MaxLifetimePassed => "max_lifetime_passed",
            EventKind::HeartbeatStale => "heartbeat_stale",
            EventKind::DestroyRequested => "destroy_requested",
            EventKind::DestroyRetryDue => "destroy_retry_due",
            EventKind::DestroyFailed => "destroy_failed",
            EventKind::ServerGone => "server_gone",
        }
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ServerCreated { .. } => EventKind::ServerCreated,
            Event::CreateFailed { .. } => EventKind::CreateFailed,
            Event::AgentReady => EventKind::AgentReady,
            Event::Heartbeat => EventKind::Heartbeat,
            Event::Released { .. } => EventKind::Released,
            Event::Claim { .. } => EventKind::Claim,
            Event::BootDeadlinePassed => EventKind::BootDeadlinePassed,
            Event::WarmTimeoutPassed => EventKind::WarmTimeoutPassed,
            Event::MaxLifetimePassed => EventKind::MaxLifetimePassed,
            Event::HeartbeatStale => EventKind::HeartbeatStale,
            Event::DestroyRequested => EventKind::DestroyRequested,
            Event::DestroyRetryDue => EventKind::DestroyRetryDue,
            Event::DestroyFailed { .. } => EventKind::DestroyFailed,
            Event::ServerGone => EventKind::ServerGone,
        }
    }
}

/// Why [`apply`] refused an event. Callers turn these into a 409 (or, for
/// a provider or alarm callback, a log line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a node that is {} cannot accept {}", from.as_str(), event.as_str())]
    InvalidTransition {
        from: LifecycleStatus,
        event: EventKind,
    },
    #[error("the node is destroyed and cannot accept {}", event.as_str())]
    NodeDestroyed { event: EventKind },
    /// Not warm, already held, stale or at the end of its lifetime.
    #[error("a node that is {} cannot be claimed", from.as_str())]
    NotClaimable { from: LifecycleStatus },
    /// A release named a claim that does not hold the node.
    #[error("the node is not held by that claim")]
    ClaimMismatch { from: LifecycleStatus },
    /// A create report named a different server than the one recorded.
    #[error("the node already has a different server")]
    ServerIdMismatch,
    /// A timed event arrived before its time.
    #[error("{} is not due before {due_at}", event.as_str())]
    NotDue {
        event: EventKind,
        due_at: UnixMillis,
    },
}

impl TransitionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::InvalidTransition { .. } => "invalid_transition",
            TransitionError::NodeDestroyed { .. } => "node_destroyed",
            TransitionError::NotClaimable { .. } => "node_not_claimable",
            TransitionError::ClaimMismatch { .. } => "claim_mismatch",
            TransitionError::ServerIdMismatch => "server_id_mismatch",
            TransitionError::NotDue { .. } => "deadline_not_reached",
        }
    }
}

/// Longest claim id a caller may choose.
pub const MAX_CLAIM_ID_CHARS: usize = 100;

/// A claim id a caller chose is 1 to [`MAX_CLAIM_ID_CHARS`] printable
/// ASCII characters (it is shown on pages and compared byte for byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("claim_id must be 1-100 printable ASCII characters")]
pub struct InvalidClaimId;

pub fn check_claim_id(raw: &str) -> Result<(), InvalidClaimId> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_CLAIM_ID_CHARS
        && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(InvalidClaimId) }
}

/// Delay before retrying a delete after `attempt` delete calls: the base,
/// doubled per further attempt, capped at the maximum. Jitter-free; callers
/// that want jitter add it when setting the alarm.
pub fn destroy_backoff_ms(attempt: u32, cfg: &LifecycleConfig) -> i64 {
    let doublings = attempt.saturating_sub(1);
    cfg.destroy_backoff_base_ms
        .saturating_mul(2_i64.saturating_pow(doublings))
        .min(cfg.destroy_backoff_max_ms)
        .max(0)
}

// Raw due times of the timed events. They count from the event that started
// each clock: creation for the boot deadline and the lifetime (so a slow
// create does not extend the boot), entering `warm` for the warm timeout.

fn boot_deadline_at(state: &NodeState, cfg: &LifecycleConfig) -> UnixMillis {
    state.created_at.saturating_add(cfg.boot_timeout_ms)
}

fn warm_timeout_at(state: &NodeState, cfg: &LifecycleConfig) -> UnixMillis {
    state.status_since.saturating_add(cfg.warm_timeout_ms)
}

fn max_lifetime_at(state: &NodeState, cfg: &LifecycleConfig) -> UnixMillis {
    state.created_at.saturating_add(cfg.max_lifetime_ms)
}

fn heartbeat_stale_at(state: &NodeState, cfg: &LifecycleConfig) -> UnixMillis {
    state
        .last_heartbeat_at
        .unwrap_or(state.status_since)
        .saturating_add(cfg.heartbeat_stale_ms)
}

fn destroy_retry_at(state: &NodeState, cfg: &LifecycleConfig) -> UnixMillis {
    state
        .last_destroy_at
        .unwrap_or(state.status_since)
        .saturating_add(destroy_backoff_ms(state.destroy_attempts, cfg))
}

/// The timers running in the current status, with the event each fires.
/// On ties the first listed wins: a dead agent is the more telling reason.
fn timers(state: &NodeState, cfg: &LifecycleConfig) -> Vec<(UnixMillis, Event)> {
    use LifecycleStatus as S;
    match state.status {
        S::Provisioning => vec![(boot_deadline_at(state, cfg), Event::BootDeadlinePassed)],
        S::Booting => vec![
            (boot_deadline_at(state, cfg), Event::BootDeadlinePassed),
            (max_lifetime_at(state, cfg), Event::MaxLifetimePassed),
        ],
        S::Ready => vec![
            (heartbeat_stale_at(state, cfg), Event::HeartbeatStale),
            (max_lifetime_at(state, cfg), Event::MaxLifetimePassed),
        ],
        S::Warm => vec![
            (heartbeat_stale_at(state, cfg), Event::HeartbeatStale),
            (max_lifetime_at(state, cfg), Event::MaxLifetimePassed),
            (warm_timeout_at(state, cfg), Event::WarmTimeoutPassed),
        ],
        S::Destroying => vec![(destroy_retry_at(state, cfg), Event::DestroyRetryDue)],
        // An error node may own a server: move on to destroying at once.
        S::Error => vec![(state.status_since, Event::DestroyRequested)],
        S::Destroyed => Vec::new(),
    }
}

/// The earliest timer, clamped to no earlier than `status_since`: a clock
/// that ran out before the status began (a create that returned after the
/// boot deadline) is due the moment the status is entered, not in the past.
fn next_timer(state: &NodeState, cfg: &LifecycleConfig) -> Option<(UnixMillis, Event)> {
    timers(state, cfg)
        .into_iter()
        .reduce(|first, other| if other.0 < first.0 { other } else { first })
        .map(|(at, event)| (at.max(state.status_since), event))
}

/// The single next time something must happen to this node, or `None` once
/// it is destroyed. Every other status has one, so an alarm set to it
/// guarantees the node cannot get stuck.
pub fn deadline(state: &NodeState, cfg: &LifecycleConfig) -> Option<UnixMillis> {
    next_timer(state, cfg).map(|(at, _)| at)
}

/// The event an alarm firing at `now` should [`apply`], or `None` if the
/// deadline has not passed (or there is none). The returned event is always
/// accepted by `apply` at the same `now` and always changes the state, so
/// an alarm loop cannot spin.
pub fn on_deadline(state: &NodeState, now: UnixMillis, cfg: &LifecycleConfig) -> Option<Event> {
    next_timer(state, cfg)
        .filter(|(at, _)| now >= *at)
        .map(|(_, event)| event)
}

fn due(event: &Event, at: UnixMillis, now: UnixMillis) -> Result<(), TransitionError> {
    if now >= at {
        Ok(())
    } else {
        Err(TransitionError::NotDue {
            event: event.kind(),
            due_at: at,
        })
    }
}

/// The state after `event` at `now`, or why the event is refused.
///
/// If the event changes nothing, the state comes back unchanged, version
/// included (nothing to persist); otherwise the version is incremented.
pub fn apply(
    state: &NodeState,
    event: &Event,
    now: UnixMillis,
    cfg: &LifecycleConfig,
) -> Result<NodeState, TransitionError> {
    use LifecycleStatus as S;
    let now = now.max(state.latest_time());
    let from = state.status;
    let mut next = state.clone();

    if from == S::Destroyed {
        // Repeating a delete request or a confirmation is not an error: the
        // node is what the caller asked for. Anything else is too late.
        return match event {
            Event::DestroyRequested | Event::ServerGone => Ok(next),
            Event::Claim { .. } => Err(TransitionError::NotClaimable { from }),
            _ => Err(TransitionError::NodeDestroyed {
                event: event.kind(),
            }),
        };
    }

    match (from, event) {
        (S::Provisioning, Event::ServerCreated { server_id }) => {
            next.server_id = Some(server_id.clone());
            next.error = None;
            next.enter(S::Booting, now);
        }
        // A late or repeated create report elsewhere only records the id.
        // In `error`/`destroying` the caller must still delete that server
        // at once: a delete already in flight may have missed it.
        (_, Event::ServerCreated { server_id }) => match &state.server_id {
            None => next.server_id = Some(server_id.clone()),
            Some(known) if known == server_id => {}
            Some(_) => return Err(TransitionError::ServerIdMismatch),
        },
        (S::Provisioning, Event::CreateFailed { reason, retryable }) => {
            next.error = Some(reason.clone());
            if !retryable {
                next.enter(S::Error, now);
            }
        }
        // The agent may register before the create response is processed
        // (devcloud boots in milliseconds), so provisioning accepts it too.
        (S::Provisioning | S::Booting, Event::AgentReady) => {
            next.last_heartbeat_at = Some(now);
            let to = if state.claimed_by.is_some() {
                S::Ready
            } else {
                S::Warm
            };
            next.enter(to, now);
        }
        // A restarted agent re-announces itself; that is a sign of life.
        (S::Ready | S::Warm, Event::AgentReady | Event::Heartbeat) => {
            next.last_heartbeat_at = Some(now);
        }
        (S::Provisioning | S::Booting | S::Ready, Event::Released { claim_id }) => {
            if state.claimed_by.as_deref() != Some(claim_id.as_str()) {
                return Err(TransitionError::ClaimMismatch { from });
            }
            next.claimed_by = None;
            if from == S::Ready {
                next.enter(S::Warm, now);
            }
            // Released while booting: the node joins the warm pool once the
            // agent registers instead of idling as `ready` for nobody.
        }
        // No-ops: a warm node is already released (whoever asks, there is
        // nothing left to free), and a destroying one is already on its way
        // out.
        (S::Warm, Event::Released { .. }) | (S::Destroying, Event::DestroyRequested) => {}
        (S::Warm, Event::Claim { claim_id }) => {
            if !state.is_claimable(now, cfg) {
                return Err(TransitionError::NotClaimable { from });
            }
            next.claimed_by = Some(claim_id.clone());
            next.enter(S::Ready, now);
        }
        // The holder retrying its own claim (its write landed, the answer
        // was lost) gets the node it already has.
        (S::Ready, Event::Claim { claim_id })
            if state.claimed_by.as_deref() == Some(claim_id.as_str()) => {}
        (_, Event::Claim { .. }) => return Err(TransitionError::NotClaimable { from }),
        (S::Provisioning | S::Booting, Event::BootDeadlinePassed) => {
            due(event, boot_deadline_at(state, cfg), now)?;
            next.error = Some("the vm-agent did not register before the boot deadline".into());
            next.enter(S::Error, now);
        }
        (S::Warm, Event::WarmTimeoutPassed) => {
            due(event, warm_timeout_at(state, cfg), now)?;
            next.start_destroying(now);
        }
        (S::Booting | S::Ready | S::Warm, Event::MaxLifetimePassed) => {
            due(event, max_lifetime_at(state, cfg), now)?;
            next.start_destroying(now);
        }
        (S::Ready | S::Warm, Event::HeartbeatStale) => {
            due(event, heartbeat_stale_at(state, cfg), now)?;
            next.error = Some("the vm-agent stopped sending heartbeats".into());
            next.enter(S::Error, now);
        }
        (S::Provisioning | S::Booting | S::Ready | S::Warm | S::Error, Event::DestroyRequested) => {
            next.start_destroying(now);
        }
        (S::Destroying, Event::DestroyRetryDue) => {
            due(event, destroy_retry_at(state, cfg), now)?;
            next.destroy_attempts = state.destroy_attempts.saturating_add(1);
            next.last_destroy_at = Some(now);
        }
        (S::Destroying, Event::DestroyFailed { reason }) => {
            next.destroy_error = Some(reason.clone());
            next.last_destroy_at = Some(now);
        }
        (S::Destroying, Event::ServerGone) => next.enter(S::Destroyed, now),
        _ => {
            return Err(TransitionError::InvalidTransition {
                from,
                event: event.kind(),
            });
        }
    }

    if next != *state {
        next.version = state.version + 1;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleStatus as S;
    use proptest::prelude::*;

    /// Small durations so that tests read as plain arithmetic.
    const CFG: LifecycleConfig = LifecycleConfig {
        boot_timeout_ms: 100,
        warm_timeout_ms: 100,
        max_lifetime_ms: 1_000_000,
        heartbeat_stale_ms: 1_000_000,
        destroy_backoff_base_ms: 10,
        destroy_backoff_max_ms: 100,
    };

    fn ok(state: &NodeState, event: &Event, now: i64) -> NodeState {
        apply(state, event, now, &CFG)
            .unwrap_or_else(|e| panic!("{} refused {:?}: {e}", state.status.as_str(), event))
    }

    fn claim(id: &str) -> Event {
        Event::Claim {
            claim_id: id.into(),
        }
    }

    fn released(id: &str) -> Event {
        Event::Released {
            claim_id: id.into(),
        }
    }

    fn created(id: &str) -> Event {
        Event::ServerCreated {
            server_id: id.into(),
        }
    }

    /// A node in `status`, reached through real transitions, held by
    /// "task" where the status allows it, with server "s1" from booting on.
    fn reach(status: LifecycleStatus) -> NodeState {
        let provisioning = NodeState::new(0, Some("task".into()));
        let booting = ok(&provisioning, &created("s1"), 10);
        let ready = ok(&booting, &Event::AgentReady, 20);
        let warm = ok(&ready, &released("task"), 30);
        let destroying = ok(&warm, &Event::DestroyRequested, 40);
        match status {
            S::Provisioning => provisioning,
            S::Booting => booting,
            S::Ready => ready,
            S::Warm => warm,
            S::Destroying => destroying,
            S::Destroyed => ok(&destroying, &Event::ServerGone, 50),
            S::Error => ok(&booting, &Event::BootDeadlinePassed, 100),
        }
    }

    /// One event of each kind, with the data `reach` states expect.
    fn sample(kind: EventKind) -> Event {
        match kind {
            EventKind::ServerCreated => created("s1"),
            EventKind::CreateFailed => Event::CreateFailed {
                reason: "quota exceeded".into(),
                retryable: false,
            },
            EventKind::AgentReady => Event::AgentReady,
            EventKind::Heartbeat => Event::Heartbeat,
            EventKind::Released => released("task"),
            EventKind::Claim => claim("other"),
            EventKind::BootDeadlinePassed => Event::BootDeadlinePassed,
            EventKind::WarmTimeoutPassed => Event::WarmTimeoutPassed,
            EventKind::MaxLifetimePassed => Event::MaxLifetimePassed,
            EventKind::HeartbeatStale => Event::HeartbeatStale,
            EventKind::DestroyRequested => Event::DestroyRequested,
            EventKind::DestroyRetryDue => Event::DestroyRetryDue,
            EventKind::DestroyFailed => Event::DestroyFailed {
                reason: "provider 503".into(),
            },
            EventKind::ServerGone => Event::ServerGone,
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        /// Accepted, version + 1, now in this status.
        To(LifecycleStatus),
        /// Accepted as a no-op: the state comes back unchanged.
        Same,
        /// Refused with this code.
        No(&'static str),
    }
    use Expect::{No, Same, To};

    const INVALID: Expect = No("invalid_transition");
    const NOT_DUE: Expect = No("deadline_not_reached");
    const UNCLAIMABLE: Expect = No("node_not_claimable");
    const GONE: Expect = No("node_destroyed");

    /// Every (status, event) pair, early (1 ms after the state was reached:
    /// no timer is due) and late (every timer is due).
    #[rustfmt::skip]
    const TABLE: &[(LifecycleStatus, EventKind, Expect, Expect)] = {
        use EventKind as E;
        &[
            (S::Provisioning, E::ServerCreated,      To(S::Booting),      To(S::Booting)),
            (S::Provisioning, E::CreateFailed,       To(S::Error),        To(S::Error)),
            (S::Provisioning, E::AgentReady,         To(S::Ready),        To(S::Ready)),
            (S::Provisioning, E::Heartbeat,          INVALID,             INVALID),
            (S::Provisioning, E::Released,           To(S::Provisioning), To(S::Provisioning)),
            (S::Provisioning, E::Claim,              UNCLAIMABLE,         UNCLAIMABLE),
            (S::Provisioning, E::BootDeadlinePassed, NOT_DUE,             To(S::Error)),
            (S::Provisioning, E::WarmTimeoutPassed,  INVALID,             INVALID),
            (S::Provisioning, E::MaxLifetimePassed,  INVALID,             INVALID),
            (S::Provisioning, E::HeartbeatStale,     INVALID,             INVALID),
            (S::Provisioning, E::DestroyRequested,   To(S::Destroying),   To(S::Destroying)),
            (S::Provisioning, E::DestroyRetryDue,    INVALID,             INVALID),
            (S::Provisioning, E::DestroyFailed,      INVALID,             INVALID),
            (S::Provisioning, E::ServerGone,         INVALID,             INVALID),

            (S::Booting, E::ServerCreated,      Same,              Same),
            (S::Booting, E::CreateFailed,       INVALID,           INVALID),
            (S::Booting, E::AgentReady,         To(S::Ready),      To(S::Ready)),
            (S::Booting, E::Heartbeat,          INVALID,           INVALID),
            (S::Booting, E::Released,           To(S::Booting),    To(S::Booting)),
            (S::Booting, E::Claim,              UNCLAIMABLE,       UNCLAIMABLE),
            (S::Booting, E::BootDeadlinePassed, NOT_DUE,           To(S::Error)),
            (S::Booting, E::WarmTimeoutPassed,  INVALID,           INVALID),
            (S::Booting, E::MaxLifetimePassed,  NOT_DUE,           To(S::Destroying)),
            (S::Booting, E::HeartbeatStale,     INVALID,           INVALID),
            (S::Booting, E::DestroyRequested,   To(S::Destroying), To(S::Destroying)),
            (S::Booting, E::DestroyRetryDue,    INVALID,           INVALID),
            (S::Booting, E::DestroyFailed,      INVALID,           INVALID),
            (S::Booting, E::ServerGone,         INVALID,           INVALID),

            (S::Ready, E::ServerCreated,      Same,              Same),
            (S::Ready, E::CreateFailed,       INVALID,           INVALID),
            (S::Ready, E::AgentReady,         To(S::Ready),      To(S::Ready)),
            (S::Ready, E::Heartbeat,          To(S::Ready),      To(S::Ready)),
            (S::Ready, E::Released,           To(S::Warm),       To(S::Warm)),
            (S::Ready, E::Claim,              UNCLAIMABLE,       UNCLAIMABLE),
            (S::Ready, E::BootDeadlinePassed, INVALID,           INVALID),
            (S::Ready, E::WarmTimeoutPassed,  INVALID,           INVALID),
            (S::Ready, E::MaxLifetimePassed,  NOT_DUE,           To(S::Destroying)),
            (S::Ready, E::HeartbeatStale,     NOT_DUE,           To(S::Error)),
            (S::Ready, E::DestroyRequested,   To(S::Destroying), To(S::Destroying)),
            (S::Ready, E::DestroyRetryDue,    INVALID,           INVALID),
            (S::Ready, E::DestroyFailed,      INVALID,           INVALID),
            (S::Ready, E::ServerGone,         INVALID,           INVALID),

            (S::Warm, E::ServerCreated,      Same,              Same),
            (S::Warm, E::CreateFailed,       INVALID,           INVALID),
            (S::Warm, E::AgentReady,         To(S::Warm),       To(S::Warm)),
            (S::Warm, E::Heartbeat,          To(S::Warm),       To(S::Warm)),
            (S::Warm, E::Released,           Same,              Same),
            (S::Warm, E::Claim,              To(S::Ready),      UNCLAIMABLE),
            (S::Warm, E::BootDeadlinePassed, INVALID,           INVALID),
            (S::Warm, E::WarmTimeoutPassed,  NOT_DUE,           To(S::Destroying)),
            (S::Warm, E::MaxLifetimePassed,  NOT_DUE,           To(S::Destroying)),
            (S::Warm, E::HeartbeatStale,     NOT_DUE,           To(S::Error)),
            (S::Warm, E::DestroyRequested,   To(S::Destroying), To(S::Destroying)),
            (S::Warm, E::DestroyRetryDue,    INVALID,           INVALID),
            (S::Warm, E::DestroyFailed,      INVALID,           INVALID),
            (S::Warm, E::ServerGone,         INVALID,           INVALID),

            (S::Destroying, E::ServerCreated,      Same,              Same),
            (S::Destroying, E::CreateFailed,       INVALID,           INVALID),
            (S::Destroying, E::AgentReady,         INVALID,           INVALID),
            (S::Destroying, E::Heartbeat,          INVALID,           INVALID),
            (S::Destroying, E::Released,           INVALID,           INVALID),
            (S::Destroying, E::Claim,              UNCLAIMABLE,       UNCLAIMABLE),
            (S::Destroying, E::BootDeadlinePassed, INVALID,           INVALID),
            (S::Destroying, E::WarmTimeoutPassed,  INVALID,           INVALID),
            (S::Destroying, E::MaxLifetimePassed,  INVALID,           INVALID),
            (S::Destroying, E::HeartbeatStale,     INVALID,           INVALID),
            (S::Destroying, E::DestroyRequested,   Same,              Same),
            (S::Destroying, E::DestroyRetryDue,    NOT_DUE,           To(S::Destroying)),
            (S::Destroying, E::DestroyFailed,      To(S::Destroying), To(S::Destroying)),
            (S::Destroying, E::ServerGone,         To(S::Destroyed),  To(S::Destroyed)),

            (S::Destroyed, E::ServerCreated,      GONE,        GONE),
            (S::Destroyed, E::CreateFailed,       GONE,        GONE),
            (S::Destroyed, E::AgentReady,         GONE,        GONE),
            (S::Destroyed, E::Heartbeat,          GONE,        GONE),
            (S::Destroyed, E::Released,           GONE,        GONE),
            (S::Destroyed, E::Claim,              UNCLAIMABLE, UNCLAIMABLE),
            (S::Destroyed, E::BootDeadlinePassed, GONE,        GONE),
            (S::Destroyed, E::WarmTimeoutPassed,  GONE,        GONE),
            (S::Destroyed, E::MaxLifetimePassed,  GONE,        GONE),
            (S::Destroyed, E::HeartbeatStale,     GONE,        GONE),
            (S::Destroyed, E::DestroyRequested,   Same,        Same),
            (S::Destroyed, E::DestroyRetryDue,    GONE,        GONE),
            (S::Destroyed, E::DestroyFailed,      GONE,        GONE),
            (S::Destroyed, E::ServerGone,         Same,        Same),

            (S::Error, E::ServerCreated,      Same,              Same),
            (S::Error, E::CreateFailed,       INVALID,           INVALID),
            (S::Error, E::AgentReady,         INVALID,           INVALID),
            (S::Error, E::Heartbeat,          INVALID,           INVALID),
            (S::Error, E::Released,           INVALID,           INVALID),
            (S::Error, E::Claim,              UNCLAIMABLE,       UNCLAIMABLE),
            (S::Error, E::BootDeadlinePassed, INVALID,           INVALID),
            (S::Error, E::WarmTimeoutPassed,  INVALID,           INVALID),
            (S::Error, E::MaxLifetimePassed,  INVALID,           INVALID),
            (S::Error, E::HeartbeatStale,     INVALID,           INVALID),
            (S::Error, E::DestroyRequested,   To(S::Destroying), To(S::Destroying)),
            (S::Error, E::DestroyRetryDue,    INVALID,           INVALID),
            (S::Error, E::DestroyFailed,      INVALID,           INVALID),
            (S::Error, E::ServerGone,         INVALID,           INVALID),
        ]
    };

    fn outcome(state: &NodeState, event: &Event, now: i64) -> Expect {
        match apply(state, event, now, &CFG) {
            Ok(next) if next == *state => Same,
            Ok(next) => {
                assert_eq!(next.version, state.version + 1, "{event:?}");
                To(next.status)
            }
            Err(e) => No(e.code()),
        }
    }

    #[test]
    fn claim_ids_are_short_printable_ascii() {
        assert!(check_claim_id("task:01JAB-x").is_ok());
        assert!(check_claim_id(&"x".repeat(MAX_CLAIM_ID_CHARS)).is_ok());
        for bad in [
            "",
            "has space",
            "tab\t",
            "é",
            &"x".repeat(MAX_CLAIM_ID_CHARS + 1),
        ] {
            assert_eq!(check_claim_id(bad), Err(InvalidClaimId), "{bad:?}");
        }
    }

    #[test]
    fn transition_table_covers_every_pair_once() {
        assert_eq!(
            TABLE.len(),
            LifecycleStatus::ALL.len() * EventKind::ALL.len()
        );
        for status in LifecycleStatus::ALL {
            for kind in EventKind::ALL {
                let rows = TABLE
                    .iter()
                    .filter(|(s, k, ..)| *s == status && *k == kind)
                    .count();
                assert_eq!(rows, 1, "{} × {}", status.as_str(), kind.as_str());
            }
        }
    }

    #[test]
    fn transition_table_matches_apply() {
        let late = 1_000_000_000;
        for &(status, kind, early_expect, late_expect) in TABLE {
            let state = reach(status);
            assert_eq!(state.status, status);
            let event = sample(kind);
            let early = state.latest_time() + 1;
            let pair = format!("{} × {}", status.as_str(), kind.as_str());
            assert_eq!(outcome(&state, &event, early), early_expect, "early {pair}");
            assert_eq!(outcome(&state, &event, late), late_expect, "late {pair}");
        }
    }

    #[test]
    fn status_names_round_trip_through_as_str_parse_and_serde() {
        let names = [
            "provisioning",
            "booting",
            "ready",
            "warm",
            "destroying",
            "destroyed",
            "error",
        ];
        for (status, name) in LifecycleStatus::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(LifecycleStatus::parse(name), Some(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                serde_json::from_str::<LifecycleStatus>(&format!("\"{name}\"")).unwrap(),
                status
            );
            assert_eq!(status.is_terminal(), name == "destroyed");
        }
        assert_eq!(LifecycleStatus::parse("Ready"), None);
        assert_eq!(LifecycleStatus::parse("running"), None);
    }

    #[test]
    fn node_state_and_events_round_trip_through_serde() {
        let state = reach(S::Destroying);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<NodeState>(&json).unwrap(), state);
        assert!(json.contains("\"status\":\"destroying\""), "{json}");
        for kind in EventKind::ALL {
            let event = sample(kind);
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], kind.as_str());
            assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
        }
    }

    #[test]
    fn default_config_values() {
        let cfg = LifecycleConfig::default();
        assert_eq!(cfg.boot_timeout_ms, 15 * 60 * 1000);
        assert_eq!(cfg.warm_timeout_ms, 30 * 60 * 1000);
        assert_eq!(cfg.max_lifetime_ms, 24 * 60 * 60 * 1000);
        assert_eq!(cfg.heartbeat_stale_ms, 3 * 60 * 1000);
        assert_eq!(cfg.destroy_backoff_base_ms, 1000);
        assert_eq!(cfg.destroy_backoff_max_ms, 5 * 60 * 1000);
    }

    #[test]
    fn error_codes_are_stable() {
        let errors = [
            (
                TransitionError::InvalidTransition {
                    from: S::Ready,
                    event: EventKind::ServerGone,
                },
                "invalid_transition",
            ),
            (
                TransitionError::NodeDestroyed {
                    event: EventKind::Heartbeat,
                },
                "node_destroyed",
            ),
            (
                TransitionError::NotClaimable { from: S::Ready },
                "node_not_claimable",
            ),
            (
                TransitionError::ClaimMismatch { from: S::Ready },
                "claim_mismatch",
            ),
            (TransitionError::ServerIdMismatch, "server_id_mismatch"),
            (
                TransitionError::NotDue {
                    event: EventKind::WarmTimeoutPassed,
                    due_at: 5,
                },
                "deadline_not_reached",
            ),
        ];
        for (error, code) in errors {
            assert_eq!(error.code(), code);
            assert!(!error.to_string().is_empty());
        }
        let err = apply(&reach(S::Ready), &Event::ServerGone, 21, &CFG).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a node that is ready cannot accept server_gone"
        );
    }

    #[test]
    fn happy_path_claim_release_reclaim_and_destroy() {
        let mut s = NodeState::new(1_000, Some("task-1".into()));
        assert_eq!((s.status, s.version), (S::Provisioning, 0));
        s = ok(&s, &created("srv-9"), 1_010);
        assert_eq!(
            (s.status, s.version, s.status_since),
            (S::Booting, 1, 1_010)
        );
        assert_eq!(s.server_id.as_deref(), Some("srv-9"));
        s = ok(&s, &Event::AgentReady, 1_020);
        assert_eq!((s.status, s.last_heartbeat_at), (S::Ready, Some(1_020)));
        assert_eq!(s.claimed_by.as_deref(), Some("task-1"));
        s = ok(&s, &Event::Heartbeat, 1_030);
        assert_eq!(
            (s.status, s.version, s.last_heartbeat_at),
            (S::Ready, 3, Some(1_030))
        );
        s = ok(&s, &released("task-1"), 1_040);
        assert_eq!((s.status, s.claimed_by.as_deref()), (S::Warm, None));
        s = ok(&s, &claim("task-2"), 1_050);
        assert_eq!(
            (s.status, s.claimed_by.as_deref()),
            (S::Ready, Some("task-2"))
        );
        s = ok(&s, &Event::DestroyRequested, 1_060);
        assert_eq!(
            (s.status, s.destroy_attempts, s.last_destroy_at),
            (S::Destroying, 1, Some(1_060))
        );
        s = ok(&s, &Event::ServerGone, 1_070);
        assert_eq!(
            (s.status, s.version, s.status_since),
            (S::Destroyed, 7, 1_070)
        );
        assert_eq!(deadline(&s, &CFG), None);
    }

    #[test]
    fn a_node_booted_for_the_pool_goes_warm() {
        let s = NodeState::new(0, None);
        let s = ok(&ok(&s, &created("s1"), 5), &Event::AgentReady, 9);
        assert_eq!((s.status, s.claimed_by.as_deref()), (S::Warm, None));
    }

    #[test]
    fn agent_ready_before_the_create_response_is_kept_and_the_id_recorded_later() {
        let s = ok(&NodeState::new(0, Some("t".into())), &Event::AgentReady, 5);
        assert_eq!((s.status, s.server_id.as_deref()), (S::Ready, None));
        let s = ok(&s, &created("s7"), 6);
        assert_eq!((s.status, s.server_id.as_deref()), (S::Ready, Some("s7")));
        let err = apply(&s, &created("s8"), 7, &CFG).unwrap_err();
        assert_eq!(err.code(), "server_id_mismatch");
    }

    #[test]
    fn a_late_create_report_while_destroying_is_recorded_and_after_destroyed_refused() {
        let s = ok(&NodeState::new(0, None), &Event::DestroyRequested, 5);
        let recorded = ok(&s, &created("late"), 6);
        assert_eq!(
            (recorded.status, recorded.server_id.as_deref()),
            (S::Destroying, Some("late"))
        );
        // Refused: the caller deletes that server at once.
        let gone = ok(&s, &Event::ServerGone, 6);
        assert_eq!(
            apply(&gone, &created("late"), 7, &CFG).unwrap_err().code(),
            "node_destroyed"
        );
    }

    #[test]
    fn retryable_create_failure_stays_provisioning_until_the_boot_deadline() {
        let s = NodeState::new(0, Some("t".into()));
        let failed = Event::CreateFailed {
            reason: "rate limited".into(),
            retryable: true,
        };
        let s = ok(&s, &failed, 10);
        assert_eq!(
            (s.status, s.version, s.error.as_deref()),
            (S::Provisioning, 1, Some("rate limited"))
        );
        assert_eq!(
            deadline(&s, &CFG),
            Some(100),
            "the boot deadline still counts from creation"
        );
        let booting = ok(&s, &created("s1"), 20);
        assert_eq!((booting.status, booting.error), (S::Booting, None));
        let error = ok(&s, &Event::BootDeadlinePassed, 100);
        assert_eq!(error.status, S::Error);
        assert!(error.error.unwrap().contains("boot deadline"));
    }

    #[test]
    fn fatal_create_failure_records_the_reason_and_heads_for_destruction() {
        let s = ok(
            &NodeState::new(0, None),
            &sample(EventKind::CreateFailed),
            10,
        );
        assert_eq!(
            (s.status, s.error.as_deref()),
            (S::Error, Some("quota exceeded"))
        );
        assert_eq!(deadline(&s, &CFG), Some(10));
        assert_eq!(on_deadline(&s, 10, &CFG), Some(Event::DestroyRequested));
    }

    #[test]
    fn release_must_name_the_holder() {
        let ready = reach(S::Ready);
        let err = apply(&ready, &released("someone-else"), 21, &CFG).unwrap_err();
        assert_eq!(err, TransitionError::ClaimMismatch { from: S::Ready });
        assert_eq!(err.code(), "claim_mismatch");
        // Released while booting: joins the pool once the agent registers.
        let booting = ok(&reach(S::Booting), &released("task"), 11);
        assert_eq!(
            (booting.status, booting.claimed_by.as_deref()),
            (S::Booting, None)
        );
        assert_eq!(ok(&booting, &Event::AgentReady, 12).status, S::Warm);
        let err = apply(&booting, &released("task"), 12, &CFG).unwrap_err();
        assert_eq!(err.code(), "claim_mismatch");
    }

    #[test]
    fn claims_are_exclusive_but_the_holder_may_repeat_its_own() {
        let warm = reach(S::Warm);
        let a = ok(&warm, &claim("a"), 31);
        assert_eq!(
            ok(&a, &claim("a"), 32),
            a,
            "repeat by the holder is a no-op"
        );
        let err = apply(&a, &claim("b"), 32, &CFG).unwrap_err();
        assert_eq!(err, TransitionError::NotClaimable { from: S::Ready });
    }

    #[test]
    fn stale_or_expiring_warm_nodes_are_not_claimable() {
        let cfg = LifecycleConfig {
            heartbeat_stale_ms: 50,
            max_lifetime_ms: 200,
            warm_timeout_ms: 1_000,
            ..CFG
        };
        let warm = reach(S::Warm); // heartbeat at 20, created at 0
        assert!(warm.is_claimable(69, &cfg));
        assert!(!warm.is_claimable(70, &cfg));
        assert_eq!(
            apply(&warm, &claim("x"), 70, &cfg).unwrap_err().code(),
            "node_not_claimable"
        );
        let fresh = apply(&warm, &Event::Heartbeat, 190, &cfg).unwrap();
        assert!(fresh.is_claimable(199, &cfg));
        assert!(!fresh.is_claimable(200, &cfg));
        assert!(!reach(S::Ready).is_claimable(21, &cfg));
    }

    #[test]
    fn timed_events_are_refused_before_their_time_and_accepted_at_it() {
        let booting = reach(S::Booting);
        let err = apply(&booting, &Event::BootDeadlinePassed, 99, &CFG).unwrap_err();
        assert_eq!(
            err,
            TransitionError::NotDue {
                event: EventKind::BootDeadlinePassed,
                due_at: 100
            }
        );
        assert_eq!(
            ok(&booting, &Event::BootDeadlinePassed, 100).status,
            S::Error
        );

        let warm = reach(S::Warm); // entered at 30
        assert_eq!(
            apply(&warm, &Event::WarmTimeoutPassed, 129, &CFG)
                .unwrap_err()
                .code(),
            "deadline_not_reached"
        );
        assert_eq!(
            ok(&warm, &Event::WarmTimeoutPassed, 130).status,
            S::Destroying
        );

        let ready = reach(S::Ready); // heartbeat at 20
        let stale_at = 20 + CFG.heartbeat_stale_ms;
        assert!(apply(&ready, &Event::HeartbeatStale, stale_at - 1, &CFG).is_err());
        let error = ok(&ready, &Event::HeartbeatStale, stale_at);
        assert_eq!(error.status, S::Error);
        assert!(error.error.unwrap().contains("heartbeats"));

        let lifetime_at = CFG.max_lifetime_ms;
        assert!(apply(&ready, &Event::MaxLifetimePassed, lifetime_at - 1, &CFG).is_err());
        assert_eq!(
            ok(&ready, &Event::MaxLifetimePassed, lifetime_at).status,
            S::Destroying
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let cfg = LifecycleConfig::default();
        let delays: Vec<i64> = (0..=12).map(|a| destroy_backoff_ms(a, &cfg)).collect();
        assert_eq!(
            delays,
            [
                1_000, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000,
                300_000, 300_000, 300_000
            ]
        );
        assert_eq!(destroy_backoff_ms(u32::MAX, &cfg), 300_000);
        let odd = LifecycleConfig {
            destroy_backoff_base_ms: 500,
            destroy_backoff_max_ms: 100,
            ..cfg
        };
        assert_eq!(
            destroy_backoff_ms(1, &odd),
            100,
            "the cap wins over the base"
        );
    }

    #[test]
    fn destroy_failures_are_retried_with_backoff() {
        let s = reach(S::Destroying); // first delete call issued at 40
        assert_eq!((s.destroy_attempts, deadline(&s, &CFG)), (1, Some(50)));
        let s = ok(
            &s,
            &Event::DestroyFailed {
                reason: "503".into(),
            },
            45,
        );
        assert_eq!(
            (s.status, s.destroy_error.as_deref()),
            (S::Destroying, Some("503"))
        );
        assert_eq!(deadline(&s, &CFG), Some(55), "base delay after the failure");
        assert_eq!(on_deadline(&s, 54, &CFG), None);
        assert_eq!(on_deadline(&s, 55, &CFG), Some(Event::DestroyRetryDue));
        let s = ok(&s, &Event::DestroyRetryDue, 55);
        assert_eq!((s.destroy_attempts, deadline(&s, &CFG)), (2, Some(75)));
        let s = ok(
            &s,
            &Event::DestroyFailed {
                reason: "503".into(),
            },
            60,
        );
        assert_eq!(deadline(&s, &CFG), Some(80));
        let s = ok(&s, &Event::DestroyRetryDue, 80);
        assert_eq!(deadline(&s, &CFG), Some(120));
        let s = ok(&s, &Event::ServerGone, 81);
        assert_eq!((s.status, s.destroy_attempts), (S::Destroyed, 3));
    }

    #[test]
    fn deadlines_per_status() {
        let cfg = LifecycleConfig::default();
        let mut s = NodeState::new(0, Some("t".into()));
        assert_eq!(deadline(&s, &cfg), Some(cfg.boot_timeout_ms));
        s = apply(&s, &created("s"), 1_000, &cfg).unwrap();
        assert_eq!(
            deadline(&s, &cfg),
            Some(cfg.boot_timeout_ms),
            "boot counts from creation"
        );
        s = apply(&s, &Event::AgentReady, 2_000, &cfg).unwrap();
        assert_eq!(deadline(&s, &cfg), Some(2_000 + cfg.heartbeat_stale_ms));
        s = apply(&s, &released("t"), 3_000, &cfg).unwrap();
        assert_eq!(
            deadline(&s, &cfg),
            Some(2_000 + cfg.heartbeat_stale_ms),
            "stale before warm timeout"
        );
        s = apply(&s, &Event::Heartbeat, 3_000, &cfg).unwrap();
        let warm_cfg = LifecycleConfig {
            warm_timeout_ms: 60_000,
            ..cfg
        };
        assert_eq!(
            deadline(&s, &warm_cfg),
            Some(63_000),
            "a per-project warm timeout"
        );
        // Near the end of its life, the lifetime wins.
        let old = NodeState {
            created_at: -cfg.max_lifetime_ms + 10_000,
            ..s.clone()
        };
        assert_eq!(deadline(&old, &cfg), Some(10_000));
        assert_eq!(
            on_deadline(&old, 10_000, &cfg),
            Some(Event::MaxLifetimePassed)
        );
    }

    #[test]
    fn a_create_that_returns_after_the_boot_deadline_is_due_at_once_not_in_the_past() {
        let s = apply(&NodeState::new(0, None), &created("s"), 500, &CFG).unwrap();
        assert_eq!(s.status, S::Booting);
        assert_eq!(deadline(&s, &CFG), Some(500));
        assert_eq!(on_deadline(&s, 500, &CFG), Some(Event::BootDeadlinePassed));
    }

    #[test]
    fn time_never_runs_backwards_for_a_node() {
        let ready = reach(S::Ready); // heartbeat at 20
        let s = ok(&ready, &Event::Heartbeat, 5);
        assert_eq!(s, ready, "an older heartbeat changes nothing");
        let warm = ok(&ready, &released("task"), 5);
        assert_eq!(warm.status_since, 20);
    }

    #[test]
    fn an_alarm_handler_drives_an_abandoned_node_to_destroyed() {
        // load → on_deadline → apply → persist → set the next alarm; the
        // provider confirms the delete on the second try.
        let cfg = LifecycleConfig::default();
        let mut s = NodeState::new(0, Some("t".into()));
        s = apply(&s, &created("s"), 10, &cfg).unwrap();
        let mut fired = Vec::new();
        while let Some(at) = deadline(&s, &cfg) {
            let event = on_deadline(&s, at, &cfg).expect("due at its deadline");
            fired.push(event.kind());
            s = apply(&s, &event, at, &cfg).unwrap();
            if s.status == S::Destroying && s.destroy_attempts == 2 {
                s = apply(&s, &Event::ServerGone, at + 1, &cfg).unwrap();
            }
        }
        assert_eq!(
            fired,
            [
                EventKind::BootDeadlinePassed,
                EventKind::DestroyRequested,
                EventKind::DestroyRetryDue
            ]
        );
        assert_eq!(s.status, S::Destroyed);
    }

    // ---- properties over random event sequences and times ----

    fn event_strategy() -> impl Strategy<Value = Event> {
        let id = || prop::sample::select(vec!["a", "b", "c"]);
        prop_oneof![
            3 => prop::sample::select(vec!["s1", "s2"]).prop_map(created),
            1 => any::<bool>().prop_map(|retryable| Event::CreateFailed {
                reason: "x".into(),
                retryable
            }),
            3 => Just(Event::AgentReady),
            4 => Just(Event::Heartbeat),
            3 => id().prop_map(released),
            3 => id().prop_map(claim),
            1 => Just(Event::BootDeadlinePassed),
            1 => Just(Event::WarmTimeoutPassed),
            1 => Just(Event::MaxLifetimePassed),
            1 => Just(Event::HeartbeatStale),
            1 => Just(Event::DestroyRequested),
            1 => Just(Event::DestroyRetryDue),
            1 => Just(Event::DestroyFailed { reason: "x".into() }),
            2 => Just(Event::ServerGone),
        ]
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// An event some time after the previous step (possibly before it:
        /// clocks of different isolates disagree).
        Event(Event, i64),
        /// The alarm fires at the deadline.
        Alarm,
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (event_strategy(), -50_i64..500).prop_map(|(e, dt)| Step::Event(e, dt)),
            1 => Just(Step::Alarm),
        ]
    }

    fn cfg_strategy() -> impl Strategy<Value = LifecycleConfig> {
        (
            0_i64..2_000,
            0_i64..2_000,
            0_i64..20_000,
            0_i64..2_000,
            0_i64..100,
            0_i64..1_000,
        )
            .prop_map(|(boot, warm, life, stale, base, max)| LifecycleConfig {
                boot_timeout_ms: boot,
                warm_timeout_ms: warm,
                max_lifetime_ms: life,
                heartbeat_stale_ms: stale,
                destroy_backoff_base_ms: base,
                destroy_backoff_max_ms: max,
            })
    }

    fn start_strategy() -> impl Strategy<Value = NodeState> {
        (
            0_i64..1_000_000_000_000,
            prop::option::of(Just("a".to_owned())),
        )
            .prop_map(|(t0, claim)| NodeState::new(t0, claim))
    }

    /// Runs `steps`, checking per-step invariants, and returns every state
    /// visited with the time it was reached.
    fn run(
        start: NodeState,
        steps: &[Step],
        cfg: &LifecycleConfig,
    ) -> Result<Vec<(NodeState, i64)>, TestCaseError> {
        let mut now = start.created_at;
        let mut state = start;
        let mut seen = vec![(state.clone(), now)];
        for step in steps {
            let (event, at) = match step {
                Step::Event(event, dt) => (Some(event.clone()), now + dt),
                Step::Alarm => match deadline(&state, cfg) {
                    Some(at) => (on_deadline(&state, at.max(now), cfg), at.max(now)),
                    None => (None, now),
                },
            };
            now = now.max(at);
            let Some(event) = event else { continue };
            let result = apply(&state, &event, at, cfg);
            if matches!(step, Step::Alarm) {
                // An alarm's event is always accepted and always makes
                // progress, so an alarm loop cannot spin.
                let next = result
                    .as_ref()
                    .map_err(|e| TestCaseError::fail(format!("alarm event refused: {e}")))?;
                prop_assert_ne!(next, &state);
            }
            if let Ok(next) = result {
                // (4) the version moves by exactly one per change.
                if next == state {
                    prop_assert_eq!(next.version, state.version);
                } else {
                    prop_assert_eq!(next.version, state.version + 1);
                }
                // (1) once destroyed, nothing changes.
                if state.status == S::Destroyed {
                    prop_assert_eq!(&next, &state);
                }
                prop_assert_eq!(next.created_at, state.created_at);
                prop_assert!(next.status_since >= state.status_since);
                state = next;
            }
            check_invariants(&state, cfg)?;
            seen.push((state.clone(), now));
        }
        Ok(seen)
    }

    fn check_invariants(state: &NodeState, cfg: &LifecycleConfig) -> Result<(), TestCaseError> {
        // Ready means held, warm means free.
        match state.status {
            S::Ready => prop_assert!(state.claimed_by.is_some()),
            S::Warm => prop_assert!(state.claimed_by.is_none()),
            S::Destroying | S::Destroyed => prop_assert!(state.destroy_attempts >= 1),
            _ => {}
        }
        // (2) every non-terminal state has a deadline.
        let next = deadline(state, cfg);
        prop_assert_eq!(next.is_none(), state.status == S::Destroyed);
        // (6) deadlines are never before the status began.
        if let Some(at) = next {
            prop_assert!(
                at >= state.status_since,
                "{:?} deadline {} before status_since",
                state.status,
                at
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// (1), (2), (4), (6) and the per-step invariants hold along any
        /// sequence of events and alarms.
        #[test]
        fn invariants_hold_along_random_sequences(
            start in start_strategy(),
            steps in prop::collection::vec(step_strategy(), 0..60),
            cfg in cfg_strategy(),
        ) {
            run(start, &steps, &cfg)?;
        }

        /// (1) Once destroyed, every event at any time is refused or a no-op.
        #[test]
        fn destroyed_is_absorbing(
            start in start_strategy(),
            steps in prop::collection::vec(step_strategy(), 0..30),
            after in prop::collection::vec((event_strategy(), -1_000_i64..1_000_000), 1..20),
            cfg in cfg_strategy(),
        ) {
            let seen = run(start, &steps, &cfg)?;
            let (state, now) = seen.last().cloned().unwrap();
            let destroyed = apply(&state, &Event::DestroyRequested, now, &cfg)
                .and_then(|s| apply(&s, &Event::ServerGone, now, &cfg))
                .unwrap();
            for (event, dt) in after {
                match apply(&destroyed, &event, now + dt, &cfg) {
                    Ok(next) => prop_assert_eq!(&next, &destroyed),
                    Err(e) => prop_assert!(
                        ["node_destroyed", "node_not_claimable"].contains(&e.code())
                    ),
                }
            }
        }

        /// (5) From any reachable state, a delete request followed by the
        /// provider's confirmation reaches destroyed.
        #[test]
        fn destroy_request_then_server_gone_always_destroys(
            start in start_strategy(),
            steps in prop::collection::vec(step_strategy(), 0..40),
            cfg in cfg_strategy(),
            dt1 in -100_i64..10_000,
            dt2 in -100_i64..10_000,
        ) {
            for (state, now) in run(start, &steps, &cfg)? {
                let destroying = apply(&state, &Event::DestroyRequested, now + dt1, &cfg).unwrap();
                let destroyed = apply(&destroying, &Event::ServerGone, now + dt1 + dt2, &cfg).unwrap();
                prop_assert_eq!(destroyed.status, S::Destroyed);
            }
        }

        /// No state can avoid destruction: left alone (alarms only), every
        /// node is destroying within three alarms.
        #[test]
        fn alarms_alone_lead_every_node_to_destroying(
            start in start_strategy(),
            steps in prop::collection::vec(step_strategy(), 0..40),
            cfg in cfg_strategy(),
        ) {
            for (mut state, _) in run(start, &steps, &cfg)? {
                for _ in 0..3 {
                    if matches!(state.status, S::Destroying | S::Destroyed) {
                        break;
                    }
                    let at = deadline(&state, &cfg).unwrap();
                    let event = on_deadline(&state, at, &cfg).unwrap();
                    state = apply(&state, &event, at, &cfg).unwrap();
                }
                prop_assert!(matches!(state.status, S::Destroying | S::Destroyed), "{:?}", state.status);
            }
        }

        /// (3) Two claims against the same warm version: both compute
        /// version + 1, a compare-and-set store keeps only the first, and
        /// the loser, re-applied to what was stored, is refused.
        #[test]
        fn concurrent_claims_have_exactly_one_winner(
            t0 in 0_i64..1_000_000_000,
            boot in 0_i64..500,
            beats in prop::collection::vec(0_i64..100, 0..10),
            wait in 0_i64..100,
            first_wins in any::<bool>(),
        ) {
            let cfg = LifecycleConfig::default();
            let mut s = NodeState::new(t0, None);
            s = apply(&s, &created("s"), t0 + boot, &cfg).unwrap();
            s = apply(&s, &Event::AgentReady, t0 + boot + 1, &cfg).unwrap();
            let mut now = t0 + boot + 1;
            for dt in beats {
                now += dt;
                s = apply(&s, &Event::Heartbeat, now, &cfg).unwrap();
            }
            prop_assert_eq!(s.status, S::Warm);
            let base = s;
            let now = now + wait;

            let a = apply(&base, &claim("a"), now, &cfg).unwrap();
            let b = apply(&base, &claim("b"), now, &cfg).unwrap();
            prop_assert_eq!(a.version, base.version + 1);
            prop_assert_eq!(b.version, base.version + 1);

            let mut store = CasStore { row: base.clone() };
            let (winner, loser, loser_id) = if first_wins { (a, b, "b") } else { (b, a, "a") };
            prop_assert!(store.compare_and_set(base.version, winner.clone()));
            prop_assert!(!store.compare_and_set(base.version, loser));
            prop_assert_eq!(&store.row, &winner);
            // The loser reloads and retries: refused, the winner keeps it.
            let err = apply(&store.row, &claim(loser_id), now, &cfg).unwrap_err();
            prop_assert_eq!(err.code(), "node_not_claimable");
        }
    }

    /// A store that writes only if the row still has the version the writer
    /// loaded, as D1 and DO storage do with `WHERE version = ?`.
    struct CasStore {
        row: NodeState,
    }

    impl CasStore {
        fn compare_and_set(&mut self, expected: u64, next: NodeState) -> bool {
            if self.row.version != expected {
                return false;
            }
            self.row = next;
            true
        }
    }
}
