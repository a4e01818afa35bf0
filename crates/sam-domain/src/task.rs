//! A task run: one message turned into a branch and a pull request by an
//! agent on a node the task claims or provisions.
//!
//! A pure state machine over a [`TaskRun`] record. The caller (a Durable
//! Object per task) passes `now` in and performs the [`TaskEffect`]s that
//! [`TaskRun::apply`] returns; results come back as [`TaskEvent`]s.
//!
//! ```text
//!   queued ──started──▶ acquiring_node ──node_acquired──▶ creating_workspace
//!                                                                │ workspace_ready
//!                                                                ▼
//!                                                         starting_agent
//!                                                                │ agent_started
//!                                                                ▼
//!   completed ◀──finalized── finalizing ◀──turn_ended──────── running
//!                                         (end_turn, max_tokens,
//!                                          max_turn_requests)
//!
//!   a working status ──step_failed / deadline_passed──▶ the same status, attempt + 1
//!        (retries left: after retry_delay_ms for a reported failure, at once
//!         for a timeout, which has already waited)
//!   a working status ──step_failed / deadline_passed──▶ failed {step, reason}
//!        (retries spent, or not retryable; queued and running never retry)
//!   running ──turn_ended(refusal)──▶ failed      running ──turn_ended(cancelled)──▶ cancelled
//!   any non-terminal status ──cancel_requested──▶ cancelled
//!   entering completed, failed or cancelled emits one CleanUp of what the run holds
//! ```
//!
//! Rules that hold everywhere, and why:
//!
//! - [`TaskRun::apply`] is total: every (status, event) pair yields the
//!   effects to perform or a [`TaskTransitionError`] with a stable
//!   [`code`](TaskTransitionError::code), and a refused event leaves the run
//!   untouched. Persist the run together with the effects (an outbox) before
//!   performing them, so a crash between the two cannot lose a step.
//! - Every step is idempotent. Repeating an event already applied is a
//!   no-op without effects (two exceptions: a repeated alarm is refused as
//!   not due, and a repeated hand-back, below, is handed back again, which
//!   the idempotent clean-up makes harmless). Effects carry the step's
//!   `attempt`, so the adapter can derive idempotency keys
//!   (`<task>:<step>:<attempt>`), and failure reports carry it back, so a
//!   late failure of an earlier attempt cannot fail the current one.
//! - Every non-terminal status has a [`deadline_at`](TaskRun::deadline_at)
//!   derived from [`TaskConfig`]; terminal statuses have none. A run left
//!   alone therefore always ends: each alarm either retries the step (a
//!   bounded number of times) or fails the run with the step and reason.
//!   [`TaskEffect::ArmTimer`] is emitted whenever the deadline moves.
//! - Terminal statuses (`completed`, `failed`, `cancelled`) never change
//!   and never start work. The one thing a run still does, ended or not, is
//!   hand back a resource it cannot use: a node, workspace or agent reported
//!   after a cancel, or by a retried attempt after an earlier one already
//!   succeeded, comes back as a [`TaskEffect::CleanUp`] naming only it —
//!   ignoring the report would leak a VM.
//! - `completed` is only reached from `finalizing` through
//!   [`TaskEvent::Finalized`]: no run is reported done without its branch
//!   pushed.
//! - Time never runs backwards for one run: an event stamped before the
//!   current status began is taken as happening when it began.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;
use crate::acp_session::StopReason;
use crate::catalog::VmSize;

/// Where a task run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Submitted; waiting for the runner to start it (a concurrency slot).
    Queued,
    /// Claiming a warm node or provisioning one.
    AcquiringNode,
    CreatingWorkspace,
    /// Starting the agent in the workspace with the task's prompt.
    StartingAgent,
    /// The agent is working on its turn.
    Running,
    /// Committing, pushing the branch and opening the pull request.
    Finalizing,
    Completed,
    /// Ended by an error; [`TaskRun::failure`] says where and why.
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 9] = [
        TaskStatus::Queued,
        TaskStatus::AcquiringNode,
        TaskStatus::CreatingWorkspace,
        TaskStatus::StartingAgent,
        TaskStatus::Running,
        TaskStatus::Finalizing,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::AcquiringNode => "acquiring_node",
            TaskStatus::CreatingWorkspace => "creating_workspace",
            TaskStatus::StartingAgent => "starting_agent",
            TaskStatus::Running => "running",
            TaskStatus::Finalizing => "finalizing",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        self.step().is_none()
    }

    /// The step a non-terminal status is working on.
    pub fn step(self) -> Option<TaskStep> {
        match self {
            TaskStatus::Queued => Some(TaskStep::Queue),
            TaskStatus::AcquiringNode => Some(TaskStep::AcquireNode),
            TaskStatus::CreatingWorkspace => Some(TaskStep::CreateWorkspace),
            TaskStatus::StartingAgent => Some(TaskStep::StartAgent),
            TaskStatus::Running => Some(TaskStep::Run),
            TaskStatus::Finalizing => Some(TaskStep::Finalize),
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled => None,
        }
    }
}

/// One step of a run: where it is, or where it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStep {
    Queue,
    AcquireNode,
    CreateWorkspace,
    StartAgent,
    Run,
    Finalize,
}

impl TaskStep {
    pub const ALL: [TaskStep; 6] = [
        TaskStep::Queue,
        TaskStep::AcquireNode,
        TaskStep::CreateWorkspace,
        TaskStep::StartAgent,
        TaskStep::Run,
        TaskStep::Finalize,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStep::Queue => "queue",
            TaskStep::AcquireNode => "acquire_node",
            TaskStep::CreateWorkspace => "create_workspace",
            TaskStep::StartAgent => "start_agent",
            TaskStep::Run => "run",
            TaskStep::Finalize => "finalize",
        }
    }

    /// The status that works on this step.
    pub fn status(self) -> TaskStatus {
        match self {
            TaskStep::Queue => TaskStatus::Queued,
            TaskStep::AcquireNode => TaskStatus::AcquiringNode,
            TaskStep::CreateWorkspace => TaskStatus::CreatingWorkspace,
            TaskStep::StartAgent => TaskStatus::StartingAgent,
            TaskStep::Run => TaskStatus::Running,
            TaskStep::Finalize => TaskStatus::Finalizing,
        }
    }
}

/// How long one attempt of a step may take, and how often it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLimits {
    pub timeout_ms: i64,
    /// Attempts after the first; 0 means a single attempt.
    pub max_retries: u32,
}

/// Durations and retry budgets that drive a run, in milliseconds. All values
/// are expected to be non-negative.
///
/// The queue and the agent's turn have a timeout but no retries: nothing can
/// be redone in the queue, and re-running a turn that did part of its work
/// would repeat it on top of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskConfig {
    pub queue_timeout_ms: i64,
    pub acquire_node: StepLimits,
    pub create_workspace: StepLimits,
    pub start_agent: StepLimits,
    pub run_timeout_ms: i64,
    pub finalize: StepLimits,
    /// Pause before retrying a step whose attempt reported a failure (a
    /// provider rate limit or GitHub hiccup rarely clears at once).
    pub retry_delay_ms: i64,
}

