//! Agent credentials: per user and agent, overridable per project, with
//! the platform operator's keys as the last resort. Sealed like cloud
//! credentials; bound by associated data to owner, scope, agent and kind.

use std::collections::BTreeMap;

use sam_domain::agents::{
    AgentKind, CredentialKind, CredentialSource, resolve_source, validate_agent_credential,
};
use sam_store::{AgentCredentialRecord, AgentCredentialRepository, ProjectRepository, SqlDatabase};
use sam_vault::{CredentialKeys, Secret};
use serde::{Deserialize, Serialize};

use crate::error::ControlError;
use crate::reseal::{SealedRow, reseal_all};

/// What lists show: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentCredentialView {
    pub agent: String,
    pub kind: String,
    pub masked: String,
    /// `user` or `project`.
    pub scope: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&AgentCredentialRecord> for AgentCredentialView {
    fn from(c: &AgentCredentialRecord) -> Self {
        Self {
            agent: c.agent.clone(),
            kind: c.kind.clone(),
            masked: c.masked.clone(),
            scope: if c.project_id.is_some() {
                "project"
            } else {
                "user"
            },
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// The platform operator's agent keys (a Worker secret), used when neither
/// the project nor the user has one. `Debug` never shows a secret.
#[derive(Clone, Default)]
pub struct PlatformAgentCredentials {
    by_agent: BTreeMap<AgentKind, (CredentialKind, String)>,
}

impl std::fmt::Debug for PlatformAgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.by_agent.keys().map(|a| a.as_str()))
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformEntry {
    kind: String,
    secret: String,
}

impl PlatformAgentCredentials {
    /// Parses `{"claude-code": {"kind": "api_key", "secret": "…"}, …}`;
    /// an empty string means none. Errors never echo a secret.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        let entries: BTreeMap<String, PlatformEntry> = serde_json::from_str(raw).map_err(|e| {
            format!(
                "not a JSON object of agent → {{kind, secret}} (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let mut by_agent = BTreeMap::new();
        for (agent, entry) in entries {
            let spec = validate_agent_credential(&agent, &entry.kind, &entry.secret)
                .map_err(|e| format!("entry {agent:?}: {}", e.code()))?;
            by_agent.insert(spec.agent, (spec.kind, entry.secret));
        }
        Ok(Self { by_agent })
    }

    fn get(&self, agent: AgentKind) -> Option<&(CredentialKind, String)> {
        self.by_agent.get(&agent)
    }
}

/// A credential ready to hand to an agent, and where it came from.
#[derive(Debug)]
pub struct ResolvedAgentCredential {
    pub agent: AgentKind,
    pub source: CredentialSource,
    pub kind: String,
    pub secret: Secret,
}

/// What a project's agent would use, without opening any secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveAgentCredential {
    pub agent: &'static str,
    /// `None` when nobody configured a credential for this agent.
    pub source: Option<CredentialSource>,
    pub kind: Option<String>,
    pub masked: Option<String>,
}

/// Associated data binding an agent credential's envelope to its row
/// (public for tools that audit the vault, such as the leak test).
pub fn agent_credential_aad(
    user_id: &str,
    project_id: Option<&str>,
    agent: &str,
    kind: &str,
) -> Vec<u8> {
    format!(
        "agent-credential:{user_id}:{}:{agent}:{kind}",
        project_id.unwrap_or("-")
    )
    .into_bytes()
}

async fn require_project(
    db: &impl SqlDatabase,
    user_id: &str,
    project_id: Option<&str>,
) -> Result<(), ControlError> {
    if let Some(project) = project_id
        && ProjectRepository::new(db)
            .get_owned(user_id, project)
            .await?
            .is_none()
    {
        return Err(ControlError::NotFound);
    }
    Ok(())
}

/// A request to store an agent credential.
#[derive(Debug, Clone, Copy)]
pub struct NewAgentCredential<'a> {
    pub user_id: &'a str,
    /// `None` for the user's own key; `Some` for a project override.
    pub project_id: Option<&'a str>,
    pub agent: &'a str,
    pub kind: &'a str,
    pub secret: &'a str,
}

/// Validates, seals and stores a credential, replacing whatever kind the
/// scope had for that agent. A project that is not the user's is `NotFound`.
pub async fn store_agent_credential(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    new: NewAgentCredential<'_>,
    now: i64,
    new_id: &str,
    nonce: [u8; 12],
) -> Result<AgentCredentialView, ControlError> {
    let spec = validate_agent_credential(new.agent, new.kind, new.secret)?;
    require_project(db, new.user_id, new.project_id).await?;
    let (agent, kind) = (spec.agent.as_str(), spec.kind.as_str());
    let record = AgentCredentialRecord {
        id: new_id.to_owned(),
        user_id: new.user_id.to_owned(),
        project_id: new.project_id.map(str::to_owned),
        agent: agent.to_owned(),
        kind: kind.to_owned(),
        secret_envelope: sam_vault::encrypt(
            keys,
            new.secret.as_bytes(),
            &agent_credential_aad(new.user_id, new.project_id, agent, kind),
            nonce,
        ),
        masked: sam_vault::mask(new.secret),
        created_at: now,
        updated_at: now,
    };
    let repo = AgentCredentialRepository::new(db);
    repo.put(&record).await?;
    let stored = repo
        .get(new.user_id, new.project_id, agent)
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(AgentCredentialView::from(&stored))
}

