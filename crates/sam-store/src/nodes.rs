//! Nodes in D1.
//!
//! Status changes are compare-and-set (`WHERE status = ?expected`): two
//! requests racing on one node (a late `/ready` against a `DELETE`) cannot
//! both win, and the loser sees zero changed rows instead of clobbering.

use sam_domain::node::NodeStatus;
use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};

const COLUMNS: &str = "id, user_id, name, provider, size, location, server_type, status, \
    status_changed_at, error_message, provider_server_id, ip_address, created_at, \
    agent_ready_at, agent_version, last_heartbeat_at, last_metrics, deleted_at";

/// A row of `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub provider: String,
    pub size: String,
    pub location: String,
    pub server_type: String,
    pub status: String,
    pub status_changed_at: i64,
    pub error_message: Option<String>,
    pub provider_server_id: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: i64,
    pub agent_ready_at: Option<i64>,
    pub agent_version: Option<String>,
    pub last_heartbeat_at: Option<i64>,
    /// JSON text of the last `NodeMetrics`.
    pub last_metrics: Option<String>,
    pub deleted_at: Option<i64>,
}

impl NodeRecord {
    /// The parsed status; an unknown value in the database reads as `error`
    /// so it is visible and deletable rather than silently ignored.
    pub fn status(&self) -> NodeStatus {
        NodeStatus::parse(&self.status).unwrap_or(NodeStatus::Error)
    }
}

/// What the provider told us about a freshly created server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderServerUpdate {
    pub server_id: String,
    pub ip_address: Option<String>,
    /// Where the server ended up (a capacity fallback may have moved it).
    pub location: String,
}

/// Queries over `nodes`.
#[derive(Debug)]
pub struct NodeRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> NodeRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Inserts `n` unless its owner already has `limit` live (not deleted)
    /// nodes. One statement, so parallel creates cannot overshoot the quota.
    /// Returns whether the node was inserted.
    pub async fn insert_within_quota(
        &self,
        n: &NodeRecord,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let placeholders = ["?"; 18].join(", ");
        let changed = self
            .db
            .execute(
                &format!(
                    "INSERT INTO nodes ({COLUMNS}) SELECT {placeholders} \
                     WHERE (SELECT COUNT(*) FROM nodes WHERE user_id = ? AND status != 'deleted') < ?"
                ),
                &[
                    n.id.as_str().into(),
                    n.user_id.as_str().into(),
                    n.name.as_str().into(),
                    n.provider.as_str().into(),
                    n.size.as_str().into(),
                    n.location.as_str().into(),
                    n.server_type.as_str().into(),
                    n.status.as_str().into(),
                    n.status_changed_at.into(),
                    n.error_message.clone().into(),
                    n.provider_server_id.clone().into(),
                    n.ip_address.clone().into(),
                    n.created_at.into(),
                    n.agent_ready_at.into(),
                    n.agent_version.clone().into(),
                    n.last_heartbeat_at.into(),
                    n.last_metrics.clone().into(),
                    n.deleted_at.into(),
                    n.user_id.as_str().into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// A node owned by `user_id`; another user's node is indistinguishable from a missing one.
    pub async fn get_owned(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<NodeRecord>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM nodes WHERE id = ? AND user_id = ?"),
            &[id.into(), user_id.into()],
        )
        .await
    }

    /// A node by id alone, for callbacks whose token already proves the node.
    /// Nodes in `status` since `cutoff` or earlier (sweeps), oldest first.
    pub async fn list_in_status_since_before(
        &self,
        status: NodeStatus,
        cutoff: i64,
        limit: u32,
    ) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE status = ? AND status_changed_at <= ? \
                 ORDER BY status_changed_at LIMIT ?"
            ),
            &[
                status.as_str().into(),
                cutoff.into(),
                i64::from(limit).into(),
            ],
        )
        .await
    }

    /// Running nodes whose last heartbeat (or registration) is older than `cutoff`.
    pub async fn list_running_silent_since(
        &self,
        cutoff: i64,
        limit: u32,
    ) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE status = 'running' \
                 AND COALESCE(last_heartbeat_at, agent_ready_at, status_changed_at) < ? \
                 ORDER BY status_changed_at LIMIT ?"
            ),
            &[cutoff.into(), i64::from(limit).into()],
        )
        .await
    }

    /// Nodes created before `cutoff` that are not deleted yet (maximum lifetime).
    pub async fn list_alive_created_before(
        &self,
        cutoff: i64,
        limit: u32,
    ) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE status != 'deleted' AND created_at < ? \
                 ORDER BY created_at LIMIT ?"
            ),
            &[cutoff.into(), i64::from(limit).into()],
        )
        .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM nodes WHERE id = ?"),
            &[id.into()],
        )
        .await
    }

    /// A user's nodes, newest first, deleted ones included (they show their history).
    pub async fn list_owned(&self, user_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM nodes WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 200"),
            &[user_id.into()],
        )
        .await
    }

    /// Moves a node from `from` to `to` if it is still in `from`. Returns
    /// whether this call made the change.
    pub async fn transition(
        &self,
        id: &str,
        from: NodeStatus,
        to: NodeStatus,
        now: i64,
        error_message: Option<&str>,
    ) -> Result<bool, StoreError> {
        let deleted_at = if to == NodeStatus::Deleted {
            SqlValue::Integer(now)
        } else {
            SqlValue::Null
        };
        let changed = self
            .db
            .execute(
                "UPDATE nodes SET status = ?, status_changed_at = ?, \
                 error_message = COALESCE(?, error_message), deleted_at = COALESCE(?, deleted_at) \
                 WHERE id = ? AND status = ?",
                &[
                    to.as_str().into(),
                    now.into(),
                    error_message.map(str::to_owned).into(),
                    deleted_at,
                    id.into(),
                    from.as_str().into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Records the provider's server id and address for a node still being
    /// created, or already running: its agent can register before the
    /// create call's answer is processed (a retried create, a fast boot).
    pub async fn record_provider_server(
        &self,
        id: &str,
        server: &ProviderServerUpdate,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE nodes SET provider_server_id = ?, ip_address = ?, location = ? \
                 WHERE id = ? AND status IN ('creating', 'running')",
                &[
                    server.server_id.as_str().into(),
                    server.ip_address.clone().into(),
                    server.location.as_str().into(),
                    id.into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Marks the agent ready: `creating → running`, or a re-announce while running.
    pub async fn mark_ready(&self, id: &str, version: &str, now: i64) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE nodes SET status = 'running', \
                 status_changed_at = CASE WHEN status = 'running' THEN status_changed_at ELSE ? END, \
                 agent_ready_at = ?, agent_version = ?, last_heartbeat_at = ? \
                 WHERE id = ? AND status IN ('creating', 'running')",
                &[now.into(), now.into(), version.into(), now.into(), id.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Records a heartbeat of a running node.
    pub async fn record_heartbeat(
        &self,
        id: &str,
        version: &str,
        metrics_json: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE nodes SET last_heartbeat_at = ?, agent_version = ?, last_metrics = ? \
                 WHERE id = ? AND status = 'running'",
                &[now.into(), version.into(), metrics_json.into(), id.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Records why something went wrong with a node without changing its
    /// status (e.g. a provider delete that will be retried).
    pub async fn note_error(&self, id: &str, message: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE nodes SET error_message = ? WHERE id = ?",
                &[message.into(), id.into()],
            )
            .await?;
        Ok(())
    }

    async fn one(&self, sql: &str, params: &[SqlValue]) -> Result<Option<NodeRecord>, StoreError> {
        Ok(query_as(self.db, sql, params).await?.into_iter().next())
    }
}