impl TaskConfig {
    pub fn limits(&self, step: TaskStep) -> StepLimits {
        match step {
            TaskStep::Queue => StepLimits {
                timeout_ms: self.queue_timeout_ms,
                max_retries: 0,
            },
            TaskStep::AcquireNode => self.acquire_node,
            TaskStep::CreateWorkspace => self.create_workspace,
            TaskStep::StartAgent => self.start_agent,
            TaskStep::Run => StepLimits {
                timeout_ms: self.run_timeout_ms,
                max_retries: 0,
            },
            TaskStep::Finalize => self.finalize,
        }
    }
}

impl Default for TaskConfig {
    fn default() -> Self {
        const SECOND: i64 = 1_000;
        const MINUTE: i64 = 60 * SECOND;
        TaskConfig {
            queue_timeout_ms: 30 * MINUTE,
            // A fresh node must boot (the node lifecycle allows 15 minutes).
            acquire_node: StepLimits {
                timeout_ms: 20 * MINUTE,
                max_retries: 2,
            },
            // Cloning a large repository and building a devcontainer.
            create_workspace: StepLimits {
                timeout_ms: 15 * MINUTE,
                max_retries: 2,
            },
            start_agent: StepLimits {
                timeout_ms: 5 * MINUTE,
                max_retries: 2,
            },
            run_timeout_ms: 4 * 60 * MINUTE,
            finalize: StepLimits {
                timeout_ms: 5 * MINUTE,
                max_retries: 3,
            },
            retry_delay_ms: 15 * SECOND,
        }
    }
}

/// Where and why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub step: TaskStep,
    pub reason: String,
}

/// Something that happened to a run: a result of an effect, a request, or
/// the alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskEvent {
    /// The runner took the run out of the queue.
    Started,
    NodeAcquired {
        node_id: String,
    },
    WorkspaceReady {
        workspace_id: String,
    },
    /// The agent is up and has the prompt.
    AgentStarted {
        session_id: String,
    },
    /// The agent's turn ended.
    TurnEnded {
        stop_reason: StopReason,
    },
    /// The branch is pushed; `pr_url` is `None` when there was nothing to
    /// propose (the agent changed nothing).
    Finalized {
        branch: String,
        pr_url: Option<String>,
    },
    /// An attempt of `step` failed (node, workspace, agent start, the agent
    /// dying mid-run, push or pull request). A non-retryable failure (quota
    /// exhausted, repository archived) fails the run at once.
    StepFailed {
        step: TaskStep,
        attempt: u32,
        reason: String,
        retryable: bool,
    },
    CancelRequested,
    /// The alarm fired at or after [`TaskRun::deadline_at`].
    DeadlinePassed,
}

impl TaskEvent {
    /// The event's name, without its data (for errors and logs).
    pub fn name(&self) -> &'static str {
        match self {
            TaskEvent::Started => "started",
            TaskEvent::NodeAcquired { .. } => "node_acquired",
            TaskEvent::WorkspaceReady { .. } => "workspace_ready",
            TaskEvent::AgentStarted { .. } => "agent_started",
            TaskEvent::TurnEnded { .. } => "turn_ended",
            TaskEvent::Finalized { .. } => "finalized",
            TaskEvent::StepFailed { .. } => "step_failed",
            TaskEvent::CancelRequested => "cancel_requested",
            TaskEvent::DeadlinePassed => "deadline_passed",
        }
    }
}

/// What the adapter must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskEffect {
    /// Claim a warm node of this size or provision one, claimed by the task.
    AcquireNode { size: VmSize, attempt: u32 },
    /// Create the workspace on the node, checked out on a new `branch`.
    CreateWorkspace {
        node_id: String,
        branch: String,
        attempt: u32,
    },
    /// Start the agent in the workspace and send it the prompt.
    StartAgent {
        workspace_id: String,
        prompt: String,
        attempt: u32,
    },
    /// Commit, push `branch` and open a pull request titled `title` through
    /// the GitHub API.
    Finalize {
        workspace_id: String,
        branch: String,
        title: String,
        attempt: u32,
    },
    /// Stop the agent session, delete the workspace and release the node
    /// (it goes warm), for whichever are named. Idempotent. The run's own
    /// clean-up is emitted once, on ending; releasing the node by the task's
    /// claim rather than by id also covers an acquisition still in flight.
    CleanUp {
        session_id: Option<String>,
        workspace_id: Option<String>,
        node_id: Option<String>,
    },
    /// Set the alarm; it should apply [`TaskEvent::DeadlinePassed`].
    ArmTimer { at: UnixMillis },
}

/// Why [`TaskRun::apply`] refused an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskTransitionError {
    #[error("a task that is {} cannot accept {event}", from.as_str())]
    InvalidTransition {
        from: TaskStatus,
        event: &'static str,
    },
    /// The alarm fired early (a stale alarm, or clocks that disagree).
    #[error("the deadline is not before {due_at}")]
    NotDue { due_at: UnixMillis },
}

impl TaskTransitionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TaskTransitionError::InvalidTransition { .. } => "invalid_transition",
            TaskTransitionError::NotDue { .. } => "deadline_not_reached",
        }
    }
}

/// The persisted record of one task run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRun {
    pub status: TaskStatus,
    /// Derived from the message by [`derive_title`]; the pull request title.
    pub title: String,
    /// The user's message, sent to the agent as is.
    pub prompt: String,
    /// The branch the work goes to; after finalizing, the branch pushed.
    pub branch: String,
    pub vm_size: VmSize,
    pub created_at: UnixMillis,
    /// When the current status was entered (the step began).
    pub status_since: UnixMillis,
    /// Attempts of the current step so far, the one in flight included
    /// (1 on entering a step). Kept on ending, so a failure says how many
    /// attempts it took.
    pub attempt: u32,
    /// Why the latest attempt failed, while the retry of the current step
    /// waits for its delay; `None` while an attempt is in flight.
    pub retry_reason: Option<String>,
    /// The alarm time: `Some` exactly while the run is not terminal.
    pub deadline_at: Option<UnixMillis>,
    pub failure: Option<TaskFailure>,
    pub node_id: Option<String>,
    pub workspace_id: Option<String>,
    pub session_id: Option<String>,
    pub stop_reason: Option<StopReason>,
    pub pr_url: Option<String>,
}

impl TaskRun {
    /// A run submitted at `now` from the user's `message`: queued, titled,
    /// with its branch named after the title and `short_id` (e.g. the last
    /// 8 characters of the task's ULID, its random part). Its alarm is
    /// [`deadline_at`](TaskRun::deadline_at).
    pub fn submit(
        message: &str,
        short_id: &str,
        vm_size: VmSize,
        now: UnixMillis,
        cfg: &TaskConfig,
    ) -> Self {
        let title = derive_title(message);
        let branch = branch_name(&title, short_id);
        TaskRun {
            status: TaskStatus::Queued,
            title,
            prompt: message.to_owned(),
            branch,
            vm_size,
            created_at: now,
            status_since: now,
            attempt: 1,
            retry_reason: None,
            deadline_at: Some(now.saturating_add(cfg.queue_timeout_ms.max(0))),
            failure: None,
            node_id: None,
            workspace_id: None,
            session_id: None,
            stop_reason: None,
            pr_url: None,
        }
    }

    /// Applies `event` at `now`: the effects to perform, in order, or why the
    /// event is refused (the run is then unchanged).
    pub fn apply(
        &mut self,
        event: &TaskEvent,
        now: UnixMillis,
        cfg: &TaskConfig,
    ) -> Result<Vec<TaskEffect>, TaskTransitionError> {
        let now = now.max(self.status_since);
        let mut next = self.clone();
        let effects = next.transition(event, now, cfg)?;
        *self = next;
        Ok(effects)
    }

