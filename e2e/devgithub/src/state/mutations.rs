//! Validated changes to the world. Each returns what a webhook needs to
//! describe the change, or a [`Refusal`].

use std::collections::BTreeMap;

use super::validate;
use super::{
    Account, AccountKind, Branch, Delivery, Installation, MAX_DELIVERIES, Pull, PullAuthor,
    PullState, Refusal, Repo, Selection, World,
};
use crate::clock::now_rfc3339;
use crate::ids::fake_sha;

/// A branch to seed a new repository with.
#[derive(Debug, Clone)]
pub(crate) struct BranchSpec {
    pub name: String,
    pub sha: Option<String>,
    pub protected: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct NewRepo {
    pub owner: String,
    pub name: String,
    pub private: bool,
    pub description: Option<String>,
    pub default_branch: Option<String>,
    /// Empty: the default branch plus `develop` and `feature/example`.
    pub branches: Vec<BranchSpec>,
}

#[derive(Debug, Clone)]
pub(crate) struct NewInstallation {
    pub account_login: String,
    pub selection: Selection,
    /// Names (`repo` or `owner/repo`) of the account's repositories; only
    /// for `Selection::Selected`.
    pub repositories: Vec<String>,
    pub permissions: Option<BTreeMap<String, String>>,
    pub events: Option<Vec<String>>,
}

/// A pull request to open. The branches were checked against the bare
/// repository (they exist, and head has commits base lacks); the SHAs are
/// their heads as git saw them.
#[derive(Debug, Clone)]
pub(crate) struct NewPull {
    pub repo_id: u64,
    pub title: String,
    pub body: Option<String>,
    pub draft: bool,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub author: PullAuthor,
}

/// A branch a push moved: `sha` is the new head, `None` once deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BranchUpdate {
    pub name: String,
    pub sha: Option<String>,
}

/// Repositories an installation gained and lost, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RepoDiff {
    pub added: Vec<u64>,
    pub removed: Vec<u64>,
}

