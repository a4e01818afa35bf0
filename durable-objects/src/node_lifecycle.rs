//! `NodeLifecycle`: one Durable Object per node, holding the node's log
//! and its timer.
//!
//! - The log (`boot_events`): every phase of the node's life with its
//!   time, appended by the API (`POST /event`), read back (`GET /events`)
//!   and streamed live to browsers over a hibernatable WebSocket
//!   (`GET /ws`: the lines so far, then each new one).
//! - The timer: `POST /wake` asks for the alarm to ring no later than a
//!   time (the node's next deadline). When it rings, the alarm runs
//!   `sam_control::lifecycle::run_due` against D1 (boot deadline, stale
//!   heartbeats, warm timeout, maximum lifetime, delete retries with the
//!   owner's decrypted credential) and sets itself for the node's new
//!   deadline. Because the alarm is durable, a node can never wait forever,
//!   even if the Worker that changed it died mid-request.
//!
//! Concurrency: a Durable Object runs one event at a time and code between
//! two awaits is atomic; the node's state itself lives in D1, written
//! compare-and-set, so the alarm and requests cannot overwrite each other.

use sam_control::cloud::VaultAccounts;
use sam_control::lifecycle::run_due;
use sam_control::{BootLog, ControlError, NodeTimer};
use sam_domain::node::BootPhase;
use serde::{Deserialize, Serialize};
use worker::{
    DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::d1::D1Sql;
use crate::runtime::FetchHttp;
use crate::{env, now_ms, schema, set_alarm_at};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_boot_log.sql",
        include_str!("../migrations/node_lifecycle/0001_boot_log.sql"),
    ),
    (
        "0002_timer.sql",
        include_str!("../migrations/node_lifecycle/0002_timer.sql"),
    ),
];

/// How long a failed alarm run (D1 or configuration trouble) waits before
/// it tries again.
const ALARM_RETRY_MS: i64 = 30_000;

/// The soonest an alarm run sets the next one.
const MIN_REARM_MS: i64 = 1_000;

/// `POST /wake`: ring no later than `at` for node `node_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WakeRequest {
    pub node_id: String,
    pub at: i64,
}

/// One line of the node's log (`POST /event` body, `GET /events` item and
/// WebSocket message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootEvent {
    pub at: i64,
    pub phase: BootPhase,
    #[serde(default)]
    pub detail: Option<String>,
}

#[durable_object]
pub struct NodeLifecycle {
    state: State,
    env: Env,
    /// Schema migrations are applied once per object instance.
    migrated: std::cell::Cell<bool>,
}