/// The credentials of one scope, masked.
pub async fn list_agent_credentials(
    db: &impl SqlDatabase,
    user_id: &str,
    project_id: Option<&str>,
) -> Result<Vec<AgentCredentialView>, ControlError> {
    require_project(db, user_id, project_id).await?;
    Ok(AgentCredentialRepository::new(db)
        .list(user_id, project_id)
        .await?
        .iter()
        .map(AgentCredentialView::from)
        .collect())
}

/// Deletes one scope's credential for an agent; `NotFound` when there is none.
pub async fn delete_agent_credential(
    db: &impl SqlDatabase,
    user_id: &str,
    project_id: Option<&str>,
    agent: &str,
) -> Result<(), ControlError> {
    let agent = AgentKind::parse(agent)?;
    require_project(db, user_id, project_id).await?;
    if AgentCredentialRepository::new(db)
        .delete(user_id, project_id, agent.as_str())
        .await?
    {
        Ok(())
    } else {
        Err(ControlError::NotFound)
    }
}

/// The credential an agent run for `user_id` (in `project_id`) uses:
/// project override → user key → platform key.
pub async fn resolve_agent_credential(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    platform: &PlatformAgentCredentials,
    user_id: &str,
    project_id: Option<&str>,
    agent: &str,
) -> Result<ResolvedAgentCredential, ControlError> {
    let agent = AgentKind::parse(agent)?;
    require_project(db, user_id, project_id).await?;
    let repo = AgentCredentialRepository::new(db);
    let project = match project_id {
        Some(p) => repo.get(user_id, Some(p), agent.as_str()).await?,
        None => None,
    };
    let user = repo.get(user_id, None, agent.as_str()).await?;
    let platform = platform
        .get(agent)
        .map(|(kind, secret)| (*kind, secret.as_str()));
    let (source, candidate) = resolve_source(
        project.map(Candidate::Stored),
        user.map(Candidate::Stored),
        platform.map(|(kind, secret)| Candidate::Platform(kind, secret)),
    )
    .ok_or(ControlError::AgentCredentialMissing(agent.as_str()))?;
    let (kind, secret) = match candidate {
        Candidate::Stored(c) => {
            let secret = sam_vault::decrypt(
                keys,
                &c.secret_envelope,
                &agent_credential_aad(&c.user_id, c.project_id.as_deref(), &c.agent, &c.kind),
            )
            .map_err(ControlError::Vault)?;
            (c.kind, secret)
        }
        Candidate::Platform(kind, secret) => (
            kind.as_str().to_owned(),
            Secret::new(secret.as_bytes().to_vec()),
        ),
    };
    Ok(ResolvedAgentCredential {
        agent,
        source,
        kind,
        secret,
    })
}

enum Candidate<'a> {
    Stored(AgentCredentialRecord),
    Platform(CredentialKind, &'a str),
}

/// For each agent, what a run in `project_id` would use (no secret is opened).
pub async fn effective_agent_credentials(
    db: &impl SqlDatabase,
    platform: &PlatformAgentCredentials,
    user_id: &str,
    project_id: &str,
) -> Result<Vec<EffectiveAgentCredential>, ControlError> {
    require_project(db, user_id, Some(project_id)).await?;
    let repo = AgentCredentialRepository::new(db);
    let overrides = repo.list(user_id, Some(project_id)).await?;
    let own = repo.list(user_id, None).await?;
    Ok(AgentKind::ALL
        .into_iter()
        .map(|agent| {
            let find = |list: &[AgentCredentialRecord]| {
                list.iter()
                    .find(|c| c.agent == agent.as_str())
                    .map(|c| (c.kind.clone(), c.masked.clone()))
            };
            let platform = platform
                .get(agent)
                .map(|(kind, secret)| (kind.as_str().to_owned(), sam_vault::mask(secret)));
            match resolve_source(find(&overrides), find(&own), platform) {
                Some((source, (kind, masked))) => EffectiveAgentCredential {
                    agent: agent.as_str(),
                    source: Some(source),
                    kind: Some(kind),
                    masked: Some(masked),
                },
                None => EffectiveAgentCredential {
                    agent: agent.as_str(),
                    source: None,
                    kind: None,
                    masked: None,
                },
            }
        })
        .collect())
}

/// Re-seals every agent credential under the active key; returns how many moved.
pub async fn rotate_agent_credentials(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    mut nonce: impl FnMut() -> [u8; 12],
) -> Result<usize, ControlError> {
    let repo = AgentCredentialRepository::new(db);
    reseal_all(
        keys,
        &mut nonce,
        async |after: &str| {
            Ok(repo
                .page_after(after, 100)
                .await?
                .into_iter()
                .map(|c| SealedRow {
                    aad: agent_credential_aad(
                        &c.user_id,
                        c.project_id.as_deref(),
                        &c.agent,
                        &c.kind,
                    ),
                    id: c.id,
                    envelope: c.secret_envelope,
                })
                .collect())
        },
        async |id: &str, old: &str, new: &str| repo.replace_envelope(id, old, new).await,
    )
    .await
}
