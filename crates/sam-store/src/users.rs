//! Users. The spine has only the temporary local developer sign-in; the
//! identity issue replaces it with GitHub sign-in over the same table.

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, StoreError, query_as};

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub login: String,
    pub created_at: i64,
}

/// Queries over `users`.
#[derive(Debug)]
pub struct UserRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> UserRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Returns the user with `login`, creating it with `new_id` if absent.
    pub async fn upsert_by_login(
        &self,
        new_id: &str,
        login: &str,
        now: i64,
    ) -> Result<UserRecord, StoreError> {
        self.db
            .execute(
                "INSERT INTO users (id, login, created_at) VALUES (?, ?, ?) ON CONFLICT(login) DO NOTHING",
                &[new_id.into(), login.into(), now.into()],
            )
            .await?;
        query_as(
            self.db,
            "SELECT id, login, created_at FROM users WHERE login = ?",
            &[login.into()],
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Decode("user vanished after upsert".to_owned()))
    }

    pub async fn get(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(query_as(
            self.db,
            "SELECT id, login, created_at FROM users WHERE id = ?",
            &[id.into()],
        )
        .await?
        .into_iter()
        .next())
    }
}
