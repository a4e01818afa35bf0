//! Read-only lookups over the world: by login and name (case-insensitive,
//! as on GitHub), and who can reach what.

use super::{Account, AccountKind, Installation, InstallationToken, Repo, Selection, World};

/// Where `owner/name` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoLookup {
    Found(u64),
    /// Renamed away; GitHub answers 301 to `/repositories/{id}`.
    Moved(u64),
    Missing,
}

impl World {
    pub(crate) fn account_by_login(&self, login: &str) -> Option<&Account> {
        self.accounts
            .values()
            .find(|a| a.login.eq_ignore_ascii_case(login))
    }

    pub(crate) fn user_by_login(&self, login: &str) -> Option<&Account> {
        self.account_by_login(login)
            .filter(|a| a.kind == AccountKind::User)
    }

    pub(crate) fn users(&self) -> impl Iterator<Item = &Account> {
        self.accounts
            .values()
            .filter(|a| a.kind == AccountKind::User)
    }

    /// The account and the organizations it belongs to.
    pub(crate) fn accounts_of_user(&self, user_id: u64) -> Vec<&Account> {
        self.accounts
            .values()
            .filter(|a| a.id == user_id || a.members.contains(&user_id))
            .collect()
    }

    pub(crate) fn repo_owner(&self, repo: &Repo) -> Option<&Account> {
        self.accounts.get(&repo.owner_id)
    }

    pub(crate) fn full_name(&self, repo: &Repo) -> String {
        let owner = self.repo_owner(repo).map_or("ghost", |a| a.login.as_str());
        format!("{owner}/{}", repo.name)
    }

    pub(crate) fn repo_by_name(&self, owner: &str, name: &str) -> Option<&Repo> {
        let owner = self.account_by_login(owner)?;
        self.repos
            .values()
            .find(|r| r.owner_id == owner.id && r.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn lookup_repo(&self, owner: &str, name: &str) -> RepoLookup {
        if let Some(repo) = self.repo_by_name(owner, name) {
            return RepoLookup::Found(repo.id);
        }
        let key = format!("{owner}/{name}").to_ascii_lowercase();
        match self.repo_redirects.get(&key) {
            Some(id) if self.repos.contains_key(id) => RepoLookup::Moved(*id),
            _ => RepoLookup::Missing,
        }
    }

    pub(crate) fn repos_of(&self, account_id: u64) -> impl Iterator<Item = &Repo> {
        self.repos
            .values()
            .filter(move |r| r.owner_id == account_id)
    }

    /// Repositories the installation can reach, by id.
    pub(crate) fn installation_repo_ids(&self, installation: &Installation) -> Vec<u64> {
        match installation.repository_selection {
            Selection::All => self
                .repos_of(installation.account_id)
                .map(|r| r.id)
                .collect(),
            Selection::Selected => installation
                .repository_ids
                .iter()
                .copied()
                .filter(|id| self.repos.contains_key(id))
                .collect(),
        }
    }

    /// Repositories an installation token can reach now.
    pub(crate) fn token_repo_ids(&self, token: &InstallationToken) -> Vec<u64> {
        let Some(installation) = self.installations.get(&token.installation_id) else {
            return Vec::new();
        };
        let reachable = self.installation_repo_ids(installation);
        match &token.repository_ids {
            None => reachable,
            Some(narrowed) => reachable
                .into_iter()
                .filter(|id| narrowed.contains(id))
                .collect(),
        }
    }

    pub(crate) fn installation_for_account(&self, account_id: u64) -> Option<&Installation> {
        self.installations
            .values()
            .find(|i| i.account_id == account_id)
    }

    /// The installation (of the one app) that reaches `repo_id`, if any.
    pub(crate) fn installation_for_repo(&self, repo_id: u64) -> Option<&Installation> {
        let repo = self.repos.get(&repo_id)?;
        self.installation_for_account(repo.owner_id)
            .filter(|i| self.installation_repo_ids(i).contains(&repo_id))
    }

    /// GitHub lists an installation to a user who is its account or a
    /// member of its organization.
    pub(crate) fn user_sees_installation(&self, user_id: u64, installation: &Installation) -> bool {
        installation.account_id == user_id
            || self
                .accounts
                .get(&installation.account_id)
                .is_some_and(|a| a.members.contains(&user_id))
    }

    /// Whether a user has (at least) read access to a repository.
    pub(crate) fn user_can_read(&self, user_id: u64, repo: &Repo) -> bool {
        !repo.private || self.user_is_owner_side(user_id, repo)
    }

    /// The repository's owner, or a member of its organization.
    pub(crate) fn user_is_owner_side(&self, user_id: u64, repo: &Repo) -> bool {
        repo.owner_id == user_id
            || self
                .accounts
                .get(&repo.owner_id)
                .is_some_and(|a| a.members.contains(&user_id))
    }

    /// Who a change made through the admin API is attributed to: the named
    /// user, else the account if it is a user, else the organization's
    /// first member, else the organization itself.
    pub(crate) fn sender_for(&self, account_id: u64, named: Option<u64>) -> Option<&Account> {
        if let Some(user) = named.and_then(|id| self.accounts.get(&id)) {
            return Some(user);
        }
        let account = self.accounts.get(&account_id)?;
        if account.kind == AccountKind::User {
            return Some(account);
        }
        account
            .members
            .first()
            .and_then(|id| self.accounts.get(id))
            .or(Some(account))
    }
}
