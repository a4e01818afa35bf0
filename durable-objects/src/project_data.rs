//! `ProjectData`: one Durable Object per project, holding its chat: the
//! agent sessions, every message they produced and the user's prompts.
//!
//! - `POST /sessions` creates a session (idempotent by id).
//! - `POST /sessions/{id}/workspace` names the workspace whose vm-agent may
//!   deliver the session's messages (set when the agent is started there).
//! - `POST /sessions/{id}/messages` `{workspace_id, messages}` stores a
//!   vm-agent outbox batch. Per session the object keeps `acked_up_to`,
//!   the highest sequence number up to which it holds every message: it
//!   stores the messages right after it, drops those at or below it
//!   (redeliveries) and stops at a gap (`sam_domain::chat::accept`), so a batch sent twice, out of order
//!   or cut short never duplicates, reorders or loses a message. It answers
//!   the new `acked_up_to` and the newly stored messages that matter to a
//!   task (turn ended, agent exited, ...), and sends every newly stored
//!   message to the session's live viewers.
//! - `POST /sessions/{id}/prompts` records a prompt the user sent (before
//!   it goes to the agent, so its turn's end is never taken for the last);
//!   `DELETE /sessions/{id}/prompts/{prompt_id}` removes one the agent
//!   never took.
//! - `GET /sessions[?q=<words>]` (`q`: only sessions whose title, prompts
//!   or agent text have every word, see [`crate::chat_search`]),
//!   `GET /sessions/{id}`, `GET /sessions/{id}/messages?after=&limit=`.
//! - `GET /sessions/{id}/ws`: a hibernatable WebSocket that receives the
//!   session's messages after `?after=` (the ones missed) and then each new
//!   one, as `{"type":"message",...}` or `{"type":"prompt",...}`.
//!
//! Authorization happens in the Worker before a request gets here; this
//! object trusts its caller and checks only that a batch comes from the
//! session's own workspace.

use serde::{Deserialize, Serialize};
use worker::{
    DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::{now_ms, schema};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_sessions.sql",
        include_str!("../migrations/project_data/0001_sessions.sql"),
    ),
    (
        "0002_search.sql",
        include_str!("../migrations/project_data/0002_search.sql"),
    ),
];

/// Messages a page of `GET .../messages` returns at most.
const MAX_PAGE: i64 = 1000;

/// Message kinds a task runner acts on.
pub const NOTABLE_KINDS: &[&str] = &[
    "session_started",
    "agent_start_failed",
    "turn_ended",
    "turn_failed",
    "agent_exited",
];

/// `POST /sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewSession {
    pub id: String,
    #[serde(default)]
    pub task_id: Option<String>,
    pub agent: String,
    pub title: String,
    #[serde(default)]
    pub prompt: Option<PromptRecord>,
}

/// A prompt the user sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub prompt_id: String,
    pub text: String,
    #[serde(default)]
    pub created_at: i64,
}

/// A session as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub task_id: Option<String>,
    pub workspace_id: Option<String>,
    pub agent: String,
    pub title: String,
    /// `pending`, `running`, `waiting_for_input`, `waiting_for_permission`,
    /// `completed`, `failed` or `interrupted`.
    pub status: String,
    pub acked_up_to: i64,
    pub acp_session_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `POST /sessions/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestBatch {
    pub workspace_id: String,
    pub messages: Vec<sam_wire::SessionMessage>,
}

/// The answer to [`IngestBatch`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingested {
    pub acked_up_to: u64,
    /// Newly stored messages of the [`NOTABLE_KINDS`].
    pub notable: Vec<sam_wire::SessionMessage>,
    pub task_id: Option<String>,
    /// Prompts the user sent whose turn has not ended yet: a turn's end
    /// ends a task only when none is left.
    pub outstanding_prompts: i64,
}

/// `GET /sessions/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionTranscript {
    pub session: SessionRecord,
    pub messages: Vec<sam_wire::SessionMessage>,
    pub prompts: Vec<PromptRecord>,
}

#[durable_object]
pub struct ProjectData {
    state: State,
    migrated: std::cell::Cell<bool>,
    /// Whether this storage has FTS5 (decided once per instance).
    fts: std::cell::Cell<bool>,
}

