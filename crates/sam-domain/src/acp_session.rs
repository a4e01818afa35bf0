//! An agent session as the control plane sees it: one ACP session with one
//! agent process in one workspace, plus the follow-up prompts waiting for it.
//!
//! ```text
//!   pending ──assigned──▶ assigned ──agent_started──▶ waiting_for_input ◀─┐
//!                                   (queue not empty:    │ prompt queued    │
//!                                    straight to running)│ or prompt_sent   │ turn_ended
//!                                                        ▼                  │ (queue empty)
//!                           ┌──permission_answered──── running ─────────────┤
//!                           │  (none pending), cancel    │  ▲ turn_ended    │
//!                           │  or permission timeout     │  └─(queue not ───┘
//!                           ▼                            │     empty: next prompt)
//!              waiting_for_permission ◀─permission_requested
//!
//!   completed ◀── stop_requested (any live status), idle timeout,
//!                 agent exited 0 while waiting for input
//!   failed    ◀── no workspace / agent start in time, no heartbeat or update
//!                 within the liveness window ("agent unresponsive"), agent
//!                 exited outside a turn with an error
//!   interrupted ◀ the agent process exited mid-turn (running or
//!                 waiting_for_permission)
//! ```
//!
//! Rules that hold everywhere, and why:
//!
//! - [`AcpSession::apply`] and [`AcpSession::enqueue_prompt`] are total:
//!   they return what the adapter must do next ([`SessionEffect`]s) or a
//!   [`SessionTransitionError`] with a stable code, and a refused event
//!   leaves the session untouched. A Durable Object handler is: load, apply,
//!   persist the session together with the effects, perform the effects,
//!   set the alarm to [`AcpSession::deadline`].
//! - One turn at a time: ACP sessions process one `session/prompt` at a time,
//!   so a prompt that arrives while a turn is in flight waits in a FIFO
//!   queue. Prompts are never dropped, reordered or delivered twice: every
//!   accepted prompt id is, at any moment, exactly once in
//!   [`AcpSession::delivered`] or in [`AcpSession::queue`], in the order it
//!   was accepted. A session that ends keeps its queue so the undelivered
//!   prompts can be shown (or resubmitted) instead of vanishing.
//! - Repeated reports are no-ops: a second `agent_started`, an ack for a
//!   turn already known, a `turn_ended` for a turn already over, an answer
//!   to a request already answered. Reports that name a turn or request
//!   carry its id precisely so a late duplicate cannot end the *next* turn.
//! - Terminal statuses (`completed`, `failed`, `interrupted`) absorb every
//!   event without change or effect; only new prompts are refused
//!   (`session_ended`), because accepting one there would silently drop it.
//! - Every live status has a [`deadline`](AcpSession::deadline), so a
//!   session whose agent or vm-agent goes quiet always ends. Timed events are
//!   refused before they are due (`deadline_not_reached`), so a stale alarm
//!   cannot cut a session short.
//! - Time never runs backwards for one session: an event stamped before the
//!   latest recorded time is taken as happening at that time.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Created; no workspace has been chosen for it yet.
    Pending,
    /// Bound to a workspace; the vm-agent is starting the agent process
    /// (`initialize`, `session/new`).
    Assigned,
    /// A turn is in flight: a `session/prompt` is awaiting its response.
    Running,
    /// The agent is idle and the queue is empty.
    WaitingForInput,
    /// Mid-turn, the agent is blocked on one or more
    /// `session/request_permission` requests.
    WaitingForPermission,
    /// Ended normally (stopped, idle, or the agent exited cleanly). Terminal.
    Completed,
    /// Ended by an error; [`AcpSession::end_reason`] says which. Terminal.
    Failed,
    /// The agent process died mid-turn. Terminal.
    Interrupted,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 8] = [
        SessionStatus::Pending,
        SessionStatus::Assigned,
        SessionStatus::Running,
        SessionStatus::WaitingForInput,
        SessionStatus::WaitingForPermission,
        SessionStatus::Completed,
        SessionStatus::Failed,
        SessionStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Assigned => "assigned",
            SessionStatus::Running => "running",
            SessionStatus::WaitingForInput => "waiting_for_input",
            SessionStatus::WaitingForPermission => "waiting_for_permission",
            SessionStatus::Completed => "completed",
            SessionStatus::Failed => "failed",
            SessionStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionStatus::Completed | SessionStatus::Failed | SessionStatus::Interrupted
        )
    }

    /// A turn is in flight, so new prompts wait in the queue.
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            SessionStatus::Running | SessionStatus::WaitingForPermission
        )
    }
}

/// Why the agent ended a turn: the `stopReason` of a `session/prompt`
/// response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    MaxTurnRequests,
    Refusal,
    /// The client sent `session/cancel`.
    Cancelled,
}

impl StopReason {
    pub const ALL: [StopReason; 5] = [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::MaxTurnRequests,
        StopReason::Refusal,
        StopReason::Cancelled,
    ];

    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::MaxTurnRequests => "max_turn_requests",
            StopReason::Refusal => "refusal",
            StopReason::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Durations that drive a session's deadlines, in milliseconds. All values
/// are expected to be non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// From creation until a workspace must be assigned (covers a node
    /// being provisioned for it).
    pub assign_timeout_ms: i64,
    /// From assignment until the agent must have started.
    pub start_timeout_ms: i64,
    /// Silence (no heartbeat, no update) after which a live agent is
    /// considered unresponsive.
    pub liveness_window_ms: i64,
    /// How long a permission request may wait for a human before the turn
    /// is cancelled.
    pub permission_timeout_ms: i64,
    /// How long an idle agent is kept before it is stopped.
    pub idle_timeout_ms: i64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        const MINUTE: i64 = 60_000;
        SessionConfig {
            assign_timeout_ms: 20 * MINUTE,
            start_timeout_ms: 5 * MINUTE,
            liveness_window_ms: 3 * MINUTE,
            permission_timeout_ms: 30 * MINUTE,
            idle_timeout_ms: 30 * MINUTE,
        }
    }
}

/// A follow-up prompt waiting for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedPrompt {
    /// Chosen by the caller (a ULID); the idempotency key for the prompt.
    pub id: String,
    pub text: String,
}

