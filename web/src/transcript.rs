//! A chat session's transcript as the chat page shows it: the stored
//! messages (`sam_wire::SessionMessage`, in sequence order) and the user's
//! prompts folded into display items.
//!
//! Rules (`static/chat.js` applies the same ones to messages arriving live,
//! on the same markup, so a page rendered here continues seamlessly):
//!
//! - a prompt appears where its `prompt_sent` message is; prompts not sent
//!   to the agent yet wait at the end, marked pending;
//! - consecutive `agent_message_chunk` texts are one agent bubble, likewise
//!   thoughts (`agent_thought_chunk`, shown collapsed) and
//!   `user_message_chunk`s; anything shown in between starts a new one;
//! - a `tool_call` is one item; a `tool_call_update` with the same
//!   `toolCallId` replaces the fields it carries (ACP semantics: `content`
//!   is replaced as a whole, not appended);
//! - a `plan` replaces the plan shown since the last prompt, else starts one;
//! - `permission_answered` marks its `permission_requested` as answered;
//! - session events (started, turn ended or failed, agent exited, …) are one
//!   line each; everything else (`available_commands_update`, usage, …) is
//!   not shown.
//!
//! Diffs are rendered from a tool call's `oldText`/`newText` by a plain line
//! diff ([`line_diff`]), with long unchanged runs folded.

use serde_json::Value;

/// A prompt the user sent (the project's chat keeps them apart from the
/// agent's messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPrompt {
    pub prompt_id: String,
    pub text: String,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// One thing the chat stream shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatItem {
    /// The user's prompt (or a replayed `user_message_chunk`).
    User {
        prompt_id: Option<String>,
        text: String,
    },
    /// The agent's text: consecutive chunks together.
    Agent {
        text: String,
    },
    /// The agent's reasoning, consecutive chunks together.
    Thought {
        text: String,
    },
    ToolCall(ToolCall),
    Plan {
        entries: Vec<PlanEntry>,
    },
    Permission(Permission),
    /// A session event in words, with a closed-set class.
    Event {
        text: String,
        class: &'static str,
    },
}

/// A tool call with its latest state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub title: String,
    /// ACP tool kind (`edit`, `read`, `execute`, …); may be empty.
    pub kind: String,
    /// `pending`, `in_progress`, `completed`, `failed`; may be empty.
    pub status: String,
    pub content: Vec<ToolContent>,
}

/// One piece of a tool call's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolContent {
    Diff { path: String, lines: Vec<DiffLine> },
    Text { text: String },
}

/// One line of a rendered diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `+`, `-`, ` ` or `…` (a folded run of unchanged lines).
    pub sign: char,
    pub text: String,
}

impl DiffLine {
    /// The line's CSS class, from a closed set.
    pub fn class(&self) -> &'static str {
        match self.sign {
            '+' => "diff-add",
            '-' => "diff-del",
            '…' => "diff-fold",
            _ => "diff-ctx",
        }
    }
}

/// One entry of an agent's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanEntry {
    pub content: String,
    /// `pending`, `in_progress` or `completed`.
    pub status: String,
}

impl PlanEntry {
    pub fn class(&self) -> &'static str {
        plan_status_class(&self.status)
    }
}

/// A permission the agent asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    pub request_id: String,
    /// The tool call's title, if the request names one.
    pub title: String,
    pub options: Vec<PermissionOption>,
    /// The chosen option's name (or id), once answered.
    pub answered: Option<String>,
    /// Who answered (`policy`, `user`, …).
    pub answered_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionOption {
    pub option_id: String,
    pub name: String,
    /// `allow_once`, `allow_always`, `reject_once`, `reject_always`.
    pub kind: String,
}

impl PermissionOption {
    /// Rejections look different from approvals.
    pub fn is_reject(&self) -> bool {
        self.kind.starts_with("reject")
    }
}

/// Plan entry classes, from a closed set (the script derives the same).
pub(crate) fn plan_status_class(status: &str) -> &'static str {
    match status {
        "pending" => "plan-pending",
        "in_progress" => "plan-in_progress",
        "completed" => "plan-completed",
        _ => "plan-unknown",
    }
}

/// The transcript as display items (see the module's rules), and the
/// prompts still waiting to be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub items: Vec<ChatItem>,
    pub pending: Vec<ChatPrompt>,
    /// The highest sequence number folded in (the live stream continues
    /// after it); 0 for none.
    pub last_seq: u64,
}

