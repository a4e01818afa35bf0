//! Projects: link a repository the user's GitHub App installation can
//! reach, keep its defaults, and keep it in sync with GitHub's webhooks.

use sam_domain::projects::{
    ProjectInputError, ProjectSettings, ProjectStatus, optional_secs, parse_repository_ref,
    validate_branch_name, validate_project_name, validate_settings,
};
use sam_providers::github::GithubError;
use sam_store::{
    InstallationLink, InstallationRepository, ProjectInsertError, ProjectRecord, ProjectRepository,
    ProjectUpdate, SessionRepository, SqlDatabase, UserRecord,
};
use sam_vault::SessionKeys;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ControlError;

/// A GitHub App installation as the use cases need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationInfo {
    pub id: u64,
    pub account_id: u64,
    pub account_login: String,
    /// `User` or `Organization`.
    pub account_type: String,
}

/// A repository an installation can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryInfo {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
    pub default_branch: String,
    pub html_url: String,
}

/// GitHub, as seen by our GitHub App.
#[allow(async_fn_in_trait)]
pub trait GithubAppPort {
    async fn installation(&self, installation_id: u64) -> Result<InstallationInfo, GithubError>;
    /// Every repository the installation can reach.
    async fn repositories(&self, installation_id: u64) -> Result<Vec<RepositoryInfo>, GithubError>;
    async fn branches(
        &self,
        installation_id: u64,
        repository_id: u64,
    ) -> Result<Vec<String>, GithubError>;
    async fn branch_exists(
        &self,
        installation_id: u64,
        repository_id: u64,
        branch: &str,
    ) -> Result<bool, GithubError>;
    /// An installation access token narrowed to one repository with
    /// `contents: write` (what a workspace's git needs, nothing more).
    /// [`GithubError::NotFound`] when the installation no longer reaches it.
    async fn repository_token(
        &self,
        installation_id: u64,
        repository_id: u64,
    ) -> Result<RepositoryToken, GithubError>;
}