/// Something that happened to a session, reported by the control plane,
/// the vm-agent or the agent (through the vm-agent's ACP connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The control plane chose the workspace the agent runs in.
    Assigned {
        workspace_id: String,
    },
    /// The agent answered `initialize` and `session/new`.
    AgentStarted,
    /// A turn with this prompt began: the acknowledgement of a
    /// [`SessionEffect::SendPrompt`], or a prompt sent by someone else (the
    /// task runner's first prompt goes out with the agent's start).
    PromptSent {
        prompt_id: String,
    },
    /// Any `session/update` (message chunk, tool call, plan, ...). Only
    /// liveness matters here.
    UpdateReceived,
    PermissionRequested {
        request_id: String,
    },
    PermissionAnswered {
        request_id: String,
    },
    /// The `session/prompt` for `prompt_id` returned.
    TurnEnded {
        prompt_id: String,
        stop_reason: StopReason,
    },
    /// The vm-agent reports the agent process alive.
    Heartbeat,
    /// The vm-agent reports the agent process gone: its exit code, `None`
    /// when it was killed by a signal.
    AgentExited {
        code: Option<i32>,
    },
    StopRequested,
    /// Cancel the current turn (not the session).
    CancelRequested,
    /// The alarm fired at or after [`AcpSession::deadline`].
    DeadlinePassed,
}

impl SessionEvent {
    /// The event's name, without its data (for errors and logs).
    pub fn name(&self) -> &'static str {
        match self {
            SessionEvent::Assigned { .. } => "assigned",
            SessionEvent::AgentStarted => "agent_started",
            SessionEvent::PromptSent { .. } => "prompt_sent",
            SessionEvent::UpdateReceived => "update_received",
            SessionEvent::PermissionRequested { .. } => "permission_requested",
            SessionEvent::PermissionAnswered { .. } => "permission_answered",
            SessionEvent::TurnEnded { .. } => "turn_ended",
            SessionEvent::Heartbeat => "heartbeat",
            SessionEvent::AgentExited { .. } => "agent_exited",
            SessionEvent::StopRequested => "stop_requested",
            SessionEvent::CancelRequested => "cancel_requested",
            SessionEvent::DeadlinePassed => "deadline_passed",
        }
    }
}

/// What the adapter must do after an accepted event, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEffect {
    /// Send `session/prompt` with this text. The session is already
    /// `running` for it; the agent's response arrives as
    /// [`SessionEvent::TurnEnded`] with the same id.
    SendPrompt { prompt_id: String, text: String },
    /// Send `session/cancel` and answer each listed permission request with
    /// the `cancelled` outcome, as ACP requires. The agent keeps running;
    /// the turn ends with [`StopReason::Cancelled`].
    CancelTurn {
        prompt_id: String,
        permission_request_ids: Vec<String>,
    },
    /// Stop the agent process (by process group, with a timeout: some
    /// agents ignore stdin closing).
    StopAgent,
}

/// Why an event or a prompt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionTransitionError {
    #[error("a session that is {} cannot accept {event}", from.as_str())]
    InvalidTransition {
        from: SessionStatus,
        event: &'static str,
    },
    /// A prompt for a session that has ended: refused so that the caller
    /// tells the user rather than the prompt silently going nowhere.
    #[error("the session has ended ({})", status.as_str())]
    SessionEnded { status: SessionStatus },
    #[error("the session is already assigned to another workspace")]
    WorkspaceMismatch,
    /// A report of a turn other than the one in flight.
    #[error("another turn is in flight")]
    TurnInProgress,
    /// A turn was reported started with a prompt that is still queued
    /// behind others; accepting it would reorder the queue.
    #[error("that prompt is still queued")]
    PromptStillQueued,
    /// The agent ended its turn while a permission request of the turn is
    /// unanswered. The adapter answers the pending requests (`cancelled`),
    /// applies [`SessionEvent::PermissionAnswered`] for each, then applies
    /// the turn end again.
    #[error("a permission request of this turn is still unanswered")]
    PermissionPending,
    #[error("the deadline is not before {due_at}")]
    NotDue { due_at: UnixMillis },
}

impl SessionTransitionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SessionTransitionError::InvalidTransition { .. } => "invalid_transition",
            SessionTransitionError::SessionEnded { .. } => "session_ended",
            SessionTransitionError::WorkspaceMismatch => "workspace_mismatch",
            SessionTransitionError::TurnInProgress => "turn_in_progress",
            SessionTransitionError::PromptStillQueued => "prompt_still_queued",
            SessionTransitionError::PermissionPending => "permission_pending",
            SessionTransitionError::NotDue { .. } => "deadline_not_reached",
        }
    }
}

/// The persisted record of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcpSession {
    pub status: SessionStatus,
    pub workspace_id: Option<String>,
    pub created_at: UnixMillis,
    /// When the current status was entered.
    pub status_since: UnixMillis,
    /// The latest sign of life from the agent or its vm-agent (or the
    /// moment the session started waiting for one). Never before
    /// `status_since`.
    pub last_activity_at: UnixMillis,
    /// The prompt of the turn in flight; set exactly while busy (kept when
    /// the session ends, to say which turn was cut short).
    pub current_prompt: Option<String>,
    /// A cancel was sent for the current turn; a second one is a no-op.
    pub cancel_requested: bool,
    /// Unanswered permission requests of the current turn; non-empty
    /// exactly while `waiting_for_permission`.
    pub pending_permissions: Vec<String>,
    /// Prompts waiting for the agent, oldest first.
    pub queue: VecDeque<QueuedPrompt>,
    /// Ids of the prompts that started a turn, in order. Kept so that a
    /// repeated prompt is recognised however late it comes back; one short
    /// id per turn of the conversation.
    pub delivered: Vec<String>,
    pub last_stop_reason: Option<StopReason>,
    /// Why the session ended.
    pub end_reason: Option<String>,
}

/// The reason recorded when the liveness window runs out.
pub const UNRESPONSIVE: &str = "agent unresponsive";

impl AcpSession {
    /// A new session, not yet assigned to a workspace.
    pub fn new(now: UnixMillis) -> Self {
        AcpSession {
            status: SessionStatus::Pending,
            workspace_id: None,
            created_at: now,
            status_since: now,
            last_activity_at: now,
            current_prompt: None,
            cancel_requested: false,
            pending_permissions: Vec::new(),
            queue: VecDeque::new(),
            delivered: Vec::new(),
            last_stop_reason: None,
            end_reason: None,
        }
    }

    /// The single next time something must happen to this session, or
    /// `None` once it has ended. The alarm should be set to it after every
    /// accepted event: liveness moves it on every heartbeat, which is why it
    /// is computed rather than emitted as an effect.
    pub fn deadline(&self, cfg: &SessionConfig) -> Option<UnixMillis> {
        self.next_timer(cfg).map(|(at, _)| at)
    }