    fn transition(
        &mut self,
        event: &TaskEvent,
        now: UnixMillis,
        cfg: &TaskConfig,
    ) -> Result<Vec<TaskEffect>, TaskTransitionError> {
        use TaskEvent as E;
        use TaskStatus as S;
        let from = self.status;
        let Some(step) = from.step() else {
            return Ok(self.hand_back(event));
        };
        let invalid = || TaskTransitionError::InvalidTransition {
            from,
            event: event.name(),
        };
        let effects = match event {
            E::CancelRequested => self.finish(S::Cancelled, None, now),
            E::Started if from == S::Queued => self.begin(TaskStep::AcquireNode, now, cfg),
            // Started again: already out of the queue.
            E::Started => Vec::new(),
            E::DeadlinePassed => self.on_deadline(step, now, cfg)?,
            // A late result of an earlier attempt is as good as any: take it.
            E::NodeAcquired { node_id } if from == S::AcquiringNode => {
                self.node_id = Some(node_id.clone());
                self.begin(TaskStep::CreateWorkspace, now, cfg)
            }
            E::WorkspaceReady { workspace_id } if from == S::CreatingWorkspace => {
                self.workspace_id = Some(workspace_id.clone());
                self.begin(TaskStep::StartAgent, now, cfg)
            }
            E::AgentStarted { session_id } if from == S::StartingAgent => {
                self.session_id = Some(session_id.clone());
                self.begin(TaskStep::Run, now, cfg)
            }
            E::NodeAcquired { .. } | E::WorkspaceReady { .. } | E::AgentStarted { .. } => {
                self.hand_back(event)
            }
            E::StepFailed {
                step: failed,
                attempt,
                reason,
                retryable,
            } => {
                // Only the attempt in flight can fail; anything else is a
                // late or repeated report.
                if *failed != step || *attempt != self.attempt || self.retry_reason.is_some() {
                    Vec::new()
                } else {
                    self.retry_or_fail(step, reason.clone(), *retryable, false, now, cfg)
                }
            }
            E::TurnEnded { stop_reason } => match from {
                S::Running => {
                    self.stop_reason = Some(*stop_reason);
                    match stop_reason {
                        // An agent that ran out of tokens or turns still
                        // leaves work on disk: push it rather than lose it.
                        // The stop reason stays on record for the PR and UI.
                        StopReason::EndTurn
                        | StopReason::MaxTokens
                        | StopReason::MaxTurnRequests => self.begin(TaskStep::Finalize, now, cfg),
                        StopReason::Refusal => {
                            let failure = TaskFailure {
                                step,
                                reason: "the agent refused the task".into(),
                            };
                            self.finish(S::Failed, Some(failure), now)
                        }
                        // Someone cancelled the turn outside the task (from
                        // the session's controls): the task is cancelled.
                        StopReason::Cancelled => self.finish(S::Cancelled, None, now),
                    }
                }
                S::Finalizing => Vec::new(),
                _ => return Err(invalid()),
            },
            E::Finalized { branch, pr_url } if from == S::Finalizing => {
                self.branch.clone_from(branch);
                self.pr_url.clone_from(pr_url);
                self.finish(S::Completed, None, now)
            }
            E::Finalized { .. } => return Err(invalid()),
        };
        Ok(effects)
    }

    fn on_deadline(
        &mut self,
        step: TaskStep,
        now: UnixMillis,
        cfg: &TaskConfig,
    ) -> Result<Vec<TaskEffect>, TaskTransitionError> {
        let due_at = self.deadline_at.unwrap_or(self.status_since);
        if now < due_at {
            return Err(TaskTransitionError::NotDue { due_at });
        }
        if self.retry_reason.take().is_some() {
            // The retry delay is over: next attempt.
            return Ok(self.next_attempt(step, now, cfg));
        }
        let reason = format!(
            "no result within {} ms (attempt {})",
            cfg.limits(step).timeout_ms,
            self.attempt
        );
        Ok(self.retry_or_fail(step, reason, true, true, now, cfg))
    }

    fn retry_or_fail(
        &mut self,
        step: TaskStep,
        reason: String,
        retryable: bool,
        timed_out: bool,
        now: UnixMillis,
        cfg: &TaskConfig,
    ) -> Vec<TaskEffect> {
        if !retryable || self.attempt > cfg.limits(step).max_retries {
            let failure = TaskFailure { step, reason };
            return self.finish(TaskStatus::Failed, Some(failure), now);
        }
        if timed_out {
            self.next_attempt(step, now, cfg)
        } else {
            self.retry_reason = Some(reason);
            vec![self.arm(now, cfg.retry_delay_ms)]
        }
    }

    /// Enters `step` with its first attempt.
    fn begin(&mut self, step: TaskStep, now: UnixMillis, cfg: &TaskConfig) -> Vec<TaskEffect> {
        self.status = step.status();
        self.status_since = now;
        self.attempt = 0;
        self.retry_reason = None;
        self.next_attempt(step, now, cfg)
    }

    fn next_attempt(
        &mut self,
        step: TaskStep,
        now: UnixMillis,
        cfg: &TaskConfig,
    ) -> Vec<TaskEffect> {
        self.attempt = self.attempt.saturating_add(1);
        self.retry_reason = None;
        let arm = self.arm(now, cfg.limits(step).timeout_ms);
        self.work(step).into_iter().chain([arm]).collect()
    }

    /// The effect that performs one attempt of `step`. The ids it needs are
    /// recorded before the step is entered.
    fn work(&self, step: TaskStep) -> Option<TaskEffect> {
        let id = |id: &Option<String>| id.clone().unwrap_or_default();
        let attempt = self.attempt;
        match step {
            // The runner decides when a queued run starts, and the agent
            // runs its turn by itself.
            TaskStep::Queue | TaskStep::Run => None,
            TaskStep::AcquireNode => Some(TaskEffect::AcquireNode {
                size: self.vm_size,
                attempt,
            }),
            TaskStep::CreateWorkspace => Some(TaskEffect::CreateWorkspace {
                node_id: id(&self.node_id),
                branch: self.branch.clone(),
                attempt,
            }),
            TaskStep::StartAgent => Some(TaskEffect::StartAgent {
                workspace_id: id(&self.workspace_id),
                prompt: self.prompt.clone(),
                attempt,
            }),
            TaskStep::Finalize => Some(TaskEffect::Finalize {
                workspace_id: id(&self.workspace_id),
                branch: self.branch.clone(),
                title: self.title.clone(),
                attempt,
            }),
        }
    }

    fn arm(&mut self, now: UnixMillis, after_ms: i64) -> TaskEffect {
        let at = now.saturating_add(after_ms.max(0));
        self.deadline_at = Some(at);
        TaskEffect::ArmTimer { at }
    }

    fn finish(
        &mut self,
        status: TaskStatus,
        failure: Option<TaskFailure>,
        now: UnixMillis,
    ) -> Vec<TaskEffect> {
        self.status = status;
        self.status_since = now;
        self.deadline_at = None;
        self.retry_reason = None;
        self.failure = failure;
        vec![TaskEffect::CleanUp {
            session_id: self.session_id.clone(),
            workspace_id: self.workspace_id.clone(),
            node_id: self.node_id.clone(),
        }]
    }

