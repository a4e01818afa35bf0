//! Webhook payloads for the events devgithub emits, shaped like GitHub's:
//! `installation` (created, deleted), `installation_repositories` (added,
//! removed), `repository` (renamed, deleted), `push` and `pull_request`
//! (opened, edited, closed, reopened).

use serde_json::{Value, json};

use crate::config::AppConfig;
use crate::ids::node_id;
use crate::render;
use crate::state::{Account, AccountKind, Installation, Repo, World};

/// What every payload is rendered against.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub base: &'a str,
    pub app: &'a AppConfig,
    pub world: &'a World,
    /// The user the change is attributed to.
    pub sender: Option<&'a Account>,
}

impl Ctx<'_> {
    /// Adds `sender`, and `organization` when the account is one.
    fn envelope(&self, account_id: u64, mut payload: Value) -> Value {
        let base = self.base;
        if let Some(org) = self
            .world
            .accounts
            .get(&account_id)
            .filter(|a| a.kind == AccountKind::Organization)
        {
            payload["organization"] = json!({
                "login": org.login,
                "id": org.id,
                "node_id": node_id("Organization", org.id),
                "url": format!("{base}/orgs/{}", org.login),
                "repos_url": format!("{base}/orgs/{}/repos", org.login),
                "avatar_url": format!("{base}/avatars/u/{}", org.id),
                "description": null,
            });
        }
        payload["sender"] = self
            .sender
            .map_or(Value::Null, |s| render::simple_user(base, s));
        payload
    }

    fn minimal_repos(&self, ids: &[u64]) -> Vec<Value> {
        ids.iter()
            .filter_map(|id| self.world.repos.get(id))
            .map(|r| render::repo_minimal(self.world, r))
            .collect()
    }

    /// `installation` with `action` `created` or `deleted`; `repo_ids` are
    /// the repositories it reaches (reached, for `deleted`).
    pub(crate) fn installation(
        &self,
        action: &str,
        installation: &Installation,
        repo_ids: &[u64],
    ) -> Value {
        self.envelope(
            installation.account_id,
            json!({
                "action": action,
                "installation": render::installation(self.base, self.app, self.world, installation),
                "repositories": self.minimal_repos(repo_ids),
                "requester": null,
            }),
        )
    }

    /// `installation_repositories` with `action` `added` or `removed`.
    pub(crate) fn installation_repositories(
        &self,
        action: &str,
        installation: &Installation,
        added: &[u64],
        removed: &[u64],
    ) -> Value {
        self.envelope(
            installation.account_id,
            json!({
                "action": action,
                "installation": render::installation(self.base, self.app, self.world, installation),
                "repository_selection": installation.repository_selection.as_str(),
                "repositories_added": self.minimal_repos(added),
                "repositories_removed": self.minimal_repos(removed),
                "requester": null,
            }),
        )
    }

    /// `repository` events; `changes` is set for `renamed`
    /// (`{"repository":{"name":{"from":…}}}`).
    pub(crate) fn repository(
        &self,
        action: &str,
        repo: &Repo,
        installation_id: u64,
        changes: Option<Value>,
    ) -> Value {
        let mut payload = json!({
            "action": action,
            "repository": render::repo(self.base, self.world, repo, None),
            "installation": {
                "id": installation_id,
                "node_id": node_id("Installation", installation_id),
            },
        });
        if let Some(changes) = changes {
            payload["changes"] = changes;
        }
        self.envelope(repo.owner_id, payload)
    }

    /// `pull_request`: `pull_request` is the full pull request shape.
    pub(crate) fn pull_request(
        &self,
        action: &str,
        repo: &Repo,
        installation_id: u64,
        number: u64,
        pull_request: &Value,
    ) -> Value {
        let payload = json!({
            "action": action,
            "number": number,
            "pull_request": pull_request,
            "repository": render::repo(self.base, self.world, repo, None),
            "installation": {
                "id": installation_id,
                "node_id": node_id("Installation", installation_id),
            },
        });
        self.envelope(repo.owner_id, payload)
    }

    /// `push`: `fields` carries `ref`, `before`, `after`, `commits`,
    /// `pusher` and the rest; this adds `repository` (with GitHub's
    /// push-only quirk of Unix timestamps for `created_at` and
    /// `pushed_at`), `installation`, `sender` and `organization`.
    pub(crate) fn push(&self, repo: &Repo, installation_id: u64, fields: Value) -> Value {
        let mut repository = render::repo(self.base, self.world, repo, None);
        for key in ["created_at", "pushed_at"] {
            let seconds = repository[key]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp());
            if let Some(seconds) = seconds {
                repository[key] = Value::from(seconds);
            }
        }
        let mut payload = fields;
        payload["repository"] = repository;
        payload["installation"] = json!({
            "id": installation_id,
            "node_id": node_id("Installation", installation_id),
        });
        self.envelope(repo.owner_id, payload)
    }
}