impl DurableObject for NodeLifecycle {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            migrated: std::cell::Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sql = self.sql()?;
        let path = req.path();
        match (req.method().as_ref(), path.as_str()) {
            ("POST", "/wake") => {
                let wake: WakeRequest = req.json().await?;
                self.wake(&sql, &wake).await?;
                Response::ok("armed")
            }
            ("POST", "/event") => {
                let event: BootEvent = req.json().await?;
                append(&self.state, &sql, &event)?;
                Response::ok("recorded")
            }
            ("GET", "/events") => Response::from_json(&events(&sql)?),
            ("GET", "/ws") => self.subscribe(&sql, &req),
            ("GET", "/probe") => {
                // Health check: a real query of this object's SQLite storage
                // (read-only, so probing does not write on every request).
                let _ = sql
                    .exec("SELECT COUNT(*) FROM boot_events", None)?
                    .raw()
                    .count();
                Response::ok("ok")
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let sql = self.sql()?;
        let Some(node_id) = timed_node(&sql)? else {
            return Response::ok("no node");
        };
        let now = now_ms();
        match self.run_due(&sql, &node_id, now).await {
            // Never again at once (a deadline the run could not act on must
            // not spin), and never later than a wake requested meanwhile.
            Ok(Some(at)) => {
                let at = at.max(now + MIN_REARM_MS);
                let requested = self.state.storage().get_alarm().await?;
                if requested.is_none_or(|set| at < set) {
                    set_alarm_at(&self.state, at).await?;
                }
            }
            Ok(None) => {}
            Err(e) => {
                worker::console_error!("NodeLifecycle alarm for {node_id} failed: {e}");
                set_alarm_at(&self.state, now + ALARM_RETRY_MS).await?;
            }
        }
        Response::ok("done")
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> Result<()> {
        // The stream is one-way; whatever a client sends is ignored.
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

impl NodeLifecycle {
    /// The object's SQLite storage, migrated.
    fn sql(&self) -> Result<SqlStorage> {
        schema::migrated(&self.state, &self.migrated, MIGRATIONS)
    }

    /// Remembers the node and makes sure the alarm rings by `at` (an
    /// earlier alarm is kept: ringing early is harmless).
    async fn wake(&self, sql: &SqlStorage, wake: &WakeRequest) -> Result<()> {
        sql.exec(
            "INSERT OR IGNORE INTO timed_node (singleton, node_id) VALUES (1, ?)",
            vec![SqlStorageValue::from(wake.node_id.clone())],
        )?;
        let current = self.state.storage().get_alarm().await?;
        if current.is_none_or(|set| wake.at < set) {
            set_alarm_at(&self.state, wake.at).await?;
        }
        Ok(())
    }

    /// Whatever is due for the node now; returns its next deadline.
    async fn run_due(
        &self,
        sql: &SqlStorage,
        node_id: &str,
        now: i64,
    ) -> std::result::Result<Option<i64>, String> {
        let db = D1Sql(self.env.d1("DB").map_err(|e| e.to_string())?);
        let lifecycle = env::lifecycle_config(&self.env)?;
        let keys = env::credential_keys(&self.env)?;
        let urls = env::provider_urls(&self.env);
        let accounts = VaultAccounts {
            db: &db,
            keys: &keys,
            http: FetchHttp,
            urls: &urls,
        };
        let log = LocalLog {
            state: &self.state,
            sql,
        };
        match run_due(
            &db,
            &accounts,
            &log,
            &AlarmSetAfter,
            &lifecycle,
            node_id,
            now,
        )
        .await
        {
            Ok(node) => Ok(node.deadline_at),
            // The row is gone: nothing left to time.
            Err(ControlError::NotFound) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Upgrades to a WebSocket that receives the log so far, then each new
    /// line. The object may hibernate between lines.
    fn subscribe(&self, sql: &SqlStorage, req: &Request) -> Result<Response> {
        let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return Response::error("expected a WebSocket upgrade", 426);
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        for event in events(sql)? {
            pair.server.send_with_str(serde_json::to_string(&event)?)?;
        }
        Response::from_websocket(pair.client)
    }
}

/// The log, written from inside the object (the alarm's own changes).
struct LocalLog<'a> {
    state: &'a State,
    sql: &'a SqlStorage,
}

impl BootLog for LocalLog<'_> {
    async fn record(
        &self,
        _node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> std::result::Result<(), String> {
        let event = BootEvent {
            at,
            phase,
            detail: detail.map(str::to_owned),
        };
        append(self.state, self.sql, &event).map_err(|e| e.to_string())
    }
}

/// Inside the alarm the next alarm is set from the node's stored deadline
/// once the run is over, so wake requests need no action.
struct AlarmSetAfter;

impl NodeTimer for AlarmSetAfter {
    async fn wake_at(&self, _node_id: &str, _at: i64) -> std::result::Result<(), String> {
        Ok(())
    }
}

fn timed_node(sql: &SqlStorage) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        node_id: String,
    }
    let rows: Vec<Row> = sql
        .exec("SELECT node_id FROM timed_node WHERE singleton = 1", None)?
        .to_array()?;
    Ok(rows.into_iter().next().map(|r| r.node_id))
}

fn events(sql: &SqlStorage) -> Result<Vec<BootEvent>> {
    #[derive(Deserialize)]
    struct EventRow {
        at: i64,
        phase: String,
        detail: Option<String>,
    }
    let rows: Vec<EventRow> = sql
        .exec(
            "SELECT at, phase, detail FROM boot_events ORDER BY seq",
            None,
        )?
        .to_array()?;
    // Phases this build no longer knows (renamed since) are skipped rather
    // than failing the whole log.
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let phase = serde_json::from_value(serde_json::Value::String(r.phase)).ok()?;
            Some(BootEvent {
                at: r.at,
                phase,
                detail: r.detail,
            })
        })
        .collect())
}

/// Appends a line and sends it to every connected viewer.
fn append(state: &State, sql: &SqlStorage, event: &BootEvent) -> Result<()> {
    let phase = serde_json::to_value(event.phase)?;
    sql.exec(
        "INSERT INTO boot_events (at, phase, detail) VALUES (?, ?, ?)",
        vec![
            SqlStorageValue::from(event.at),
            SqlStorageValue::from(phase.as_str().unwrap_or_default().to_owned()),
            event
                .detail
                .clone()
                .map_or(SqlStorageValue::Null, SqlStorageValue::from),
        ],
    )?;
    let line = serde_json::to_string(event)?;
    for viewer in state.get_websockets() {
        // A viewer that went away is dropped by the runtime; others still get the line.
        let _ = viewer.send_with_str(&line);
    }
    Ok(())
}
