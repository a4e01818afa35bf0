//! `TaskRunner`: one Durable Object per task, a thin adapter over
//! `sam_domain::task`.
//!
//! Every request and alarm is: load the run, apply one event, persist the
//! run (and mirror it to D1, which logs each status change), perform the
//! effects through `sam_control::tasks`, feed their results back as the
//! next events, and set the one alarm: the run's deadline, or sooner when
//! the runner waits for something it has to look at (a booting node, a
//! workspace being created).
//!
//! - `POST /start` `{task, run}`: stores a submitted task (once) and starts it.
//! - `POST /event` `{...TaskEvent}`: a cancel request.
//! - `POST /report` `{kind, payload}`: a session message the task acts on
//!   (from the chat's ingest): turn ended, agent start failed, agent exited.
//! - `POST /poke`: what the run waits for may be ready (the node's or the
//!   workspace's ready callback says so); same as the alarm.
//! - `GET /run`: the run record.
//!
//! A Durable Object runs one event at a time and code between two awaits is
//! atomic, so two events never interleave their load-apply-store; the slow
//! parts (vm-agent and GitHub calls) happen after the run is stored.

use sam_control::agent_client::HttpNodeAgent;
use sam_control::tasks::{self, Progress};
use sam_domain::task::{TaskEffect, TaskEvent, TaskRun, TaskStep};
use sam_store::TaskRecord;
use serde::{Deserialize, Serialize};
use worker::{
    DurableObject, Env, Request, RequestInit, Response, Result, SqlStorage, SqlStorageValue, State,
    durable_object,
};

use crate::d1::D1Sql;
use crate::platform::config::Config;
use crate::platform::ports::WorkerNodePorts;
use crate::runtime::{FetchHttpNoRedirects, WorkerRetryRuntime, random_u128};
use crate::{now_ms, schema, set_alarm_at};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_run.sql",
        include_str!("../migrations/task_runner/0001_run.sql"),
    ),
    (
        "0002_effects.sql",
        include_str!("../migrations/task_runner/0002_effects.sql"),
    ),
];

/// How often a waiting step looks at what it waits for.
const POLL_MS: i64 = 250;
/// How long a failed clean-up waits before it is tried again.
const CLEANUP_RETRY_MS: i64 = 30_000;
/// Events one request may chain (a run has six steps; this is a guard
/// against a loop, never reached by a sane run).
const MAX_CHAINED_EVENTS: usize = 32;

/// `POST /start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartTask {
    pub task: TaskRecord,
    pub run: TaskRun,
}

/// `POST /report`: a session message for the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionReport {
    pub kind: String,
    pub payload: serde_json::Value,
}

/// What the runner waits for, besides its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Pending {
    Node {
        id: String,
        attempt: u32,
    },
    Workspace {
        id: String,
        attempt: u32,
    },
    /// A clean-up that failed and is tried again.
    CleanUp {
        session_id: Option<String>,
        workspace_id: Option<String>,
        node_id: Option<String>,
        at: i64,
    },
}

struct Stored {
    task: TaskRecord,
    run: TaskRun,
    pending: Option<Pending>,
}

#[durable_object]
pub struct TaskRunner {
    state: State,
    env: Env,
    migrated: std::cell::Cell<bool>,
}

impl DurableObject for TaskRunner {
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
            ("POST", "/start") => {
                let start: StartTask = req.json().await?;
                if load(&sql)?.is_none() {
                    insert_run(&sql, &start.task, &start.run)?;
                }
                self.drive(&sql, TaskEvent::Started, Work::Now).await
            }
            ("POST", "/event") => {
                let event: TaskEvent = req.json().await?;
                self.drive(&sql, event, Work::Later).await
            }
            ("POST", "/report") => {
                let report: SessionReport = req.json().await?;
                let Some(stored) = load(&sql)? else {
                    return Response::error("no such task", 404);
                };
                match stored
                    .run
                    .event_of_session_message(&report.kind, &report.payload)
                {
                    // Applied now, worked on from the alarm: the vm-agent's
                    // delivery does not wait for a push and a pull request.
                    Some(event) => self.drive(&sql, event, Work::Later).await,
                    None => Response::from_json(&stored.run),
                }
            }
            // The node or workspace the run waits for may be ready.
            ("POST", "/poke") => self.tick().await,
            ("GET", "/run") => match load(&sql)? {
                Some(stored) => Response::from_json(&stored.run),
                None => Response::error("no such task", 404),
            },
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.tick().await
    }
}

