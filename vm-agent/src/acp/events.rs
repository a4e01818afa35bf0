//! A session's events, as the outbox stores them and the control plane
//! receives them (kinds and payloads: see the module documentation of
//! [`crate::acp`]). Every event is appended, and on disk, before the session
//! acts on it.

use serde_json::{Value, json};

use crate::outbox::{AgentProcess, MAX_PAYLOAD_BYTES, Outbox, OutboxError};

/// Appends one session's events.
#[derive(Clone)]
pub struct Recorder {
    outbox: Outbox,
    session_id: String,
}

impl Recorder {
    pub fn new(outbox: Outbox, session_id: &str) -> Self {
        Self {
            outbox,
            session_id: session_id.to_owned(),
        }
    }

    /// Appends `kind` with `payload`. A failure is logged: the session goes
    /// on (an agent's turn is not stopped by a full disk), but the message
    /// is lost, which the control plane sees as a gap-free stream missing
    /// it.
    pub async fn record(&self, kind: &str, payload: Value) {
        let mut text = payload.to_string();
        if text.len() > MAX_PAYLOAD_BYTES {
            text = oversized(kind, &payload, text.len()).to_string();
        }
        match self
            .outbox
            .append_marked(
                &self.session_id,
                kind,
                text,
                super::now_ms(),
                kinds::mark(kind),
            )
            .await
        {
            Ok(seq) => {
                tracing::debug!(session = %self.session_id, kind, seq, "session event recorded");
            }
            Err(err) => report(&self.session_id, kind, &err),
        }
    }
}

impl Recorder {
    /// Records the session's agent process (just spawned, the leader of
    /// its own process group), so a restarted vm-agent can end it if this
    /// one dies first. A failure is logged: the session goes on.
    pub async fn remember_process(&self, pid: u32) {
        let Some(start_ticks) = super::recover::start_ticks(pid) else {
            tracing::warn!(session = %self.session_id, pid, "cannot read the agent's start time");
            return;
        };
        let process = AgentProcess { pid, start_ticks };
        if let Err(err) = self
            .outbox
            .set_agent_process(&self.session_id, process)
            .await
        {
            tracing::error!(session = %self.session_id, code = err.code(), %err, "cannot record the agent process");
        }
    }
}

fn report(session: &str, kind: &str, err: &OutboxError) {
    tracing::error!(session, kind, code = err.code(), %err, "cannot record a session event");
}

/// A stand-in for a payload over the outbox's limit (a huge tool output):
/// the update's tag and tool call id, marked `truncated`.
fn oversized(kind: &str, payload: &Value, bytes: usize) -> Value {
    let update = &payload["update"];
    let mut kept = serde_json::Map::new();
    for key in ["sessionUpdate", "toolCallId", "status", "kind", "title"] {
        if let Some(value) = update.get(key).filter(|v| !v.is_object() && !v.is_array()) {
            kept.insert(key.to_owned(), value.clone());
        }
    }
    if kind == "update" {
        json!({"update": kept, "truncated": true, "bytes": bytes})
    } else {
        json!({"truncated": true, "bytes": bytes})
    }
}

/// The payloads, one constructor per kind, so the contract lives in one
/// place.
pub mod kinds {
    use serde_json::{Value, json};

    use crate::outbox::Mark;

    pub const SESSION_STARTED: &str = "session_started";
    pub const AGENT_START_FAILED: &str = "agent_start_failed";
    pub const PROMPT_SENT: &str = "prompt_sent";
    pub const UPDATE: &str = "update";
    pub const PERMISSION_REQUESTED: &str = "permission_requested";
    pub const PERMISSION_ANSWERED: &str = "permission_answered";
    pub const TURN_ENDED: &str = "turn_ended";
    pub const TURN_FAILED: &str = "turn_failed";
    pub const AGENT_EXITED: &str = "agent_exited";

    pub fn session_started(agent: &str, acp_session_id: &str, agent_pid: u32) -> Value {
        json!({"agent": agent, "acp_session_id": acp_session_id, "agent_pid": agent_pid})
    }

    pub fn failure(code: &str, message: &str) -> Value {
        json!({"code": code, "message": message})
    }

    pub fn prompt_sent(prompt_id: &str) -> Value {
        json!({"prompt_id": prompt_id})
    }

    #[allow(clippy::needless_pass_by_value)] // moved into the payload
    pub fn update(update: Value) -> Value {
        json!({"update": update})
    }

    #[allow(clippy::needless_pass_by_value)] // moved into the payload
    pub fn permission_requested(
        request_id: &str,
        tool_call: Value,
        options: Value,
        policy: &str,
    ) -> Value {
        json!({"request_id": request_id, "tool_call": tool_call, "options": options, "policy": policy})
    }

    pub fn permission_answered(request_id: &str, option_id: Option<&str>, by: &str) -> Value {
        json!({"request_id": request_id, "option_id": option_id, "by": by})
    }

    pub fn turn_ended(prompt_id: &str, stop_reason: &str) -> Value {
        json!({"prompt_id": prompt_id, "stop_reason": stop_reason})
    }

    pub fn turn_failed(prompt_id: &str, code: &str, message: &str) -> Value {
        json!({"prompt_id": prompt_id, "code": code, "message": message})
    }

    /// `reason` of an `agent_exited` a restarted vm-agent records for a
    /// session of its predecessor, and `code` of such an
    /// `agent_start_failed`.
    pub const VM_AGENT_RESTARTED: &str = "vm_agent_restarted";

    /// What a message of `kind` says about its session.
    pub fn mark(kind: &str) -> Mark {
        match kind {
            PROMPT_SENT => Mark::TurnStarted,
            TURN_ENDED | TURN_FAILED => Mark::TurnEnded,
            AGENT_EXITED | AGENT_START_FAILED => Mark::Last,
            _ => Mark::None,
        }
    }

    pub fn agent_exited(code: Option<i32>, signal: Option<i32>, during_turn: bool) -> Value {
        json!({"code": code, "signal": signal, "during_turn": during_turn})
    }

    /// The session's agent was lost with the vm-agent that ran it (killed,
    /// crashed): exit status unknown.
    pub fn agent_lost(during_turn: bool) -> Value {
        json!({"code": null, "signal": null, "during_turn": during_turn, "reason": VM_AGENT_RESTARTED})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_updates_keep_their_tag_and_tool_call() {
        let payload = kinds::update(json!({
            "sessionUpdate": "tool_call_update",
            "toolCallId": "call_1",
            "status": "completed",
            "content": [{"type": "content", "content": {"type": "text", "text": "x".repeat(300_000)}}],
        }));
        let text = payload.to_string();
        let small = oversized("update", &payload, text.len());
        assert_eq!(small["update"]["sessionUpdate"], "tool_call_update");
        assert_eq!(small["update"]["toolCallId"], "call_1");
        assert_eq!(small["truncated"], true);
        assert!(small.to_string().len() < 1000);
    }

    #[test]
    fn payloads_have_the_documented_shape() {
        assert_eq!(
            kinds::permission_answered("r1", None, "cancel"),
            json!({"request_id": "r1", "option_id": null, "by": "cancel"})
        );
        assert_eq!(
            kinds::agent_exited(None, Some(9), true),
            json!({"code": null, "signal": 9, "during_turn": true})
        );
        assert_eq!(
            kinds::session_started("openai-codex", "s-1", 42),
            json!({"agent": "openai-codex", "acp_session_id": "s-1", "agent_pid": 42})
        );
    }
}
