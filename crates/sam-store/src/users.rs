//! Users: GitHub accounts (and, locally, the temporary developer sign-in).

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, StoreError, query_as};

const COLUMNS: &str = "id, login, created_at, github_id, name, email, avatar_url, role, status";

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub login: String,
    pub created_at: i64,
    pub github_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    /// `user`, `admin` or `superadmin`.
    pub role: String,
    /// `active`, `pending` or `suspended`.
    pub status: String,
}

/// What GitHub tells us about a user at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubProfile {
    pub github_id: String,
    pub login: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
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

    /// Returns the local developer account `login`, creating it with
    /// `new_id` if absent (the local developer sign-in). `None` when the
    /// name belongs to a GitHub account: a developer sign-in must never
    /// open someone's real account.
    pub async fn upsert_by_login(
        &self,
        new_id: &str,
        login: &str,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.db
            .execute(
                "INSERT INTO users (id, login, created_at) VALUES (?, ?, ?) ON CONFLICT(login) DO NOTHING",
                &[new_id.into(), login.into(), now.into()],
            )
            .await?;
        let user = self
            .one(
                &format!("SELECT {COLUMNS} FROM users WHERE login = ?"),
                login,
            )
            .await?
            .ok_or_else(|| StoreError::Decode("user vanished after upsert".to_owned()))?;
        Ok(user.github_id.is_none().then_some(user))
    }

    /// Signs a GitHub user up or refreshes their profile. The first GitHub
    /// user ever gets `first_role`/`first_status`, later new ones
    /// `role`/`status` — decided inside the one INSERT, so two simultaneous
    /// first sign-ins cannot both become superadmin.
    pub async fn upsert_github(
        &self,
        new_id: &str,
        profile: &GithubProfile,
        now: i64,
        first: (&str, &str),
        later: (&str, &str),
    ) -> Result<UserRecord, StoreError> {
        // GitHub is the authority on who `login` is now. Whoever else holds
        // the name here (a local developer account, or a GitHub account
        // that has since been renamed) gives it up: `login~<id tail>` until
        // that account's own next GitHub sign-in. Nothing is merged.
        self.db
            .execute(
                "UPDATE users SET login = login || '~' || substr(id, -6) \
                 WHERE login = ? AND (github_id IS NULL OR github_id != ?)",
                &[
                    profile.login.as_str().into(),
                    profile.github_id.as_str().into(),
                ],
            )
            .await?;
        self.db
            .execute(
                "INSERT INTO users (id, login, created_at, github_id, name, email, avatar_url, role, status) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, \
                   CASE WHEN EXISTS (SELECT 1 FROM users WHERE github_id IS NOT NULL) THEN ? ELSE ? END, \
                   CASE WHEN EXISTS (SELECT 1 FROM users WHERE github_id IS NOT NULL) THEN ? ELSE ? END \
                 WHERE true \
                 ON CONFLICT(github_id) DO UPDATE SET login = excluded.login, name = excluded.name, \
                   email = excluded.email, avatar_url = excluded.avatar_url",
                &[
                    new_id.into(),
                    profile.login.as_str().into(),
                    now.into(),
                    profile.github_id.as_str().into(),
                    profile.name.clone().into(),
                    profile.email.clone().into(),
                    profile.avatar_url.clone().into(),
                    later.0.into(),
                    first.0.into(),
                    later.1.into(),
                    first.1.into(),
                ],
            )
            .await?;
        self.one(
            &format!("SELECT {COLUMNS} FROM users WHERE github_id = ?"),
            &profile.github_id,
        )
        .await?
        .ok_or_else(|| StoreError::Decode("user vanished after upsert".to_owned()))
    }

    pub async fn get(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.one(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"), id)
            .await
    }

    /// The user who signed in with this GitHub account, if any.
    pub async fn get_by_github_id(
        &self,
        github_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM users WHERE github_id = ?"),
            github_id,
        )
        .await
    }

    /// Every user, newest first (the admin list).
    pub async fn list(&self) -> Result<Vec<UserRecord>, StoreError> {
        query_as(
            self.db,
            &format!("SELECT {COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT 500"),
            &[],
        )
        .await
    }

    /// Sets a user's status if it is still `from` (compare-and-set).
    pub async fn set_status(&self, id: &str, from: &str, to: &str) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "UPDATE users SET status = ? WHERE id = ? AND status = ?",
                &[to.into(), id.into(), from.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn one(&self, sql: &str, param: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(query_as(self.db, sql, &[param.into()])
            .await?
            .into_iter()
            .next())
    }
}