impl DurableObject for ProjectData {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            migrated: std::cell::Cell::new(false),
            fts: std::cell::Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sql = self.sql()?;
        let path = req.path();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method();
        match (method.as_ref(), parts.as_slice()) {
            ("POST", ["sessions"]) => {
                let new: NewSession = req.json().await?;
                if create_session(&sql, &new, now_ms())? {
                    crate::chat_search::index(&sql, self.fts.get(), &new.id, &new.title)?;
                }
                if let Some(prompt) = &new.prompt {
                    record_prompt(&self.state, &sql, self.fts.get(), &new.id, prompt)?;
                }
                Response::from_json(&get_session(&sql, &new.id)?)
            }
            ("GET", ["sessions"]) => {
                let query = req
                    .url()?
                    .query_pairs()
                    .find(|(k, _)| k == "q")
                    .map(|(_, v)| v.into_owned());
                let mut sessions = list_sessions(&sql)?;
                if let Some(query) = query {
                    let found = crate::chat_search::search(&sql, self.fts.get(), &query)?;
                    sessions.retain(|s| found.contains(&s.id));
                }
                Response::from_json(&sessions)
            }
            ("GET", ["sessions", id]) => match get_session(&sql, id)? {
                Some(s) => Response::from_json(&s),
                None => Response::error("no such session", 404),
            },
            ("POST", ["sessions", id, "workspace"]) => {
                #[derive(Deserialize)]
                struct Body {
                    workspace_id: String,
                }
                let body: Body = req.json().await?;
                sql.exec(
                    "UPDATE sessions SET workspace_id = ?, updated_at = ? WHERE id = ?",
                    vec![body.workspace_id.into(), now_ms().into(), (*id).into()],
                )?;
                Response::ok("set")
            }
            ("POST", ["sessions", id, "messages"]) => {
                let batch: IngestBatch = req.json().await?;
                match ingest(&self.state, &sql, self.fts.get(), id, &batch, now_ms())? {
                    Some(ingested) => Response::from_json(&ingested),
                    None => Response::error("no such session for this workspace", 404),
                }
            }
            ("POST", ["sessions", id, "prompts"]) => {
                let mut prompt: PromptRecord = req.json().await?;
                if get_session(&sql, id)?.is_none() {
                    return Response::error("no such session", 404);
                }
                prompt.created_at = now_ms();
                record_prompt(&self.state, &sql, self.fts.get(), id, &prompt)?;
                Response::ok("recorded")
            }
            ("DELETE", ["sessions", id, "prompts", prompt_id]) => {
                // A prompt the agent never took (its vm-agent refused it).
                sql.exec(
                    "DELETE FROM prompts WHERE session_id = ? AND prompt_id = ?",
                    vec![(*id).into(), (*prompt_id).into()],
                )?;
                Response::ok("removed")
            }
            ("GET", ["sessions", id, "messages"]) => {
                let url = req.url()?;
                let query = |name: &str| {
                    url.query_pairs()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.parse::<i64>().ok())
                };
                let after = query("after").unwrap_or(0).max(0);
                let limit = query("limit").unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
                match transcript(&sql, id, after, limit)? {
                    Some(t) => Response::from_json(&t),
                    None => Response::error("no such session", 404),
                }
            }
            ("GET", ["sessions", id, "ws"]) => {
                let after = req
                    .url()?
                    .query_pairs()
                    .find(|(k, _)| k == "after")
                    .and_then(|(_, v)| v.parse::<i64>().ok())
                    .unwrap_or(0);
                self.subscribe(&sql, &req, id, after)
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> Result<()> {
        // The stream is one-way; prompts go through the API.
        Ok(())
    }

    async fn websocket_close(
        &self,
        _ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }
}

impl ProjectData {
    fn sql(&self) -> Result<SqlStorage> {
        let first = !self.migrated.get();
        let sql = schema::migrated(&self.state, &self.migrated, MIGRATIONS)?;
        if first {
            self.fts.set(crate::chat_search::prepare(&sql));
        }
        Ok(sql)
    }

