//! Server-side sessions and one-time OAuth states.
//!
//! Both are stored under keyed hashes computed by the caller (the vault's
//! session keys): a database dump yields no usable session or state. Lookups
//! take every hash the current key ring can produce, so sessions issued
//! before a key rotation keep working.

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};
use crate::users::UserRecord;

/// A live session joined with its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id_hash: String,
    pub expires_at: i64,
    #[serde(flatten)]
    pub user: UserRecord,
}

/// Queries over `sessions` and `oauth_states`.
#[derive(Debug)]
pub struct SessionRepository<'a, D> {
    db: &'a D,
}

fn in_list(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

impl<'a, D: SqlDatabase> SessionRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    pub async fn create(
        &self,
        id_hash: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                &[id_hash.into(), user_id.into(), now.into(), expires_at.into()],
            )
            .await?;
        Ok(())
    }

    /// The unexpired, unrevoked session stored under any of `hashes`.
    pub async fn find_live(
        &self,
        hashes: &[String],
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut params: Vec<SqlValue> = hashes.iter().map(|h| h.as_str().into()).collect();
        params.push(now.into());
        Ok(query_as(
            self.db,
            &format!(
                "SELECT s.id_hash, s.expires_at, u.id, u.login, u.created_at, u.github_id, u.name, u.email, \
                 u.avatar_url, u.role, u.status \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id_hash IN ({}) AND s.revoked_at IS NULL AND s.expires_at > ?",
                in_list(hashes.len())
            ),
            &params,
        )
        .await?
        .into_iter()
        .next())
    }

    /// Revokes the session stored under any of `hashes`; effective at once.
    pub async fn revoke(&self, hashes: &[String], now: i64) -> Result<(), StoreError> {
        let mut params: Vec<SqlValue> = vec![now.into()];
        params.extend(hashes.iter().map(|h| SqlValue::from(h.as_str())));
        self.db
            .execute(
                &format!(
                    "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND id_hash IN ({})",
                    in_list(hashes.len())
                ),
                &params,
            )
            .await?;
        Ok(())
    }

    /// Revokes every session of a user (suspension).
    pub async fn revoke_all(&self, user_id: &str, now: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND user_id = ?",
                &[now.into(), user_id.into()],
            )
            .await?;
        Ok(())
    }

    pub async fn create_oauth_state(
        &self,
        state_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO oauth_states (state_hash, created_at, expires_at) VALUES (?, ?, ?)",
                &[state_hash.into(), now.into(), expires_at.into()],
            )
            .await?;
        Ok(())
    }

    /// Consumes an OAuth state: true exactly once for a live state, so a
    /// replayed callback fails.
    pub async fn consume_oauth_state(
        &self,
        hashes: &[String],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut params: Vec<SqlValue> = hashes.iter().map(|h| h.as_str().into()).collect();
        params.push(now.into());
        let deleted = self
            .db
            .execute(
                &format!(
                    "DELETE FROM oauth_states WHERE state_hash IN ({}) AND expires_at > ?",
                    in_list(hashes.len())
                ),
                &params,
            )
            .await?;
        Ok(deleted > 0)
    }
}
