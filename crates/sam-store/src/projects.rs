//! Projects and the GitHub App installations they are reached through.

use serde::{Deserialize, Serialize};

use crate::sql::{SqlDatabase, StoreError, query_as};

/// A row of `projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub installation_id: String,
    pub repository_id: i64,
    pub repo_full_name: String,
    pub repo_html_url: String,
    pub default_branch: String,
    /// `active`, `repository_missing` or `installation_missing`.
    pub status: String,
    pub vm_size: Option<String>,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub agent: Option<String>,
    /// How long nodes that worked for this project stay warm, in
    /// milliseconds; `None` is the platform default.
    pub warm_node_timeout_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const PROJECT_COLUMNS: &str = "id, user_id, name, installation_id, repository_id, repo_full_name, \
     repo_html_url, default_branch, status, vm_size, provider, location, agent, \
     warm_node_timeout_ms, created_at, updated_at";

/// The fields a rename or settings change may set; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectUpdate {
    pub name: Option<String>,
    pub default_branch: Option<String>,
    /// `Some(None)` clears a setting back to the platform default.
    pub vm_size: Option<Option<String>>,
    pub provider: Option<Option<String>>,
    pub location: Option<Option<String>>,
    pub agent: Option<Option<String>>,
    /// Milliseconds; `Some(None)` clears it back to the platform default.
    pub warm_node_timeout_ms: Option<Option<i64>>,
}

/// Why a project could not be inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectInsertError {
    #[error("you already have a project for this repository")]
    Duplicate { existing_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queries over `projects`.
#[derive(Debug)]
pub struct ProjectRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> ProjectRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Inserts a project unless the user already links this repository.
    pub async fn insert(&self, p: &ProjectRecord) -> Result<(), ProjectInsertError> {
        let changed = self
            .db
            .execute(
                &format!(
                    "INSERT INTO projects ({PROJECT_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT(user_id, repository_id) DO NOTHING"
                ),
                &[
                    p.id.as_str().into(),
                    p.user_id.as_str().into(),
                    p.name.as_str().into(),
                    p.installation_id.as_str().into(),
                    p.repository_id.into(),
                    p.repo_full_name.as_str().into(),
                    p.repo_html_url.as_str().into(),
                    p.default_branch.as_str().into(),
                    p.status.as_str().into(),
                    p.vm_size.clone().into(),
                    p.provider.clone().into(),
                    p.location.clone().into(),
                    p.agent.clone().into(),
                    p.warm_node_timeout_ms.into(),
                    p.created_at.into(),
                    p.updated_at.into(),
                ],
            )
            .await?;
        if changed == 0 {
            let existing: Vec<ProjectRecord> = query_as(
                self.db,
                &format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects WHERE user_id = ? AND repository_id = ?"
                ),
                &[p.user_id.as_str().into(), p.repository_id.into()],
            )
            .await?;
            let existing_id = existing
                .into_iter()
                .next()
                .map(|e| e.id)
                .unwrap_or_default();
            return Err(ProjectInsertError::Duplicate { existing_id });
        }
        Ok(())
    }

    /// The project if `user_id` owns it: another user's project is simply absent.
    pub async fn get_owned(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        Ok(query_as(
            self.db,
            &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ? AND user_id = ?"),
            &[id.into(), user_id.into()],
        )
        .await?
        .into_iter()
        .next())
    }

    /// The user's projects, most recently changed first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<ProjectRecord>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {PROJECT_COLUMNS} FROM projects WHERE user_id = ? \
                 ORDER BY updated_at DESC, id DESC"
            ),
            &[user_id.into()],
        )
        .await
    }

    /// Applies `update` to the user's project; false when it is not theirs.
    pub async fn update(
        &self,
        user_id: &str,
        id: &str,
        update: &ProjectUpdate,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut sets = vec!["updated_at = ?".to_owned()];
        let mut params = vec![now.into()];
        if let Some(name) = &update.name {
            sets.push("name = ?".into());
            params.push(name.as_str().into());
        }
        if let Some(branch) = &update.default_branch {
            sets.push("default_branch = ?".into());
            params.push(branch.as_str().into());
        }
        for (column, value) in [
            ("vm_size", &update.vm_size),
            ("provider", &update.provider),
            ("location", &update.location),
            ("agent", &update.agent),
        ] {
            if let Some(value) = value {
                sets.push(format!("{column} = ?"));
                params.push(value.clone().into());
            }
        }
        if let Some(timeout) = update.warm_node_timeout_ms {
            sets.push("warm_node_timeout_ms = ?".into());
            params.push(timeout.into());
        }
        params.push(id.into());
        params.push(user_id.into());
        let changed = self
            .db
            .execute(
                &format!(
                    "UPDATE projects SET {} WHERE id = ? AND user_id = ?",
                    sets.join(", ")
                ),
                &params,
            )
            .await?;
        Ok(changed > 0)
    }

    /// Deletes the user's project; its agent-credential overrides go with
    /// it (`ON DELETE CASCADE`). False when it is not theirs.
    pub async fn delete(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "DELETE FROM projects WHERE id = ? AND user_id = ?",
                &[id.into(), user_id.into()],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Webhook sync: the repository's new `owner/name` and URL.
    pub async fn rename_repository(
        &self,
        repository_id: i64,
        full_name: &str,
        html_url: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE projects SET repo_full_name = ?, repo_html_url = ?, updated_at = ? \
                 WHERE repository_id = ?",
                &[
                    full_name.into(),
                    html_url.into(),
                    now.into(),
                    repository_id.into(),
                ],
            )
            .await
    }

    /// Webhook sync: marks every project of a repository with `status`.
    pub async fn set_status_by_repository(
        &self,
        repository_id: i64,
        status: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE projects SET status = ?, updated_at = ? WHERE repository_id = ? AND status != ?",
                &[status.into(), now.into(), repository_id.into(), status.into()],
            )
            .await
    }

    /// Webhook sync: marks every project reached through an installation.
    pub async fn set_status_by_installation(
        &self,
        installation_id: &str,
        status: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE projects SET status = ?, updated_at = ? WHERE installation_id = ? AND status != ?",
                &[status.into(), now.into(), installation_id.into(), status.into()],
            )
            .await
    }

    /// Webhook sync: one repository is no longer reachable through `installation_id`.
    pub async fn set_status_for_installation_repository(
        &self,
        installation_id: &str,
        repository_id: i64,
        status: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE projects SET status = ?, updated_at = ? \
                 WHERE installation_id = ? AND repository_id = ? AND status != ?",
                &[
                    status.into(),
                    now.into(),
                    installation_id.into(),
                    repository_id.into(),
                    status.into(),
                ],
            )
            .await
    }

    /// Webhook sync: an unsuspended installation's projects work again.
    pub async fn reactivate_installation(
        &self,
        installation_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE projects SET status = 'active', updated_at = ? \
                 WHERE installation_id = ? AND status = 'installation_missing'",
                &[now.into(), installation_id.into()],
            )
            .await
    }

    /// Webhook sync: a repository is reachable again through `installation_id`.
    pub async fn restore_repository(
        &self,
        installation_id: &str,
        repository_id: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE projects SET status = 'active', updated_at = ? \
                 WHERE installation_id = ? AND repository_id = ? AND status != 'active'",
                &[now.into(), installation_id.into(), repository_id.into()],
            )
            .await
    }
}