    /// Queues a prompt, or sends it at once when the agent is waiting for
    /// input. A prompt id seen before (queued, in flight or delivered) is
    /// ignored, so a client may retry a submission safely.
    pub fn enqueue_prompt(
        &mut self,
        id: &str,
        text: &str,
        now: UnixMillis,
    ) -> Result<Vec<SessionEffect>, SessionTransitionError> {
        if self.status.is_terminal() {
            return Err(SessionTransitionError::SessionEnded {
                status: self.status,
            });
        }
        if self.knows_prompt(id) {
            return Ok(Vec::new());
        }
        let now = now.max(self.latest_time());
        self.queue.push_back(QueuedPrompt {
            id: id.to_owned(),
            text: text.to_owned(),
        });
        if self.status == SessionStatus::WaitingForInput {
            Ok(self.start_next_turn(now))
        } else {
            // Pending and assigned sessions deliver on agent start; busy
            // ones when the turn ends.
            Ok(Vec::new())
        }
    }

    /// Applies `event` at `now`: the effects to perform, in order, or why the
    /// event is refused (the session is then unchanged).
    pub fn apply(
        &mut self,
        event: &SessionEvent,
        now: UnixMillis,
        cfg: &SessionConfig,
    ) -> Result<Vec<SessionEffect>, SessionTransitionError> {
        if self.status.is_terminal() {
            return Ok(Vec::new());
        }
        let now = now.max(self.latest_time());
        let mut next = self.clone();
        let effects = next.transition(event, now, cfg)?;
        *self = next;
        Ok(effects)
    }

    fn transition(
        &mut self,
        event: &SessionEvent,
        now: UnixMillis,
        cfg: &SessionConfig,
    ) -> Result<Vec<SessionEffect>, SessionTransitionError> {
        use SessionEvent as E;
        use SessionStatus as S;
        let from = self.status;
        let invalid = || SessionTransitionError::InvalidTransition {
            from,
            event: event.name(),
        };
        // Nothing but the control plane talks about a session before it has
        // a workspace.
        if from == S::Pending
            && !matches!(
                event,
                E::Assigned { .. } | E::StopRequested | E::CancelRequested | E::DeadlinePassed
            )
        {
            return Err(invalid());
        }
        let effects = match event {
            E::Assigned { workspace_id } => match &self.workspace_id {
                None => {
                    self.workspace_id = Some(workspace_id.clone());
                    self.enter(S::Assigned, now);
                    Vec::new()
                }
                Some(known) if known == workspace_id => Vec::new(),
                Some(_) => return Err(SessionTransitionError::WorkspaceMismatch),
            },
            E::AgentStarted => {
                if from == S::Assigned {
                    self.start_next_turn(now)
                } else {
                    self.touch(now);
                    Vec::new()
                }
            }
            E::PromptSent { prompt_id } => self.prompt_sent(prompt_id, now)?,
            E::UpdateReceived | E::Heartbeat => {
                self.touch(now);
                Vec::new()
            }
            E::PermissionRequested { request_id } => match from {
                // The agent asked after we cancelled: answer it `cancelled`
                // at once rather than block the turn on a human.
                S::Running if self.cancel_requested => {
                    self.touch(now);
                    vec![SessionEffect::CancelTurn {
                        prompt_id: self.current_prompt.clone().unwrap_or_default(),
                        permission_request_ids: vec![request_id.clone()],
                    }]
                }
                S::Running | S::WaitingForPermission => {
                    if !self.pending_permissions.contains(request_id) {
                        self.pending_permissions.push(request_id.clone());
                    }
                    if from == S::Running {
                        self.enter(S::WaitingForPermission, now);
                    } else {
                        self.touch(now);
                    }
                    Vec::new()
                }
                _ => return Err(invalid()),
            },
            E::PermissionAnswered { request_id } => {
                // An answer to a request no longer pending (answered, or
                // swept by a cancel) is a late duplicate.
                if let Some(i) = self
                    .pending_permissions
                    .iter()
                    .position(|r| r == request_id)
                {
                    self.pending_permissions.remove(i);
                    if self.pending_permissions.is_empty() {
                        self.enter(S::Running, now);
                    }
                }
                Vec::new()
            }
            E::TurnEnded {
                prompt_id,
                stop_reason,
            } => {
                if from.is_busy() && self.current_prompt.as_ref() == Some(prompt_id) {
                    if from == S::WaitingForPermission {
                        return Err(SessionTransitionError::PermissionPending);
                    }
                    self.last_stop_reason = Some(*stop_reason);
                    self.current_prompt = None;
                    self.cancel_requested = false;
                    self.start_next_turn(now)
                } else if self.delivered.contains(prompt_id) {
                    // The end of a turn already over, reported again.
                    Vec::new()
                } else {
                    return Err(invalid());
                }
            }
            E::AgentExited { code } => {
                let how = match code {
                    Some(code) => format!("code {code}"),
                    None => "a signal".to_owned(),
                };
                match from {
                    S::Assigned => {
                        self.end(
                            S::Failed,
                            format!("the agent exited before it started ({how})"),
                            now,
                        );
                    }
                    S::Running | S::WaitingForPermission => {
                        self.end(
                            S::Interrupted,
                            format!("the agent exited mid-turn ({how})"),
                            now,
                        );
                    }
                    _ if *code == Some(0) => self.end(S::Completed, "the agent exited".into(), now),
                    _ => self.end(S::Failed, format!("the agent exited ({how})"), now),
                }
                // The process is gone: nothing to stop.
                Vec::new()
            }
            E::StopRequested => {
                self.end(S::Completed, "stopped".into(), now);
                if from == S::Pending {
                    Vec::new()
                } else {
                    vec![SessionEffect::StopAgent]
                }
            }
            E::CancelRequested => {
                if from.is_busy() && !self.cancel_requested {
                    self.cancel_turn(now)
                } else {
                    // Nothing in flight, or the cancel is already on its way.
                    Vec::new()
                }
            }
            E::DeadlinePassed => self.on_deadline(now, cfg)?,
        };
        Ok(effects)
    }