/// A short-lived GitHub token for one repository. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct RepositoryToken {
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for RepositoryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A project as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectView {
    pub id: String,
    pub name: String,
    pub installation_id: String,
    pub repository_id: i64,
    pub repo_full_name: String,
    pub repo_html_url: String,
    pub default_branch: String,
    pub status: String,
    pub settings: ProjectSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ProjectRecord> for ProjectView {
    fn from(p: ProjectRecord) -> Self {
        Self {
            id: p.id,
            name: p.name,
            installation_id: p.installation_id,
            repository_id: p.repository_id,
            repo_full_name: p.repo_full_name,
            repo_html_url: p.repo_html_url,
            default_branch: p.default_branch,
            status: p.status,
            settings: ProjectSettings {
                vm_size: p.vm_size,
                provider: p.provider,
                location: p.location,
                agent: p.agent,
                warm_node_timeout_secs: p.warm_node_timeout_ms.map(ms_to_secs),
            },
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Stored milliseconds as the API's whole seconds (rounded down; a negative
/// value, which the API never writes, reads as 0).
fn ms_to_secs(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0) / 1000
}

/// The API's seconds as stored milliseconds. Validated settings are at most
/// a day, so this never saturates in practice.
fn secs_to_ms(secs: u64) -> Result<i64, ControlError> {
    secs.checked_mul(1000)
        .and_then(|ms| i64::try_from(ms).ok())
        .ok_or(ControlError::ProjectInput(
            ProjectInputError::InvalidWarmTimeout,
        ))
}

/// An installation linked to the user, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallationView {
    pub id: String,
    pub account_login: String,
    pub account_type: String,
}

impl From<InstallationLink> for InstallationView {
    fn from(l: InstallationLink) -> Self {
        Self {
            id: l.installation_id,
            account_login: l.account_login,
            account_type: l.account_type,
        }
    }
}

fn not_found_is_404(e: GithubError) -> ControlError {
    match e {
        GithubError::NotFound => ControlError::NotFound,
        other => ControlError::Github(other),
    }
}

/// How long an installation may take between leaving for GitHub and coming back.
pub const INSTALL_STATE_TTL_MS: i64 = 30 * 60 * 1000;

fn install_state(user_id: &str, state: &str) -> Vec<u8> {
    format!("github-install:{user_id}:{state}").into_bytes()
}

/// Remembers a one-time `state` (random, from the caller) for the user's
/// trip to GitHub's install page; only this user can bring it back.
pub async fn begin_installation(
    db: &impl SqlDatabase,
    keys: &SessionKeys,
    user_id: &str,
    state: &str,
    now: i64,
) -> Result<(), ControlError> {
    SessionRepository::new(db)
        .create_oauth_state(
            &sam_vault::keyed_hash(keys, &install_state(user_id, state)),
            now,
            now + INSTALL_STATE_TTL_MS,
        )
        .await?;
    Ok(())
}

/// Links an installation to the user after GitHub's install redirect.
///
/// The redirect must carry the one-time `state` this user was sent off with.
/// The redirect's `installation_id` is not proof of anything, so the App
/// asks GitHub about it: an installation on the user's own account is
/// theirs; any other (an organization's) only once GitHub's signed
/// `installation` webhook named the user as the one who installed it.
pub async fn link_installation(
    db: &impl SqlDatabase,
    keys: &SessionKeys,
    github: &impl GithubAppPort,
    user: &UserRecord,
    state: &str,
    installation_id: u64,
    now: i64,
) -> Result<InstallationView, ControlError> {
    if !SessionRepository::new(db)
        .consume_oauth_state(
            &sam_vault::keyed_hashes(keys, &install_state(&user.id, state)),
            now,
        )
        .await?
    {
        return Err(ControlError::OAuthStateInvalid);
    }
    let info = github
        .installation(installation_id)
        .await
        .map_err(not_found_is_404)?;
    let links = InstallationRepository::new(db);
    let own_account = user.github_id.as_deref() == Some(info.account_id.to_string().as_str());
    if !own_account
        && links
            .get_for_user(&user.id, &installation_id.to_string())
            .await?
            .is_none()
    {
        return Err(ControlError::InstallationUnconfirmed);
    }
    let link = InstallationLink {
        installation_id: installation_id.to_string(),
        user_id: user.id.clone(),
        account_login: info.account_login,
        account_type: info.account_type,
        removed_at: None,
        created_at: now,
        updated_at: now,
    };
    links.link(&link).await?;
    Ok(link.into())
}

/// The user's usable installations.
pub async fn list_installations(
    db: &impl SqlDatabase,
    user_id: &str,
) -> Result<Vec<InstallationView>, ControlError> {
    Ok(InstallationRepository::new(db)
        .list_for_user(user_id)
        .await?
        .into_iter()
        .map(InstallationView::from)
        .collect())
}

/// The installation if it is linked to the user; otherwise `NotFound`,
/// exactly as for an id that does not exist.
async fn require_installation(
    db: &impl SqlDatabase,
    user_id: &str,
    installation_id: &str,
) -> Result<u64, ControlError> {
    let id = installation_id
        .parse::<u64>()
        .map_err(|_| ControlError::NotFound)?;
    InstallationRepository::new(db)
        .get_for_user(user_id, &id.to_string())
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(id)
}

/// Repositories one of the user's installations can reach.
pub async fn installation_repositories(
    db: &impl SqlDatabase,
    github: &impl GithubAppPort,
    user_id: &str,
    installation_id: &str,
) -> Result<Vec<RepositoryInfo>, ControlError> {
    let id = require_installation(db, user_id, installation_id).await?;
    github.repositories(id).await.map_err(not_found_is_404)
}

async fn reachable_repository(
    github: &impl GithubAppPort,
    installation_id: u64,
    repository_id: u64,
) -> Result<RepositoryInfo, ControlError> {
    // Listing (not `GET /repositories/{id}`): an installation token can read
    // any public repository, but only the installation's are the user's to link.
    github
        .repositories(installation_id)
        .await
        .map_err(not_found_is_404)?
        .into_iter()
        .find(|r| r.id == repository_id)
        .ok_or(ControlError::NotFound)
}

/// Branch names of a repository one of the user's installations can reach.
pub async fn repository_branches(
    db: &impl SqlDatabase,
    github: &impl GithubAppPort,
    user_id: &str,
    installation_id: &str,
    repository_id: &str,
) -> Result<Vec<String>, ControlError> {
    let id = require_installation(db, user_id, installation_id).await?;
    let repository = repository_id
        .parse::<u64>()
        .map_err(|_| ControlError::NotFound)?;
    reachable_repository(github, id, repository).await?;
    let mut branches = github
        .branches(id, repository)
        .await
        .map_err(not_found_is_404)?;
    branches.sort();
    Ok(branches)
}

/// `POST /api/projects`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// `"<installation id>:<repository id>"`.
    pub repository: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub settings: ProjectSettings,
}

/// Creates a project for a repository the user's installation reaches; the
/// branch (default: the repository's) must exist.
pub async fn create_project(
    db: &impl SqlDatabase,
    github: &impl GithubAppPort,
    user_id: &str,
    new: &NewProject,
    now: i64,
    new_id: &str,
) -> Result<ProjectView, ControlError> {
    let repo_ref = parse_repository_ref(&new.repository)?;
    let settings = normalize(new.settings.clone());
    validate_settings(&settings)?;
    let name = new
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .map(validate_project_name)
        .transpose()?;
    let branch = new
        .default_branch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    if let Some(branch) = branch {
        validate_branch_name(branch)?;
    }
    let installation =
        require_installation(db, user_id, &repo_ref.installation_id.to_string()).await?;
    let repository = reachable_repository(github, installation, repo_ref.repository_id).await?;
    let branch = match branch {
        Some(b) => {
            if !github
                .branch_exists(installation, repository.id, b)
                .await
                .map_err(not_found_is_404)?
            {
                return Err(ControlError::BranchNotFound(b.to_owned()));
            }
            b.to_owned()
        }
        None => repository.default_branch.clone(),
    };
    let record = ProjectRecord {
        id: new_id.to_owned(),
        user_id: user_id.to_owned(),
        name: name.unwrap_or_else(|| repository.name.clone()),
        installation_id: installation.to_string(),
        repository_id: i64::try_from(repository.id).map_err(|_| ControlError::NotFound)?,
        repo_full_name: repository.full_name,
        repo_html_url: repository.html_url,
        default_branch: branch,
        status: ProjectStatus::Active.as_str().to_owned(),
        vm_size: settings.vm_size,
        provider: settings.provider,
        location: settings.location,
        agent: settings.agent,
        warm_node_timeout_ms: settings
            .warm_node_timeout_secs
            .map(secs_to_ms)
            .transpose()?,
        created_at: now,
        updated_at: now,
    };
    let repo = ProjectRepository::new(db);
    match repo.insert(&record).await {
        Ok(()) => {}
        Err(ProjectInsertError::Duplicate { existing_id }) => {
            return Err(ControlError::ProjectExists { existing_id });
        }
        Err(ProjectInsertError::Store(e)) => return Err(e.into()),
    }
    Ok(record.into())
}

/// Empty strings (a form's "platform default") mean "no setting".
fn normalize(settings: ProjectSettings) -> ProjectSettings {
    let keep = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    ProjectSettings {
        vm_size: keep(settings.vm_size),
        provider: keep(settings.provider),
        location: keep(settings.location),
        agent: keep(settings.agent),
        warm_node_timeout_secs: settings.warm_node_timeout_secs,
    }
}

pub async fn get_project(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
) -> Result<ProjectView, ControlError> {
    ProjectRepository::new(db)
        .get_owned(user_id, id)
        .await?
        .map(ProjectView::from)
        .ok_or(ControlError::NotFound)
}

pub async fn list_projects(
    db: &impl SqlDatabase,
    user_id: &str,
) -> Result<Vec<ProjectView>, ControlError> {
    Ok(ProjectRepository::new(db)
        .list(user_id)
        .await?
        .into_iter()
        .map(ProjectView::from)
        .collect())
}

/// `PATCH /api/projects/{id}`: absent fields stay; a setting sent as `null`
/// or `""` goes back to the platform default. `settings.warm_node_timeout_secs`
/// may be a JSON number or a numeric string (forms send either).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub settings: Option<SettingsPatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::option_option)] // absent = keep, null = clear, value = set
pub struct SettingsPatch {
    #[serde(default, deserialize_with = "present")]
    pub vm_size: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub provider: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub location: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub agent: Option<Option<String>>,
    /// Seconds, 10..=86400.
    #[serde(default, deserialize_with = "present_secs")]
    pub warm_node_timeout_secs: Option<Option<u64>>,
}

/// A field that is present is `Some`, even when it is `null` (or empty).
// Three states are the point of a patch: absent (keep), null (clear), value (set).
#[allow(clippy::option_option)]
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(
        Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()),
    ))
}