impl TaskRunner {
    /// The alarm, or a poke from the callback that made what the run waits
    /// for ready: the deadline if it has passed, else a look at what the
    /// run waits for.
    async fn tick(&self) -> Result<Response> {
        let sql = self.sql()?;
        let config =
            Config::from_env(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        // Effects decided earlier and not performed yet come first.
        self.work(&sql, &config).await?;
        let Some(stored) = load(&sql)? else {
            return Response::ok("no task");
        };
        let now = now_ms();
        if stored.run.deadline_at.is_some_and(|at| at <= now) {
            return self.drive(&sql, TaskEvent::DeadlinePassed, Work::Now).await;
        }
        if let Some(event) = self.poll(&sql, stored, now).await? {
            return self.drive(&sql, event, Work::Now).await;
        }
        self.arm(&sql).await?;
        Response::ok("waiting")
    }

    fn sql(&self) -> Result<SqlStorage> {
        schema::migrated(&self.state, &self.migrated, MIGRATIONS)
    }

    /// Applies `first`, then (now, or from the alarm) performs the effects
    /// and every event they lead to; answers with the run, or 409 with the
    /// machine's code if `first` is refused.
    async fn drive(&self, sql: &SqlStorage, first: TaskEvent, work: Work) -> Result<Response> {
        let config =
            Config::from_env(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        let refused = match self.apply(sql, &config, &first).await? {
            Applied::Refused(e) => Some(e),
            Applied::Stored | Applied::NoTask => None,
        };
        match work {
            Work::Now => self.work(sql, &config).await?,
            Work::Later => set_alarm_at(&self.state, now_ms()).await?,
        }
        if work == Work::Now {
            self.arm(sql).await?;
        }
        if let Some(e) = refused {
            let body = sam_wire::ErrorBody {
                code: e.code().to_owned(),
                message: e.to_string(),
            };
            return Ok(Response::from_json(&body)?.with_status(409));
        }
        match load(sql)? {
            Some(stored) => Response::from_json(&stored.run),
            None => Response::error("no such task", 404),
        }
    }

    /// Applies one event: the run and the effects it asks for are stored
    /// together (no await in between, so no other event interleaves), then
    /// the run is mirrored to D1.
    async fn apply(&self, sql: &SqlStorage, config: &Config, event: &TaskEvent) -> Result<Applied> {
        let Some(mut stored) = load(sql)? else {
            return Ok(Applied::NoTask);
        };
        let now = now_ms();
        let effects = match stored.run.apply(event, now, &config.tasks.config) {
            Ok(effects) => effects,
            Err(e) => return Ok(Applied::Refused(e)),
        };
        // A step that moved on no longer waits for what it waited for.
        let pending = match stored.pending {
            Some(p @ Pending::CleanUp { .. }) => Some(p),
            _ => None,
        };
        let mut queued = load_effects(sql)?;
        queued.extend(effects);
        store_run(sql, &stored.run, pending.as_ref(), &queued)?;
        let db = self.db()?;
        match tasks::mirror_run(&db, &stored.task, &stored.run, event.name(), now).await {
            // Only the task column: the run may have moved on meanwhile.
            Ok(task) => set_task(sql, &task)?,
            Err(e) => worker::console_error!("task {}: mirroring failed: {e}", stored.task.id),
        }
        Ok(Applied::Stored)
    }

    /// Performs the queued effects, and the effects of the events they lead
    /// to, until none is left.
    async fn work(&self, sql: &SqlStorage, config: &Config) -> Result<()> {
        for _ in 0..MAX_CHAINED_EVENTS {
            let effects = take_effects(sql)?;
            if effects.is_empty() {
                return Ok(());
            }
            for effect in effects {
                if let Some(next) = self.perform(sql, config, &effect).await? {
                    self.apply(sql, config, &next).await?;
                }
            }
        }
        worker::console_error!("task runner: too many chained events; the alarm goes on");
        Ok(())
    }

    fn db(&self) -> Result<D1Sql> {
        Ok(D1Sql(self.env.d1("DB")?))
    }

    /// Performs one effect; the event its result is, if it has one now.
    async fn perform(
        &self,
        sql: &SqlStorage,
        config: &Config,
        effect: &TaskEffect,
    ) -> Result<Option<TaskEvent>> {
        let Some(stored) = load(sql)? else {
            return Ok(None);
        };
        let task = stored.task;
        let db = self.db()?;
        let key =
            Config::signing_key(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        let keys =
            Config::credential_keys(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        let now = now_ms();
        let agent = HttpNodeAgent {
            http: FetchHttpNoRedirects,
            key: &key,
            issuer: &config.api_origin,
            port: config.nodes.vm_agent_port,
            now,
        };
        let step_failed = |step: TaskStep, attempt: u32, progress: Progress| match progress {
            Progress::Failed { reason, retryable } => Some(TaskEvent::StepFailed {
                step,
                attempt,
                reason,
                retryable,
            }),
            _ => None,
        };
        let event = match effect {
            TaskEffect::AcquireNode { size, attempt } => {
                let ports = WorkerNodePorts::new(&self.env, &db, keys.clone());
                let accounts = ports.accounts();
                let result = tasks::acquire_node(
                    &db,
                    &ports.ports(&accounts),
                    &WorkerRetryRuntime,
                    &key,
                    &config.nodes,
                    &task,
                    &config.tasks.default_provider,
                    *size,
                    now,
                    random_u128(),
                )
                .await;
                match result.unwrap_or_else(|e| tasks::failure_of(&e)) {
                    Progress::Done(node_id) => Some(TaskEvent::NodeAcquired { node_id }),
                    Progress::Waiting(id) => {
                        self.wait_for(sql, &task.id, Some(&id), None).await?;
                        set_pending(
                            sql,
                            Some(&Pending::Node {
                                id,
                                attempt: *attempt,
                            }),
                        )?;
                        None
                    }
                    failed @ Progress::Failed { .. } => {
                        step_failed(TaskStep::AcquireNode, *attempt, failed)
                    }
                }
            }
            TaskEffect::CreateWorkspace {
                node_id,
                branch,
                attempt,
            } => {
                let result = tasks::create_task_workspace(
                    &db,
                    &agent,
                    &key,
                    &config.workspace_settings(),
                    &task,
                    node_id,
                    branch,
                    *attempt,
                    now,
                    random_u128(),
                )
                .await;
                match result.unwrap_or_else(|e| tasks::failure_of(&e)) {
                    Progress::Done(workspace_id) => {
                        Some(TaskEvent::WorkspaceReady { workspace_id })
                    }
                    Progress::Waiting(id) => {
                        self.wait_for(sql, &task.id, None, Some(&id)).await?;
                        set_pending(
                            sql,
                            Some(&Pending::Workspace {
                                id,
                                attempt: *attempt,
                            }),
                        )?;
                        None
                    }
                    failed @ Progress::Failed { .. } => {
                        step_failed(TaskStep::CreateWorkspace, *attempt, failed)
                    }
                }
            }
            TaskEffect::StartAgent {
                workspace_id,
                prompt,
                attempt,
            } => {
                self.bind_session(&task, workspace_id).await?;
                let platform = Config::platform_agent_credentials(&self.env)
                    .map_err(|e| worker::Error::RustError(e.message))?;
                match tasks::start_task_agent(
                    &db,
                    &agent,
                    &keys,
                    &platform,
                    &config.tasks.model_apis,
                    &task,
                    workspace_id,
                    prompt,
                )
                .await
                {
                    Ok(()) => Some(TaskEvent::AgentStarted {
                        session_id: task.session_id.clone(),
                    }),
                    Err(e) => step_failed(TaskStep::StartAgent, *attempt, tasks::failure_of(&e)),
                }
            }
            TaskEffect::Finalize {
                workspace_id,
                branch,
                title,
                attempt,
            } => {
                let github = crate::platform::github::app_client(&self.env, config)
                    .map_err(|e| worker::Error::RustError(e.message))?;
                match tasks::finalize_task(&db, &agent, &github, &task, workspace_id, branch, title)
                    .await
                {
                    Ok(pr_url) => Some(TaskEvent::Finalized {
                        branch: branch.clone(),
                        pr_url,
                    }),
                    Err(e) => step_failed(TaskStep::Finalize, *attempt, tasks::failure_of(&e)),
                }
            }
            TaskEffect::CleanUp {
                session_id,
                workspace_id,
                node_id,
            } => {
                let ports = WorkerNodePorts::new(&self.env, &db, keys.clone());
                let accounts = ports.accounts();
                let result = tasks::clean_up_task(
                    &db,
                    &agent,
                    &ports.ports(&accounts),
                    &config.nodes,
                    &task,
                    session_id.as_deref(),
                    workspace_id.as_deref(),
                    node_id.as_deref(),
                    now,
                )
                .await;
                // Read again: the run may have moved on while cleaning up.
                let current = load(sql)?.and_then(|s| s.pending);
                if let Err(e) = result {
                    worker::console_error!("task {}: clean-up failed, retrying: {e}", task.id);
                    set_pending(
                        sql,
                        Some(&Pending::CleanUp {
                            session_id: session_id.clone(),
                            workspace_id: workspace_id.clone(),
                            node_id: node_id.clone(),
                            at: now + CLEANUP_RETRY_MS,
                        }),
                    )?;
                } else if matches!(current, Some(Pending::CleanUp { .. })) {
                    set_pending(sql, None)?;
                }
                None
            }
            // The alarm is set from the stored run once the events settle.
            TaskEffect::ArmTimer { .. } => None,
        };
        Ok(event)
    }

    /// Writes what the run now waits for to its D1 row, so the callback
    /// that makes it ready can poke this runner instead of leaving it to
    /// the next poll.
    async fn wait_for(
        &self,
        sql: &SqlStorage,
        task_id: &str,
        node_id: Option<&str>,
        workspace_id: Option<&str>,
    ) -> Result<()> {
        let db = self.db()?;
        if let Err(e) = sam_store::TaskRepository::new(&db)
            .record_waiting_for(task_id, node_id, workspace_id)
            .await
        {
            // Only a poke is lost; the poll still sees it.
            worker::console_error!("task {task_id}: recording what it waits for: {e}");
            return Ok(());
        }
        // The task column as it is now (read and written without an await).
        let Some(mut task) = load(sql)?.map(|s| s.task) else {
            return Ok(());
        };
        if let Some(id) = node_id {
            task.node_id = Some(id.to_owned());
        }
        if let Some(id) = workspace_id {
            task.workspace_id = Some(id.to_owned());
        }
        set_task(sql, &task)
    }

    /// Looks at what the run waits for; the event it has led to, if any.
    async fn poll(&self, sql: &SqlStorage, stored: Stored, now: i64) -> Result<Option<TaskEvent>> {
        let db = self.db()?;
        let (step, attempt, progress) = match stored.pending.clone() {
            Some(Pending::Node { id, attempt }) => (
                TaskStep::AcquireNode,
                attempt,
                tasks::node_progress(&db, &id).await,
            ),
            Some(Pending::Workspace { id, attempt }) => (
                TaskStep::CreateWorkspace,
                attempt,
                tasks::workspace_progress(&db, &id).await,
            ),
            Some(Pending::CleanUp {
                session_id,
                workspace_id,
                node_id,
                at,
            }) => {
                if at <= now {
                    let config = Config::from_env(&self.env)
                        .map_err(|e| worker::Error::RustError(e.message))?;
                    let effect = TaskEffect::CleanUp {
                        session_id,
                        workspace_id,
                        node_id,
                    };
                    self.perform(sql, &config, &effect).await?;
                }
                return Ok(None);
            }
            None => return Ok(None),
        };
        let progress = progress.unwrap_or_else(|e| tasks::failure_of(&e));
        Ok(match (step, progress) {
            (_, Progress::Waiting(_)) => None,
            (TaskStep::AcquireNode, Progress::Done(node_id)) => {
                Some(TaskEvent::NodeAcquired { node_id })
            }
            (_, Progress::Done(workspace_id)) => Some(TaskEvent::WorkspaceReady { workspace_id }),
            (step, Progress::Failed { reason, retryable }) => {
                if load(sql)?.and_then(|s| s.pending) == stored.pending {
                    set_pending(sql, None)?;
                }
                Some(TaskEvent::StepFailed {
                    step,
                    attempt,
                    reason,
                    retryable,
                })
            }
        })
    }

    /// The one alarm: the run's deadline, or sooner for what it waits for.
    async fn arm(&self, sql: &SqlStorage) -> Result<()> {
        let Some(stored) = load(sql)? else {
            return Ok(());
        };
        let now = now_ms();
        let waiting = match &stored.pending {
            Some(Pending::Node { .. } | Pending::Workspace { .. }) => Some(now + POLL_MS),
            Some(Pending::CleanUp { at, .. }) => Some(*at),
            None => None,
        };
        let at = match (stored.run.deadline_at, waiting) {
            (Some(d), Some(w)) => Some(d.min(w)),
            (d, w) => d.or(w),
        };
        match at {
            Some(at) => set_alarm_at(&self.state, at).await,
            None => self.state.storage().delete_alarm().await,
        }
    }

    /// Tells the project's chat which workspace may deliver the session's
    /// messages, before the agent there can send any.
    async fn bind_session(&self, task: &TaskRecord, workspace_id: &str) -> Result<()> {
        let stub = self
            .env
            .durable_object(crate::platform::ports::PROJECT_DATA)?
            .get_by_name(&task.project_id)?;
        let mut init = RequestInit::new();
        init.with_method(worker::Method::Post).with_body(Some(
            serde_json::json!({ "workspace_id": workspace_id })
                .to_string()
                .into(),
        ));
        let req = Request::new_with_init(
            &format!(
                "https://project-data/sessions/{}/workspace",
                task.session_id
            ),
            &init,
        )?;
        let resp = stub.fetch_with_request(req).await?;
        if resp.status_code() >= 300 {
            return Err(worker::Error::RustError(format!(
                "ProjectData answered {} binding the session",
                resp.status_code()
            )));
        }
        Ok(())
    }
}

fn load(sql: &SqlStorage) -> Result<Option<Stored>> {
    #[derive(Deserialize)]
    struct Row {
        task: String,
        run: String,
        pending: Option<String>,
    }
    let rows: Vec<Row> = sql
        .exec(
            "SELECT task, run, pending FROM run WHERE singleton = 1",
            None,
        )?
        .to_array()?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(Stored {
        task: serde_json::from_str(&row.task)?,
        run: serde_json::from_str(&row.run)?,
        pending: row
            .pending
            .as_deref()
            .map(serde_json::from_str)
            .transpose()?,
    }))
}

/// Whether a request's effects are performed before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Now,
    /// From the alarm, set to ring at once.
    Later,
}

/// What applying an event did.
enum Applied {
    Stored,
    Refused(sam_domain::task::TaskTransitionError),
    NoTask,
}

fn insert_run(sql: &SqlStorage, task: &TaskRecord, run: &TaskRun) -> Result<()> {
    sql.exec(
        "INSERT OR IGNORE INTO run (singleton, task, run, pending, effects) \
         VALUES (1, ?, ?, NULL, '[]')",
        vec![
            serde_json::to_string(task)?.into(),
            serde_json::to_string(run)?.into(),
        ],
    )?;
    Ok(())
}

fn json_or_null<T: Serialize>(value: Option<&T>) -> Result<SqlStorageValue> {
    Ok(value
        .map(serde_json::to_string)
        .transpose()?
        .map_or(SqlStorageValue::Null, SqlStorageValue::from))
}

/// The run, what it waits for and its queued effects, in one write.
fn store_run(
    sql: &SqlStorage,
    run: &TaskRun,
    pending: Option<&Pending>,
    effects: &[TaskEffect],
) -> Result<()> {
    sql.exec(
        "UPDATE run SET run = ?, pending = ?, effects = ? WHERE singleton = 1",
        vec![
            serde_json::to_string(run)?.into(),
            json_or_null(pending)?,
            serde_json::to_string(effects)?.into(),
        ],
    )?;
    Ok(())
}

fn set_task(sql: &SqlStorage, task: &TaskRecord) -> Result<()> {
    sql.exec(
        "UPDATE run SET task = ? WHERE singleton = 1",
        vec![serde_json::to_string(task)?.into()],
    )?;
    Ok(())
}

fn set_pending(sql: &SqlStorage, pending: Option<&Pending>) -> Result<()> {
    sql.exec(
        "UPDATE run SET pending = ? WHERE singleton = 1",
        vec![json_or_null(pending)?],
    )?;
    Ok(())
}

fn load_effects(sql: &SqlStorage) -> Result<Vec<TaskEffect>> {
    #[derive(Deserialize)]
    struct Row {
        effects: Option<String>,
    }
    let rows: Vec<Row> = sql
        .exec("SELECT effects FROM run WHERE singleton = 1", None)?
        .to_array()?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.effects)
        .map(|e| serde_json::from_str(&e))
        .transpose()?
        .unwrap_or_default())
}

/// The queued effects, emptied: each is performed once (a crash while
/// performing one leaves the run's deadline to retry the step).
fn take_effects(sql: &SqlStorage) -> Result<Vec<TaskEffect>> {
    let effects = load_effects(sql)?;
    if !effects.is_empty() {
        sql.exec("UPDATE run SET effects = '[]' WHERE singleton = 1", None)?;
    }
    Ok(effects)
}
