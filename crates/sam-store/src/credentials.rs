//! Cloud credentials, stored sealed. This module never sees plaintext: the
//! caller seals and opens envelopes with the vault.

use serde::{Deserialize, Serialize};

use crate::sealed;
use crate::sql::{SqlDatabase, StoreError, query_as};

/// A stored credential (sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudCredentialRecord {
    pub id: String,
    pub user_id: String,
    pub provider: String,
    pub secret_envelope: String,
    pub masked: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, provider, secret_envelope, masked, created_at, updated_at";

/// Queries over `cloud_credentials`.
#[derive(Debug)]
pub struct CredentialRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> CredentialRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Stores (or replaces) the user's credential for a provider.
    pub async fn put(&self, c: &CloudCredentialRecord) -> Result<(), StoreError> {
        self.db
            .execute(
                &format!(
                    "INSERT INTO cloud_credentials ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT(user_id, provider) DO UPDATE SET secret_envelope = excluded.secret_envelope, \
                     masked = excluded.masked, updated_at = excluded.updated_at"
                ),
                &[
                    c.id.as_str().into(),
                    c.user_id.as_str().into(),
                    c.provider.as_str().into(),
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
        provider: &str,
    ) -> Result<Option<CloudCredentialRecord>, StoreError> {
        Ok(query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM cloud_credentials WHERE user_id = ? AND provider = ?"),
            &[user_id.into(), provider.into()],
        )
        .await?
        .into_iter()
        .next())
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<CloudCredentialRecord>, StoreError> {
        query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM cloud_credentials WHERE user_id = ? ORDER BY provider"),
            &[user_id.into()],
        )
        .await
    }

    pub async fn delete(&self, user_id: &str, provider: &str) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "DELETE FROM cloud_credentials WHERE user_id = ? AND provider = ?",
                &[user_id.into(), provider.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// A page of every credential (for the key-rotation sweep), by id.
    pub async fn page_after(
        &self,
        after_id: &str,
        limit: u32,
    ) -> Result<Vec<CloudCredentialRecord>, StoreError> {
        sealed::page_after(self.db, "cloud_credentials", COLUMNS, after_id, limit).await
    }

    /// Replaces an envelope if it is still `old` (compare-and-swap).
    pub async fn replace_envelope(
        &self,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        sealed::replace_envelope(self.db, "cloud_credentials", id, old, new).await
    }
}