    /// A resource the run cannot use (it has another, or has ended) goes
    /// back at once; one it already holds is a repeated report.
    fn hand_back(&self, event: &TaskEvent) -> Vec<TaskEffect> {
        let other = |reported: &String, held: &Option<String>| {
            (held.as_ref() != Some(reported)).then(|| reported.clone())
        };
        let (session_id, workspace_id, node_id) = match event {
            TaskEvent::NodeAcquired { node_id } => (None, None, other(node_id, &self.node_id)),
            TaskEvent::WorkspaceReady { workspace_id } => {
                (None, other(workspace_id, &self.workspace_id), None)
            }
            TaskEvent::AgentStarted { session_id } => {
                (other(session_id, &self.session_id), None, None)
            }
            _ => (None, None, None),
        };
        if session_id.is_none() && workspace_id.is_none() && node_id.is_none() {
            return Vec::new();
        }
        vec![TaskEffect::CleanUp {
            session_id,
            workspace_id,
            node_id,
        }]
    }
}

impl TaskRun {
    /// The event a message of the run's chat session is for the run, if
    /// any (`kind` and `payload` as the vm-agent's outbox has them).
    /// Session messages name no attempt, so they apply to the current one.
    pub fn event_of_session_message(
        &self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Option<TaskEvent> {
        let text = |name: &str| {
            payload
                .get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let failed = |step: TaskStep, reason: String, retryable: bool| TaskEvent::StepFailed {
            step,
            attempt: self.attempt,
            reason,
            retryable,
        };
        match kind {
            "turn_ended" => Some(TaskEvent::TurnEnded {
                stop_reason: StopReason::parse(&text("stop_reason"))?,
            }),
            // The vm-agent accepts a session before the agent is up, so the
            // run may already be in its run step: a start failure fails that.
            "agent_start_failed" => Some(failed(
                match self.status.step() {
                    Some(TaskStep::StartAgent) => TaskStep::StartAgent,
                    _ => TaskStep::Run,
                },
                format!(
                    "the agent did not start: {}: {}",
                    text("code"),
                    text("message")
                ),
                true,
            )),
            "turn_failed" => Some(failed(
                TaskStep::Run,
                format!("{}: {}", text("code"), text("message")),
                false,
            )),
            // An agent that exits between turns has done its part.
            "agent_exited"
                if payload
                    .get("during_turn")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true) =>
            {
                Some(failed(
                    TaskStep::Run,
                    "the agent exited during its turn".to_owned(),
                    false,
                ))
            }
            _ => None,
        }
    }
}

/// Longest derived title, in characters.
pub const MAX_TITLE_CHARS: usize = 80;
/// Longest slug in a branch name, in characters.
pub const MAX_SLUG_CHARS: usize = 40;
/// Longest short id in a branch name, in characters.
pub const MAX_SHORT_ID_CHARS: usize = 16;
/// The title of a message with no text in it.
pub const UNTITLED: &str = "Untitled task";

/// A one-line title for a task: the message's first line with text on it
/// (a pasted message often starts with a blank line), whitespace runs
/// collapsed to one space and control characters dropped, cut to at most
/// [`MAX_TITLE_CHARS`] characters (at a word boundary when one is near,
/// marked with `…`). Never empty.
pub fn derive_title(message: &str) -> String {
    let line = message
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
                .filter(|word| !word.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .find(|line| !line.is_empty());
    let Some(line) = line else {
        return UNTITLED.to_owned();
    };
    if line.chars().count() <= MAX_TITLE_CHARS {
        return line;
    }
    // Room for the ellipsis.
    let mut cut: String = line.chars().take(MAX_TITLE_CHARS - 1).collect();
    let cut_mid_word = line.chars().nth(MAX_TITLE_CHARS - 1) != Some(' ');
    if cut_mid_word
        && let Some(space) = cut.rfind(' ')
        && cut[..space].chars().count() >= MAX_TITLE_CHARS / 2
    {
        cut.truncate(space);
    }
    let mut title = cut.trim_end().to_owned();
    title.push('…');
    title
}

/// The branch a task's work goes to: `sam/<slug>-<short-id>`. The slug is
/// the title in lowercase ASCII letters and digits, every other run of
/// characters one dash, at most [`MAX_SLUG_CHARS`] long, `task` if nothing
/// is left; the short id keeps only its ASCII letters and digits. The result
/// is always a valid git branch name (`git check-ref-format --branch`).
pub fn branch_name(title: &str, short_id: &str) -> String {
    let mut slug = String::new();
    let mut gap = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !slug.is_empty() {
                slug.push('-');
            }
            gap = false;
            slug.push(c.to_ascii_lowercase());
            if slug.len() >= MAX_SLUG_CHARS {
                break;
            }
        } else {
            gap = true;
        }
    }
    // ASCII only, so bytes are characters.
    slug.truncate(MAX_SLUG_CHARS);
    let slug = match slug.trim_end_matches('-') {
        "" => "task",
        trimmed => trimmed,
    };
    let id: String = short_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(MAX_SHORT_ID_CHARS)
        .collect();
    if id.is_empty() {
        format!("sam/{slug}")
    } else {
        format!("sam/{slug}-{id}")
    }
}

