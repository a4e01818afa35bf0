//! Nodes in D1.
//!
//! A node row carries the record of `sam_domain::lifecycle` (status,
//! version, holder, destroy retries) beside facts that do not drive the
//! state machine (address, agent version, metrics). State changes are
//! compare-and-set on `version` ([`NodeRepository::save_state`]): two
//! requests racing on one node (two claims of one warm node, a late
//! `/ready` against a delete) cannot both win; the loser sees `false`,
//! reloads and applies its event again.

use sam_domain::lifecycle::{LifecycleStatus, NodeState};
use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};

const COLUMNS: &str = "id, user_id, name, provider, size, location, server_type, status, \
    version, status_since, deadline_at, claimed_by, project_id, warm_timeout_ms, \
    error_message, destroy_attempts, last_destroy_at, destroy_error, provider_server_id, \
    ip_address, created_at, agent_ready_at, agent_version, last_heartbeat_at, last_metrics, \
    removed_at";

/// Rows handled per batch by listing queries.
const LIST_LIMIT: i64 = 200;

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
    pub version: i64,
    pub status_since: i64,
    /// When something must next happen to the node; `None` once destroyed.
    pub deadline_at: Option<i64>,
    pub claimed_by: Option<String>,
    pub project_id: Option<String>,
    /// This node's warm timeout; `None` means the platform default.
    pub warm_timeout_ms: Option<i64>,
    pub error_message: Option<String>,
    pub destroy_attempts: i64,
    pub last_destroy_at: Option<i64>,
    pub destroy_error: Option<String>,
    pub provider_server_id: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: i64,
    pub agent_ready_at: Option<i64>,
    pub agent_version: Option<String>,
    pub last_heartbeat_at: Option<i64>,
    /// JSON text of the last `NodeMetrics`.
    pub last_metrics: Option<String>,
    /// The user deleted the node; hidden from lists once destroyed.
    pub removed_at: Option<i64>,
}

impl NodeRecord {
    /// The parsed status; an unknown value in the database reads as `error`
    /// so that it is visible and gets destroyed rather than ignored.
    pub fn status(&self) -> LifecycleStatus {
        LifecycleStatus::parse(&self.status).unwrap_or(LifecycleStatus::Error)
    }

    /// The state machine's record of this node.
    pub fn state(&self) -> NodeState {
        NodeState {
            status: self.status(),
            version: u64::try_from(self.version).unwrap_or(0),
            created_at: self.created_at,
            status_since: self.status_since,
            last_heartbeat_at: self.last_heartbeat_at,
            server_id: self.provider_server_id.clone(),
            claimed_by: self.claimed_by.clone(),
            destroy_attempts: u32::try_from(self.destroy_attempts).unwrap_or(u32::MAX),
            last_destroy_at: self.last_destroy_at,
            error: self.error_message.clone(),
            destroy_error: self.destroy_error.clone(),
        }
    }

    /// This record with `state` (and its deadline) written over it.
    pub fn set_state(&mut self, state: &NodeState, deadline_at: Option<i64>) {
        state.status.as_str().clone_into(&mut self.status);
        self.version = i64::try_from(state.version).unwrap_or(i64::MAX);
        self.status_since = state.status_since;
        self.deadline_at = deadline_at;
        self.claimed_by.clone_from(&state.claimed_by);
        self.error_message.clone_from(&state.error);
        self.destroy_attempts = i64::from(state.destroy_attempts);
        self.last_destroy_at = state.last_destroy_at;
        self.destroy_error.clone_from(&state.destroy_error);
        self.provider_server_id.clone_from(&state.server_id);
        self.last_heartbeat_at = state.last_heartbeat_at;
    }

    fn params(&self) -> Vec<SqlValue> {
        vec![
            self.id.as_str().into(),
            self.user_id.as_str().into(),
            self.name.as_str().into(),
            self.provider.as_str().into(),
            self.size.as_str().into(),
            self.location.as_str().into(),
            self.server_type.as_str().into(),
            self.status.as_str().into(),
            self.version.into(),
            self.status_since.into(),
            self.deadline_at.into(),
            self.claimed_by.clone().into(),
            self.project_id.clone().into(),
            self.warm_timeout_ms.into(),
            self.error_message.clone().into(),
            self.destroy_attempts.into(),
            self.last_destroy_at.into(),
            self.destroy_error.clone().into(),
            self.provider_server_id.clone().into(),
            self.ip_address.clone().into(),
            self.created_at.into(),
            self.agent_ready_at.into(),
            self.agent_version.clone().into(),
            self.last_heartbeat_at.into(),
            self.last_metrics.clone().into(),
            self.removed_at.into(),
        ]
    }
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

    /// Inserts `n` unless its owner already has `limit` nodes that are not
    /// destroyed. One statement, so parallel creates cannot overshoot the
    /// quota. Returns whether the node was inserted.
    pub async fn insert_within_quota(
        &self,
        n: &NodeRecord,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let mut params = n.params();
        let placeholders = vec!["?"; params.len()].join(", ");
        params.push(n.user_id.as_str().into());
        params.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let changed = self
            .db
            .execute(
                &format!(
                    "INSERT INTO nodes ({COLUMNS}) SELECT {placeholders} \
                     WHERE (SELECT COUNT(*) FROM nodes WHERE user_id = ? AND status != 'destroyed') < ?"
                ),
                &params,
            )
            .await?;
        Ok(changed > 0)
    }