    fn prompt_sent(
        &mut self,
        prompt_id: &str,
        now: UnixMillis,
    ) -> Result<Vec<SessionEffect>, SessionTransitionError> {
        use SessionStatus as S;
        if self.current_prompt.as_deref() == Some(prompt_id) {
            self.touch(now);
            return Ok(Vec::new());
        }
        if self.delivered.iter().any(|d| d == prompt_id) {
            return Ok(Vec::new());
        }
        if self.queue.iter().any(|p| p.id == prompt_id) {
            return Err(SessionTransitionError::PromptStillQueued);
        }
        match self.status {
            // A turn someone else started; on `assigned` it also tells us
            // the agent is up.
            S::WaitingForInput | S::Assigned => {
                self.begin_turn(prompt_id.to_owned(), now);
                Ok(Vec::new())
            }
            _ => Err(SessionTransitionError::TurnInProgress),
        }
    }

    fn on_deadline(
        &mut self,
        now: UnixMillis,
        cfg: &SessionConfig,
    ) -> Result<Vec<SessionEffect>, SessionTransitionError> {
        use SessionStatus as S;
        let Some((at, timer)) = self.next_timer(cfg) else {
            return Ok(Vec::new());
        };
        if now < at {
            return Err(SessionTransitionError::NotDue { due_at: at });
        }
        let effects = match timer {
            Timer::Assign => {
                self.end(S::Failed, "no workspace was assigned in time".into(), now);
                Vec::new()
            }
            Timer::Start => {
                self.end(S::Failed, "the agent did not start in time".into(), now);
                vec![SessionEffect::StopAgent]
            }
            Timer::Liveness => {
                self.end(S::Failed, UNRESPONSIVE.into(), now);
                // It may be hung rather than gone.
                vec![SessionEffect::StopAgent]
            }
            // Nobody answered: give the agent its turn back (cancelled)
            // rather than kill a session a human may return to.
            Timer::Permission => self.cancel_turn(now),
            Timer::Idle => {
                self.end(S::Completed, "idle".into(), now);
                vec![SessionEffect::StopAgent]
            }
        };
        Ok(effects)
    }

    /// The timers running in the current status. On ties the first listed
    /// wins: an unresponsive agent is the more telling reason.
    fn timers(&self, cfg: &SessionConfig) -> Vec<(UnixMillis, Timer)> {
        use SessionStatus as S;
        let since = |ms: i64| self.status_since.saturating_add(ms);
        let liveness = (
            self.last_activity_at.saturating_add(cfg.liveness_window_ms),
            Timer::Liveness,
        );
        match self.status {
            S::Pending => vec![(since(cfg.assign_timeout_ms), Timer::Assign)],
            // Heartbeats during the start do not extend it: an agent that
            // never finishes `initialize` must still fail.
            S::Assigned => vec![(since(cfg.start_timeout_ms), Timer::Start)],
            S::Running => vec![liveness],
            S::WaitingForPermission => vec![
                liveness,
                (since(cfg.permission_timeout_ms), Timer::Permission),
            ],
            S::WaitingForInput => vec![liveness, (since(cfg.idle_timeout_ms), Timer::Idle)],
            S::Completed | S::Failed | S::Interrupted => Vec::new(),
        }
    }

    fn next_timer(&self, cfg: &SessionConfig) -> Option<(UnixMillis, Timer)> {
        self.timers(cfg)
            .into_iter()
            .reduce(|first, other| if other.0 < first.0 { other } else { first })
            .map(|(at, timer)| (at.max(self.status_since), timer))
    }

    fn knows_prompt(&self, id: &str) -> bool {
        self.current_prompt.as_deref() == Some(id)
            || self.delivered.iter().any(|d| d == id)
            || self.queue.iter().any(|p| p.id == id)
    }

    fn latest_time(&self) -> UnixMillis {
        self.status_since.max(self.last_activity_at)
    }

    fn touch(&mut self, now: UnixMillis) {
        self.last_activity_at = self.last_activity_at.max(now);
    }

    fn enter(&mut self, status: SessionStatus, now: UnixMillis) {
        self.status = status;
        self.status_since = now;
        // Entering a status starts its clocks afresh.
        self.touch(now);
    }

    fn begin_turn(&mut self, prompt_id: String, now: UnixMillis) {
        self.delivered.push(prompt_id.clone());
        self.current_prompt = Some(prompt_id);
        self.cancel_requested = false;
        self.pending_permissions.clear();
        self.enter(SessionStatus::Running, now);
    }

    /// With the agent idle: the oldest queued prompt starts a turn, or the
    /// session waits for input.
    fn start_next_turn(&mut self, now: UnixMillis) -> Vec<SessionEffect> {
        let Some(QueuedPrompt { id, text }) = self.queue.pop_front() else {
            self.enter(SessionStatus::WaitingForInput, now);
            return Vec::new();
        };
        self.begin_turn(id.clone(), now);
        vec![SessionEffect::SendPrompt {
            prompt_id: id,
            text,
        }]
    }

    /// Cancels the turn in flight. Pending permission requests are answered
    /// by the cancel, so the turn is simply `running` until it ends.
    fn cancel_turn(&mut self, now: UnixMillis) -> Vec<SessionEffect> {
        self.cancel_requested = true;
        let permission_request_ids = std::mem::take(&mut self.pending_permissions);
        if self.status == SessionStatus::WaitingForPermission {
            self.enter(SessionStatus::Running, now);
        } else {
            self.touch(now);
        }
        vec![SessionEffect::CancelTurn {
            prompt_id: self.current_prompt.clone().unwrap_or_default(),
            permission_request_ids,
        }]
    }

