//! Workspaces and their creation log in D1.
//!
//! Status changes are compare-and-set on the status the caller loaded
//! (`sam_domain::workspace::apply` decides the next one), so a late
//! `ready` callback cannot undo a delete that won.

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};

const COLUMNS: &str = "id, user_id, project_id, node_id, name, branch, runtime, status, \
    status_since, error_message, ports_public, created_at, ready_at, updated_at";

/// Rows a list returns at most.
const LIST_LIMIT: i64 = 200;

/// A row of `workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    pub node_id: String,
    pub name: String,
    pub branch: String,
    /// `host` or `devcontainer`.
    pub runtime: String,
    pub status: String,
    pub status_since: i64,
    pub error_message: Option<String>,
    /// 0 or 1: forwarded ports open without a ticket.
    pub ports_public: i64,
    pub created_at: i64,
    pub ready_at: Option<i64>,
    pub updated_at: i64,
}

/// One step of a workspace's creation (`workspace_events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceEventRecord {
    pub at: i64,
    pub step: String,
    /// `started`, `done` or `failed`.
    pub status: String,
    pub detail: Option<String>,
}

/// Why a workspace could not be inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceInsertError {
    #[error("the node already has a workspace with this name")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queries over `workspaces` and `workspace_events`.
#[derive(Debug)]
pub struct WorkspaceRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> WorkspaceRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Inserts a workspace unless its node already has a live one of that name.
    pub async fn insert(&self, w: &WorkspaceRecord) -> Result<(), WorkspaceInsertError> {
        let params: Vec<SqlValue> = vec![
            w.id.as_str().into(),
            w.user_id.as_str().into(),
            w.project_id.as_str().into(),
            w.node_id.as_str().into(),
            w.name.as_str().into(),
            w.branch.as_str().into(),
            w.runtime.as_str().into(),
            w.status.as_str().into(),
            w.status_since.into(),
            w.error_message.clone().into(),
            w.ports_public.into(),
            w.created_at.into(),
            w.ready_at.into(),
            w.updated_at.into(),
        ];
        let placeholders = vec!["?"; params.len()].join(", ");
        let changed = self
            .db
            .execute(
                &format!(
                    "INSERT INTO workspaces ({COLUMNS}) VALUES ({placeholders}) \
                     ON CONFLICT DO NOTHING"
                ),
                &params,
            )
            .await?;
        if changed == 0 {
            return Err(WorkspaceInsertError::NameTaken);
        }
        Ok(())
    }

    /// The user's workspace; another user's is indistinguishable from a missing one.
    pub async fn get_owned(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<WorkspaceRecord>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM workspaces WHERE id = ? AND user_id = ?"),
            &[id.into(), user_id.into()],
        )
        .await
    }

    /// A workspace by id alone, for callbacks whose token proves it.
    pub async fn get(&self, id: &str) -> Result<Option<WorkspaceRecord>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM workspaces WHERE id = ?"),
            &[id.into()],
        )
        .await
    }

    /// The user's workspaces that are not deleted, newest first.
    pub async fn list_owned(&self, user_id: &str) -> Result<Vec<WorkspaceRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM workspaces WHERE user_id = ? AND status != 'deleted' \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
            &[user_id.into(), LIST_LIMIT.into()],
        )
        .await
    }

    /// A node's workspaces that are not deleted (a node is in use while it has any).
    pub async fn list_on_node(&self, node_id: &str) -> Result<Vec<WorkspaceRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM workspaces WHERE node_id = ? AND status != 'deleted' \
                 ORDER BY created_at, id LIMIT ?"
            ),
            &[node_id.into(), LIST_LIMIT.into()],
        )
        .await
    }

    /// Moves a workspace from `from` to `to` if it is still in `from`,
    /// recording `error` when given (and when it becomes `running`, since
    /// when). Returns whether this call made the change.
    pub async fn transition(
        &self,
        id: &str,
        from: &str,
        to: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE workspaces SET status = ?, status_since = ?, updated_at = ?, \
                 error_message = COALESCE(?, error_message), \
                 ready_at = CASE WHEN ? = 'running' THEN COALESCE(ready_at, ?) ELSE ready_at END \
                 WHERE id = ? AND status = ?",
                &[
                    to.into(),
                    now.into(),
                    now.into(),
                    error.into(),
                    to.into(),
                    now.into(),
                    id.into(),
                    from.into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Renames the user's workspace; false when it is not theirs, or the
    /// name is taken on its node.
    pub async fn rename(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE OR IGNORE workspaces SET name = ?, updated_at = ? \
                 WHERE id = ? AND user_id = ? AND status != 'deleted'",
                &[name.into(), now.into(), id.into(), user_id.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Opens or closes the workspace's forwarded ports to anyone.
    pub async fn set_ports_public(
        &self,
        user_id: &str,
        id: &str,
        public: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE workspaces SET ports_public = ?, updated_at = ? \
                 WHERE id = ? AND user_id = ? AND status != 'deleted'",
                &[
                    i64::from(public).into(),
                    now.into(),
                    id.into(),
                    user_id.into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Appends a step to the workspace's creation log.
    pub async fn append_event(
        &self,
        workspace_id: &str,
        event: &WorkspaceEventRecord,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO workspace_events (workspace_id, at, step, status, detail) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    workspace_id.into(),
                    event.at.into(),
                    event.step.as_str().into(),
                    event.status.as_str().into(),
                    event.detail.clone().into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// The workspace's creation log, oldest first.
    pub async fn events(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WorkspaceEventRecord>, StoreError> {
        query_as(
            self.db,
            "SELECT at, step, status, detail FROM workspace_events \
             WHERE workspace_id = ? ORDER BY seq LIMIT 1000",
            &[workspace_id.into()],
        )
        .await
    }

    async fn one(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<WorkspaceRecord>, StoreError> {
        Ok(query_as(self.db, sql, params).await?.into_iter().next())
    }
}
