//! The workspace data the API speaks and `workspace.json` stores.

use serde::{Deserialize, Serialize};

use super::runtime::RuntimeState;

/// Where a workspace is in its life. Stored in `workspace.json` and shown in
/// every view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceStatus {
    /// Being cloned and started in the background.
    Creating,
    Running,
    Stopped,
    /// Creation or a runtime operation failed; `error` says why.
    Error,
    /// Being removed (a restarted agent finishes the job).
    Deleting,
}

impl WorkspaceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Error => "error",
            Self::Deleting => "deleting",
        }
    }
}

/// Which [`WorkspaceRuntime`](super::WorkspaceRuntime) runs a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Processes run on the node itself, as the agent's user, in the checkout.
    Host,
    /// A dev container (`devcontainer up`) with the checkout mounted.
    Devcontainer,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Devcontainer => "devcontainer",
        }
    }
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositorySpec {
    /// An `http(s)` URL without credentials.
    pub clone_url: String,
    /// The branch to work on; created from `base_branch` (or the remote's
    /// default branch) when the remote does not have it.
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
}

/// `user.name` and `user.email` of the checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitIdentity {
    pub name: String,
    pub email: String,
}

/// A secret string (the workspace callback token, a git token). `Debug`
/// never shows it; serialisation does (the callback token is stored in the
/// 0600 `workspace.json`, git tokens are never serialised).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; callers put it into a header or a pipe, never a
    /// log line, argv, the environment or a file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `POST /workspaces`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateWorkspace {
    pub id: String,
    pub repository: RepositorySpec,
    pub git_identity: GitIdentity,
    pub runtime: RuntimeKind,
    /// For the devcontainer runtime: use `.devcontainer/<name>/devcontainer.json`.
    #[serde(default)]
    pub devcontainer_config: Option<String>,
    /// The `workspace-callback` token for this workspace's callbacks and
    /// git tokens.
    pub callback_token: Secret,
}

/// A workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceView {
    pub id: String,
    pub status: WorkspaceStatus,
    pub runtime: RuntimeKind,
    pub branch: String,
    /// Unix milliseconds.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `workspace.json`: everything the agent needs to know about a workspace
/// after a restart. Mode 0600: it holds the callback token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkspaceRecord {
    pub(crate) id: String,
    pub(crate) status: WorkspaceStatus,
    pub(crate) runtime: RuntimeKind,
    pub(crate) repository: RepositorySpec,
    pub(crate) git_identity: GitIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) devcontainer_config: Option<String>,
    pub(crate) created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) callback_token: Secret,
    #[serde(default)]
    pub(crate) runtime_state: RuntimeState,
}

impl WorkspaceRecord {
    pub(crate) fn view(&self) -> WorkspaceView {
        WorkspaceView {
            id: self.id.clone(),
            status: self.status,
            runtime: self.runtime,
            branch: self.repository.branch.clone(),
            created_at: self.created_at,
            error: self.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_but_serialised_plainly() {
        let secret = Secret::new("eyJ.secret.value");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            "\"eyJ.secret.value\""
        );
    }

    #[test]
    fn statuses_and_runtimes_have_lowercase_names() {
        for status in [
            WorkspaceStatus::Creating,
            WorkspaceStatus::Running,
            WorkspaceStatus::Stopped,
            WorkspaceStatus::Error,
            WorkspaceStatus::Deleting,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status.as_str().to_owned())
            );
        }
        let kind: RuntimeKind = serde_json::from_str("\"devcontainer\"").unwrap();
        assert_eq!(kind, RuntimeKind::Devcontainer);
        assert!(serde_json::from_str::<RuntimeKind>("\"qemu\"").is_err());
    }
}