    fn end(&mut self, status: SessionStatus, reason: String, now: UnixMillis) {
        self.end_reason = Some(reason);
        self.enter(status, now);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Assign,
    Start,
    Liveness,
    Permission,
    Idle,
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionEvent as E;
    use SessionStatus as S;
    use proptest::prelude::*;

    /// Small durations so that tests read as plain arithmetic.
    const CFG: SessionConfig = SessionConfig {
        assign_timeout_ms: 100,
        start_timeout_ms: 50,
        liveness_window_ms: 30,
        permission_timeout_ms: 200,
        idle_timeout_ms: 500,
    };

    fn ok(s: &mut AcpSession, event: &E, now: i64) -> Vec<SessionEffect> {
        s.apply(event, now, &CFG)
            .unwrap_or_else(|e| panic!("{} refused {event:?}: {e}", s.status.as_str()))
    }

    fn send(id: &str, text: &str) -> SessionEffect {
        SessionEffect::SendPrompt {
            prompt_id: id.into(),
            text: text.into(),
        }
    }

    fn ended(id: &str, stop_reason: StopReason) -> E {
        E::TurnEnded {
            prompt_id: id.into(),
            stop_reason,
        }
    }

    fn asked(id: &str) -> E {
        E::PermissionRequested {
            request_id: id.into(),
        }
    }

    fn answered(id: &str) -> E {
        E::PermissionAnswered {
            request_id: id.into(),
        }
    }

    fn assigned(ws: &str) -> E {
        E::Assigned {
            workspace_id: ws.into(),
        }
    }

    /// A started, idle session at t=10.
    fn idle() -> AcpSession {
        let mut s = AcpSession::new(0);
        ok(&mut s, &assigned("ws1"), 5);
        ok(&mut s, &E::AgentStarted, 10);
        assert_eq!(s.status, S::WaitingForInput);
        s
    }

    #[test]
    fn a_conversation_with_follow_ups() {
        let mut s = AcpSession::new(0);
        // A prompt submitted before the agent is up waits for it.
        assert_eq!(s.enqueue_prompt("p1", "fix the bug", 1), Ok(vec![]));
        ok(&mut s, &assigned("ws1"), 2);
        assert_eq!(s.status, S::Assigned);
        assert_eq!(ok(&mut s, &E::AgentStarted, 3), [send("p1", "fix the bug")]);
        assert_eq!(
            (s.status, s.current_prompt.as_deref()),
            (S::Running, Some("p1"))
        );
        assert_eq!(
            ok(
                &mut s,
                &E::PromptSent {
                    prompt_id: "p1".into()
                },
                4
            ),
            []
        );
        ok(&mut s, &E::UpdateReceived, 5);
        // Follow-ups while busy queue up, in order.
        assert_eq!(s.enqueue_prompt("p2", "and add a test", 6), Ok(vec![]));
        assert_eq!(s.enqueue_prompt("p3", "then run it", 7), Ok(vec![]));
        assert_eq!(
            ok(&mut s, &ended("p1", StopReason::EndTurn), 8),
            [send("p2", "and add a test")]
        );
        assert_eq!(
            ok(&mut s, &ended("p2", StopReason::EndTurn), 9),
            [send("p3", "then run it")]
        );
        assert_eq!(ok(&mut s, &ended("p3", StopReason::EndTurn), 10), []);
        assert_eq!(s.status, S::WaitingForInput);
        // Idle: a prompt goes out at once.
        assert_eq!(
            s.enqueue_prompt("p4", "thanks", 11),
            Ok(vec![send("p4", "thanks")])
        );
        assert_eq!(s.delivered, ["p1", "p2", "p3", "p4"]);
        assert_eq!(
            ok(&mut s, &E::StopRequested, 12),
            [SessionEffect::StopAgent]
        );
        assert_eq!(
            (s.status, s.end_reason.as_deref()),
            (S::Completed, Some("stopped"))
        );
    }

    #[test]
    fn duplicate_prompts_are_ignored_wherever_the_first_copy_is() {
        let mut s = idle();
        assert_eq!(s.enqueue_prompt("p1", "a", 11).unwrap().len(), 1);
        assert_eq!(s.enqueue_prompt("p1", "a", 12), Ok(vec![]), "in flight");
        s.enqueue_prompt("p2", "b", 13).unwrap();
        assert_eq!(s.enqueue_prompt("p2", "b", 14), Ok(vec![]), "queued");
        ok(&mut s, &ended("p1", StopReason::EndTurn), 15);
        ok(&mut s, &ended("p2", StopReason::EndTurn), 16);
        assert_eq!(s.enqueue_prompt("p1", "a", 17), Ok(vec![]), "delivered");
        assert_eq!(s.delivered, ["p1", "p2"]);
        assert!(s.queue.is_empty());
    }

    #[test]
    fn cancel_stops_the_turn_not_the_agent() {
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 11).unwrap();
        let effects = ok(&mut s, &E::CancelRequested, 12);
        assert_eq!(
            effects,
            [SessionEffect::CancelTurn {
                prompt_id: "p1".into(),
                permission_request_ids: vec![]
            }]
        );
        assert_eq!(
            ok(&mut s, &E::CancelRequested, 13),
            [],
            "already cancelling"
        );
        assert_eq!(s.status, S::Running, "the turn is still winding down");
        ok(&mut s, &ended("p1", StopReason::Cancelled), 14);
        assert_eq!(s.status, S::WaitingForInput);
        assert_eq!(s.last_stop_reason, Some(StopReason::Cancelled));
        assert!(!s.cancel_requested);
        // Nothing to cancel while idle.
        assert_eq!(ok(&mut s, &E::CancelRequested, 15), []);
        assert_eq!(s.status, S::WaitingForInput);
    }

