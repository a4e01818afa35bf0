//! Coding agents a user can run, the credential kinds each accepts, and
//! where an agent's credential comes from.
//!
//! Agents are configuration (issue 6 starts them from npm); this module only
//! names them so credentials and project settings can refer to them safely.

use serde::{Deserialize, Serialize};

/// A supported coding agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgentKind {
    #[serde(rename = "claude-code")]
    ClaudeCode,
    #[serde(rename = "openai-codex")]
    OpenaiCodex,
    #[serde(rename = "google-gemini")]
    GoogleGemini,
    #[serde(rename = "opencode")]
    Opencode,
}

impl AgentKind {
    pub const ALL: [AgentKind; 4] = [
        AgentKind::ClaudeCode,
        AgentKind::OpenaiCodex,
        AgentKind::GoogleGemini,
        AgentKind::Opencode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "claude-code",
            AgentKind::OpenaiCodex => "openai-codex",
            AgentKind::GoogleGemini => "google-gemini",
            AgentKind::Opencode => "opencode",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, AgentCredentialError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == raw)
            .ok_or_else(|| AgentCredentialError::UnknownAgent(clip(raw)))
    }

    /// Credential kinds the agent can authenticate with.
    pub fn accepted_kinds(self) -> &'static [CredentialKind] {
        match self {
            AgentKind::ClaudeCode => &[CredentialKind::ApiKey, CredentialKind::OauthToken],
            AgentKind::OpenaiCodex | AgentKind::GoogleGemini | AgentKind::Opencode => {
                &[CredentialKind::ApiKey]
            }
        }
    }
}

/// What sort of secret a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ApiKey,
    OauthToken,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::OauthToken => "oauth_token",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, AgentCredentialError> {
        match raw {
            "api_key" => Ok(CredentialKind::ApiKey),
            "oauth_token" => Ok(CredentialKind::OauthToken),
            other => Err(AgentCredentialError::UnknownKind(clip(other))),
        }
    }
}

/// Where a resolved credential came from, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    /// The project's own override.
    Project,
    /// The user's key for this agent.
    User,
    /// The platform operator's key.
    Platform,
}

impl CredentialSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Project => "project",
            CredentialSource::User => "user",
            CredentialSource::Platform => "platform",
        }
    }
}

/// Picks the credential to use: the project's override, else the user's,
/// else the platform's. `None` when nobody configured one.
pub fn resolve_source<T>(
    project: Option<T>,
    user: Option<T>,
    platform: Option<T>,
) -> Option<(CredentialSource, T)> {
    project
        .map(|c| (CredentialSource::Project, c))
        .or_else(|| user.map(|c| (CredentialSource::User, c)))
        .or_else(|| platform.map(|c| (CredentialSource::Platform, c)))
}

/// Largest secret accepted; real keys and OAuth tokens are far shorter.
pub const MAX_SECRET_BYTES: usize = 4096;

/// A validated request to store an agent credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCredentialSpec {
    pub agent: AgentKind,
    pub kind: CredentialKind,
}

/// Checks agent, kind and secret shape before anything is stored.
pub fn validate_agent_credential(
    agent: &str,
    kind: &str,
    secret: &str,
) -> Result<AgentCredentialSpec, AgentCredentialError> {
    let agent = AgentKind::parse(agent)?;
    let kind = CredentialKind::parse(kind)?;
    if !agent.accepted_kinds().contains(&kind) {
        return Err(AgentCredentialError::KindNotAccepted {
            agent: agent.as_str(),
            kind: kind.as_str(),
        });
    }
    let ok = !secret.is_empty()
        && secret.len() <= MAX_SECRET_BYTES
        && secret.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(AgentCredentialError::InvalidSecret);
    }
    Ok(AgentCredentialSpec { agent, kind })
}

/// Why an agent credential request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentCredentialError {
    #[error("unknown agent '{0}'; supported: claude-code, openai-codex, google-gemini, opencode")]
    UnknownAgent(String),
    #[error("unknown credential kind '{0}'; supported: api_key, oauth_token")]
    UnknownKind(String),
    #[error("{agent} does not accept a credential of kind {kind}")]
    KindNotAccepted {
        agent: &'static str,
        kind: &'static str,
    },
    #[error("the secret must be 1-4096 printable characters without spaces")]
    InvalidSecret,
}

impl AgentCredentialError {
    pub fn code(&self) -> &'static str {
        match self {
            AgentCredentialError::UnknownAgent(_) => "unknown_agent",
            AgentCredentialError::UnknownKind(_) => "unknown_credential_kind",
            AgentCredentialError::KindNotAccepted { .. } => "credential_kind_not_accepted",
            AgentCredentialError::InvalidSecret => "invalid_secret",
        }
    }
}

fn clip(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_round_trip_through_their_names() {
        for agent in AgentKind::ALL {
            assert_eq!(AgentKind::parse(agent.as_str()), Ok(agent));
            let json = serde_json::to_string(&agent).unwrap();
            assert_eq!(json, format!("\"{}\"", agent.as_str()));
        }
        assert_eq!(
            AgentKind::parse("cursor").unwrap_err().code(),
            "unknown_agent"
        );
    }

    #[test]
    fn only_claude_code_takes_an_oauth_token() {
        assert!(validate_agent_credential("claude-code", "oauth_token", "tok").is_ok());
        let refused = validate_agent_credential("openai-codex", "oauth_token", "tok").unwrap_err();
        assert_eq!(refused.code(), "credential_kind_not_accepted");
        assert!(validate_agent_credential("opencode", "api_key", "sk-1").is_ok());
    }

    #[test]
    fn secrets_must_be_printable_and_bounded() {
        for bad in [
            "",
            "has space",
            "tab\there",
            &"x".repeat(MAX_SECRET_BYTES + 1),
        ] {
            assert_eq!(
                validate_agent_credential("claude-code", "api_key", bad).unwrap_err(),
                AgentCredentialError::InvalidSecret,
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_agent_credential("claude-code", "password", "x")
                .unwrap_err()
                .code(),
            "unknown_credential_kind"
        );
    }

    #[test]
    fn resolution_prefers_project_then_user_then_platform() {
        assert_eq!(
            resolve_source(Some("p"), Some("u"), Some("x")),
            Some((CredentialSource::Project, "p"))
        );
        assert_eq!(
            resolve_source(None, Some("u"), Some("x")),
            Some((CredentialSource::User, "u"))
        );
        assert_eq!(
            resolve_source(None, None, Some("x")),
            Some((CredentialSource::Platform, "x"))
        );
        assert_eq!(resolve_source::<&str>(None, None, None), None);
    }
}