/// [`present`] for a number of seconds: a JSON number or a numeric string;
/// `null`, `""` or blanks clear it.
#[allow(clippy::option_option)]
fn present_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    optional_secs(d).map(Some)
}

/// Renames a project or changes its branch or defaults. The result must be
/// valid as a whole (a location must belong to the resulting provider).
pub async fn update_project(
    db: &impl SqlDatabase,
    github: &impl GithubAppPort,
    user_id: &str,
    id: &str,
    patch: &ProjectPatch,
    now: i64,
) -> Result<ProjectView, ControlError> {
    let repo = ProjectRepository::new(db);
    let current = repo
        .get_owned(user_id, id)
        .await?
        .ok_or(ControlError::NotFound)?;
    let name = patch
        .name
        .as_deref()
        .map(validate_project_name)
        .transpose()?;
    let branch = patch
        .default_branch
        .as_deref()
        .map(str::trim)
        .filter(|b| *b != current.default_branch);
    if let Some(b) = branch {
        validate_branch_name(b)?;
    }
    let s = patch.settings.clone().unwrap_or_default();
    let merged = ProjectSettings {
        vm_size: s.vm_size.clone().unwrap_or(current.vm_size.clone()),
        provider: s.provider.clone().unwrap_or(current.provider.clone()),
        location: s.location.clone().unwrap_or(current.location.clone()),
        agent: s.agent.clone().unwrap_or(current.agent.clone()),
        warm_node_timeout_secs: s
            .warm_node_timeout_secs
            .unwrap_or(current.warm_node_timeout_ms.map(ms_to_secs)),
    };
    validate_settings(&merged)?;
    if let Some(b) = branch {
        let installation = current.installation_id.parse::<u64>().unwrap_or(0);
        let repository = u64::try_from(current.repository_id).unwrap_or(0);
        if !github
            .branch_exists(installation, repository, b)
            .await
            .map_err(not_found_is_404)?
        {
            return Err(ControlError::BranchNotFound(b.to_owned()));
        }
    }
    let update = ProjectUpdate {
        name,
        default_branch: branch.map(str::to_owned),
        vm_size: s.vm_size,
        provider: s.provider,
        location: s.location,
        agent: s.agent,
        warm_node_timeout_ms: s
            .warm_node_timeout_secs
            .map(|secs| secs.map(secs_to_ms).transpose())
            .transpose()?,
    };
    if !repo.update(user_id, id, &update, now).await? {
        return Err(ControlError::NotFound);
    }
    get_project(db, user_id, id).await
}