    #[test]
    fn a_cancelled_turn_hands_over_to_the_next_queued_prompt() {
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 11).unwrap();
        s.enqueue_prompt("p2", "b", 12).unwrap();
        ok(&mut s, &E::CancelRequested, 13);
        assert_eq!(
            ok(&mut s, &ended("p1", StopReason::Cancelled), 14),
            [send("p2", "b")]
        );
        assert!(!s.cancel_requested, "the cancel belonged to p1's turn");
    }

    #[test]
    fn permissions_block_the_turn_until_answered_or_cancelled() {
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 11).unwrap();
        ok(&mut s, &asked("r1"), 12);
        ok(&mut s, &asked("r2"), 13);
        ok(&mut s, &asked("r2"), 13);
        assert_eq!(
            (s.status, s.pending_permissions.len()),
            (S::WaitingForPermission, 2)
        );
        // The turn cannot end under an open request.
        let err = s
            .apply(&ended("p1", StopReason::EndTurn), 14, &CFG)
            .unwrap_err();
        assert_eq!(err.code(), "permission_pending");
        ok(&mut s, &answered("r1"), 15);
        assert_eq!(s.status, S::WaitingForPermission);
        ok(&mut s, &answered("nope"), 15);
        ok(&mut s, &answered("r2"), 16);
        assert_eq!(s.status, S::Running);
        ok(&mut s, &answered("r2"), 17);
        assert_eq!(s.status, S::Running, "a repeated answer is a no-op");

        // A cancel answers every pending request.
        ok(&mut s, &asked("r3"), 18);
        assert_eq!(
            ok(&mut s, &E::CancelRequested, 19),
            [SessionEffect::CancelTurn {
                prompt_id: "p1".into(),
                permission_request_ids: vec!["r3".into()]
            }]
        );
        assert_eq!(s.status, S::Running);
        // A request after the cancel is answered `cancelled` at once.
        assert_eq!(
            ok(&mut s, &asked("r4"), 20),
            [SessionEffect::CancelTurn {
                prompt_id: "p1".into(),
                permission_request_ids: vec!["r4".into()]
            }]
        );
        assert_eq!(s.status, S::Running);
        ok(&mut s, &ended("p1", StopReason::Cancelled), 21);
        assert_eq!(s.status, S::WaitingForInput);
    }

    #[test]
    fn an_unanswered_permission_request_times_out_into_a_cancel() {
        let cfg = SessionConfig {
            liveness_window_ms: 1_000,
            ..CFG
        };
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 11).unwrap();
        s.apply(&asked("r1"), 20, &cfg).unwrap();
        assert_eq!(s.deadline(&cfg), Some(220));
        // Heartbeats keep it alive but do not extend the human's time.
        s.apply(&E::Heartbeat, 200, &cfg).unwrap();
        assert_eq!(s.deadline(&cfg), Some(220));
        let err = s.apply(&E::DeadlinePassed, 219, &cfg).unwrap_err();
        assert_eq!(err, SessionTransitionError::NotDue { due_at: 220 });
        assert_eq!(
            s.apply(&E::DeadlinePassed, 220, &cfg).unwrap(),
            [SessionEffect::CancelTurn {
                prompt_id: "p1".into(),
                permission_request_ids: vec!["r1".into()]
            }]
        );
        assert_eq!(s.status, S::Running);
    }

    #[test]
    fn silence_while_running_fails_the_session_as_unresponsive() {
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 100).unwrap();
        assert_eq!(s.deadline(&CFG), Some(130));
        ok(&mut s, &E::UpdateReceived, 120);
        assert_eq!(s.deadline(&CFG), Some(150), "an update is a sign of life");
        ok(&mut s, &E::Heartbeat, 140);
        assert_eq!(s.deadline(&CFG), Some(170), "so is a heartbeat");
        assert_eq!(
            ok(&mut s, &E::DeadlinePassed, 170),
            [SessionEffect::StopAgent]
        );
        assert_eq!(
            (s.status, s.end_reason.as_deref()),
            (S::Failed, Some(UNRESPONSIVE))
        );
        // The undelivered and in-flight prompts stay on record.
        assert_eq!(s.current_prompt.as_deref(), Some("p1"));
        assert_eq!(
            s.enqueue_prompt("p2", "b", 171).unwrap_err().code(),
            "session_ended"
        );
    }

    #[test]
    fn the_agent_dying_mid_turn_interrupts_and_idle_exit_completes() {
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 11).unwrap();
        ok(&mut s, &asked("r1"), 12);
        assert_eq!(ok(&mut s, &E::AgentExited { code: None }, 13), []);
        assert_eq!(s.status, S::Interrupted);
        assert_eq!(
            s.end_reason.as_deref(),
            Some("the agent exited mid-turn (a signal)")
        );

        let mut s = idle();
        ok(&mut s, &E::AgentExited { code: Some(0) }, 11);
        assert_eq!(s.status, S::Completed);
        let mut s = idle();
        ok(&mut s, &E::AgentExited { code: Some(2) }, 11);
        assert_eq!(
            (s.status, s.end_reason.as_deref()),
            (S::Failed, Some("the agent exited (code 2)"))
        );
        let mut s = AcpSession::new(0);
        ok(&mut s, &assigned("ws"), 1);
        ok(&mut s, &E::AgentExited { code: Some(1) }, 2);
        assert_eq!(s.status, S::Failed);
    }

    #[test]
    fn start_assign_and_idle_deadlines() {
        let mut s = AcpSession::new(0);
        assert_eq!(s.deadline(&CFG), Some(100));
        assert_eq!(ok(&mut s, &E::DeadlinePassed, 100), []);
        assert_eq!(s.status, S::Failed);

        let mut s = AcpSession::new(0);
        ok(&mut s, &assigned("ws"), 10);
        ok(&mut s, &E::Heartbeat, 50);
        assert_eq!(
            s.deadline(&CFG),
            Some(60),
            "heartbeats do not extend the start"
        );
        assert_eq!(
            ok(&mut s, &E::DeadlinePassed, 60),
            [SessionEffect::StopAgent]
        );
        assert_eq!(
            s.end_reason.as_deref(),
            Some("the agent did not start in time")
        );

        let cfg = SessionConfig {
            liveness_window_ms: 10_000,
            ..CFG
        };
        let mut s = idle();
        assert_eq!(s.deadline(&cfg), Some(510));
        assert_eq!(
            s.apply(&E::DeadlinePassed, 510, &cfg),
            Ok(vec![SessionEffect::StopAgent])
        );
        assert_eq!(
            (s.status, s.end_reason.as_deref()),
            (S::Completed, Some("idle"))
        );
        assert_eq!(s.deadline(&cfg), None);
    }

    #[test]
    fn turns_started_elsewhere_are_tracked() {
        // The task runner's first prompt goes out with the agent's start.
        let mut s = AcpSession::new(0);
        ok(&mut s, &assigned("ws"), 1);
        ok(
            &mut s,
            &E::PromptSent {
                prompt_id: "task".into(),
            },
            2,
        );
        assert_eq!(
            (s.status, s.current_prompt.as_deref()),
            (S::Running, Some("task"))
        );
        ok(&mut s, &E::AgentStarted, 3);
        assert_eq!(s.status, S::Running, "a late start report is a no-op");
        let err = s
            .apply(
                &E::PromptSent {
                    prompt_id: "x".into(),
                },
                4,
                &CFG,
            )
            .unwrap_err();
        assert_eq!(err.code(), "turn_in_progress");
        s.enqueue_prompt("q", "b", 5).unwrap();
        let err = s
            .apply(
                &E::PromptSent {
                    prompt_id: "q".into(),
                },
                6,
                &CFG,
            )
            .unwrap_err();
        assert_eq!(err.code(), "prompt_still_queued");
        ok(&mut s, &ended("task", StopReason::EndTurn), 7);
        assert_eq!(s.current_prompt.as_deref(), Some("q"));
        // A late duplicate end of the first turn must not end this one.
        assert_eq!(ok(&mut s, &ended("task", StopReason::EndTurn), 8), []);
        assert_eq!(
            (s.status, s.current_prompt.as_deref()),
            (S::Running, Some("q"))
        );
        let err = s
            .apply(&ended("never", StopReason::EndTurn), 9, &CFG)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_transition");
    }

    #[test]
    fn refusals_have_stable_codes() {
        let mut s = AcpSession::new(0);
        for event in [E::AgentStarted, E::Heartbeat, E::UpdateReceived, asked("r")] {
            assert_eq!(
                s.apply(&event, 1, &CFG).unwrap_err().code(),
                "invalid_transition"
            );
        }
        ok(&mut s, &assigned("ws1"), 1);
        ok(&mut s, &assigned("ws1"), 2);
        assert_eq!(
            s.apply(&assigned("ws2"), 3, &CFG).unwrap_err().code(),
            "workspace_mismatch"
        );
        assert_eq!(
            s.apply(&asked("r"), 3, &CFG).unwrap_err().code(),
            "invalid_transition"
        );
        assert_eq!(
            s.apply(&E::DeadlinePassed, 3, &CFG).unwrap_err().code(),
            "deadline_not_reached"
        );
    }

    #[test]
    fn time_never_runs_backwards_for_a_session() {
        let mut s = idle(); // entered waiting_for_input at 10
        s.enqueue_prompt("p1", "a", 3).unwrap();
        assert_eq!(s.status_since, 10);
        ok(&mut s, &E::Heartbeat, 0);
        assert_eq!(s.last_activity_at, 10);
    }

    #[test]
    fn names_and_serde_use_snake_case() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for r in StopReason::ALL {
            assert_eq!(StopReason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        let event: E = serde_json::from_str(
            r#"{"type":"turn_ended","prompt_id":"p","stop_reason":"max_tokens"}"#,
        )
        .unwrap();
        assert_eq!(event, ended("p", StopReason::MaxTokens));
        let mut s = idle();
        s.enqueue_prompt("p1", "a", 11).unwrap();
        s.enqueue_prompt("p2", "b", 12).unwrap();
        let stored = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<AcpSession>(&stored).unwrap(), s);
    }

    // ---- properties over random interleavings ----

    #[derive(Debug, Clone)]
    enum Step {
        Event(E, i64),
        Enqueue(String, i64),
        /// The alarm fires at the deadline.
        Alarm,
        /// The agent ends whatever turn is in flight (as a real one would).
        EndCurrent(StopReason),
        /// The human answers the oldest pending request.
        AnswerOldest,
    }

    fn stop_reason() -> impl Strategy<Value = StopReason> {
        prop::sample::select(StopReason::ALL.to_vec())
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        let id = || prop::sample::select(vec!["a", "b", "c", "d"]);
        let event = prop_oneof![
            1 => prop::sample::select(vec!["ws1", "ws2"]).prop_map(assigned),
            2 => Just(E::AgentStarted),
            1 => id().prop_map(|p| E::PromptSent { prompt_id: format!("x{p}") }),
            3 => Just(E::UpdateReceived),
            2 => id().prop_map(asked),
            2 => id().prop_map(answered),
            2 => (prop::sample::select(vec!["p0", "p1", "p2", "xa", "xb", "zz"]), stop_reason())
                .prop_map(|(p, r)| ended(p, r)),
            3 => Just(E::Heartbeat),
            1 => prop::option::of(0_i32..3).prop_map(|code| E::AgentExited { code }),
            1 => Just(E::StopRequested),
            2 => Just(E::CancelRequested),
            1 => Just(E::DeadlinePassed),
        ];
        prop_oneof![
            8 => (event, -5_i64..40).prop_map(|(e, dt)| Step::Event(e, dt)),
            6 => (0_u8..12, -5_i64..40).prop_map(|(n, dt)| Step::Enqueue(format!("p{n}"), dt)),
            1 => Just(Step::Alarm),
            3 => stop_reason().prop_map(Step::EndCurrent),
            2 => Just(Step::AnswerOldest),
        ]
    }

    fn cfg_strategy() -> impl Strategy<Value = SessionConfig> {
        (0_i64..200, 0_i64..200, 0_i64..200, 0_i64..200, 0_i64..400).prop_map(
            |(assign, start, live, perm, idle)| SessionConfig {
                assign_timeout_ms: assign,
                start_timeout_ms: start,
                liveness_window_ms: live,
                permission_timeout_ms: perm,
                idle_timeout_ms: idle,
            },
        )
    }

    /// What a run observed.
    #[derive(Default)]
    struct Trace {
        /// Ids the session accepted into its queue, in order.
        accepted: Vec<String>,
        /// Ids of `SendPrompt` effects, in order.
        sent: Vec<String>,
    }

    /// Runs `steps` from a fresh session, checking per-step invariants.
    /// Returns every session visited (with its time) and the trace.
    fn run(
        steps: &[Step],
        cfg: &SessionConfig,
    ) -> Result<(Vec<(AcpSession, i64)>, Trace), TestCaseError> {
        let mut s = AcpSession::new(0);
        let mut now = 0_i64;
        let mut seen = vec![(s.clone(), now)];
        let mut trace = Trace::default();
        for step in steps {
            let before = s.clone();
            let (event, at) = match step {
                Step::Event(e, dt) => (Some(e.clone()), now + dt),
                Step::Alarm => match s.deadline(cfg) {
                    Some(at) => (Some(E::DeadlinePassed), at.max(now)),
                    None => (None, now),
                },
                Step::EndCurrent(r) => (s.current_prompt.clone().map(|p| ended(&p, *r)), now + 1),
                Step::AnswerOldest => (s.pending_permissions.first().map(|r| answered(r)), now + 1),
                Step::Enqueue(..) => (None, now),
            };
            now = now.max(at);
            let result = if let Step::Enqueue(id, dt) = step {
                let known = s.knows_prompt(id);
                let r = s.enqueue_prompt(id, "text", now + dt);
                if r.is_ok() && !known {
                    trace.accepted.push(id.clone());
                }
                if before.status.is_terminal() {
                    prop_assert_eq!(
                        r.as_ref().map_err(SessionTransitionError::code),
                        Err("session_ended")
                    );
                }
                r
            } else if let Some(event) = &event {
                let r = s.apply(event, at, cfg);
                if matches!(step, Step::Alarm) {
                    prop_assert!(r.is_ok(), "alarm refused: {:?}", r);
                    prop_assert_ne!(&s, &before, "an alarm always makes progress");
                }
                // Waiting for permission is only left via answer, cancel,
                // stop, exit or deadline.
                if before.status == S::WaitingForPermission && s.status != S::WaitingForPermission {
                    prop_assert!(
                        matches!(
                            event,
                            E::PermissionAnswered { .. }
                                | E::CancelRequested
                                | E::StopRequested
                                | E::AgentExited { .. }
                                | E::DeadlinePassed
                        ),
                        "left waiting_for_permission via {:?}",
                        event
                    );
                }
                r
            } else {
                continue;
            };
            let Ok(effects) = result else {
                prop_assert_eq!(&s, &before, "a refusal changes nothing");
                continue;
            };
            if before.status.is_terminal() {
                prop_assert_eq!(&s, &before, "terminal statuses absorb");
                prop_assert!(effects.is_empty());
            }
            for effect in &effects {
                if let SessionEffect::SendPrompt { prompt_id, .. } = effect {
                    // Only an idle agent is sent a prompt: none was
                    // in flight, or this very event ended it.
                    let ended_it = matches!(
                        (&event, &before.current_prompt),
                        (Some(E::TurnEnded { prompt_id: p, .. }), Some(c)) if p == c
                    );
                    prop_assert!(before.current_prompt.is_none() || ended_it);
                    prop_assert_eq!(s.current_prompt.as_ref(), Some(prompt_id));
                    trace.sent.push(prompt_id.clone());
                }
            }
            let sends = effects
                .iter()
                .filter(|e| matches!(e, SessionEffect::SendPrompt { .. }))
                .count();
            prop_assert!(sends <= 1, "one turn at a time");
            check_invariants(&s, cfg, &trace)?;
            seen.push((s.clone(), now));
        }
        Ok((seen, trace))
    }

    fn check_invariants(
        s: &AcpSession,
        cfg: &SessionConfig,
        trace: &Trace,
    ) -> Result<(), TestCaseError> {
        // Every live status has a deadline, never before it began.
        let deadline = s.deadline(cfg);
        prop_assert_eq!(deadline.is_none(), s.status.is_terminal());
        if let Some(at) = deadline {
            prop_assert!(at >= s.status_since);
        }
        prop_assert!(s.last_activity_at >= s.status_since);
        if !s.status.is_terminal() {
            prop_assert_eq!(s.current_prompt.is_some(), s.status.is_busy());
            prop_assert_eq!(
                !s.pending_permissions.is_empty(),
                s.status == S::WaitingForPermission
            );
            if s.cancel_requested {
                prop_assert_eq!(s.status, S::Running);
            }
        }
        // Never delivered twice.
        let mut unique = trace.sent.clone();
        unique.sort();
        unique.dedup();
        prop_assert_eq!(unique.len(), trace.sent.len());
        // Never dropped nor reordered: what was sent, then what is still
        // queued, is exactly what was accepted, in order.
        let mut accounted = trace.sent.clone();
        accounted.extend(s.queue.iter().map(|p| p.id.clone()));
        prop_assert_eq!(&accounted, &trace.accepted);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(384))]

        /// Along any interleaving of events and prompts: no panic, prompts
        /// delivered in enqueue order, at most once, never dropped; terminal
        /// statuses absorb; waiting_for_permission is left only the allowed
        /// ways; every live status has a deadline.
        #[test]
        fn invariants_hold_along_random_interleavings(
            steps in prop::collection::vec(step_strategy(), 0..60),
            cfg in cfg_strategy(),
        ) {
            run(&steps, &cfg)?;
        }

        /// From any reachable state, events at any time change nothing once
        /// the session has ended.
        #[test]
        fn ended_sessions_absorb_everything(
            steps in prop::collection::vec(step_strategy(), 0..40),
            after in prop::collection::vec(step_strategy(), 1..20),
            cfg in cfg_strategy(),
        ) {
            let (seen, _) = run(&steps, &cfg)?;
            let (mut s, now) = seen.last().cloned().unwrap();
            s.apply(&E::StopRequested, now, &cfg).unwrap();
            let ended = s.clone();
            for step in after {
                match step {
                    Step::Event(e, dt) => prop_assert_eq!(s.apply(&e, now + dt, &cfg), Ok(vec![])),
                    Step::Enqueue(id, dt) => prop_assert!(s.enqueue_prompt(&id, "t", now + dt).is_err()),
                    _ => prop_assert_eq!(s.apply(&E::DeadlinePassed, now + 1_000_000, &cfg), Ok(vec![])),
                }
                prop_assert_eq!(&s, &ended);
            }
        }

        /// A cancel of a busy session yields exactly one CancelTurn, and the
        /// turn's `cancelled` end leaves the agent waiting for input (or on
        /// the next queued prompt), never stopped.
        #[test]
        fn cancel_ends_the_turn_not_the_session(
            steps in prop::collection::vec(step_strategy(), 0..40),
            cfg in cfg_strategy(),
        ) {
            let (seen, _) = run(&steps, &cfg)?;
            for (mut s, now) in seen {
                if !s.status.is_busy() || s.cancel_requested {
                    continue;
                }
                let prompt = s.current_prompt.clone().unwrap();
                let effects = s.apply(&E::CancelRequested, now, &cfg).unwrap();
                let one_cancel = matches!(effects.as_slice(), [SessionEffect::CancelTurn { .. }]);
                prop_assert!(one_cancel, "{:?}", effects);
                prop_assert_eq!(s.apply(&E::CancelRequested, now, &cfg), Ok(vec![]));
                let queued = s.queue.front().cloned();
                let effects = s.apply(&ended(&prompt, StopReason::Cancelled), now, &cfg).unwrap();
                match queued {
                    None => {
                        prop_assert_eq!(s.status, S::WaitingForInput);
                        prop_assert!(effects.is_empty());
                    }
                    Some(next) => {
                        prop_assert_eq!(s.status, S::Running);
                        prop_assert_eq!(effects, vec![send(&next.id, &next.text)]);
                    }
                }
            }
        }

        /// Left alone (alarms only), every session ends within three alarms.
        #[test]
        fn alarms_alone_end_every_session(
            steps in prop::collection::vec(step_strategy(), 0..40),
            cfg in cfg_strategy(),
        ) {
            let (seen, _) = run(&steps, &cfg)?;
            for (mut s, _) in seen {
                for _ in 0..3 {
                    let Some(at) = s.deadline(&cfg) else { break };
                    s.apply(&E::DeadlinePassed, at, &cfg).unwrap();
                }
                prop_assert!(s.status.is_terminal(), "{:?}", s.status);
            }
        }
    }
}
