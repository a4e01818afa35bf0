//! Agent credentials, stored sealed: per user and agent, optionally
//! overridden per project. This module never sees plaintext.

use serde::{Deserialize, Serialize};

use crate::sealed;
use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};

/// A stored agent credential (sealed). `project_id` is `None` for the user's own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCredentialRecord {
    pub id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub agent: String,
    pub kind: String,
    pub secret_envelope: String,
    pub masked: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, user_id, project_id, agent, kind, secret_envelope, masked, created_at, updated_at";

/// `project_id IS ?` matches NULL too, so one statement serves both scopes.
const SCOPE: &str = "user_id = ? AND project_id IS ?";

fn scope(user_id: &str, project_id: Option<&str>) -> [SqlValue; 2] {
    [user_id.into(), project_id.map(str::to_owned).into()]
}

/// Queries over `agent_credentials`.
#[derive(Debug)]
pub struct AgentCredentialRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> AgentCredentialRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Stores (or replaces, whatever its kind) the credential for the record's
    /// scope and agent: one active kind per agent.
    pub async fn put(&self, c: &AgentCredentialRecord) -> Result<(), StoreError> {
        // Each scope has its own partial unique index; the conflict target names it.
        let target = if c.project_id.is_some() {
            "(project_id, agent) WHERE project_id IS NOT NULL"
        } else {
            "(user_id, agent) WHERE project_id IS NULL"
        };
        self.db
            .execute(
                &format!(
                    "INSERT INTO agent_credentials ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT{target} DO UPDATE SET kind = excluded.kind, \
                     secret_envelope = excluded.secret_envelope, masked = excluded.masked, \
                     updated_at = excluded.updated_at"
                ),
                &[
                    c.id.as_str().into(),
                    c.user_id.as_str().into(),
                    c.project_id.clone().into(),
                    c.agent.as_str().into(),
                    c.kind.as_str().into(),
                    c.secret_envelope.as_str().into(),
                    c.masked.as_str().into(),
                    c.created_at.into(),
                    c.updated_at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn get(
        &self,
        user_id: &str,
        project_id: Option<&str>,
        agent: &str,
    ) -> Result<Option<AgentCredentialRecord>, StoreError> {
        let [user, project] = scope(user_id, project_id);
        Ok(query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM agent_credentials WHERE {SCOPE} AND agent = ?"),
            &[user, project, agent.into()],
        )
        .await?
        .into_iter()
        .next())
    }

    /// The credentials of one scope, by agent.
    pub async fn list(
        &self,
        user_id: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<AgentCredentialRecord>, StoreError> {
        query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM agent_credentials WHERE {SCOPE} ORDER BY agent"),
            &scope(user_id, project_id),
        )
        .await
    }

    pub async fn delete(
        &self,
        user_id: &str,
        project_id: Option<&str>,
        agent: &str,
    ) -> Result<bool, StoreError> {
        let [user, project] = scope(user_id, project_id);
        let changed = self
            .db
            .execute(
                &format!("DELETE FROM agent_credentials WHERE {SCOPE} AND agent = ?"),
                &[user, project, agent.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// A page of every credential (for the key-rotation sweep), by id.
    pub async fn page_after(
        &self,
        after_id: &str,
        limit: u32,
    ) -> Result<Vec<AgentCredentialRecord>, StoreError> {
        sealed::page_after(self.db, "agent_credentials", COLUMNS, after_id, limit).await
    }

    /// Replaces an envelope if it is still `old` (compare-and-swap).
    pub async fn replace_envelope(
        &self,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        sealed::replace_envelope(self.db, "agent_credentials", id, old, new).await
    }
}
