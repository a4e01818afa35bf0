//! Tasks and their status log in D1.
//!
//! A task's run is decided by its `TaskRunner` Durable Object, the only
//! writer of its row after the insert; this table mirrors the run for lists
//! and pages, and `task_status_log` keeps every status change in order.

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};

const COLUMNS: &str = "id, user_id, project_id, session_id, agent, title, branch, vm_size, \
    status, attempt, failed_step, failure_reason, node_id, workspace_id, stop_reason, pr_url, \
    created_at, updated_at";

/// Rows a list returns at most.
const LIST_LIMIT: i64 = 200;

/// A row of `tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    pub session_id: String,
    pub agent: String,
    pub title: String,
    pub branch: String,
    pub vm_size: String,
    pub status: String,
    pub attempt: i64,
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    pub node_id: Option<String>,
    pub workspace_id: Option<String>,
    pub stop_reason: Option<String>,
    pub pr_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One status change (`task_status_log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatusChange {
    pub at: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    /// The event that caused it (`node_acquired`, `deadline_passed`, ...).
    pub event: String,
    pub detail: Option<String>,
}

/// What a waiting task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingOn {
    Node,
    Workspace,
}

/// Queries over `tasks` and `task_status_log`.
#[derive(Debug)]
pub struct TaskRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> TaskRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Inserts a new task and the first line of its log. Inserting the same
    /// id again changes nothing (a retried submit).
    pub async fn insert(&self, t: &TaskRecord) -> Result<bool, StoreError> {
        let params: Vec<SqlValue> = vec![
            t.id.as_str().into(),
            t.user_id.as_str().into(),
            t.project_id.as_str().into(),
            t.session_id.as_str().into(),
            t.agent.as_str().into(),
            t.title.as_str().into(),
            t.branch.as_str().into(),
            t.vm_size.as_str().into(),
            t.status.as_str().into(),
            t.attempt.into(),
            t.failed_step.clone().into(),
            t.failure_reason.clone().into(),
            t.node_id.clone().into(),
            t.workspace_id.clone().into(),
            t.stop_reason.clone().into(),
            t.pr_url.clone().into(),
            t.created_at.into(),
            t.updated_at.into(),
        ];
        let placeholders = vec!["?"; params.len()].join(", ");
        let inserted = self
            .db
            .execute(
                &format!(
                    "INSERT INTO tasks ({COLUMNS}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
                ),
                &params,
            )
            .await?;
        if inserted == 0 {
            return Ok(false);
        }
        self.log(
            &t.id,
            &TaskStatusChange {
                at: t.created_at,
                from_status: None,
                to_status: t.status.clone(),
                event: "submitted".to_owned(),
                detail: None,
            },
        )
        .await?;
        Ok(true)
    }

    /// The user's task; another user's is indistinguishable from a missing one.
    pub async fn get_owned(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        Ok(query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM tasks WHERE id = ? AND user_id = ?"),
            &[id.into(), user_id.into()],
        )
        .await?
        .pop())
    }

    /// A task by its chat session.
    pub async fn get_by_session(&self, session_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM tasks WHERE session_id = ?"),
            &[session_id.into()],
        )
        .await?
        .pop())
    }

    /// A project's tasks, newest first.
    pub async fn list_for_project(
        &self,
        user_id: &str,
        project_id: &str,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM tasks WHERE user_id = ? AND project_id = ? \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
            &[user_id.into(), project_id.into(), LIST_LIMIT.into()],
        )
        .await
    }

    /// Writes the run's current state over the row, and logs the change
    /// when the status moved (`change.from_status` is what the row said).
    /// A write older than the row's (`updated_at`) is dropped, so a slow
    /// mirror of an earlier event never undoes a later one.
    pub async fn record(
        &self,
        t: &TaskRecord,
        change: Option<&TaskStatusChange>,
    ) -> Result<(), StoreError> {
        let written = self
            .db
            .execute(
                "UPDATE tasks SET branch = ?, status = ?, attempt = ?, failed_step = ?, \
                 failure_reason = ?, node_id = ?, workspace_id = ?, stop_reason = ?, pr_url = ?, \
                 updated_at = ? WHERE id = ? AND updated_at <= ?",
                &[
                    t.branch.as_str().into(),
                    t.status.as_str().into(),
                    t.attempt.into(),
                    t.failed_step.clone().into(),
                    t.failure_reason.clone().into(),
                    t.node_id.clone().into(),
                    t.workspace_id.clone().into(),
                    t.stop_reason.clone().into(),
                    t.pr_url.clone().into(),
                    t.updated_at.into(),
                    t.id.as_str().into(),
                    t.updated_at.into(),
                ],
            )
            .await?;
        if written == 0 {
            return Ok(());
        }
        if let Some(change) = change {
            self.log(&t.id, change).await?;
        }
        Ok(())
    }

    async fn log(&self, task_id: &str, c: &TaskStatusChange) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO task_status_log (task_id, at, from_status, to_status, event, detail) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    task_id.into(),
                    c.at.into(),
                    c.from_status.clone().into(),
                    c.to_status.as_str().into(),
                    c.event.as_str().into(),
                    c.detail.clone().into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Names the node or workspace a task waits for (before its run
    /// records it), so the callback that makes it ready can wake the task.
    pub async fn record_waiting_for(
        &self,
        task_id: &str,
        node_id: Option<&str>,
        workspace_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE tasks SET node_id = COALESCE(?, node_id), \
                 workspace_id = COALESCE(?, workspace_id) WHERE id = ?",
                &[node_id.into(), workspace_id.into(), task_id.into()],
            )
            .await?;
        Ok(())
    }

    /// Tasks in `status` waiting for this node or workspace (`column` is
    /// `node_id` or `workspace_id`).
    pub async fn waiting_on(
        &self,
        column: WaitingOn,
        id: &str,
        status: &str,
    ) -> Result<Vec<String>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
        }
        let column = match column {
            WaitingOn::Node => "node_id",
            WaitingOn::Workspace => "workspace_id",
        };
        let rows: Vec<Row> = query_as(
            self.db,
            &format!("SELECT id FROM tasks WHERE {column} = ? AND status = ? LIMIT 100"),
            &[id.into(), status.into()],
        )
        .await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// The task's status changes, oldest first.
    pub async fn status_log(&self, task_id: &str) -> Result<Vec<TaskStatusChange>, StoreError> {
        query_as(
            self.db,
            "SELECT at, from_status, to_status, event, detail FROM task_status_log \
             WHERE task_id = ? ORDER BY seq LIMIT 1000",
            &[task_id.into()],
        )
        .await
    }
}
