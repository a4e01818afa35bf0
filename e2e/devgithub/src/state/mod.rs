//! The persisted world: accounts, repositories, installations, codes,
//! tokens and webhook deliveries, with id counters.
//!
//! Everything lives in one [`World`] written to `state.json` after each
//! change ([`Store`]); lookups are in `queries`, validated changes in
//! `mutations`. Webhooks are not sent from here: callers get back what
//! changed and announce it (see `crate::changes`).

mod mutations;
mod queries;
mod store;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use mutations::{
    BranchSpec, BranchUpdate, NewInstallation, NewPull, NewRepo, RepoDiff, default_permissions,
};
pub(crate) use queries::RepoLookup;
pub(crate) use store::{Store, StoreError};

/// GitHub's `type` for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AccountKind {
    User,
    Organization,
}

impl AccountKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "User",
            AccountKind::Organization => "Organization",
        }
    }
}

/// A user or an organization; they share one id space, as on GitHub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Account {
    pub id: u64,
    pub login: String,
    pub kind: AccountKind,
    pub name: Option<String>,
    /// Primary (public) email; users only.
    pub email: Option<String>,
    /// Member user ids; organizations only.
    #[serde(default)]
    pub members: Vec<u64>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Branch {
    pub name: String,
    /// 40 hex characters: the head commit in the repository's bare git
    /// repository, kept in step by pushes (a branch seeded with an
    /// explicit SHA has no ref or commit behind it until one is pushed).
    pub sha: String,
    pub protected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Repo {
    pub id: u64,
    pub owner_id: u64,
    pub name: String,
    pub private: bool,
    pub description: Option<String>,
    pub default_branch: String,
    pub branches: Vec<Branch>,
    pub created_at: String,
    pub updated_at: String,
}

/// `repository_selection` of an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Selection {
    All,
    Selected,
}

impl Selection {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Selection::All => "all",
            Selection::Selected => "selected",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "all" => Some(Selection::All),
            "selected" => Some(Selection::Selected),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Installation {
    pub id: u64,
    pub account_id: u64,
    pub repository_selection: Selection,
    /// The chosen repositories when `repository_selection` is `selected`.
    pub repository_ids: Vec<u64>,
    pub permissions: BTreeMap<String, String>,
    pub events: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A web-flow code waiting to be exchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OAuthCode {
    pub user_id: u64,
    pub client_id: String,
    /// The `redirect_uri` the authorize request named, if any.
    pub redirect_uri: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at_ms: i64,
}

/// An OAuth user token (`gho_…`); these do not expire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserToken {
    pub user_id: u64,
    pub scopes: Vec<String>,
    pub created_at: String,
}

/// An installation access token (`ghs_…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstallationToken {
    pub installation_id: u64,
    pub expires_at_ms: i64,
    /// Narrowed to these repositories at issue time; `None` = all the
    /// installation can reach (now, not at issue time).
    pub repository_ids: Option<Vec<u64>>,
    pub permissions: BTreeMap<String, String>,
}

/// One webhook delivery and how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub id: u64,
    /// The `X-GitHub-Delivery` GUID.
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<u64>,
    pub repository_id: Option<u64>,
    /// `pending`, `delivered` (2xx), `failed` (anything else).
    pub status: String,
    /// The receiver's last HTTP status; `None` if it never answered.
    pub status_code: Option<u16>,
    pub attempts: u32,
    pub delivered_at: Option<String>,
    pub error: Option<String>,
    pub payload: Value,
}

/// `open` or `closed`, as `state` reads in the pull request shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PullState {
    Open,
    Closed,
}

impl PullState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PullState::Open => "open",
            PullState::Closed => "closed",
        }
    }
}

/// Who opened a pull request: a user, or the app's bot (installation
/// tokens act as `{slug}[bot]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PullAuthor {
    User(u64),
    Bot,
}

/// A pull request between two branches of one repository (forks are not
/// emulated). `head_sha` and `base_sha` follow pushes while it is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pull {
    /// Global id, like GitHub's.
    pub id: u64,
    pub repo_id: u64,
    /// Per repository, from 1.
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub state: PullState,
    pub draft: bool,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub author: PullAuthor,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
}

/// How many deliveries `state.json` keeps (oldest dropped first).
pub(crate) const MAX_DELIVERIES: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct World {
    pub next_account_id: u64,
    pub next_repo_id: u64,
    pub next_installation_id: u64,
    pub next_delivery_id: u64,
    pub accounts: BTreeMap<u64, Account>,
    pub repos: BTreeMap<u64, Repo>,
    /// Lower-cased `owner/name` a repository had before a rename.
    pub repo_redirects: BTreeMap<String, u64>,
    pub installations: BTreeMap<u64, Installation>,
    pub oauth_codes: BTreeMap<String, OAuthCode>,
    pub user_tokens: BTreeMap<String, UserToken>,
    pub installation_tokens: BTreeMap<String, InstallationToken>,
    pub deliveries: Vec<Delivery>,
    /// Absent from state files written before pull requests existed.
    #[serde(default = "first_pull_id")]
    pub next_pull_id: u64,
    /// Pull requests by global id.
    #[serde(default)]
    pub pulls: BTreeMap<u64, Pull>,
    /// The last pull request number handed out, per repository id.
    #[serde(default)]
    pub pull_numbers: BTreeMap<u64, u64>,
}

fn first_pull_id() -> u64 {
    900_000_001
}

impl Default for World {
    fn default() -> Self {
        // Distinct ranges per kind, so an id used as the wrong kind finds
        // nothing instead of something.
        World {
            next_account_id: 1001,
            next_repo_id: 70_001,
            next_installation_id: 5_000_001,
            next_delivery_id: 1,
            accounts: BTreeMap::new(),
            repos: BTreeMap::new(),
            repo_redirects: BTreeMap::new(),
            installations: BTreeMap::new(),
            oauth_codes: BTreeMap::new(),
            user_tokens: BTreeMap::new(),
            installation_tokens: BTreeMap::new(),
            deliveries: Vec::new(),
            next_pull_id: first_pull_id(),
            pulls: BTreeMap::new(),
            pull_numbers: BTreeMap::new(),
        }
    }
}

/// Why a change was refused; the API maps these to GitHub's 404 and
/// 422 `Validation Failed` bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound(String),
    Invalid {
        resource: &'static str,
        field: &'static str,
        code: &'static str,
        message: String,
    },
    /// GitHub's `code: "custom"` errors, which carry a message but no field.
    Custom {
        resource: &'static str,
        message: String,
    },
}

impl Refusal {
    pub(crate) fn invalid(resource: &'static str, field: &'static str, message: String) -> Self {
        Refusal::Invalid {
            resource,
            field,
            code: "invalid",
            message,
        }
    }

    pub(crate) fn exists(resource: &'static str, field: &'static str, message: String) -> Self {
        Refusal::Invalid {
            resource,
            field,
            code: "already_exists",
            message,
        }
    }
}
