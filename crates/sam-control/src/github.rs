//! GitHub as the project use cases see it: the App's client behind
//! [`GithubAppPort`], and what GitHub's webhooks change in our records.

use std::cell::RefCell;

use sam_domain::projects::ProjectStatus;
use sam_providers::github::GithubError;
use sam_providers::github_webhook::{
    InstallationAction, InstallationRepositoriesAction, RepositoryAction,
};
use sam_providers::{
    GithubApp, HttpClient, HttpRequest, HttpResponse, InstallationClient, Method, WebhookEvent,
};
use sam_store::{
    InstallationLink, InstallationRepository, ProjectRepository, SqlDatabase, UserRepository,
};

use crate::error::ControlError;
use crate::projects::{GithubAppPort, InstallationInfo, RepositoryInfo, RepositoryToken};

/// The GitHub App over an HTTP client, for one request: installation tokens
/// are minted on first use and reused for the rest of it.
pub struct GithubAppClient<H> {
    app: GithubApp,
    http: H,
    now_secs: i64,
    token: RefCell<Option<(u64, InstallationClient)>>,
}

impl<H> std::fmt::Debug for GithubAppClient<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubAppClient")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> GithubAppClient<H> {
    pub fn new(app: GithubApp, http: H, now_secs: i64) -> Self {
        Self {
            app,
            http,
            now_secs,
            token: RefCell::new(None),
        }
    }

    async fn client(&self, installation_id: u64) -> Result<InstallationClient, GithubError> {
        if let Some((id, client)) = self.token.borrow().as_ref()
            && *id == installation_id
        {
            return Ok(client.clone());
        }
        let client = self
            .app
            .installation_client(&self.http, installation_id, self.now_secs)
            .await?;
        *self.token.borrow_mut() = Some((installation_id, client.clone()));
        Ok(client)
    }
}