/// The VM size for a task: the one asked for, else the project's default,
/// else the platform's.
pub fn choose_vm_size(
    explicit: Option<VmSize>,
    project_default: Option<VmSize>,
    platform_default: VmSize,
) -> VmSize {
    explicit.or(project_default).unwrap_or(platform_default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projects::validate_branch_name;
    use TaskEvent as E;
    use TaskStatus as S;
    use proptest::prelude::*;

    /// Small durations so that tests read as plain arithmetic.
    const CFG: TaskConfig = TaskConfig {
        queue_timeout_ms: 1_000,
        acquire_node: StepLimits {
            timeout_ms: 100,
            max_retries: 2,
        },
        create_workspace: StepLimits {
            timeout_ms: 50,
            max_retries: 1,
        },
        start_agent: StepLimits {
            timeout_ms: 20,
            max_retries: 0,
        },
        run_timeout_ms: 10_000,
        finalize: StepLimits {
            timeout_ms: 30,
            max_retries: 1,
        },
        retry_delay_ms: 5,
    };

    #[test]
    fn session_messages_become_run_events() {
        use serde_json::json;
        let mut run = submit();
        run.attempt = 2;
        assert_eq!(
            run.event_of_session_message("turn_ended", &json!({"stop_reason": "end_turn"})),
            Some(E::TurnEnded {
                stop_reason: StopReason::EndTurn
            })
        );
        assert_eq!(
            run.event_of_session_message("turn_ended", &json!({"stop_reason": "bogus"})),
            None
        );
        let start_failed = json!({"code": "install_failed", "message": "npm"});
        let Some(E::StepFailed {
            step,
            attempt,
            reason,
            retryable,
        }) = run.event_of_session_message("agent_start_failed", &start_failed)
        else {
            panic!("a start failure is a step failure");
        };
        // Queued, not starting the agent: the failure is the run step's.
        assert_eq!((step, attempt, retryable), (TaskStep::Run, 2, true));
        assert!(reason.contains("install_failed: npm"), "{reason}");
        run.status = S::StartingAgent;
        assert!(matches!(
            run.event_of_session_message("agent_start_failed", &start_failed),
            Some(E::StepFailed {
                step: TaskStep::StartAgent,
                ..
            })
        ));
        assert!(matches!(
            run.event_of_session_message("turn_failed", &json!({"code": "agent_error"})),
            Some(E::StepFailed {
                step: TaskStep::Run,
                retryable: false,
                ..
            })
        ));
        assert!(
            run.event_of_session_message("agent_exited", &json!({"during_turn": true}))
                .is_some()
        );
        assert_eq!(
            run.event_of_session_message("agent_exited", &json!({"during_turn": false})),
            None
        );
        assert_eq!(run.event_of_session_message("update", &json!({})), None);
    }

    fn submit() -> TaskRun {
        TaskRun::submit(
            "Fix the login bug\n\nDetails…",
            "01hx7k2m",
            VmSize::Medium,
            0,
            &CFG,
        )
    }

    fn ok(run: &mut TaskRun, event: &E, now: i64) -> Vec<TaskEffect> {
        run.apply(event, now, &CFG)
            .unwrap_or_else(|e| panic!("{} refused {event:?}: {e}", run.status.as_str()))
    }

    fn node(id: &str) -> E {
        E::NodeAcquired { node_id: id.into() }
    }
    fn workspace(id: &str) -> E {
        E::WorkspaceReady {
            workspace_id: id.into(),
        }
    }
    fn agent(id: &str) -> E {
        E::AgentStarted {
            session_id: id.into(),
        }
    }
    fn turn(stop_reason: StopReason) -> E {
        E::TurnEnded { stop_reason }
    }
    fn finalized(pr: Option<&str>) -> E {
        E::Finalized {
            branch: "sam/fix-the-login-bug-01hx7k2m".into(),
            pr_url: pr.map(Into::into),
        }
    }
    fn failed(step: TaskStep, attempt: u32, retryable: bool) -> E {
        E::StepFailed {
            step,
            attempt,
            reason: "provider 503".into(),
            retryable,
        }
    }
    fn clean(session: Option<&str>, ws: Option<&str>, node: Option<&str>) -> TaskEffect {
        TaskEffect::CleanUp {
            session_id: session.map(Into::into),
            workspace_id: ws.map(Into::into),
            node_id: node.map(Into::into),
        }
    }
    fn arm(at: i64) -> TaskEffect {
        TaskEffect::ArmTimer { at }
    }

    /// A run in `status`, reached through real transitions at t = 10, 20, ...
    fn reach(status: TaskStatus) -> TaskRun {
        let path = [
            (S::Queued, None),
            (S::AcquiringNode, Some(E::Started)),
            (S::CreatingWorkspace, Some(node("n1"))),
            (S::StartingAgent, Some(workspace("w1"))),
            (S::Running, Some(agent("s1"))),
            (S::Finalizing, Some(turn(StopReason::EndTurn))),
            (S::Completed, Some(finalized(Some("https://pr/1")))),
        ];
        let mut run = submit();
        for (i, (at, event)) in (0_i64..).zip(path) {
            if let Some(event) = event {
                ok(&mut run, &event, 10 * i);
            }
            if at == status {
                return run;
            }
        }
        match status {
            S::Failed => {
                let mut run = reach(S::StartingAgent);
                ok(&mut run, &failed(TaskStep::StartAgent, 1, false), 45);
                run
            }
            S::Cancelled => {
                let mut run = reach(S::Running);
                ok(&mut run, &E::CancelRequested, 45);
                run
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_happy_path_from_message_to_pull_request() {
        let mut run = submit();
        assert_eq!(run.status, S::Queued);
        assert_eq!(run.title, "Fix the login bug");
        assert_eq!(run.branch, "sam/fix-the-login-bug-01hx7k2m");
        assert_eq!(run.deadline_at, Some(1_000));

        assert_eq!(
            ok(&mut run, &E::Started, 10),
            [
                TaskEffect::AcquireNode {
                    size: VmSize::Medium,
                    attempt: 1
                },
                arm(110)
            ]
        );
        assert_eq!(
            ok(&mut run, &node("n1"), 20),
            [
                TaskEffect::CreateWorkspace {
                    node_id: "n1".into(),
                    branch: "sam/fix-the-login-bug-01hx7k2m".into(),
                    attempt: 1
                },
                arm(70)
            ]
        );
        assert_eq!(
            ok(&mut run, &workspace("w1"), 30),
            [
                TaskEffect::StartAgent {
                    workspace_id: "w1".into(),
                    prompt: "Fix the login bug\n\nDetails…".into(),
                    attempt: 1
                },
                arm(50)
            ]
        );
        assert_eq!(ok(&mut run, &agent("s1"), 40), [arm(10_040)]);
        assert_eq!(run.status, S::Running);
        assert_eq!(
            ok(&mut run, &turn(StopReason::EndTurn), 500),
            [
                TaskEffect::Finalize {
                    workspace_id: "w1".into(),
                    branch: "sam/fix-the-login-bug-01hx7k2m".into(),
                    title: "Fix the login bug".into(),
                    attempt: 1
                },
                arm(530)
            ]
        );
        assert_eq!(
            ok(
                &mut run,
                &finalized(Some("https://github.com/o/r/pull/7")),
                510
            ),
            [clean(Some("s1"), Some("w1"), Some("n1"))]
        );
        assert_eq!(run.status, S::Completed);
        assert_eq!(run.pr_url.as_deref(), Some("https://github.com/o/r/pull/7"));
        assert_eq!(run.deadline_at, None);
        assert_eq!(run.stop_reason, Some(StopReason::EndTurn));
    }

    #[test]
    fn cancel_at_any_point_cleans_up_what_the_run_holds() {
        let cases = [
            (S::Queued, clean(None, None, None)),
            (S::AcquiringNode, clean(None, None, None)),
            (S::CreatingWorkspace, clean(None, None, Some("n1"))),
            (S::StartingAgent, clean(None, Some("w1"), Some("n1"))),
            (S::Running, clean(Some("s1"), Some("w1"), Some("n1"))),
            (S::Finalizing, clean(Some("s1"), Some("w1"), Some("n1"))),
        ];
        for (status, cleanup) in cases {
            let mut run = reach(status);
            assert_eq!(
                ok(&mut run, &E::CancelRequested, 100),
                [cleanup],
                "{status:?}"
            );
            assert_eq!((run.status, run.deadline_at), (S::Cancelled, None));
            assert_eq!(ok(&mut run, &E::CancelRequested, 101), [], "repeated");
        }
        for status in [S::Completed, S::Failed, S::Cancelled] {
            let mut run = reach(status);
            let before = run.clone();
            assert_eq!(ok(&mut run, &E::CancelRequested, 100), []);
            assert_eq!(run, before, "terminal statuses absorb");
        }
    }

    #[test]
    fn a_failed_attempt_waits_then_retries_until_the_budget_is_spent() {
        let mut run = reach(S::AcquiringNode); // attempt 1 issued at 10
        assert_eq!(
            ok(&mut run, &failed(TaskStep::AcquireNode, 1, true), 12),
            [arm(17)]
        );
        assert_eq!(run.retry_reason.as_deref(), Some("provider 503"));
        assert_eq!(
            ok(&mut run, &failed(TaskStep::AcquireNode, 1, true), 13),
            [],
            "repeated"
        );
        assert_eq!(
            run.apply(&E::DeadlinePassed, 16, &CFG).unwrap_err(),
            TaskTransitionError::NotDue { due_at: 17 }
        );
        assert_eq!(
            ok(&mut run, &E::DeadlinePassed, 17),
            [
                TaskEffect::AcquireNode {
                    size: VmSize::Medium,
                    attempt: 2
                },
                arm(117)
            ]
        );
        // A late failure of attempt 1 cannot fail attempt 2.
        assert_eq!(
            ok(&mut run, &failed(TaskStep::AcquireNode, 1, true), 18),
            []
        );
        assert_eq!(run.retry_reason, None);
        // A timeout retries at once: it has already waited.
        assert_eq!(
            ok(&mut run, &E::DeadlinePassed, 117),
            [
                TaskEffect::AcquireNode {
                    size: VmSize::Medium,
                    attempt: 3
                },
                arm(217)
            ]
        );
        // Two retries allowed: the third attempt's failure ends the run.
        assert_eq!(
            ok(&mut run, &failed(TaskStep::AcquireNode, 3, true), 150),
            [clean(None, None, None)]
        );
        assert_eq!(run.status, S::Failed);
        assert_eq!(
            run.failure,
            Some(TaskFailure {
                step: TaskStep::AcquireNode,
                reason: "provider 503".into()
            })
        );
        assert_eq!(run.attempt, 3);
    }

    #[test]
    fn a_timed_out_step_fails_with_the_step_and_reason() {
        let mut run = reach(S::CreatingWorkspace); // entered at 20, 50 ms, 1 retry
        assert_eq!(run.deadline_at, Some(70));
        ok(&mut run, &E::DeadlinePassed, 70);
        assert_eq!((run.attempt, run.deadline_at), (2, Some(120)));
        assert_eq!(
            ok(&mut run, &E::DeadlinePassed, 125),
            [clean(None, None, Some("n1"))]
        );
        let failure = run.failure.unwrap();
        assert_eq!(failure.step, TaskStep::CreateWorkspace);
        assert_eq!(failure.reason, "no result within 50 ms (attempt 2)");
    }

    #[test]
    fn a_non_retryable_failure_fails_at_once() {
        let mut run = reach(S::Finalizing);
        let effects = ok(&mut run, &failed(TaskStep::Finalize, 1, false), 60);
        assert_eq!(effects, [clean(Some("s1"), Some("w1"), Some("n1"))]);
        assert_eq!(run.failure.unwrap().step, TaskStep::Finalize);
    }

    #[test]
    fn the_agent_dying_mid_run_fails_the_run_without_retry() {
        let mut run = reach(S::Running);
        ok(&mut run, &failed(TaskStep::Run, 1, true), 60);
        assert_eq!(run.status, S::Failed);
        assert_eq!(run.failure.unwrap().step, TaskStep::Run);
    }

    #[test]
    fn how_the_turn_ended_decides_what_follows() {
        for (reason, to) in [
            (StopReason::EndTurn, S::Finalizing),
            (StopReason::MaxTokens, S::Finalizing),
            (StopReason::MaxTurnRequests, S::Finalizing),
            (StopReason::Refusal, S::Failed),
            (StopReason::Cancelled, S::Cancelled),
        ] {
            let mut run = reach(S::Running);
            ok(&mut run, &turn(reason), 60);
            assert_eq!((run.status, run.stop_reason), (to, Some(reason)));
            assert_eq!(ok(&mut run, &turn(reason), 61), [], "repeated");
        }
    }

    #[test]
    fn resources_the_run_cannot_use_are_handed_back() {
        // A node that arrives after a cancel.
        let mut run = reach(S::AcquiringNode);
        ok(&mut run, &E::CancelRequested, 15);
        let before = run.clone();
        assert_eq!(
            ok(&mut run, &node("late"), 16),
            [clean(None, None, Some("late"))]
        );
        assert_eq!(run, before);
        // A second workspace from a retried attempt.
        let mut run = reach(S::StartingAgent);
        assert_eq!(ok(&mut run, &workspace("w1"), 40), [], "the one it holds");
        assert_eq!(
            ok(&mut run, &workspace("w2"), 40),
            [clean(None, Some("w2"), None)]
        );
        assert_eq!(run.workspace_id.as_deref(), Some("w1"));
        // A second agent session.
        let mut run = reach(S::Finalizing);
        assert_eq!(
            ok(&mut run, &agent("s2"), 60),
            [clean(Some("s2"), None, None)]
        );
        // A late result of an earlier attempt is used when it is still needed.
        let mut run = reach(S::CreatingWorkspace);
        ok(&mut run, &E::DeadlinePassed, 70);
        ok(&mut run, &workspace("w-from-attempt-1"), 71);
        assert_eq!(run.workspace_id.as_deref(), Some("w-from-attempt-1"));
    }

    #[test]
    fn refusals_have_stable_codes() {
        let mut run = reach(S::AcquiringNode);
        let before = run.clone();
        for event in [turn(StopReason::EndTurn), finalized(None)] {
            let err = run.apply(&event, 20, &CFG).unwrap_err();
            assert_eq!(err.code(), "invalid_transition");
        }
        assert_eq!(
            run.apply(&E::DeadlinePassed, 20, &CFG).unwrap_err().code(),
            "deadline_not_reached"
        );
        assert_eq!(run, before, "a refusal changes nothing");
    }

    #[test]
    fn a_queued_run_that_never_starts_fails_in_the_queue() {
        let mut run = submit();
        ok(&mut run, &E::DeadlinePassed, 1_000);
        assert_eq!(run.status, S::Failed);
        assert_eq!(run.failure.unwrap().step, TaskStep::Queue);
    }

    #[test]
    fn finalizing_without_a_pull_request() {
        let mut run = reach(S::Finalizing);
        ok(&mut run, &finalized(None), 60);
        assert_eq!((run.status, run.pr_url.as_deref()), (S::Completed, None));
    }

    #[test]
    fn time_never_runs_backwards_for_a_run() {
        let mut run = reach(S::CreatingWorkspace); // entered at 20
        ok(&mut run, &workspace("w1"), 5);
        assert_eq!(run.status_since, 20);
        assert_eq!(run.deadline_at, Some(40));
    }

    #[test]
    fn titles() {
        assert_eq!(derive_title("  Fix   the\tbug  \nmore"), "Fix the bug");
        assert_eq!(
            derive_title("\n \n  second line wins\n"),
            "second line wins"
        );
        assert_eq!(derive_title(""), UNTITLED);
        assert_eq!(derive_title(" \n\t\r\n"), UNTITLED);
        assert_eq!(derive_title("\u{1b}[31m\u{7}"), "[31m");
        assert_eq!(derive_title("\u{7}"), UNTITLED);
        let long = "word ".repeat(40);
        let title = derive_title(&long);
        assert!(title.chars().count() <= MAX_TITLE_CHARS);
        assert!(title.ends_with("word…"), "{title}");
        // One long word is cut on a character boundary.
        let title = derive_title(&"é".repeat(200));
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.ends_with('…'));
        // Exactly the limit is kept whole.
        let exact = "a".repeat(MAX_TITLE_CHARS);
        assert_eq!(derive_title(&exact), exact);
    }

    #[test]
    fn branch_names() {
        assert_eq!(
            branch_name("Fix the login bug!", "01HX7K2M"),
            "sam/fix-the-login-bug-01hx7k2m"
        );
        assert_eq!(
            branch_name("--Hello,   World--", "ab"),
            "sam/hello-world-ab"
        );
        assert_eq!(branch_name("日本語", "ab"), "sam/task-ab");
        assert_eq!(branch_name("", "ab"), "sam/task-ab");
        assert_eq!(branch_name("x", "../@{.lock"), "sam/x-lock");
        assert_eq!(branch_name("x", "///"), "sam/x");
        let long = branch_name(&"abc ".repeat(30), "id");
        let slug = long
            .strip_prefix("sam/")
            .unwrap()
            .strip_suffix("-id")
            .unwrap();
        assert!(
            slug.len() <= MAX_SLUG_CHARS && !slug.ends_with('-'),
            "{slug}"
        );
    }

    #[test]
    fn vm_size_precedence() {
        use VmSize::{Large, Medium, Small};
        assert_eq!(choose_vm_size(Some(Large), Some(Medium), Small), Large);
        assert_eq!(choose_vm_size(None, Some(Medium), Small), Medium);
        assert_eq!(choose_vm_size(None, None, Small), Small);
    }

    #[test]
    fn names_and_serde_use_snake_case() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for step in TaskStep::ALL {
            assert_eq!(serde_json::to_value(step).unwrap(), step.as_str());
            assert_eq!(step.status().step(), Some(step));
        }
        let event: E = serde_json::from_str(
            r#"{"type":"step_failed","step":"acquire_node","attempt":1,"reason":"x","retryable":true}"#,
        )
        .unwrap();
        assert_eq!(event.name(), "step_failed");
        let run = reach(S::Running);
        let stored = serde_json::to_string(&run).unwrap();
        assert_eq!(serde_json::from_str::<TaskRun>(&stored).unwrap(), run);
    }

    // ---- properties over random event sequences and times ----

    #[derive(Debug, Clone)]
    enum Step {
        Event(E, i64),
        /// The alarm fires at the deadline.
        Alarm,
        /// The current step succeeds, as its adapter would report it.
        Succeed(StopReason),
        /// The attempt in flight fails.
        FailCurrent(bool),
    }

    fn event_strategy() -> impl Strategy<Value = E> {
        let id = |ids: &'static [&'static str]| prop::sample::select(ids.to_vec());
        let step = prop::sample::select(TaskStep::ALL.to_vec());
        let reason = prop::sample::select(StopReason::ALL.to_vec());
        prop_oneof![
            2 => Just(E::Started),
            2 => id(&["n1", "n2"]).prop_map(node),
            2 => id(&["w1", "w2"]).prop_map(workspace),
            2 => id(&["s1", "s2"]).prop_map(agent),
            2 => reason.prop_map(turn),
            1 => prop::option::of(Just("https://pr")).prop_map(finalized),
            2 => (step, 0_u32..5, any::<bool>()).prop_map(|(s, a, r)| failed(s, a, r)),
            1 => Just(E::CancelRequested),
            2 => Just(E::DeadlinePassed),
        ]
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (event_strategy(), -20_i64..200).prop_map(|(e, dt)| Step::Event(e, dt)),
            3 => Just(Step::Alarm),
            4 => prop::sample::select(StopReason::ALL.to_vec()).prop_map(Step::Succeed),
            2 => any::<bool>().prop_map(Step::FailCurrent),
        ]
    }

    fn limits() -> impl Strategy<Value = StepLimits> {
        (0_i64..100, 0_u32..4).prop_map(|(timeout_ms, max_retries)| StepLimits {
            timeout_ms,
            max_retries,
        })
    }

    fn cfg_strategy() -> impl Strategy<Value = TaskConfig> {
        (
            0_i64..500,
            limits(),
            limits(),
            limits(),
            0_i64..500,
            limits(),
            0_i64..50,
        )
            .prop_map(
                |(queue, acquire, create, start, run, finalize, delay)| TaskConfig {
                    queue_timeout_ms: queue,
                    acquire_node: acquire,
                    create_workspace: create,
                    start_agent: start,
                    run_timeout_ms: run,
                    finalize,
                    retry_delay_ms: delay,
                },
            )
    }

    fn succeed(run: &TaskRun, reason: StopReason) -> Option<E> {
        Some(match run.status {
            S::Queued => E::Started,
            S::AcquiringNode => node("n1"),
            S::CreatingWorkspace => workspace("w1"),
            S::StartingAgent => agent("s1"),
            S::Running => turn(reason),
            S::Finalizing => finalized(Some("https://pr")),
            S::Completed | S::Failed | S::Cancelled => return None,
        })
    }

    fn is_work(effect: &TaskEffect) -> bool {
        !matches!(
            effect,
            TaskEffect::CleanUp { .. } | TaskEffect::ArmTimer { .. }
        )
    }

    /// Whether `effect` is a CleanUp naming only resources `run` does not
    /// hold: a hand-back.
    fn is_hand_back(effect: &TaskEffect, run: &TaskRun) -> bool {
        let foreign =
            |named: &Option<String>, held: &Option<String>| named.is_none() || named != held;
        matches!(effect, TaskEffect::CleanUp { session_id, workspace_id, node_id }
            if (session_id.is_some() || workspace_id.is_some() || node_id.is_some())
                && foreign(session_id, &run.session_id)
                && foreign(workspace_id, &run.workspace_id)
                && foreign(node_id, &run.node_id))
    }

    /// Runs `steps` from a fresh run, checking per-step invariants, and
    /// returns every run visited with its time.
    fn run_steps(steps: &[Step], cfg: &TaskConfig) -> Result<Vec<(TaskRun, i64)>, TestCaseError> {
        let mut run = TaskRun::submit("do it", "id", VmSize::Small, 0, cfg);
        let mut now = 0_i64;
        let mut seen = vec![(run.clone(), now)];
        let mut work_per_step = std::collections::HashMap::<&'static str, u32>::new();
        let mut own_cleanups = 0_usize;
        for step in steps {
            let (event, at) = match step {
                Step::Event(e, dt) => (Some(e.clone()), now + dt),
                Step::Alarm => match run.deadline_at {
                    Some(at) => (Some(E::DeadlinePassed), at.max(now)),
                    None => (None, now),
                },
                Step::Succeed(reason) => (succeed(&run, *reason), now + 1),
                Step::FailCurrent(retryable) => (
                    run.status
                        .step()
                        .map(|s| failed(s, run.attempt, *retryable)),
                    now + 1,
                ),
            };
            now = now.max(at);
            let Some(event) = event else { continue };
            let before = run.clone();
            let result = run.apply(&event, at, cfg);
            if matches!(step, Step::Alarm) {
                prop_assert!(result.is_ok(), "alarm refused: {:?}", result);
                prop_assert_ne!(&run, &before, "an alarm always makes progress");
            }
            let Ok(effects) = result else {
                prop_assert_eq!(&run, &before, "a refusal changes nothing");
                continue;
            };
            if before.status.is_terminal() {
                // Terminal statuses absorb: no change, no work, only
                // hand-backs of resources the run never held.
                prop_assert_eq!(&run, &before);
                prop_assert!(
                    effects.iter().all(|e| is_hand_back(e, &run)),
                    "{:?}",
                    effects
                );
            }
            // Completed only through a push while finalizing.
            if run.status == S::Completed && before.status != S::Completed {
                prop_assert_eq!(before.status, S::Finalizing);
                let E::Finalized { pr_url, .. } = &event else {
                    return Err(TestCaseError::fail(format!("completed by {event:?}")));
                };
                prop_assert_eq!(&run.pr_url, pr_url);
            }
            // One clean-up of its own on ending; other clean-ups are
            // hand-backs.
            for effect in &effects {
                if let TaskEffect::CleanUp { .. } = effect
                    && !is_hand_back(effect, &run)
                {
                    own_cleanups += 1;
                }
            }
            let ended = run.status.is_terminal() && !before.status.is_terminal();
            if ended {
                prop_assert_eq!(
                    effects.last(),
                    Some(&clean_of(&run)),
                    "ending emits the run's own clean-up"
                );
            }
            prop_assert_eq!(own_cleanups, usize::from(run.status.is_terminal()));
            // The alarm always follows the deadline.
            let armed: Vec<_> = effects
                .iter()
                .filter_map(|e| match e {
                    TaskEffect::ArmTimer { at } => Some(*at),
                    _ => None,
                })
                .collect();
            prop_assert!(armed.len() <= 1);
            if let Some(at) = armed.first() {
                prop_assert_eq!(run.deadline_at, Some(*at));
            } else if !run.status.is_terminal() {
                prop_assert_eq!(
                    run.deadline_at,
                    before.deadline_at,
                    "moved without ArmTimer"
                );
            }
            // Retries are bounded: never more attempts of a step than its
            // budget allows.
            for effect in effects.iter().filter(|e| is_work(e)) {
                let name = match effect {
                    TaskEffect::AcquireNode { .. } => "acquire",
                    TaskEffect::CreateWorkspace { .. } => "create",
                    TaskEffect::StartAgent { .. } => "start",
                    _ => "finalize",
                };
                *work_per_step.entry(name).or_default() += 1;
            }
            for (name, step) in [
                ("acquire", TaskStep::AcquireNode),
                ("create", TaskStep::CreateWorkspace),
                ("start", TaskStep::StartAgent),
                ("finalize", TaskStep::Finalize),
            ] {
                let done = work_per_step.get(name).copied().unwrap_or(0);
                prop_assert!(
                    done <= cfg.limits(step).max_retries + 1,
                    "{} x{}",
                    name,
                    done
                );
            }
            check_invariants(&run, cfg)?;
            seen.push((run.clone(), now));
        }
        Ok(seen)
    }

    fn clean_of(run: &TaskRun) -> TaskEffect {
        TaskEffect::CleanUp {
            session_id: run.session_id.clone(),
            workspace_id: run.workspace_id.clone(),
            node_id: run.node_id.clone(),
        }
    }

    fn check_invariants(run: &TaskRun, cfg: &TaskConfig) -> Result<(), TestCaseError> {
        // Every non-terminal status has a deadline, terminal ones none.
        prop_assert_eq!(run.deadline_at.is_none(), run.status.is_terminal());
        if let Some(at) = run.deadline_at {
            prop_assert!(at >= run.status_since);
        }
        if let Some(step) = run.status.step() {
            prop_assert!(run.attempt >= 1);
            prop_assert!(run.attempt <= cfg.limits(step).max_retries + 1);
        }
        // The ids each step needs were recorded before it began.
        let holds = |id: &Option<String>| id.is_some();
        match run.status {
            S::CreatingWorkspace => prop_assert!(holds(&run.node_id)),
            S::StartingAgent => prop_assert!(holds(&run.node_id) && holds(&run.workspace_id)),
            S::Running | S::Finalizing | S::Completed => prop_assert!(
                holds(&run.node_id) && holds(&run.workspace_id) && holds(&run.session_id)
            ),
            _ => {}
        }
        prop_assert_eq!(run.failure.is_some(), run.status == S::Failed);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(384))]

        /// No panic, terminal statuses absorb, every non-terminal status has
        /// a deadline (and ArmTimer follows it), completed only via
        /// finalized, retries bounded, one own clean-up on ending.
        #[test]
        fn invariants_hold_along_random_sequences(
            steps in prop::collection::vec(step_strategy(), 0..60),
            cfg in cfg_strategy(),
        ) {
            run_steps(&steps, &cfg)?;
        }

        /// A cancel from any reachable run ends it cancelled with its own
        /// clean-up, or leaves an ended run as it is.
        #[test]
        fn cancel_always_ends_in_cancelled(
            steps in prop::collection::vec(step_strategy(), 0..40),
            cfg in cfg_strategy(),
            dt in -50_i64..50,
        ) {
            for (mut run, now) in run_steps(&steps, &cfg)? {
                let before = run.clone();
                let effects = run.apply(&E::CancelRequested, now + dt, &cfg).unwrap();
                if before.status.is_terminal() {
                    prop_assert_eq!(&run, &before);
                    prop_assert!(effects.is_empty());
                } else {
                    prop_assert_eq!(run.status, S::Cancelled);
                    prop_assert_eq!(effects, vec![clean_of(&run)]);
                }
            }
        }

        /// Repeating an event already applied, at the same time, changes
        /// nothing and does nothing but hand back again a resource the run
        /// cannot use. (The alarm is left out: a repeated alarm is refused
        /// as not due, or, with a zero timeout, is a new alarm.)
        #[test]
        fn repeating_an_event_is_a_no_op(
            steps in prop::collection::vec(step_strategy(), 0..40),
            event in event_strategy(),
            cfg in cfg_strategy(),
            dt in -50_i64..50,
        ) {
            prop_assume!(event != E::DeadlinePassed);
            for (mut run, now) in run_steps(&steps, &cfg)? {
                if run.apply(&event, now + dt, &cfg).is_err() {
                    continue;
                }
                let once = run.clone();
                match run.apply(&event, now + dt, &cfg) {
                    Ok(effects) => {
                        prop_assert!(effects.iter().all(|e| is_hand_back(e, &run)), "{:?}", effects);
                    }
                    Err(e) => prop_assert_eq!(e.code(), "invalid_transition"),
                }
                prop_assert_eq!(&run, &once);
            }
        }

        /// Left alone (alarms only), every run ends failed, within the
        /// retry budget of its steps.
        #[test]
        fn alarms_alone_end_every_run(
            steps in prop::collection::vec(step_strategy(), 0..40),
            cfg in cfg_strategy(),
        ) {
            for (mut run, _) in run_steps(&steps, &cfg)? {
                let ended = run.status.is_terminal();
                for _ in 0..20 {
                    let Some(at) = run.deadline_at else { break };
                    run.apply(&E::DeadlinePassed, at, &cfg).unwrap();
                }
                prop_assert!(run.status.is_terminal());
                if !ended {
                    prop_assert_eq!(run.status, S::Failed);
                }
            }
        }

        /// Titles are one non-empty line within the limit; branch names are
        /// always valid git branches in the `sam/` namespace.
        #[test]
        fn titles_and_branch_names_are_always_well_formed(
            message in any::<String>(),
            ascii in "[ -~\t\n]{0,200}",
            short_id in any::<String>(),
        ) {
            for message in [message, ascii] {
                let title = derive_title(&message);
                prop_assert!(!title.is_empty());
                prop_assert!(title.chars().count() <= MAX_TITLE_CHARS);
                prop_assert!(!title.chars().any(char::is_control));
                prop_assert_eq!(title.trim(), title.as_str());
                let branch = branch_name(&title, &short_id);
                prop_assert!(validate_branch_name(&branch).is_ok(), "{}", branch);
                prop_assert!(branch.starts_with("sam/"));
                let raw = branch_name(&message, &short_id);
                prop_assert!(validate_branch_name(&raw).is_ok(), "{}", raw);
                let slug = raw.trim_start_matches("sam/");
                prop_assert!(!slug.is_empty() && !slug.contains("--"));
                prop_assert!(slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }
    }
}