/// A row of `github_installations`: one user may use one installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationLink {
    pub installation_id: String,
    pub user_id: String,
    pub account_login: String,
    /// `User` or `Organization`, as GitHub says.
    pub account_type: String,
    pub removed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const LINK_COLUMNS: &str =
    "installation_id, user_id, account_login, account_type, removed_at, created_at, updated_at";

/// Queries over `github_installations`.
#[derive(Debug)]
pub struct InstallationRepository<'a, D> {
    db: &'a D,
}

impl<'a, D: SqlDatabase> InstallationRepository<'a, D> {
    pub fn new(db: &'a D) -> Self {
        Self { db }
    }

    /// Links an installation to a user (again, if it had been removed).
    pub async fn link(&self, link: &InstallationLink) -> Result<(), StoreError> {
        self.db
            .execute(
                &format!(
                    "INSERT INTO github_installations ({LINK_COLUMNS}) VALUES (?, ?, ?, ?, NULL, ?, ?) \
                     ON CONFLICT(installation_id, user_id) DO UPDATE SET \
                     account_login = excluded.account_login, account_type = excluded.account_type, \
                     removed_at = NULL, updated_at = excluded.updated_at"
                ),
                &[
                    link.installation_id.as_str().into(),
                    link.user_id.as_str().into(),
                    link.account_login.as_str().into(),
                    link.account_type.as_str().into(),
                    link.created_at.into(),
                    link.updated_at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// The user's link to an installation, if they have one that is not removed.
    pub async fn get_for_user(
        &self,
        user_id: &str,
        installation_id: &str,
    ) -> Result<Option<InstallationLink>, StoreError> {
        Ok(query_as(
            self.db,
            &format!(
                "SELECT {LINK_COLUMNS} FROM github_installations \
                 WHERE user_id = ? AND installation_id = ? AND removed_at IS NULL"
            ),
            &[user_id.into(), installation_id.into()],
        )
        .await?
        .into_iter()
        .next())
    }

    /// The user's usable installations.
    pub async fn list_for_user(&self, user_id: &str) -> Result<Vec<InstallationLink>, StoreError> {
        query_as(
            self.db,
            &format!(
                "SELECT {LINK_COLUMNS} FROM github_installations \
                 WHERE user_id = ? AND removed_at IS NULL ORDER BY account_login"
            ),
            &[user_id.into()],
        )
        .await
    }

    /// Webhook sync: the installation was deleted or suspended (for every user).
    pub async fn mark_removed(&self, installation_id: &str, now: i64) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE github_installations SET removed_at = ?, updated_at = ? \
                 WHERE installation_id = ? AND removed_at IS NULL",
                &[now.into(), now.into(), installation_id.into()],
            )
            .await
    }

    /// Webhook sync: an unsuspended installation is usable again by those linked to it.
    pub async fn mark_restored(&self, installation_id: &str, now: i64) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE github_installations SET removed_at = NULL, updated_at = ? \
                 WHERE installation_id = ? AND removed_at IS NOT NULL",
                &[now.into(), installation_id.into()],
            )
            .await
    }
}
