//! GitHub App webhook payloads, parsed from the `X-GitHub-Event` header and
//! the JSON body into the few facts SAM acts on.
//!
//! Pure parsing: the caller has already checked `X-Hub-Signature-256`
//! (sam-vault does that) before handing the body here. Events SAM does not
//! act on come back as [`WebhookEvent::Other`] rather than as errors, so
//! GitHub's deliveries of them still succeed.

use serde::{Deserialize, Serialize};

use crate::github::clip;
use crate::github_app::Account;

/// Why a webhook body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GitHub `{event}` webhook payload is invalid: {message}")]
pub struct WebhookError {
    pub event: String,
    pub message: String,
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        "webhook_payload_invalid"
    }
}

/// A repository as webhook payloads list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRepository {
    pub id: u64,
    pub full_name: String,
}

macro_rules! action_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
        #[serde(from = "String")]
        pub enum $name {
            $($variant,)*
            /// An action this enum does not name, as GitHub spelled it.
            Other(String),
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)*
                    _ => $name::Other(s),
                }
            }
        }

        impl $name {
            /// The action as GitHub spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }
    };
}

action_enum! {
    /// `installation` actions.
    InstallationAction {
        Created => "created",
        Deleted => "deleted",
        Suspend => "suspend",
        Unsuspend => "unsuspend",
        NewPermissionsAccepted => "new_permissions_accepted",
    }
}

action_enum! {
    /// `installation_repositories` actions.
    InstallationRepositoriesAction {
        Added => "added",
        Removed => "removed",
    }
}

action_enum! {
    /// `repository` actions.
    RepositoryAction {
        Created => "created",
        Deleted => "deleted",
        Archived => "archived",
        Unarchived => "unarchived",
        Edited => "edited",
        Renamed => "renamed",
        Transferred => "transferred",
        Publicized => "publicized",
        Privatized => "privatized",
    }
}

/// The app was installed, uninstalled, suspended or unsuspended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationEvent {
    pub action: InstallationAction,
    pub installation_id: u64,
    /// The account the app is installed on.
    pub account: Account,
    /// Who did it.
    pub sender: Account,
    /// On `created` with selected repositories: those repositories.
    pub repositories: Vec<WebhookRepository>,
}

/// Repositories were added to or removed from an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRepositoriesEvent {
    pub action: InstallationRepositoriesAction,
    pub installation_id: u64,
    pub account: Account,
    /// `all` or `selected`, after the change.
    pub repository_selection: String,
    pub repositories_added: Vec<WebhookRepository>,
    pub repositories_removed: Vec<WebhookRepository>,
    pub sender: Account,
}

/// Something happened to a repository the installation can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryEvent {
    pub action: RepositoryAction,
    pub repository_id: u64,
    /// After the change (the new name on `renamed`, the new owner on
    /// `transferred`).
    pub full_name: String,
    pub private: bool,
    pub html_url: Option<String>,
    pub default_branch: Option<String>,
    /// On `renamed`: the name (without owner) before.
    pub previous_name: Option<String>,
    /// Present on deliveries to a GitHub App.
    pub installation_id: Option<u64>,
    pub sender: Option<Account>,
}

/// Sent when a webhook is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingEvent {
    pub zen: Option<String>,
    pub hook_id: Option<u64>,
    /// Set when the hook belongs to a GitHub App.
    pub app_id: Option<u64>,
}

/// A webhook delivery, by `X-GitHub-Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Installation(InstallationEvent),
    InstallationRepositories(InstallationRepositoriesEvent),
    Repository(RepositoryEvent),
    Ping(PingEvent),
    /// Any other event; `action` when the body has one.
    Other {
        event: String,
        action: Option<String>,
    },
}