    /// A node owned by `user_id`; another user's node is indistinguishable
    /// from a missing one.
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
    pub async fn get(&self, id: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM nodes WHERE id = ?"),
            &[id.into()],
        )
        .await
    }

    /// A user's nodes, newest first: destroyed ones too (they show their
    /// history) unless the user removed them.
    pub async fn list_owned(&self, user_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE user_id = ? \
                 AND NOT (removed_at IS NOT NULL AND status = 'destroyed') \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
            &[user_id.into(), LIST_LIMIT.into()],
        )
        .await
    }

    /// A user's warm nodes, most recently warmed first (their caches are
    /// the freshest).
    pub async fn list_warm_owned(&self, user_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE user_id = ? AND status = 'warm' \
                 ORDER BY status_since DESC, id DESC LIMIT ?"
            ),
            &[user_id.into(), LIST_LIMIT.into()],
        )
        .await
    }

    /// Nodes whose deadline is at or before `now`, most overdue first.
    pub async fn list_due(&self, now: i64, limit: u32) -> Result<Vec<NodeRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE deadline_at IS NOT NULL AND deadline_at <= ? \
                 ORDER BY deadline_at LIMIT ?"
            ),
            &[now.into(), i64::from(limit).into()],
        )
        .await
    }

    /// Writes `state` and its deadline if the stored version is still
    /// `expected_version`. Returns whether this call made the change.
    pub async fn save_state(
        &self,
        id: &str,
        expected_version: u64,
        state: &NodeState,
        deadline_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE nodes SET status = ?, version = ?, status_since = ?, deadline_at = ?, \
                 claimed_by = ?, error_message = ?, destroy_attempts = ?, last_destroy_at = ?, \
                 destroy_error = ?, provider_server_id = ?, last_heartbeat_at = ? \
                 WHERE id = ? AND version = ?",
                &[
                    state.status.as_str().into(),
                    i64::try_from(state.version).unwrap_or(i64::MAX).into(),
                    state.status_since.into(),
                    deadline_at.into(),
                    state.claimed_by.clone().into(),
                    state.error.clone().into(),
                    i64::from(state.destroy_attempts).into(),
                    state.last_destroy_at.into(),
                    state.destroy_error.clone().into(),
                    state.server_id.clone().into(),
                    state.last_heartbeat_at.into(),
                    id.into(),
                    i64::try_from(expected_version).unwrap_or(i64::MAX).into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Corrects the stored deadline of an unchanged node (the settings it
    /// was computed with changed). Returns whether the version still held.
    pub async fn set_deadline(
        &self,
        id: &str,
        expected_version: u64,
        deadline_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE nodes SET deadline_at = ? WHERE id = ? AND version = ?",
                &[
                    deadline_at.into(),
                    id.into(),
                    i64::try_from(expected_version).unwrap_or(i64::MAX).into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// How many of the user's nodes at `provider` are not destroyed (they
    /// need the user's credential there to be destroyed).
    pub async fn count_live_at(&self, user_id: &str, provider: &str) -> Result<u64, StoreError> {
        #[derive(serde::Deserialize)]
        struct Count {
            n: i64,
        }
        let rows: Vec<Count> = query_as(
            self.db,
            "SELECT COUNT(*) AS n FROM nodes WHERE user_id = ? AND provider = ? \
             AND status != 'destroyed'",
            &[user_id.into(), provider.into()],
        )
        .await?;
        Ok(rows.first().map_or(0, |c| u64::try_from(c.n).unwrap_or(0)))
    }

    /// The user's node held by `claim_id`, if any (a repeated claim).
    pub async fn find_claimed(
        &self,
        user_id: &str,
        claim_id: &str,
    ) -> Result<Option<NodeRecord>, StoreError> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM nodes WHERE user_id = ? AND claimed_by = ? \
                 AND status IN ('provisioning', 'booting', 'ready') LIMIT 1"
            ),
            &[user_id.into(), claim_id.into()],
        )
        .await
    }

    /// Where the provider put the node's server (a capacity fallback may
    /// have moved it). Not part of the state machine.
    pub async fn record_address(
        &self,
        id: &str,
        ip_address: Option<&str>,
        location: &str,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE nodes SET ip_address = COALESCE(?, ip_address), location = ? WHERE id = ?",
                &[ip_address.into(), location.into(), id.into()],
            )
            .await?;
        Ok(())
    }

    /// The agent's version (and, on its first registration, when).
    pub async fn record_agent(&self, id: &str, version: &str, now: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE nodes SET agent_version = ?, agent_ready_at = COALESCE(agent_ready_at, ?) \
                 WHERE id = ?",
                &[version.into(), now.into(), id.into()],
            )
            .await?;
        Ok(())
    }

    /// The latest metrics a heartbeat carried.
    pub async fn record_metrics(
        &self,
        id: &str,
        version: &str,
        metrics_json: &str,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE nodes SET agent_version = ?, last_metrics = ? WHERE id = ?",
                &[version.into(), metrics_json.into(), id.into()],
            )
            .await?;
        Ok(())
    }

    /// The project a claim works for and its warm timeout (`None`: default).
    pub async fn record_project(
        &self,
        id: &str,
        project_id: Option<&str>,
        warm_timeout_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE nodes SET project_id = ?, warm_timeout_ms = ? WHERE id = ?",
                &[project_id.into(), warm_timeout_ms.into(), id.into()],
            )
            .await?;
        Ok(())
    }

    /// The user deleted the node: hide it from lists once it is destroyed.
    pub async fn mark_removed(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE nodes SET removed_at = COALESCE(removed_at, ?) WHERE id = ?",
                &[now.into(), id.into()],
            )
            .await?;
        Ok(())
    }

    async fn one(&self, sql: &str, params: &[SqlValue]) -> Result<Option<NodeRecord>, StoreError> {
        Ok(query_as(self.db, sql, params).await?.into_iter().next())
    }
}