/// Folds `messages` (in sequence order) and `prompts` into a [`Transcript`].
pub fn build_transcript(
    messages: &[sam_wire::SessionMessage],
    prompts: &[ChatPrompt],
) -> Transcript {
    let mut items: Vec<ChatItem> = Vec::new();
    let mut sent: Vec<&str> = Vec::new();
    // Where the current turn's plan is, if it has one.
    let mut plan_at: Option<usize> = None;
    let mut last_seq = 0;
    for m in messages {
        last_seq = last_seq.max(m.seq);
        let p = &m.payload;
        match m.kind.as_str() {
            "prompt_sent" => {
                let id = str_field(p, "prompt_id");
                if sent.contains(&id) {
                    continue;
                }
                sent.push(id);
                let text = prompts
                    .iter()
                    .find(|q| q.prompt_id == id)
                    .map_or("", |q| q.text.as_str());
                items.push(ChatItem::User {
                    prompt_id: Some(id.to_owned()),
                    text: text.to_owned(),
                });
                plan_at = None;
            }
            "update" => apply_update(&mut items, &mut plan_at, &p["update"]),
            "permission_requested" => items.push(ChatItem::Permission(Permission {
                request_id: str_field(p, "request_id").to_owned(),
                title: str_field(&p["tool_call"], "title").to_owned(),
                options: p["options"]
                    .as_array()
                    .map(|options| {
                        options
                            .iter()
                            .map(|o| PermissionOption {
                                option_id: str_field(o, "optionId").to_owned(),
                                name: str_field(o, "name").to_owned(),
                                kind: str_field(o, "kind").to_owned(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                answered: None,
                answered_by: None,
            })),
            "permission_answered" => {
                let id = str_field(p, "request_id");
                let option = str_field(p, "option_id");
                for item in items.iter_mut().rev() {
                    if let ChatItem::Permission(q) = item
                        && q.request_id == id
                    {
                        let name = q
                            .options
                            .iter()
                            .find(|o| o.option_id == option)
                            .map_or(option, |o| o.name.as_str());
                        q.answered = Some(name.to_owned());
                        q.answered_by =
                            Some(str_field(p, "by").to_owned()).filter(|b| !b.is_empty());
                        break;
                    }
                }
            }
            kind => {
                if let Some((text, class)) = event_text(kind, p) {
                    items.push(ChatItem::Event { text, class });
                }
            }
        }
    }
    let pending = prompts
        .iter()
        .filter(|q| !sent.contains(&q.prompt_id.as_str()))
        .cloned()
        .collect();
    Transcript {
        items,
        pending,
        last_seq,
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The text of an ACP content block (`{type:"text", text}`); other block
/// types are named instead.
fn block_text(block: &Value) -> String {
    match str_field(block, "type") {
        "text" | "" => str_field(block, "text").to_owned(),
        other => format!("[{other}]"),
    }
}

fn apply_update(items: &mut Vec<ChatItem>, plan_at: &mut Option<usize>, u: &Value) {
    match str_field(u, "sessionUpdate") {
        "agent_message_chunk" => {
            let text = block_text(&u["content"]);
            match items.last_mut() {
                Some(ChatItem::Agent { text: last }) => last.push_str(&text),
                _ => items.push(ChatItem::Agent { text }),
            }
        }
        "agent_thought_chunk" => {
            let text = block_text(&u["content"]);
            match items.last_mut() {
                Some(ChatItem::Thought { text: last }) => last.push_str(&text),
                _ => items.push(ChatItem::Thought { text }),
            }
        }
        "user_message_chunk" => {
            let text = block_text(&u["content"]);
            match items.last_mut() {
                Some(ChatItem::User {
                    prompt_id: None,
                    text: last,
                }) => last.push_str(&text),
                _ => items.push(ChatItem::User {
                    prompt_id: None,
                    text,
                }),
            }
        }
        "tool_call" | "tool_call_update" => {
            let id = str_field(u, "toolCallId");
            let existing = items.iter_mut().rev().find_map(|item| match item {
                ChatItem::ToolCall(t) if t.id == id => Some(t),
                _ => None,
            });
            if let Some(call) = existing {
                merge_tool_call(call, u);
            } else {
                let mut call = ToolCall {
                    id: id.to_owned(),
                    ..ToolCall::default()
                };
                merge_tool_call(&mut call, u);
                items.push(ChatItem::ToolCall(call));
            }
        }
        "plan" => {
            let entries = u["entries"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| PlanEntry {
                            content: str_field(e, "content").to_owned(),
                            status: str_field(e, "status").to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(ChatItem::Plan { entries: shown }) =
                plan_at.and_then(|at| items.get_mut(at))
            {
                *shown = entries;
            } else {
                *plan_at = Some(items.len());
                items.push(ChatItem::Plan { entries });
            }
        }
        _ => {}
    }
}

/// Takes the fields an update carries; `content` is replaced as a whole.
fn merge_tool_call(call: &mut ToolCall, u: &Value) {
    for (key, field) in [
        ("title", &mut call.title),
        ("kind", &mut call.kind),
        ("status", &mut call.status),
    ] {
        if let Some(value) = u.get(key).and_then(Value::as_str) {
            value.clone_into(field);
        }
    }
    if let Some(content) = u.get("content").and_then(Value::as_array) {
        call.content = content.iter().filter_map(tool_content).collect();
    }
}

fn tool_content(c: &Value) -> Option<ToolContent> {
    match str_field(c, "type") {
        "diff" => Some(ToolContent::Diff {
            path: str_field(c, "path").to_owned(),
            lines: line_diff(
                c.get("oldText").and_then(Value::as_str).unwrap_or(""),
                str_field(c, "newText"),
            ),
        }),
        "content" => Some(ToolContent::Text {
            text: block_text(&c["content"]),
        }),
        "terminal" => Some(ToolContent::Text {
            text: format!("[terminal {}]", str_field(c, "terminalId")),
        }),
        _ => None,
    }
}

/// A session event in words, or `None` for messages not shown.
fn event_text(kind: &str, p: &Value) -> Option<(String, &'static str)> {
    let reason = ["error", "message", "reason", "detail"]
        .iter()
        .find_map(|k| p.get(*k).and_then(Value::as_str))
        .filter(|r| !r.is_empty());
    let with_reason = |what: &str| match reason {
        Some(r) => format!("{what}: {r}"),
        None => what.to_owned(),
    };
    Some(match kind {
        "session_started" => ("Agent session started".to_owned(), "event-info"),
        "turn_ended" => (
            format!(
                "Turn ended ({})",
                non_empty(str_field(p, "stop_reason"), "unknown")
            ),
            "event-ok",
        ),
        "turn_failed" => (with_reason("Turn failed"), "event-error"),
        "agent_start_failed" => (with_reason("The agent could not start"), "event-error"),
        "agent_exited" => {
            let how = match (
                p.get("code").and_then(Value::as_i64),
                str_field(p, "signal"),
            ) {
                (Some(code), _) => format!("code {code}"),
                (None, signal) if !signal.is_empty() => format!("signal {signal}"),
                _ => "no status".to_owned(),
            };
            let during = p.get("during_turn").and_then(Value::as_bool) == Some(true);
            (
                format!(
                    "Agent exited ({how}){}",
                    if during { " during a turn" } else { "" }
                ),
                if during { "event-error" } else { "event-info" },
            )
        }
        _ => return None,
    })
}

fn non_empty<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

/// Above this many line pairs the diff is not computed line by line: the
/// old text is shown removed and the new one added.
const DIFF_CELLS_MAX: usize = 250_000;
/// Unchanged lines kept around each change; longer runs are folded.
const DIFF_CONTEXT: usize = 3;

/// A line diff of `old` → `new` (longest common subsequence), as unified-ish
/// lines: `-` removed, `+` added, ` ` unchanged, with unchanged runs longer
/// than twice the context folded into one `…` line. An empty `old` is a new
/// file: every line added.
#[allow(clippy::many_single_char_names)]
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = split_lines(old);
    let b: Vec<&str> = split_lines(new);
    let mut ops: Vec<(char, &str)> = Vec::with_capacity(a.len() + b.len());
    // Common head and tail are unchanged whatever the middle does.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    ops.extend(a[..head].iter().map(|l| (' ', *l)));
    if am.len().saturating_mul(bm.len()) > DIFF_CELLS_MAX {
        ops.extend(am.iter().map(|l| ('-', *l)));
        ops.extend(bm.iter().map(|l| ('+', *l)));
    } else {
        // lcs[i][j]: the longest common subsequence of am[i..] and bm[j..].
        let w = bm.len() + 1;
        let mut lcs = vec![0_u32; (am.len() + 1) * w];
        for i in (0..am.len()).rev() {
            for j in (0..bm.len()).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < am.len() || j < bm.len() {
            if i < am.len() && j < bm.len() && am[i] == bm[j] {
                ops.push((' ', am[i]));
                i += 1;
                j += 1;
            } else if i < am.len() && (j == bm.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])
            {
                // Removals first, as unified diffs show them.
                ops.push(('-', am[i]));
                i += 1;
            } else {
                ops.push(('+', bm[j]));
                j += 1;
            }
        }
    }
    ops.extend(a[a.len() - tail..].iter().map(|l| (' ', *l)));
    fold(&ops)
}

fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect()
}

/// Keeps [`DIFF_CONTEXT`] unchanged lines next to each change and folds
/// the rest of each unchanged run.
fn fold(ops: &[(char, &str)]) -> Vec<DiffLine> {
    let mut out = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        if ops[i].0 != ' ' {
            out.push(DiffLine {
                sign: ops[i].0,
                text: ops[i].1.to_owned(),
            });
            i += 1;
            continue;
        }
        let start = i;
        while i < ops.len() && ops[i].0 == ' ' {
            i += 1;
        }
        let keep_before = if start == 0 { 0 } else { DIFF_CONTEXT };
        let keep_after = if i == ops.len() { 0 } else { DIFF_CONTEXT };
        let run = i - start;
        if run > keep_before + keep_after + 1 {
            for &(sign, text) in &ops[start..start + keep_before] {
                out.push(DiffLine {
                    sign,
                    text: text.to_owned(),
                });
            }
            out.push(DiffLine {
                sign: '…',
                text: format!("{} unchanged lines", run - keep_before - keep_after),
            });
            for &(sign, text) in &ops[i - keep_after..i] {
                out.push(DiffLine {
                    sign,
                    text: text.to_owned(),
                });
            }
        } else {
            for &(sign, text) in &ops[start..i] {
                out.push(DiffLine {
                    sign,
                    text: text.to_owned(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(seq: u64, kind: &str, payload: Value) -> sam_wire::SessionMessage {
        sam_wire::SessionMessage {
            seq,
            created_at: 1_000 + i64::try_from(seq).unwrap_or(0),
            kind: kind.into(),
            payload,
        }
    }

    #[allow(clippy::needless_pass_by_value)]
    fn update(seq: u64, update: Value) -> sam_wire::SessionMessage {
        msg(seq, "update", json!({ "update": update }))
    }

    fn chunk(seq: u64, kind: &str, text: &str) -> sam_wire::SessionMessage {
        update(
            seq,
            json!({ "sessionUpdate": kind, "content": { "type": "text", "text": text } }),
        )
    }

    fn signs(lines: &[DiffLine]) -> String {
        lines
            .iter()
            .map(|l| format!("{}{}", l.sign, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn consecutive_agent_chunks_are_one_bubble() {
        let messages = [
            msg(1, "session_started", json!({})),
            msg(2, "prompt_sent", json!({ "prompt_id": "p1" })),
            chunk(3, "agent_message_chunk", "Hello"),
            chunk(4, "agent_message_chunk", ", world"),
            update(
                5,
                json!({ "sessionUpdate": "available_commands_update", "availableCommands": [] }),
            ),
            chunk(6, "agent_message_chunk", "!"),
            chunk(7, "agent_thought_chunk", "hmm "),
            chunk(8, "agent_thought_chunk", "yes"),
            chunk(9, "agent_message_chunk", "Done."),
            msg(
                10,
                "turn_ended",
                json!({ "prompt_id": "p1", "stop_reason": "end_turn" }),
            ),
        ];
        let prompts = [
            ChatPrompt {
                prompt_id: "p1".into(),
                text: "Please create hello.txt".into(),
                created_at: 1,
            },
            ChatPrompt {
                prompt_id: "p2".into(),
                text: "And a second file".into(),
                created_at: 2,
            },
        ];
        let t = build_transcript(&messages, &prompts);
        assert_eq!(
            t.items,
            [
                ChatItem::Event {
                    text: "Agent session started".into(),
                    class: "event-info"
                },
                ChatItem::User {
                    prompt_id: Some("p1".into()),
                    text: "Please create hello.txt".into()
                },
                // Hidden updates do not split a bubble.
                ChatItem::Agent {
                    text: "Hello, world!".into()
                },
                ChatItem::Thought {
                    text: "hmm yes".into()
                },
                ChatItem::Agent {
                    text: "Done.".into()
                },
                ChatItem::Event {
                    text: "Turn ended (end_turn)".into(),
                    class: "event-ok"
                },
            ]
        );
        assert_eq!(t.pending, [prompts[1].clone()]);
        assert_eq!(t.last_seq, 10);
    }

    #[test]
    fn tool_call_updates_merge_by_id_and_plans_replace() {
        let messages = [
            update(
                1,
                json!({ "sessionUpdate": "plan", "entries": [{ "content": "Write", "priority": "high", "status": "pending" }] }),
            ),
            update(
                2,
                json!({ "sessionUpdate": "tool_call", "toolCallId": "t1", "title": "Write hello.txt", "kind": "edit", "status": "pending" }),
            ),
            chunk(3, "agent_message_chunk", "Writing"),
            update(
                4,
                json!({ "sessionUpdate": "tool_call_update", "toolCallId": "t1", "status": "completed",
                        "content": [{ "type": "diff", "path": "/w/hello.txt", "oldText": null, "newText": "Hello!\n" },
                                    { "type": "content", "content": { "type": "text", "text": "ok" } }] }),
            ),
            update(
                5,
                json!({ "sessionUpdate": "plan", "entries": [{ "content": "Write", "priority": "high", "status": "completed" }] }),
            ),
            msg(
                6,
                "permission_requested",
                json!({ "request_id": "r1", "tool_call": { "title": "Run ls" }, "policy": "ask",
                        "options": [{ "optionId": "allow", "name": "Allow", "kind": "allow_once" },
                                    { "optionId": "deny", "name": "Deny", "kind": "reject_once" }] }),
            ),
            msg(
                7,
                "permission_answered",
                json!({ "request_id": "r1", "option_id": "allow", "by": "policy" }),
            ),
            msg(
                8,
                "agent_exited",
                json!({ "code": 1, "signal": null, "during_turn": true }),
            ),
        ];
        let t = build_transcript(&messages, &[]);
        assert_eq!(t.items.len(), 5, "{:#?}", t.items);
        assert_eq!(
            t.items[0],
            ChatItem::Plan {
                entries: vec![PlanEntry {
                    content: "Write".into(),
                    status: "completed".into()
                }]
            }
        );
        let ChatItem::ToolCall(call) = &t.items[1] else {
            panic!("{:?}", t.items[1]);
        };
        assert_eq!(call.title, "Write hello.txt");
        assert_eq!(call.kind, "edit");
        assert_eq!(call.status, "completed");
        assert_eq!(
            call.content,
            [
                ToolContent::Diff {
                    path: "/w/hello.txt".into(),
                    lines: vec![DiffLine {
                        sign: '+',
                        text: "Hello!".into()
                    }]
                },
                ToolContent::Text { text: "ok".into() },
            ]
        );
        let ChatItem::Permission(p) = &t.items[3] else {
            panic!("{:?}", t.items[3]);
        };
        assert_eq!(p.title, "Run ls");
        assert_eq!(p.answered.as_deref(), Some("Allow"));
        assert_eq!(p.answered_by.as_deref(), Some("policy"));
        assert!(p.options[1].is_reject());
        assert_eq!(
            t.items[4],
            ChatItem::Event {
                text: "Agent exited (code 1) during a turn".into(),
                class: "event-error"
            }
        );
    }

    #[test]
    fn line_diffs_mark_removed_and_added_lines() {
        assert_eq!(signs(&line_diff("", "a\nb\n")), "+a\n+b");
        assert_eq!(signs(&line_diff("a\nb\n", "")), "-a\n-b");
        assert_eq!(signs(&line_diff("a\nb\nc", "a\nB\nc")), " a\n-b\n+B\n c");
        assert_eq!(signs(&line_diff("x\na\nb", "a\nb\ny")), "-x\n a\n b\n+y");
        // Long unchanged runs are folded, keeping three lines of context.
        let old = (1..=20)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let new = old.replace("\n10\n", "\nten\n");
        assert_eq!(
            signs(&line_diff(&old, &new)),
            "…6 unchanged lines\n 7\n 8\n 9\n-10\n+ten\n 11\n 12\n 13\n…7 unchanged lines"
        );
        // Too large to compare line by line: all removed, all added.
        let big_old = (0..600)
            .map(|n| format!("o{n}"))
            .collect::<Vec<_>>()
            .join("\n");
        let big_new = (0..600)
            .map(|n| format!("n{n}"))
            .collect::<Vec<_>>()
            .join("\n");
        let lines = line_diff(&big_old, &big_new);
        assert_eq!(lines.len(), 1200);
        assert!(lines[..600].iter().all(|l| l.sign == '-'));
    }
}