impl RepoDiff {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// What an installation can do unless told otherwise.
pub(crate) fn default_permissions() -> BTreeMap<String, String> {
    [
        ("contents", "write"),
        ("metadata", "read"),
        ("pull_requests", "write"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn default_events() -> Vec<String> {
    vec!["pull_request".into(), "push".into()]
}

impl World {
    fn allocate_account_id(&mut self) -> u64 {
        let id = self.next_account_id;
        self.next_account_id += 1;
        id
    }

    fn check_new_login(&self, login: &str, resource: &'static str) -> Result<(), Refusal> {
        if !validate::login(login) {
            return Err(Refusal::invalid(
                resource,
                "login",
                format!(
                    "login {login:?} may only contain alphanumerics and single hyphens, and cannot begin or end with a hyphen"
                ),
            ));
        }
        if self.account_by_login(login).is_some() {
            return Err(Refusal::exists(
                resource,
                "login",
                format!("login {login:?} is already taken"),
            ));
        }
        Ok(())
    }

    pub(crate) fn create_user(
        &mut self,
        login: &str,
        name: Option<String>,
        email: Option<String>,
    ) -> Result<Account, Refusal> {
        self.check_new_login(login, "User")?;
        if let Some(email) = &email
            && !email.contains('@')
        {
            return Err(Refusal::invalid(
                "User",
                "email",
                format!("{email:?} is not an email address"),
            ));
        }
        let account = Account {
            id: self.allocate_account_id(),
            login: login.to_owned(),
            kind: AccountKind::User,
            name: name.filter(|n| !n.is_empty()),
            email: email.filter(|e| !e.is_empty()),
            members: Vec::new(),
            created_at: now_rfc3339(),
        };
        self.accounts.insert(account.id, account.clone());
        Ok(account)
    }

    pub(crate) fn create_org(
        &mut self,
        login: &str,
        name: Option<String>,
        member_logins: &[String],
    ) -> Result<Account, Refusal> {
        self.check_new_login(login, "Organization")?;
        let members = member_logins
            .iter()
            .map(|m| {
                self.user_by_login(m).map(|u| u.id).ok_or_else(|| {
                    Refusal::invalid("Organization", "members", format!("no user {m:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let account = Account {
            id: self.allocate_account_id(),
            login: login.to_owned(),
            kind: AccountKind::Organization,
            name,
            email: None,
            members,
            created_at: now_rfc3339(),
        };
        self.accounts.insert(account.id, account.clone());
        Ok(account)
    }

    /// Creates a repository; an owner login nobody has yet becomes an
    /// organization.
    pub(crate) fn create_repo(&mut self, spec: NewRepo) -> Result<Repo, Refusal> {
        if !validate::repo_name(&spec.name) {
            return Err(Refusal::invalid(
                "Repository",
                "name",
                format!("name {:?} is not a valid repository name", spec.name),
            ));
        }
        let owner_id = match self.account_by_login(&spec.owner) {
            Some(owner) => owner.id,
            None => self.create_org(&spec.owner, None, &[])?.id,
        };
        if self.repo_by_name(&spec.owner, &spec.name).is_some() {
            return Err(Refusal::exists(
                "Repository",
                "name",
                "name already exists on this account".into(),
            ));
        }
        let default_branch = spec.default_branch.unwrap_or_else(|| "main".into());
        let mut specs = spec.branches;
        if specs.is_empty() {
            specs = [default_branch.as_str(), "develop", "feature/example"]
                .into_iter()
                .map(|name| BranchSpec {
                    name: name.to_owned(),
                    sha: None,
                    protected: false,
                })
                .collect();
        }
        if !specs.iter().any(|b| b.name == default_branch) {
            specs.insert(
                0,
                BranchSpec {
                    name: default_branch.clone(),
                    sha: None,
                    protected: false,
                },
            );
        }
        let id = self.next_repo_id;
        let mut branches: Vec<Branch> = Vec::with_capacity(specs.len());
        for b in specs {
            if !validate::branch_name(&b.name) {
                return Err(Refusal::invalid(
                    "Branch",
                    "name",
                    format!("{:?} is not a valid branch name", b.name),
                ));
            }
            if branches.iter().any(|x| x.name == b.name) {
                return Err(Refusal::exists(
                    "Branch",
                    "name",
                    format!("branch {:?} is listed twice", b.name),
                ));
            }
            let sha = match b.sha {
                Some(sha) if sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()) => {
                    sha.to_ascii_lowercase()
                }
                Some(sha) => {
                    return Err(Refusal::invalid(
                        "Branch",
                        "sha",
                        format!("{sha:?} is not a 40-character hex SHA"),
                    ));
                }
                None => fake_sha(&format!("{id}:{}", b.name)),
            };
            branches.push(Branch {
                name: b.name,
                sha,
                protected: b.protected,
            });
        }
        self.next_repo_id += 1;
        let now = now_rfc3339();
        let repo = Repo {
            id,
            owner_id,
            name: spec.name,
            private: spec.private,
            description: spec.description,
            default_branch,
            branches,
            created_at: now.clone(),
            updated_at: now,
        };
        self.repos.insert(id, repo.clone());
        Ok(repo)
    }

    /// Renames a repository, remembering the old name for redirects.
    /// Returns the old name and the renamed repository.
    pub(crate) fn rename_repo(
        &mut self,
        id: u64,
        new_name: &str,
    ) -> Result<(String, Repo), Refusal> {
        let repo = self
            .repos
            .get(&id)
            .ok_or_else(|| Refusal::NotFound("repository".into()))?;
        if !validate::repo_name(new_name) {
            return Err(Refusal::invalid(
                "Repository",
                "name",
                format!("name {new_name:?} is not a valid repository name"),
            ));
        }
        let owner_id = repo.owner_id;
        let clash = self
            .repos
            .values()
            .any(|r| r.owner_id == owner_id && r.id != id && r.name.eq_ignore_ascii_case(new_name));
        if clash {
            return Err(Refusal::exists(
                "Repository",
                "name",
                "name already exists on this account".into(),
            ));
        }
        let old_full = self.full_name(repo).to_ascii_lowercase();
        let repo = self.repos.get_mut(&id).expect("checked above");
        let old_name = std::mem::replace(&mut repo.name, new_name.to_owned());
        repo.updated_at = now_rfc3339();
        let repo = repo.clone();
        // The new name may take back one it once had.
        let new_full = self.full_name(&repo).to_ascii_lowercase();
        self.repo_redirects.remove(&new_full);
        self.repo_redirects.insert(old_full, id);
        Ok((old_name, repo))
    }

    /// Points the named branches of a repository at `sha` (its bare
    /// repository's initial commit).
    pub(crate) fn set_branch_shas(&mut self, id: u64, names: &[String], sha: &str) {
        if let Some(repo) = self.repos.get_mut(&id) {
            for branch in repo.branches.iter_mut().filter(|b| names.contains(&b.name)) {
                sha.clone_into(&mut branch.sha);
            }
        }
    }

    /// Applies a push's branch updates (new branches go last, as seeded
    /// ones came first); returns the repository as it now is.
    pub(crate) fn record_push(&mut self, id: u64, updates: &[BranchUpdate]) -> Option<Repo> {
        let repo = self.repos.get_mut(&id)?;
        for update in updates {
            let at = repo.branches.iter().position(|b| b.name == update.name);
            match (&update.sha, at) {
                (Some(sha), Some(i)) => sha.clone_into(&mut repo.branches[i].sha),
                (Some(sha), None) => repo.branches.push(Branch {
                    name: update.name.clone(),
                    sha: sha.clone(),
                    protected: false,
                }),
                (None, Some(i)) => {
                    repo.branches.remove(i);
                }
                (None, None) => {}
            }
        }
        repo.updated_at = now_rfc3339();
        let repo = repo.clone();
        // Open pull requests follow their branches, as on GitHub.
        for pull in self
            .pulls
            .values_mut()
            .filter(|p| p.repo_id == id && p.state == PullState::Open)
        {
            for update in updates {
                let Some(sha) = &update.sha else { continue };
                if update.name == pull.head_ref {
                    sha.clone_into(&mut pull.head_sha);
                }
                if update.name == pull.base_ref {
                    sha.clone_into(&mut pull.base_sha);
                }
            }
        }
        Some(repo)
    }

    /// The open pull request from `head` into `base`, if any.
    pub(crate) fn open_pull(&self, repo_id: u64, head: &str, base: &str) -> Option<&Pull> {
        self.pulls.values().find(|p| {
            p.repo_id == repo_id
                && p.state == PullState::Open
                && p.head_ref == head
                && p.base_ref == base
        })
    }

    /// A repository's pull request by number.
    pub(crate) fn pull_by_number(&self, repo_id: u64, number: u64) -> Option<&Pull> {
        self.pulls
            .values()
            .find(|p| p.repo_id == repo_id && p.number == number)
    }

    fn already_exists(&self, repo_id: u64, head: &str) -> Refusal {
        let owner = self
            .repos
            .get(&repo_id)
            .and_then(|r| self.repo_owner(r))
            .map_or("ghost", |a| a.login.as_str());
        Refusal::Custom {
            resource: "PullRequest",
            message: format!("A pull request already exists for {owner}:{head}."),
        }
    }

    /// Opens a pull request with the repository's next number; refused
    /// when one is already open for the same head and base.
    pub(crate) fn create_pull(&mut self, spec: NewPull) -> Result<Pull, Refusal> {
        if !self.repos.contains_key(&spec.repo_id) {
            return Err(Refusal::NotFound("repository".into()));
        }
        if self
            .open_pull(spec.repo_id, &spec.head_ref, &spec.base_ref)
            .is_some()
        {
            return Err(self.already_exists(spec.repo_id, &spec.head_ref));
        }
        let number = self.pull_numbers.get(&spec.repo_id).copied().unwrap_or(0) + 1;
        self.pull_numbers.insert(spec.repo_id, number);
        let id = self.next_pull_id;
        self.next_pull_id += 1;
        let now = now_rfc3339();
        let pull = Pull {
            id,
            repo_id: spec.repo_id,
            number,
            title: spec.title,
            body: spec.body,
            state: PullState::Open,
            draft: spec.draft,
            head_ref: spec.head_ref,
            head_sha: spec.head_sha,
            base_ref: spec.base_ref,
            base_sha: spec.base_sha,
            author: spec.author,
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
        };
        self.pulls.insert(id, pull.clone());
        Ok(pull)
    }

    /// Changes a pull request's title, body or state. Reopening is refused
    /// while another pull request is open for the same branches.
    pub(crate) fn update_pull(
        &mut self,
        id: u64,
        title: Option<String>,
        body: Option<String>,
        state: Option<PullState>,
    ) -> Result<Pull, Refusal> {
        let pull = self
            .pulls
            .get(&id)
            .ok_or_else(|| Refusal::NotFound("pull request".into()))?;
        if state == Some(PullState::Open) && pull.state == PullState::Closed {
            let (repo_id, head, base) =
                (pull.repo_id, pull.head_ref.clone(), pull.base_ref.clone());
            if self.open_pull(repo_id, &head, &base).is_some() {
                return Err(self.already_exists(repo_id, &head));
            }
        }
        let pull = self.pulls.get_mut(&id).expect("checked above");
        let now = now_rfc3339();
        if let Some(title) = title {
            pull.title = title;
        }
        if body.is_some() {
            pull.body = body;
        }
        if let Some(state) = state
            && state != pull.state
        {
            pull.state = state;
            pull.closed_at = (state == PullState::Closed).then(|| now.clone());
        }
        pull.updated_at = now;
        Ok(pull.clone())
    }

    /// Deletes a repository and every reference to it.
    pub(crate) fn delete_repo(&mut self, id: u64) -> Option<Repo> {
        let repo = self.repos.remove(&id)?;
        self.repo_redirects.retain(|_, target| *target != id);
        self.pulls.retain(|_, p| p.repo_id != id);
        self.pull_numbers.remove(&id);
        for installation in self.installations.values_mut() {
            installation.repository_ids.retain(|r| *r != id);
        }
        for token in self.installation_tokens.values_mut() {
            if let Some(ids) = &mut token.repository_ids {
                ids.retain(|r| *r != id);
            }
        }
        Some(repo)
    }

    /// Resolves repository names to ids of `account_id`'s repositories.
    pub(crate) fn resolve_repos(
        &self,
        account_id: u64,
        names: &[String],
    ) -> Result<Vec<u64>, Refusal> {
        let account = self
            .accounts
            .get(&account_id)
            .ok_or_else(|| Refusal::NotFound("account".into()))?;
        let mut ids = Vec::with_capacity(names.len());
        for raw in names {
            let name = match raw.split_once('/') {
                Some((owner, name)) if owner.eq_ignore_ascii_case(&account.login) => name,
                Some(_) => {
                    return Err(Refusal::invalid(
                        "Installation",
                        "repositories",
                        format!("{raw:?} does not belong to {}", account.login),
                    ));
                }
                None => raw.as_str(),
            };
            let repo = self.repo_by_name(&account.login, name).ok_or_else(|| {
                Refusal::invalid(
                    "Installation",
                    "repositories",
                    format!("{} has no repository {name:?}", account.login),
                )
            })?;
            if !ids.contains(&repo.id) {
                ids.push(repo.id);
            }
        }
        Ok(ids)
    }

    /// Installs the app on an account that does not have it yet.
    pub(crate) fn create_installation(
        &mut self,
        spec: NewInstallation,
    ) -> Result<Installation, Refusal> {
        let account_id = self
            .account_by_login(&spec.account_login)
            .map(|a| a.id)
            .ok_or_else(|| {
                Refusal::invalid(
                    "Installation",
                    "account_login",
                    format!("no account {:?}", spec.account_login),
                )
            })?;
        if self.installation_for_account(account_id).is_some() {
            return Err(Refusal::exists(
                "Installation",
                "account_login",
                format!("the app is already installed on {}", spec.account_login),
            ));
        }
        let repository_ids = match spec.selection {
            Selection::All => Vec::new(),
            Selection::Selected => self.resolve_repos(account_id, &spec.repositories)?,
        };
        let id = self.next_installation_id;
        self.next_installation_id += 1;
        let now = now_rfc3339();
        let installation = Installation {
            id,
            account_id,
            repository_selection: spec.selection,
            repository_ids,
            permissions: spec.permissions.unwrap_or_else(default_permissions),
            events: spec.events.unwrap_or_else(default_events),
            created_at: now.clone(),
            updated_at: now,
        };
        self.installations.insert(id, installation.clone());
        Ok(installation)
    }

    /// Replaces an installation's selection; returns what it gained and lost.
    pub(crate) fn set_installation_selection(
        &mut self,
        id: u64,
        selection: Selection,
        repository_ids: Vec<u64>,
    ) -> Result<RepoDiff, Refusal> {
        let before = self
            .installations
            .get(&id)
            .map(|i| self.installation_repo_ids(i))
            .ok_or_else(|| Refusal::NotFound("installation".into()))?;
        let installation = self.installations.get_mut(&id).expect("checked above");
        installation.repository_selection = selection;
        installation.repository_ids = match selection {
            Selection::All => Vec::new(),
            Selection::Selected => repository_ids,
        };
        let installation = installation.clone();
        let after = self.installation_repo_ids(&installation);
        let diff = RepoDiff {
            added: after
                .iter()
                .copied()
                .filter(|r| !before.contains(r))
                .collect(),
            removed: before
                .iter()
                .copied()
                .filter(|r| !after.contains(r))
                .collect(),
        };
        if !diff.is_empty()
            && let Some(i) = self.installations.get_mut(&id)
        {
            i.updated_at = now_rfc3339();
        }
        Ok(diff)
    }

    /// Adds and removes repositories of a `selected` installation.
    pub(crate) fn change_installation_repos(
        &mut self,
        id: u64,
        add: &[u64],
        remove: &[u64],
    ) -> Result<RepoDiff, Refusal> {
        let installation = self
            .installations
            .get(&id)
            .ok_or_else(|| Refusal::NotFound("installation".into()))?;
        if installation.repository_selection == Selection::All {
            return Err(Refusal::invalid(
                "Installation",
                "repository_selection",
                "the installation has access to all repositories; select repositories first".into(),
            ));
        }
        for repo_id in add {
            match self.repos.get(repo_id) {
                Some(r) if r.owner_id == installation.account_id => {}
                _ => return Err(Refusal::NotFound("repository".into())),
            }
        }
        let mut ids = installation.repository_ids.clone();
        ids.retain(|r| !remove.contains(r));
        for r in add {
            if !ids.contains(r) {
                ids.push(*r);
            }
        }
        self.set_installation_selection(id, Selection::Selected, ids)
    }

    /// Uninstalls; returns the installation and the repositories it reached.
    pub(crate) fn delete_installation(&mut self, id: u64) -> Option<(Installation, Vec<u64>)> {
        let repos = self
            .installations
            .get(&id)
            .map(|i| self.installation_repo_ids(i))?;
        let installation = self.installations.remove(&id)?;
        self.installation_tokens
            .retain(|_, t| t.installation_id != id);
        Some((installation, repos))
    }

    /// Forgets codes and installation tokens past their expiry.
    pub(crate) fn purge_expired(&mut self, now_ms: i64) {
        self.oauth_codes.retain(|_, c| c.expires_at_ms > now_ms);
        self.installation_tokens
            .retain(|_, t| t.expires_at_ms > now_ms);
    }

    pub(crate) fn record_delivery(&mut self, mut delivery: Delivery) -> u64 {
        delivery.id = self.next_delivery_id;
        self.next_delivery_id += 1;
        let id = delivery.id;
        self.deliveries.push(delivery);
        if self.deliveries.len() > MAX_DELIVERIES {
            let excess = self.deliveries.len() - MAX_DELIVERIES;
            self.deliveries.drain(..excess);
        }
        id
    }

    pub(crate) fn delivery_mut(&mut self, id: u64) -> Option<&mut Delivery> {
        self.deliveries.iter_mut().find(|d| d.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RepoLookup;

    fn repo(owner: &str, name: &str) -> NewRepo {
        NewRepo {
            owner: owner.into(),
            name: name.into(),
            private: true,
            description: None,
            default_branch: None,
            branches: Vec::new(),
        }
    }

    #[test]
    fn repos_get_default_branches_and_unknown_owners_become_orgs() {
        let mut w = World::default();
        let r = w.create_repo(repo("acme", "api")).unwrap();
        assert_eq!(r.default_branch, "main");
        let names: Vec<_> = r.branches.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["main", "develop", "feature/example"]);
        assert_eq!(
            w.account_by_login("ACME").unwrap().kind,
            AccountKind::Organization
        );
        assert!(w.create_repo(repo("acme", "API")).is_err());
        assert!(w.create_user("acme", None, None).is_err());
    }

    #[test]
    fn rename_leaves_a_redirect_and_delete_cleans_up() {
        let mut w = World::default();
        w.create_user("octo", None, None).unwrap();
        let r = w.create_repo(repo("octo", "one")).unwrap();
        let inst = w
            .create_installation(NewInstallation {
                account_login: "octo".into(),
                selection: Selection::Selected,
                repositories: vec!["one".into()],
                permissions: None,
                events: None,
            })
            .unwrap();
        let (old, renamed) = w.rename_repo(r.id, "two").unwrap();
        assert_eq!(old, "one");
        assert_eq!(renamed.name, "two");
        assert_eq!(w.lookup_repo("octo", "one"), RepoLookup::Moved(r.id));
        assert_eq!(w.lookup_repo("Octo", "TWO"), RepoLookup::Found(r.id));
        w.delete_repo(r.id).unwrap();
        assert_eq!(w.lookup_repo("octo", "one"), RepoLookup::Missing);
        assert!(w.installations[&inst.id].repository_ids.is_empty());
    }

    #[test]
    fn pushes_move_add_and_delete_branches() {
        let mut w = World::default();
        let r = w.create_repo(repo("acme", "api")).unwrap();
        let head = "1".repeat(40);
        w.set_branch_shas(r.id, &["main".into(), "develop".into()], &head);
        let update = |name: &str, sha: Option<&str>| BranchUpdate {
            name: name.into(),
            sha: sha.map(str::to_owned),
        };
        let after = w
            .record_push(
                r.id,
                &[
                    update("develop", None),
                    update("main", Some(&"2".repeat(40))),
                    update("topic", Some(&head)),
                    update("ghost", None),
                ],
            )
            .unwrap();
        let names: Vec<_> = after.branches.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["main", "feature/example", "topic"]);
        assert_eq!(after.branches[0].sha, "2".repeat(40));
        assert_eq!(after.branches[2].sha, head);
        assert!(w.record_push(999, &[]).is_none());
    }

    #[test]
    fn selection_changes_report_the_difference() {
        let mut w = World::default();
        w.create_user("octo", None, None).unwrap();
        let a = w.create_repo(repo("octo", "a")).unwrap().id;
        let b = w.create_repo(repo("octo", "b")).unwrap().id;
        let inst = w
            .create_installation(NewInstallation {
                account_login: "octo".into(),
                selection: Selection::Selected,
                repositories: vec!["octo/a".into()],
                permissions: None,
                events: None,
            })
            .unwrap();
        let diff = w.change_installation_repos(inst.id, &[b], &[a]).unwrap();
        assert_eq!(
            diff,
            RepoDiff {
                added: vec![b],
                removed: vec![a]
            }
        );
        let diff = w
            .set_installation_selection(inst.id, Selection::All, Vec::new())
            .unwrap();
        assert_eq!(diff.added, vec![a]);
        assert!(w.change_installation_repos(inst.id, &[a], &[]).is_err());
    }
}