impl WebhookEvent {
    /// Parses a delivery given its `X-GitHub-Event` header and body.
    ///
    /// Unknown events are [`WebhookEvent::Other`] (whatever their body); a
    /// known event whose body does not have the expected shape is a
    /// [`WebhookError`].
    pub fn parse(event: &str, body: &[u8]) -> Result<Self, WebhookError> {
        let event = event.trim();
        let invalid = |e: &serde_json::Error| WebhookError {
            event: clip(event),
            message: clip(&e.to_string()),
        };
        match event {
            "installation" => {
                let p: InstallationPayload =
                    serde_json::from_slice(body).map_err(|e| invalid(&e))?;
                Ok(WebhookEvent::Installation(InstallationEvent {
                    action: p.action,
                    installation_id: p.installation.id,
                    account: p.installation.account,
                    sender: p.sender,
                    repositories: p.repositories.unwrap_or_default(),
                }))
            }
            "installation_repositories" => {
                let p: InstallationRepositoriesPayload =
                    serde_json::from_slice(body).map_err(|e| invalid(&e))?;
                Ok(WebhookEvent::InstallationRepositories(
                    InstallationRepositoriesEvent {
                        action: p.action,
                        installation_id: p.installation.id,
                        account: p.installation.account,
                        repository_selection: p.repository_selection,
                        repositories_added: p.repositories_added,
                        repositories_removed: p.repositories_removed,
                        sender: p.sender,
                    },
                ))
            }
            "repository" => {
                let p: RepositoryPayload = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
                let previous_name = p
                    .changes
                    .and_then(|c| c.repository)
                    .and_then(|r| r.name)
                    .map(|n| n.from);
                Ok(WebhookEvent::Repository(RepositoryEvent {
                    action: p.action,
                    repository_id: p.repository.id,
                    full_name: p.repository.full_name,
                    private: p.repository.private,
                    html_url: p.repository.html_url,
                    default_branch: p.repository.default_branch,
                    previous_name,
                    installation_id: p.installation.map(|i| i.id),
                    sender: p.sender,
                }))
            }
            "ping" => {
                let p: PingPayload = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
                Ok(WebhookEvent::Ping(PingEvent {
                    zen: p.zen,
                    hook_id: p.hook_id,
                    app_id: p.hook.and_then(|h| h.app_id),
                }))
            }
            _ => {
                let action = serde_json::from_slice::<ActionOnly>(body)
                    .ok()
                    .and_then(|a| a.action)
                    .map(|a| clip(&a));
                Ok(WebhookEvent::Other {
                    event: clip(event),
                    action,
                })
            }
        }
    }

    /// The installation the delivery concerns, when the payload names one.
    pub fn installation_id(&self) -> Option<u64> {
        match self {
            WebhookEvent::Installation(e) => Some(e.installation_id),
            WebhookEvent::InstallationRepositories(e) => Some(e.installation_id),
            WebhookEvent::Repository(e) => e.installation_id,
            WebhookEvent::Ping(_) | WebhookEvent::Other { .. } => None,
        }
    }
}

// ---- Payload shapes (only the fields read) ----

#[derive(Deserialize)]
struct PayloadInstallation {
    id: u64,
    account: Account,
}

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
}

#[derive(Deserialize)]
struct InstallationPayload {
    action: InstallationAction,
    installation: PayloadInstallation,
    sender: Account,
    #[serde(default)]
    repositories: Option<Vec<WebhookRepository>>,
}

#[derive(Deserialize)]
struct InstallationRepositoriesPayload {
    action: InstallationRepositoriesAction,
    installation: PayloadInstallation,
    #[serde(default)]
    repository_selection: String,
    #[serde(default)]
    repositories_added: Vec<WebhookRepository>,
    #[serde(default)]
    repositories_removed: Vec<WebhookRepository>,
    sender: Account,
}

#[derive(Deserialize)]
struct PayloadRepository {
    id: u64,
    full_name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct RepositoryPayload {
    action: RepositoryAction,
    repository: PayloadRepository,
    #[serde(default)]
    changes: Option<Changes>,
    #[serde(default)]
    installation: Option<InstallationRef>,
    #[serde(default)]
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct Changes {
    #[serde(default)]
    repository: Option<RepositoryChanges>,
}

#[derive(Deserialize)]
struct RepositoryChanges {
    #[serde(default)]
    name: Option<FromValue>,
}

#[derive(Deserialize)]
struct FromValue {
    from: String,
}

#[derive(Deserialize)]
struct PingPayload {
    #[serde(default)]
    zen: Option<String>,
    #[serde(default)]
    hook_id: Option<u64>,
    #[serde(default)]
    hook: Option<PingHook>,
}

#[derive(Deserialize)]
struct PingHook {
    #[serde(default)]
    app_id: Option<u64>,
}

#[derive(Deserialize)]
struct ActionOnly {
    #[serde(default)]
    action: Option<String>,
}