    /// A live view of one session: what came after `after`, then each new
    /// message. Sockets are tagged with the session id, so fan-out reaches
    /// only that session's viewers, also after the object hibernated.
    fn subscribe(&self, sql: &SqlStorage, req: &Request, id: &str, after: i64) -> Result<Response> {
        let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return Response::error("expected a WebSocket upgrade", 426);
        }
        let Some(t) = transcript(sql, id, after.max(0), MAX_PAGE)? else {
            return Response::error("no such session", 404);
        };
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[&session_tag(id)]);
        for prompt in &t.prompts {
            pair.server.send_with_str(prompt_frame(prompt)?)?;
        }
        // Everything after `after`, page by page (no await in between, so
        // nothing stored meanwhile can fall between the backlog and the
        // live messages).
        let mut page = t.messages;
        loop {
            for message in &page {
                pair.server.send_with_str(message_frame(message)?)?;
            }
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            if i64::try_from(page.len()).unwrap_or(0) < MAX_PAGE {
                break;
            }
            page = transcript(sql, id, i64::try_from(last).unwrap_or(i64::MAX), MAX_PAGE)?
                .map(|t| t.messages)
                .unwrap_or_default();
        }
        Response::from_websocket(pair.client)
    }
}

/// A `COUNT(*) AS n` row.
#[derive(Deserialize)]
struct Count {
    n: i64,
}

fn session_tag(id: &str) -> String {
    format!("session:{id}")
}

fn message_frame(m: &sam_wire::SessionMessage) -> Result<String> {
    Ok(serde_json::to_string(&serde_json::json!({
        "type": "message",
        "seq": m.seq,
        "created_at": m.created_at,
        "kind": m.kind,
        "payload": m.payload,
    }))?)
}

fn prompt_frame(p: &PromptRecord) -> Result<String> {
    Ok(serde_json::to_string(&serde_json::json!({
        "type": "prompt",
        "prompt_id": p.prompt_id,
        "text": p.text,
        "created_at": p.created_at,
    }))?)
}

fn broadcast(state: &State, session_id: &str, frame: &str) {
    for viewer in state.get_websockets_with_tag(&session_tag(session_id)) {
        // A viewer that went away is dropped by the runtime.
        let _ = viewer.send_with_str(frame);
    }
}

/// Whether the session is new.
fn create_session(sql: &SqlStorage, new: &NewSession, now: i64) -> Result<bool> {
    let written = sql.exec(
        "INSERT OR IGNORE INTO sessions (id, task_id, agent, title, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        vec![
            new.id.clone().into(),
            new.task_id
                .clone()
                .map_or(SqlStorageValue::Null, SqlStorageValue::from),
            new.agent.clone().into(),
            new.title.clone().into(),
            now.into(),
            now.into(),
        ],
    )?
    .rows_written();
    Ok(written > 0)
}

fn record_prompt(
    state: &State,
    sql: &SqlStorage,
    fts: bool,
    session_id: &str,
    p: &PromptRecord,
) -> Result<()> {
    let created_at = if p.created_at > 0 {
        p.created_at
    } else {
        now_ms()
    };
    let inserted = sql
        .exec(
            "INSERT OR IGNORE INTO prompts (session_id, prompt_id, text, created_at) \
             VALUES (?, ?, ?, ?)",
            vec![
                session_id.into(),
                p.prompt_id.clone().into(),
                p.text.clone().into(),
                created_at.into(),
            ],
        )?
        .rows_written();
    if inserted > 0 {
        crate::chat_search::index(sql, fts, session_id, &p.text)?;
        let stored = PromptRecord {
            created_at,
            ..p.clone()
        };
        broadcast(state, session_id, &prompt_frame(&stored)?);
    }
    Ok(())
}

fn get_session(sql: &SqlStorage, id: &str) -> Result<Option<SessionRecord>> {
    let rows: Vec<SessionRecord> = sql
        .exec(
            "SELECT id, task_id, workspace_id, agent, title, status, acked_up_to, acp_session_id, \
             created_at, updated_at FROM sessions WHERE id = ?",
            vec![id.into()],
        )?
        .to_array()?;
    Ok(rows.into_iter().next())
}

fn list_sessions(sql: &SqlStorage) -> Result<Vec<SessionRecord>> {
    sql.exec(
        "SELECT id, task_id, workspace_id, agent, title, status, acked_up_to, acp_session_id, \
         created_at, updated_at FROM sessions ORDER BY created_at DESC LIMIT 500",
        None,
    )?
    .to_array()
}