/// Deletes a project and everything that belongs to it.
pub async fn delete_project(
    db: &impl SqlDatabase,
    user_id: &str,
    id: &str,
) -> Result<(), ControlError> {
    if ProjectRepository::new(db).delete(user_id, id).await? {
        Ok(())
    } else {
        Err(ControlError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::executor::block_on;
    use sam_store::UserRepository;
    use sam_store::sqlite::Sqlite;

    use super::*;

    /// One installation (7) reaching one repository (42) with branch `main`.
    struct OneRepo;

    impl GithubAppPort for OneRepo {
        async fn installation(&self, id: u64) -> Result<InstallationInfo, GithubError> {
            Ok(InstallationInfo {
                id,
                account_id: 1,
                account_login: "alice".into(),
                account_type: "User".into(),
            })
        }
        async fn repositories(&self, _: u64) -> Result<Vec<RepositoryInfo>, GithubError> {
            Ok(vec![RepositoryInfo {
                id: 42,
                name: "app".into(),
                full_name: "alice/app".into(),
                private: false,
                default_branch: "main".into(),
                html_url: "http://gh.test/alice/app".into(),
            }])
        }
        async fn branches(&self, _: u64, _: u64) -> Result<Vec<String>, GithubError> {
            Ok(vec!["main".into()])
        }
        async fn branch_exists(&self, _: u64, _: u64, b: &str) -> Result<bool, GithubError> {
            Ok(b == "main")
        }
        async fn repository_token(&self, _: u64, _: u64) -> Result<RepositoryToken, GithubError> {
            Err(GithubError::NotFound)
        }
    }

    fn setup() -> Sqlite {
        let db = Sqlite::with_repo_migrations();
        block_on(async {
            UserRepository::new(&db)
                .upsert_by_login("U1", "alice", 1)
                .await
                .unwrap();
            InstallationRepository::new(&db)
                .link(&InstallationLink {
                    installation_id: "7".into(),
                    user_id: "U1".into(),
                    account_login: "alice".into(),
                    account_type: "User".into(),
                    removed_at: None,
                    created_at: 1,
                    updated_at: 1,
                })
                .await
                .unwrap();
        });
        db
    }

    fn new_project(settings: &str) -> NewProject {
        serde_json::from_str(&format!(r#"{{"repository":"7:42","settings":{settings}}}"#)).unwrap()
    }

    fn patch(json: &str) -> ProjectPatch {
        serde_json::from_str(json).unwrap()
    }

    fn stored_ms(db: &Sqlite) -> Option<i64> {
        block_on(ProjectRepository::new(db).get_owned("U1", "P1"))
            .unwrap()
            .unwrap()
            .warm_node_timeout_ms
    }

    #[test]
    fn the_warm_timeout_patch_accepts_numbers_strings_and_null() {
        let secs = |json: &str| {
            patch(&format!(r#"{{"settings":{json}}}"#))
                .settings
                .unwrap()
                .warm_node_timeout_secs
        };
        assert_eq!(secs("{}"), None, "absent keeps");
        assert_eq!(secs(r#"{"warm_node_timeout_secs":null}"#), Some(None));
        assert_eq!(secs(r#"{"warm_node_timeout_secs":""}"#), Some(None));
        assert_eq!(secs(r#"{"warm_node_timeout_secs":600}"#), Some(Some(600)));
        assert_eq!(secs(r#"{"warm_node_timeout_secs":"600"}"#), Some(Some(600)));
        for bad in [r#""ten""#, "-1", "1.5", "true"] {
            let json = format!(r#"{{"settings":{{"warm_node_timeout_secs":{bad}}}}}"#);
            assert!(
                serde_json::from_str::<ProjectPatch>(&json).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn seconds_and_milliseconds_convert_both_ways() {
        assert_eq!(secs_to_ms(600).unwrap(), 600_000);
        assert_eq!(ms_to_secs(600_000), 600);
        assert_eq!(ms_to_secs(1_999), 1);
        assert_eq!(ms_to_secs(-5), 0);
        assert!(secs_to_ms(u64::MAX).is_err());
    }

    #[test]
    fn create_stores_the_warm_timeout_in_milliseconds() {
        let db = setup();
        let view = block_on(create_project(
            &db,
            &OneRepo,
            "U1",
            &new_project(r#"{"warm_node_timeout_secs":"900"}"#),
            5,
            "P1",
        ))
        .unwrap();
        assert_eq!(view.settings.warm_node_timeout_secs, Some(900));
        assert_eq!(stored_ms(&db), Some(900_000));
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["settings"]["warm_node_timeout_secs"], 900);

        // Out of range is refused with its own code, and nothing is stored.
        let db = setup();
        for bad in ["9", "86401", "0"] {
            let err = block_on(create_project(
                &db,
                &OneRepo,
                "U1",
                &new_project(&format!(r#"{{"warm_node_timeout_secs":{bad}}}"#)),
                5,
                "P1",
            ))
            .unwrap_err();
            assert_eq!(err.code(), "invalid_warm_timeout", "{bad}");
        }
        assert!(block_on(list_projects(&db, "U1")).unwrap().is_empty());

        // Empty means the platform default.
        let view = block_on(create_project(
            &db,
            &OneRepo,
            "U1",
            &new_project(r#"{"warm_node_timeout_secs":""}"#),
            5,
            "P1",
        ))
        .unwrap();
        assert_eq!(view.settings.warm_node_timeout_secs, None);
        assert_eq!(stored_ms(&db), None);
    }

    #[test]
    fn update_keeps_sets_and_clears_the_warm_timeout() {
        let db = setup();
        block_on(create_project(
            &db,
            &OneRepo,
            "U1",
            &new_project(r#"{"warm_node_timeout_secs":120}"#),
            5,
            "P1",
        ))
        .unwrap();
        let update =
            |json: &str| block_on(update_project(&db, &OneRepo, "U1", "P1", &patch(json), 6));

        // Absent: kept (also when other settings change).
        let view = update(r#"{"name":"Renamed","settings":{"vm_size":"large"}}"#).unwrap();
        assert_eq!(view.settings.warm_node_timeout_secs, Some(120));
        assert_eq!(stored_ms(&db), Some(120_000));
        // A numeric string, as a form may send it: set.
        let view = update(r#"{"settings":{"warm_node_timeout_secs":"3600"}}"#).unwrap();
        assert_eq!(view.settings.warm_node_timeout_secs, Some(3600));
        assert_eq!(stored_ms(&db), Some(3_600_000));
        // Out of range: refused, the stored value stays.
        let err = update(r#"{"settings":{"warm_node_timeout_secs":86401}}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_warm_timeout");
        assert_eq!(stored_ms(&db), Some(3_600_000));
        // null (forms.js's empty field): back to the platform default.
        let view = update(r#"{"settings":{"warm_node_timeout_secs":null}}"#).unwrap();
        assert_eq!(view.settings.warm_node_timeout_secs, None);
        assert_eq!(stored_ms(&db), None);
        assert_eq!(view.settings.vm_size.as_deref(), Some("large"));
        // A JSON number sets it again; "" clears it too.
        update(r#"{"settings":{"warm_node_timeout_secs":10}}"#).unwrap();
        assert_eq!(stored_ms(&db), Some(10_000));
        update(r#"{"settings":{"warm_node_timeout_secs":""}}"#).unwrap();
        assert_eq!(stored_ms(&db), None);
    }
}
