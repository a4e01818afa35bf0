//! Personal access tokens. Only keyed hashes are stored; the token itself
//! is shown once, at creation.

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, SqlValue, StoreError, query_as};
use crate::users::UserRecord;

/// A token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, created_at, expires_at, last_used_at, revoked_at";

#[derive(Deserialize)]
struct TokenUserRow {
    token_id: String,
    #[serde(flatten)]
    user: UserRecord,
}

/// Queries over `personal_access_tokens`.
#[derive(Debug)]
pub struct TokenRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> TokenRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    pub async fn create(&self, t: &TokenRecord, token_hash: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO personal_access_tokens (id, user_id, name, token_hash, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    t.id.as_str().into(),
                    t.user_id.as_str().into(),
                    t.name.as_str().into(),
                    token_hash.into(),
                    t.created_at.into(),
                    t.expires_at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// A user's tokens, newest first (revoked ones included, marked).
    pub async fn list(&self, user_id: &str) -> Result<Vec<TokenRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {COLUMNS} FROM personal_access_tokens WHERE user_id = ? \
                 ORDER BY created_at DESC, id DESC LIMIT 200"
            ),
            &[user_id.into()],
        )
        .await
    }

    /// Revokes one of the user's tokens; false if there is no such live token of theirs.
    pub async fn revoke(&self, user_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE personal_access_tokens SET revoked_at = ? \
                 WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                &[now.into(), id.into(), user_id.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// The owner of the live token stored under any of `hashes`, marking it used.
    pub async fn use_token(
        &self,
        hashes: &[String],
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let placeholders = vec!["?"; hashes.len().max(1)].join(", ");
        let mut params: Vec<SqlValue> = hashes.iter().map(|h| h.as_str().into()).collect();
        params.push(now.into());
        let row: Option<TokenUserRow> = query_as(
            self.db,
            &format!(
                "SELECT t.id AS token_id, u.id, u.login, u.created_at, u.github_id, u.name, u.email, \
                 u.avatar_url, u.role, u.status \
                 FROM personal_access_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash IN ({placeholders}) AND t.revoked_at IS NULL \
                 AND (t.expires_at IS NULL OR t.expires_at > ?)"
            ),
            &params,
        )
        .await?
        .into_iter()
        .next();
        let Some(row) = row else { return Ok(None) };
        self.db
            .execute(
                "UPDATE personal_access_tokens SET last_used_at = ? WHERE id = ?",
                &[now.into(), row.token_id.as_str().into()],
            )
            .await?;
        Ok(Some(row.user))
    }
}