impl<H: HttpClient> crate::tasks::PullRequests for GithubAppClient<H> {
    async fn open_pull_request(
        &self,
        installation_id: u64,
        repo_full_name: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Option<String>, GithubError> {
        let (owner, repo) = repo_full_name
            .split_once('/')
            .ok_or(GithubError::NotFound)?;
        let client = self.client(installation_id).await?;
        let new = sam_providers::github_app::NewPullRequest {
            title: title.to_owned(),
            head: head.to_owned(),
            base: base.to_owned(),
            body: Some(body.to_owned()),
        };
        match client
            .create_pull_request(&self.http, owner, repo, &new)
            .await
        {
            Ok(pr) => Ok(Some(pr.html_url)),
            // The agent changed nothing: there is nothing to propose.
            Err(GithubError::NoCommitsBetween(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<H: HttpClient> GithubAppPort for GithubAppClient<H> {
    async fn installation(&self, installation_id: u64) -> Result<InstallationInfo, GithubError> {
        let i = self
            .app
            .installation(&self.http, installation_id, self.now_secs)
            .await?;
        Ok(InstallationInfo {
            id: i.id,
            account_id: i.account.id,
            account_login: i.account.login,
            account_type: i.account.type_,
        })
    }

    async fn repositories(&self, installation_id: u64) -> Result<Vec<RepositoryInfo>, GithubError> {
        let client = self.client(installation_id).await?;
        Ok(client
            .repositories(&self.http)
            .await?
            .into_iter()
            .map(|r| RepositoryInfo {
                id: r.id,
                name: r.name,
                full_name: r.full_name,
                private: r.private,
                default_branch: r.default_branch,
                html_url: r.html_url,
            })
            .collect())
    }

    async fn branches(
        &self,
        installation_id: u64,
        repository_id: u64,
    ) -> Result<Vec<String>, GithubError> {
        let client = self.client(installation_id).await?;
        Ok(client
            .branches(&self.http, repository_id)
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect())
    }

    async fn branch_exists(
        &self,
        installation_id: u64,
        repository_id: u64,
        branch: &str,
    ) -> Result<bool, GithubError> {
        let client = self.client(installation_id).await?;
        match client.branch(&self.http, repository_id, branch).await {
            Ok(_) => Ok(true),
            Err(GithubError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn repository_token(
        &self,
        installation_id: u64,
        repository_id: u64,
    ) -> Result<RepositoryToken, GithubError> {
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let body = serde_json::json!({
            "repository_ids": [repository_id],
            "permissions": {"contents": "write"},
        });
        let resp = self
            .http
            .send(HttpRequest {
                method: Method::Post,
                url: format!("{}{path}", self.app.api_url.trim_end_matches('/')),
                headers: vec![
                    (
                        "authorization".into(),
                        format!("Bearer {}", self.app.jwt(self.now_secs)),
                    ),
                    ("accept".into(), "application/vnd.github+json".into()),
                    ("x-github-api-version".into(), "2022-11-28".into()),
                    ("user-agent".into(), "sam".into()),
                    ("content-type".into(), "application/json".into()),
                ],
                body: Some(body.to_string().into_bytes()),
            })
            .await
            .map_err(|e| GithubError::Transport(clip(&e.message)))?;
        if !(200..300).contains(&resp.status) {
            return Err(token_error(&path, &resp));
        }
        let unreadable = || GithubError::Unexpected(format!("unreadable reply from {path}"));
        let minted: Minted = serde_json::from_slice(&resp.body).map_err(|_| unreadable())?;
        let expires_at = chrono::DateTime::parse_from_rfc3339(&minted.expires_at)
            .map_err(|_| unreadable())?
            .timestamp_millis();
        Ok(RepositoryToken {
            token: minted.token,
            expires_at,
        })
    }
}

/// A minted installation token (`expires_at` in RFC 3339).
#[derive(serde::Deserialize)]
struct Minted {
    token: String,
    expires_at: String,
}

/// Provider text echoed into errors is clipped.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// A refused token request. 422 is GitHub's answer for a repository the
/// installation does not reach (or a permission it does not hold): for us,
/// the repository is not there. Only GitHub's `message` is echoed.
fn token_error(path: &str, resp: &HttpResponse) -> GithubError {
    let message = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(clip))
        .unwrap_or_default();
    let limited = || GithubError::RateLimited {
        retry_after_secs: resp
            .header("retry-after")
            .and_then(sam_providers::parse_retry_after),
        reset_at: resp
            .header("x-ratelimit-reset")
            .and_then(|v| v.trim().parse().ok()),
    };
    let says_limited = resp
        .header("x-ratelimit-remaining")
        .is_some_and(|v| v.trim() == "0")
        || resp.header("retry-after").is_some()
        || message.to_ascii_lowercase().contains("rate limit");
    match resp.status {
        401 => GithubError::BadCredentials,
        404 | 422 => GithubError::NotFound,
        429 => limited(),
        403 if says_limited => limited(),
        status if message.is_empty() => {
            GithubError::Unexpected(format!("HTTP {status} from {path}"))
        }
        status => GithubError::Unexpected(format!("HTTP {status} from {path}: {message}")),
    }
}

/// What one webhook delivery changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WebhookOutcome {
    /// The event and action, as GitHub named them.
    pub event: String,
    pub installations_changed: u64,
    pub projects_changed: u64,
}

fn repository_id(id: u64) -> i64 {
    // GitHub ids fit in 53 bits; a larger one cannot name any stored project.
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Applies a verified delivery. Idempotent: GitHub redelivers, and a
/// repeated event changes nothing the first did not.
pub async fn apply_github_event(
    db: &impl SqlDatabase,
    event: &WebhookEvent,
    now: i64,
) -> Result<WebhookOutcome, ControlError> {
    let projects = ProjectRepository::new(db);
    let links = InstallationRepository::new(db);
    let mut outcome = WebhookOutcome::default();
    match event {
        WebhookEvent::Installation(e) => {
            outcome.event = format!("installation.{}", e.action.as_str());
            let id = e.installation_id.to_string();
            match e.action {
                // GitHub says who installed it: that SAM user (if they have
                // signed in with GitHub) may use it, even on an organization.
                InstallationAction::Created => {
                    if let Some(user) = UserRepository::new(db)
                        .get_by_github_id(&e.sender.id.to_string())
                        .await?
                    {
                        links
                            .link(&InstallationLink {
                                installation_id: id.clone(),
                                user_id: user.id,
                                account_login: e.account.login.clone(),
                                account_type: e.account.type_.clone(),
                                removed_at: None,
                                created_at: now,
                                updated_at: now,
                            })
                            .await?;
                        outcome.installations_changed = 1;
                    }
                }
                InstallationAction::Deleted | InstallationAction::Suspend => {
                    outcome.installations_changed = links.mark_removed(&id, now).await?;
                    outcome.projects_changed = projects
                        .set_status_by_installation(
                            &id,
                            ProjectStatus::InstallationMissing.as_str(),
                            now,
                        )
                        .await?;
                }
                InstallationAction::Unsuspend => {
                    outcome.installations_changed = links.mark_restored(&id, now).await?;
                    outcome.projects_changed = projects.reactivate_installation(&id, now).await?;
                }
                _ => {}
            }
        }
        WebhookEvent::InstallationRepositories(e) => {
            outcome.event = format!("installation_repositories.{}", e.action.as_str());
            let id = e.installation_id.to_string();
            match e.action {
                InstallationRepositoriesAction::Removed => {
                    for r in &e.repositories_removed {
                        outcome.projects_changed += projects
                            .set_status_for_installation_repository(
                                &id,
                                repository_id(r.id),
                                ProjectStatus::RepositoryMissing.as_str(),
                                now,
                            )
                            .await?;
                    }
                }
                InstallationRepositoriesAction::Added => {
                    for r in &e.repositories_added {
                        outcome.projects_changed += projects
                            .restore_repository(&id, repository_id(r.id), now)
                            .await?;
                    }
                }
                InstallationRepositoriesAction::Other(_) => {}
            }
        }
        WebhookEvent::Repository(e) => {
            outcome.event = format!("repository.{}", e.action.as_str());
            let id = repository_id(e.repository_id);
            match e.action {
                RepositoryAction::Renamed | RepositoryAction::Transferred => {
                    let html_url = e.html_url.clone().unwrap_or_default();
                    outcome.projects_changed = projects
                        .rename_repository(id, &e.full_name, &html_url, now)
                        .await?;
                }
                RepositoryAction::Deleted => {
                    outcome.projects_changed = projects
                        .set_status_by_repository(
                            id,
                            ProjectStatus::RepositoryMissing.as_str(),
                            now,
                        )
                        .await?;
                }
                _ => {}
            }
        }
        WebhookEvent::Ping(_) => "ping".clone_into(&mut outcome.event),
        WebhookEvent::Other { event, action } => {
            outcome.event = match action {
                Some(a) => format!("{event}.{a}"),
                None => event.clone(),
            };
        }
    }
    Ok(outcome)
}
