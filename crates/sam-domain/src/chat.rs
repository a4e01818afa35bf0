//! Project chat: how a session's message stream is taken in and what it
//! says about the agent.
//!
//! A vm-agent delivers each session's messages at least once, numbered
//! 1, 2, 3, ... per session. The chat keeps, per session, `acked_up_to`:
//! the highest number up to which it holds every message. [`accept`] takes
//! from a batch exactly the messages that extend that run, so redeliveries
//! are dropped, nothing is stored out of order, and a gap waits for the
//! vm-agent to send the missing messages again.

use serde_json::Value;

/// Which messages of a batch (given by their sequence numbers, in the
/// order received) to store: their indexes, in order. Stored messages are
/// exactly `acked_up_to + 1, acked_up_to + 2, ...` as far as the batch
/// continues the run; the new `acked_up_to` is `acked_up_to` plus their
/// count.
pub fn accept(acked_up_to: u64, seqs: &[u64]) -> Vec<usize> {
    let mut next = acked_up_to.saturating_add(1);
    let mut taken = Vec::new();
    for (index, &seq) in seqs.iter().enumerate() {
        if seq < next {
            continue; // a redelivery
        }
        if seq != next {
            break; // a gap
        }
        taken.push(index);
        next = next.saturating_add(1);
    }
    taken
}

/// A session's status after a message of `kind` (the vm-agent's message
/// kinds): derived from the agent's own protocol events, so the chat always
/// says whether the agent is working (`running`), waiting for the user
/// (`waiting_for_input`, `waiting_for_permission`), done (`completed`) or
/// gone (`failed`, `interrupted`). Ended sessions stay ended.
pub fn status_after(current: &str, kind: &str, payload: &Value) -> &'static str {
    let current = known_status(current);
    if matches!(current, "completed" | "failed" | "interrupted") {
        return current;
    }
    let flag = |name: &str| payload.get(name).and_then(Value::as_bool) == Some(true);
    match kind {
        "session_started" | "turn_ended" | "turn_failed" => "waiting_for_input",
        "prompt_sent" | "permission_answered" => "running",
        "permission_requested" if payload.get("policy").and_then(Value::as_str) == Some("ask") => {
            "waiting_for_permission"
        }
        "agent_exited" if flag("during_turn") => "interrupted",
        "agent_exited"
            if payload.get("code").and_then(Value::as_i64) == Some(0) || flag("stopped") =>
        {
            "completed"
        }
        "agent_exited" | "agent_start_failed" => "failed",
        _ => current,
    }
}

/// `raw` as one of the statuses, `pending` when it is none of them.
fn known_status(raw: &str) -> &'static str {
    [
        "pending",
        "running",
        "waiting_for_input",
        "waiting_for_permission",
        "completed",
        "failed",
        "interrupted",
    ]
    .into_iter()
    .find(|s| *s == raw)
    .unwrap_or("pending")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn takes_the_run_that_continues_and_stops_at_a_gap() {
        assert_eq!(accept(0, &[1, 2, 3]), [0, 1, 2]);
        assert_eq!(accept(2, &[1, 2, 3, 4]), [2, 3]);
        assert_eq!(accept(2, &[4, 5]), Vec::<usize>::new());
        assert_eq!(accept(0, &[1, 3, 4]), [0]);
        assert_eq!(accept(5, &[]), Vec::<usize>::new());
        assert_eq!(accept(0, &[1, 1, 2]), [0, 2]);
    }

    proptest! {
        /// Whatever order, duplication and loss deliveries suffer, what is
        /// stored is 1..=n exactly once, in order, once everything has
        /// been delivered at least once after its predecessors.
        #[test]
        fn any_redelivery_schedule_stores_each_message_once_in_order(
            n in 1u64..40,
            batches in prop::collection::vec(prop::collection::vec(1u64..45, 0..12), 0..20),
        ) {
            let mut acked = 0;
            let mut stored = Vec::new();
            let mut deliver = |seqs: &[u64], acked: &mut u64| {
                for i in accept(*acked, seqs) {
                    stored.push(seqs[i]);
                    *acked += 1;
                }
            };
            for batch in &batches {
                let batch: Vec<u64> = batch.iter().copied().filter(|s| *s <= n).collect();
                deliver(&batch, &mut acked);
            }
            // The vm-agent resends from the first unacknowledged message.
            let rest: Vec<u64> = (acked + 1..=n).collect();
            deliver(&rest, &mut acked);
            prop_assert_eq!(stored, (1..=n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn status_follows_the_agents_events() {
        let none = json!({});
        assert_eq!(
            status_after("pending", "session_started", &none),
            "waiting_for_input"
        );
        assert_eq!(
            status_after("waiting_for_input", "prompt_sent", &none),
            "running"
        );
        assert_eq!(
            status_after("running", "permission_requested", &json!({"policy": "ask"})),
            "waiting_for_permission"
        );
        assert_eq!(
            status_after(
                "running",
                "permission_requested",
                &json!({"policy": "approve"})
            ),
            "running"
        );
        assert_eq!(
            status_after("waiting_for_permission", "permission_answered", &none),
            "running"
        );
        assert_eq!(status_after("running", "update", &none), "running");
        assert_eq!(
            status_after("running", "turn_ended", &none),
            "waiting_for_input"
        );
        assert_eq!(
            status_after("running", "agent_exited", &json!({"during_turn": true})),
            "interrupted"
        );
        assert_eq!(
            status_after("waiting_for_input", "agent_exited", &json!({"code": 0})),
            "completed"
        );
        assert_eq!(
            status_after("waiting_for_input", "agent_exited", &json!({"code": 1})),
            "failed"
        );
        assert_eq!(
            status_after("pending", "agent_start_failed", &none),
            "failed"
        );
        // Ended sessions stay ended; unknown statuses count as pending.
        assert_eq!(status_after("completed", "prompt_sent", &none), "completed");
        assert_eq!(status_after("bogus", "update", &none), "pending");
    }
}
