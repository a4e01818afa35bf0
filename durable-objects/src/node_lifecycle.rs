//! `NodeLifecycle`: one Durable Object per node.
//!
//! It keeps the node's boot log (phases with timestamps) and owns the boot
//! deadline as a Durable Object alarm: if the vm-agent has not registered by
//! then, the alarm moves the node from `creating` to `error` in D1. Because
//! the alarm is durable, a node can never stay `creating` forever, even if
//! the Worker that created it died mid-request.
//!
//! Concurrency: a Durable Object runs one event at a time and code between
//! two awaits is atomic, so the state row needs no further locking.

use std::cell::Cell;

use sam_domain::node::{BootPhase, NodeEvent, NodeStatus};
use sam_store::NodeRepository;
use serde::{Deserialize, Serialize};
use worker::{
    DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State,
    durable_object,
};

use crate::d1::D1Sql;
use crate::now_ms;
use crate::schema;

const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_boot_log.sql",
    include_str!("../migrations/node_lifecycle/0001_boot_log.sql"),
)];

/// `POST /start`: the node was just written to D1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartRequest {
    pub node_id: String,
    pub created_at: i64,
    pub boot_deadline_at: i64,
}

/// One line of the boot log (`POST /event` body and `GET /events` item).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootEvent {
    pub at: i64,
    pub phase: BootPhase,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Deserialize)]
struct LifecycleRow {
    node_id: String,
    phase: String,
    boot_deadline_at: Option<i64>,
}

#[durable_object]
pub struct NodeLifecycle {
    state: State,
    env: Env,
    /// Schema migrations are applied once per object instance.
    migrated: Cell<bool>,
}

impl DurableObject for NodeLifecycle {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            migrated: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sql = self.sql()?;
        let path = req.path();
        match (req.method().as_ref(), path.as_str()) {
            ("POST", "/start") => {
                let start: StartRequest = req.json().await?;
                self.start(&sql, &start).await?;
                Response::ok("started")
            }
            ("POST", "/event") => {
                let event: BootEvent = req.json().await?;
                self.record(&sql, &event).await?;
                Response::ok("recorded")
            }
            ("GET", "/events") => Response::from_json(&events(&sql)?),
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
        let Some(row) = lifecycle(&sql)? else {
            return Response::ok("no node");
        };
        let phase: BootPhase = serde_json::from_value(serde_json::Value::String(row.phase.clone()))
            .unwrap_or(BootPhase::Requested);
        if phase.ends_boot() {
            return Response::ok("boot already over");
        }
        let now = now_ms();
        if let Some(deadline) = row.boot_deadline_at
            && now < deadline
        {
            // Woken early (clock skew): try again at the deadline.
            set_alarm_at(&self.state, deadline).await?;
            return Response::ok("early");
        }
        let db = D1Sql(self.env.d1("DB")?);
        let message = "the vm-agent did not register before the boot deadline";
        let to = sam_domain::node::transition(NodeStatus::Creating, &NodeEvent::BootDeadlinePassed)
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let changed = NodeRepository::new(&db)
            .transition(&row.node_id, NodeStatus::Creating, to, now, Some(message))
            .await
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        // Only a node that really was still creating gets the entry; one that
        // registered (or was deleted) meanwhile keeps an accurate boot log.
        if !changed {
            return Response::ok("node no longer creating");
        }
        append(
            &sql,
            &BootEvent {
                at: now,
                phase: BootPhase::BootDeadlinePassed,
                detail: Some(message.to_owned()),
            },
        )?;
        Response::ok("deadline passed")
    }
}

impl NodeLifecycle {
    /// The object's SQLite storage, migrated.
    fn sql(&self) -> Result<SqlStorage> {
        let sql = self.state.storage().sql();
        if !self.migrated.get() {
            schema::migrate(&sql, MIGRATIONS)?;
            self.migrated.set(true);
        }
        Ok(sql)
    }

    async fn start(&self, sql: &SqlStorage, start: &StartRequest) -> Result<()> {
        if lifecycle(sql)?.is_some() {
            return Ok(()); // Retried start: already recorded.
        }
        sql.exec(
            "INSERT INTO lifecycle (singleton, node_id, phase, created_at, boot_deadline_at) VALUES (1, ?, 'requested', ?, ?)",
            vec![
                SqlStorageValue::from(start.node_id.clone()),
                SqlStorageValue::from(start.created_at),
                SqlStorageValue::from(start.boot_deadline_at),
            ],
        )?;
        append(
            sql,
            &BootEvent {
                at: start.created_at,
                phase: BootPhase::Requested,
                detail: None,
            },
        )?;
        set_alarm_at(&self.state, start.boot_deadline_at).await
    }

    async fn record(&self, sql: &SqlStorage, event: &BootEvent) -> Result<()> {
        append(sql, event)?;
        let phase = serde_json::to_value(event.phase)?;
        sql.exec(
            "UPDATE lifecycle SET phase = ? WHERE singleton = 1",
            vec![SqlStorageValue::from(
                phase.as_str().unwrap_or_default().to_owned(),
            )],
        )?;
        if event.phase.ends_boot() {
            self.state.storage().delete_alarm().await?;
        }
        Ok(())
    }
}

fn lifecycle(sql: &SqlStorage) -> Result<Option<LifecycleRow>> {
    let rows: Vec<LifecycleRow> = sql
        .exec(
            "SELECT node_id, phase, boot_deadline_at FROM lifecycle WHERE singleton = 1",
            None,
        )?
        .to_array()?;
    Ok(rows.into_iter().next())
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

fn append(sql: &SqlStorage, event: &BootEvent) -> Result<()> {
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
    Ok(())
}

/// workers-rs reads an `i64` alarm time as an offset from now, not as an
/// absolute time; this converts our absolute deadlines.
async fn set_alarm_at(state: &State, at_ms: i64) -> Result<()> {
    state.storage().set_alarm((at_ms - now_ms()).max(0)).await
}