fn ingest(
    state: &State,
    sql: &SqlStorage,
    fts: bool,
    id: &str,
    batch: &IngestBatch,
    now: i64,
) -> Result<Option<Ingested>> {
    let Some(session) = get_session(sql, id)? else {
        return Ok(None);
    };
    if session.workspace_id.as_deref() != Some(batch.workspace_id.as_str()) {
        return Ok(None);
    }
    let mut acked = u64::try_from(session.acked_up_to).unwrap_or(0);
    let mut status = session.status.clone();
    let mut acp_session_id = session.acp_session_id.clone();
    let mut stored = Vec::new();
    let seqs: Vec<u64> = batch.messages.iter().map(|m| m.seq).collect();
    for index in sam_domain::chat::accept(acked, &seqs) {
        let m = &batch.messages[index];
        sql.exec(
            "INSERT OR IGNORE INTO messages (session_id, seq, created_at, kind, payload) \
             VALUES (?, ?, ?, ?, ?)",
            vec![
                id.into(),
                i64::try_from(m.seq).unwrap_or(i64::MAX).into(),
                m.created_at.into(),
                m.kind.clone().into(),
                serde_json::to_string(&m.payload)?.into(),
            ],
        )?;
        acked = m.seq;
        let next = sam_domain::chat::status_after(&status, &m.kind, &m.payload);
        next.clone_into(&mut status);
        if m.kind == "session_started"
            && let Some(acp) = m.payload.get("acp_session_id").and_then(|v| v.as_str())
        {
            acp_session_id = Some(acp.to_owned());
        }
        if m.kind == "turn_ended" {
            let text = crate::chat_search::latest_turn_text(sql, id)?;
            crate::chat_search::index(sql, fts, id, &text)?;
        }
        stored.push(m.clone());
    }
    if !stored.is_empty() {
        sql.exec(
            "UPDATE sessions SET acked_up_to = ?, status = ?, acp_session_id = ?, updated_at = ? \
             WHERE id = ?",
            vec![
                i64::try_from(acked).unwrap_or(i64::MAX).into(),
                status.into(),
                acp_session_id.map_or(SqlStorageValue::Null, SqlStorageValue::from),
                now.into(),
                id.into(),
            ],
        )?;
        for m in &stored {
            broadcast(state, id, &message_frame(m)?);
        }
    }
    let outstanding: Count = sql
        .exec(
            "SELECT COUNT(*) AS n FROM prompts p WHERE p.session_id = ? AND NOT EXISTS ( \
             SELECT 1 FROM messages m WHERE m.session_id = p.session_id \
             AND m.kind IN ('turn_ended', 'turn_failed') \
             AND json_extract(m.payload, '$.prompt_id') = p.prompt_id)",
            vec![id.into()],
        )?
        .one()?;
    Ok(Some(Ingested {
        outstanding_prompts: outstanding.n,
        acked_up_to: acked,
        notable: stored
            .into_iter()
            .filter(|m| NOTABLE_KINDS.contains(&m.kind.as_str()))
            .collect(),
        task_id: session.task_id,
    }))
}

fn transcript(
    sql: &SqlStorage,
    id: &str,
    after: i64,
    limit: i64,
) -> Result<Option<SessionTranscript>> {
    #[derive(Deserialize)]
    struct Row {
        seq: i64,
        created_at: i64,
        kind: String,
        payload: String,
    }
    let Some(session) = get_session(sql, id)? else {
        return Ok(None);
    };
    let rows: Vec<Row> = sql
        .exec(
            "SELECT seq, created_at, kind, payload FROM messages \
             WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            vec![id.into(), after.into(), limit.into()],
        )?
        .to_array()?;
    let messages = rows
        .into_iter()
        .map(|r| sam_wire::SessionMessage {
            seq: u64::try_from(r.seq).unwrap_or(0),
            created_at: r.created_at,
            kind: r.kind,
            payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    let prompts: Vec<PromptRecord> = sql
        .exec(
            "SELECT prompt_id, text, created_at FROM prompts WHERE session_id = ? \
             ORDER BY created_at, prompt_id",
            vec![id.into()],
        )?
        .to_array()?;
    Ok(Some(SessionTranscript {
        session,
        messages,
        prompts,
    }))
}
