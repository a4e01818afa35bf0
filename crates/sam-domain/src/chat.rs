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

/// One exchange of a conversation: what the user asked and what the agent
/// answered in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub user: String,
    pub agent: String,
}

/// Longest history carried into a continuation, in bytes (the oldest
/// exchanges are dropped first).
pub const MAX_HISTORY_BYTES: usize = 16 * 1024;

/// A session's conversation from its prompts (`(prompt_id, text)`, in the
/// order sent) and messages (`(kind, payload)`, in sequence order): each
/// prompt with the agent text of its turn (the `agent_message_chunk`s
/// between its `prompt_sent` and the next one).
pub fn conversation(prompts: &[(String, String)], messages: &[(String, Value)]) -> Vec<Exchange> {
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut current: Option<usize> = None;
    for (kind, payload) in messages {
        match kind.as_str() {
            "prompt_sent" => {
                let id = payload.get("prompt_id").and_then(Value::as_str);
                let text = prompts
                    .iter()
                    .find(|(pid, _)| Some(pid.as_str()) == id)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                exchanges.push(Exchange {
                    user: text,
                    agent: String::new(),
                });
                current = Some(exchanges.len() - 1);
            }
            "update" => {
                let update = payload.get("update").unwrap_or(&Value::Null);
                if update.get("sessionUpdate").and_then(Value::as_str)
                    == Some("agent_message_chunk")
                    && let (Some(i), Some(text)) = (
                        current,
                        update.pointer("/content/text").and_then(Value::as_str),
                    )
                {
                    exchanges[i].agent.push_str(text);
                }
            }
            _ => {}
        }
    }
    exchanges
}

/// The first prompt of a continuation: the earlier conversation (the most
/// recent exchanges that fit in [`MAX_HISTORY_BYTES`]), then the new
/// message, so an agent in a fresh workspace on the same branch has the
/// context the old session had.
pub fn continuation_prompt(history: &[Exchange], message: &str) -> String {
    let mut kept: Vec<String> = Vec::new();
    let mut size = 0;
    for e in history.iter().rev() {
        let block = format!("User: {}\nAgent: {}\n", e.user.trim(), e.agent.trim());
        if size + block.len() > MAX_HISTORY_BYTES {
            break;
        }
        size += block.len();
        kept.push(block);
    }
    kept.reverse();
    if kept.is_empty() {
        return message.to_owned();
    }
    format!(
        "This continues an earlier conversation on this branch; its work is already \
         committed here.\n\n{}\nNow: {message}",
        kept.concat()
    )
}

#[cfg(test)]
mod conversation_tests {
    use super::*;
    use serde_json::json;

    fn chunk(text: &str) -> (String, Value) {
        (
            "update".into(),
            json!({"update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}}),
        )
    }

    #[test]
    fn pairs_each_prompt_with_its_turns_text() {
        let prompts = vec![
            ("p1".to_owned(), "Create hello.txt".to_owned()),
            ("p2".to_owned(), "Now append a line".to_owned()),
        ];
        let messages = vec![
            ("session_started".to_owned(), json!({})),
            ("prompt_sent".to_owned(), json!({"prompt_id": "p1"})),
            chunk("I will "),
            chunk("create it."),
            (
                "update".to_owned(),
                json!({"update": {"sessionUpdate": "tool_call", "title": "Write"}}),
            ),
            ("turn_ended".to_owned(), json!({"prompt_id": "p1"})),
            ("prompt_sent".to_owned(), json!({"prompt_id": "p2"})),
            chunk("Appended."),
        ];
        let c = conversation(&prompts, &messages);
        assert_eq!(
            c,
            [
                Exchange {
                    user: "Create hello.txt".into(),
                    agent: "I will create it.".into()
                },
                Exchange {
                    user: "Now append a line".into(),
                    agent: "Appended.".into()
                }
            ]
        );
        let prompt = continuation_prompt(&c, "And a third");
        assert!(prompt.contains("User: Create hello.txt\nAgent: I will create it.\n"));
        assert!(prompt.ends_with("Now: And a third"));
        assert_eq!(continuation_prompt(&[], "Just this"), "Just this");
    }

    #[test]
    fn history_keeps_the_most_recent_exchanges_that_fit() {
        let big = "x".repeat(MAX_HISTORY_BYTES / 2);
        let history: Vec<Exchange> = (0..5)
            .map(|i| Exchange {
                user: format!("ask {i}"),
                agent: big.clone(),
            })
            .collect();
        let prompt = continuation_prompt(&history, "next");
        assert!(prompt.contains("ask 4"));
        assert!(!prompt.contains("ask 0"));
        assert!(prompt.len() < MAX_HISTORY_BYTES + 500);
    }
}

/// Most words a chat search looks for.
pub const MAX_SEARCH_TERMS: usize = 8;
/// Longest word a chat search keeps, in characters.
const MAX_TERM_CHARS: usize = 64;

/// The words of a chat search, cleaned: split on whitespace, quotes and
/// control characters dropped, words without a letter or digit skipped, at most [`MAX_SEARCH_TERMS`] of at most
/// 64 characters. Empty when there is nothing to look for.
pub fn search_terms(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| *c != '"' && !c.is_control())
                .take(MAX_TERM_CHARS)
                .collect::<String>()
        })
        // A word without letters or digits has no token to look for (and
        // would be an empty FTS phrase).
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .take(MAX_SEARCH_TERMS)
        .collect()
}

/// An FTS5 `MATCH` expression finding texts with every term (each quoted,
/// so nothing the user types is FTS syntax; a trailing `*` matches words
/// starting with it).
pub fn fts_query(terms: &[String]) -> Option<String> {
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|t| format!("\"{t}\"*"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// A `LIKE` pattern (with `\` as the escape character) for one term, for
/// storage without FTS5.
pub fn like_pattern(term: &str) -> String {
    let mut out = String::from("%");
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod search_tests {
    use super::*;

    #[test]
    fn terms_are_cleaned_and_quoted() {
        assert_eq!(search_terms("  hello   \"world\" "), ["hello", "world"]);
        assert!(search_terms(" \" ").is_empty());
        assert!(search_terms("- * () --").is_empty());
        assert_eq!(search_terms(&"w ".repeat(20)).len(), MAX_SEARCH_TERMS);
        assert_eq!(
            fts_query(&search_terms("login NEAR(bug) OR x")).unwrap(),
            "\"login\"* \"NEAR(bug)\"* \"OR\"* \"x\"*"
        );
        assert_eq!(fts_query(&[]), None);
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
