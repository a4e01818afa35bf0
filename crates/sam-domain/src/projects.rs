//! Projects: a GitHub repository linked through a GitHub App installation,
//! with defaults for the nodes and agents that work on it.
//!
//! The repository is identified by GitHub's numeric id, which survives
//! renames and transfers; the `owner/name` text is a cached label that
//! webhooks keep current.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

use crate::agents::{AgentCredentialError, AgentKind};
use crate::catalog::{ProviderKind, VmSize, locations};

/// Whether the project's repository can still be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Active,
    /// The repository was deleted or removed from the installation.
    RepositoryMissing,
    /// The GitHub App installation was deleted or suspended.
    InstallationMissing,
}

impl ProjectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Active => "active",
            ProjectStatus::RepositoryMissing => "repository_missing",
            ProjectStatus::InstallationMissing => "installation_missing",
        }
    }
}

/// Longest project name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Shortest warm node timeout a project may set, in seconds.
pub const MIN_WARM_NODE_TIMEOUT_SECS: u64 = 10;
/// Longest warm node timeout a project may set, in seconds (a day).
pub const MAX_WARM_NODE_TIMEOUT_SECS: u64 = 86_400;
/// The platform's warm node timeout, in seconds, used when a project sets
/// none: `LifecycleConfig::default().warm_timeout_ms` (30 minutes).
pub const DEFAULT_WARM_NODE_TIMEOUT_SECS: u64 = 30 * 60;

/// Why a project request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectInputError {
    #[error("the project name must be 1-100 characters without control characters")]
    InvalidName,
    #[error("'{0}' is not a valid git branch name")]
    InvalidBranch(String),
    #[error("repository must be '<installation id>:<repository id>', both numbers")]
    InvalidRepositoryRef,
    #[error("unknown VM size '{0}'; supported: small, medium, large")]
    UnknownSize(String),
    #[error("unknown provider '{0}'; supported: hetzner, scaleway")]
    UnknownProvider(String),
    #[error("unknown location '{location}'; supported: {supported}")]
    UnknownLocation { location: String, supported: String },
    #[error(
        "the warm node timeout must be {}-{} seconds; leave it empty for the platform default",
        MIN_WARM_NODE_TIMEOUT_SECS,
        MAX_WARM_NODE_TIMEOUT_SECS
    )]
    InvalidWarmTimeout,
    #[error(transparent)]
    Agent(#[from] AgentCredentialError),
}

impl ProjectInputError {
    pub fn code(&self) -> &'static str {
        match self {
            ProjectInputError::InvalidName => "invalid_name",
            ProjectInputError::InvalidBranch(_) => "invalid_branch",
            ProjectInputError::InvalidRepositoryRef => "invalid_repository",
            ProjectInputError::UnknownSize(_) => "unknown_size",
            ProjectInputError::UnknownProvider(_) => "unknown_provider",
            ProjectInputError::UnknownLocation { .. } => "unknown_location",
            ProjectInputError::InvalidWarmTimeout => "invalid_warm_timeout",
            ProjectInputError::Agent(e) => e.code(),
        }
    }
}

/// Trims and checks a project name.
pub fn validate_project_name(raw: &str) -> Result<String, ProjectInputError> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ProjectInputError::InvalidName);
    }
    Ok(name.to_owned())
}

// Git's `.lock` suffix rule is byte-exact, so the comparison must be too.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
/// Checks a branch name against git's ref-name rules (`git check-ref-format
/// --branch`), so it is safe to hand to git later and cannot be read as an
/// option.
pub fn validate_branch_name(raw: &str) -> Result<(), ProjectInputError> {
    let bad = || {
        Err(ProjectInputError::InvalidBranch(
            raw.chars().take(60).collect(),
        ))
    };
    if raw.is_empty()
        || raw.len() > 255
        || raw.starts_with(['-', '/', '.'])
        || raw.ends_with(['/', '.'])
        || raw.ends_with(".lock")
        || raw == "@"
        || raw.contains("..")
        || raw.contains("//")
        || raw.contains("@{")
        || raw.contains("/.")
    {
        return bad();
    }
    let forbidden = |c: char| c.is_ascii_control() || " ~^:?*[\\\u{7f}".contains(c);
    if raw.chars().any(forbidden) {
        return bad();
    }
    Ok(())
}

/// `"<installation id>:<repository id>"`, as the create form sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryRef {
    pub installation_id: u64,
    pub repository_id: u64,
}

pub fn parse_repository_ref(raw: &str) -> Result<RepositoryRef, ProjectInputError> {
    let (installation, repository) = raw
        .split_once(':')
        .ok_or(ProjectInputError::InvalidRepositoryRef)?;
    let number = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0 && s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ProjectInputError::InvalidRepositoryRef)
    };
    Ok(RepositoryRef {
        installation_id: number(installation)?,
        repository_id: number(repository)?,
    })
}

/// A project's defaults; `None` means "use the platform default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSettings {
    pub vm_size: Option<String>,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub agent: Option<String>,
    /// How long a node that worked for this project is kept warm for reuse,
    /// in seconds ([`MIN_WARM_NODE_TIMEOUT_SECS`]..=[`MAX_WARM_NODE_TIMEOUT_SECS`]).
    /// Accepts a JSON number or a numeric string; `null` or `""` is `None`.
    #[serde(default, deserialize_with = "optional_secs")]
    pub warm_node_timeout_secs: Option<u64>,
}

/// Serde helper for a number of seconds that may come from a form: a JSON
/// number, or a string of digits (surrounding spaces allowed); `null`, `""`
/// or blanks are `None`. Range checks are [`validate_settings`]'s job.
pub fn optional_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(SecsVisitor)
}

struct SecsVisitor;

impl<'de> de::Visitor<'de> for SecsVisitor {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number of seconds, as a number or a string, or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let trimmed = v.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::invalid_value(de::Unexpected::Str(v), &self));
        }
        trimmed
            .parse::<u64>()
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// Validates settings; a location is checked against the chosen provider
/// (or the platform's default provider when none is chosen).
pub fn validate_settings(settings: &ProjectSettings) -> Result<(), ProjectInputError> {
    if let Some(size) = &settings.vm_size {
        VmSize::parse(size).ok_or_else(|| ProjectInputError::UnknownSize(clip(size)))?;
    }
    let provider = match &settings.provider {
        Some(raw) => {
            ProviderKind::parse(raw).ok_or_else(|| ProjectInputError::UnknownProvider(clip(raw)))?
        }
        None => ProviderKind::Hetzner,
    };
    if let Some(location) = &settings.location {
        let offered = locations(provider);
        if !offered.contains(&location.as_str()) {
            return Err(ProjectInputError::UnknownLocation {
                location: clip(location),
                supported: offered.join(", "),
            });
        }
    }
    if let Some(agent) = &settings.agent {
        AgentKind::parse(agent)?;
    }
    if let Some(secs) = settings.warm_node_timeout_secs
        && !(MIN_WARM_NODE_TIMEOUT_SECS..=MAX_WARM_NODE_TIMEOUT_SECS).contains(&secs)
    {
        return Err(ProjectInputError::InvalidWarmTimeout);
    }
    Ok(())
}

fn clip(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_project_name("  My app ").unwrap(), "My app");
        for bad in ["", "   ", "a\nb", &"x".repeat(MAX_NAME_CHARS + 1)] {
            assert_eq!(
                validate_project_name(bad),
                Err(ProjectInputError::InvalidName)
            );
        }
        assert!(validate_project_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn branch_names_follow_git_rules() {
        for good in ["main", "feature/x-1", "sam/fix-bug-01", "v1.2"] {
            assert!(validate_branch_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-rf", "/a", "a/", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
            "x.lock", "a//b", "a@{1}", "@", ".hidden", "a/.b", "a.", "nul\0",
        ] {
            assert!(validate_branch_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repository_refs_are_two_positive_numbers() {
        assert_eq!(
            parse_repository_ref("12:345").unwrap(),
            RepositoryRef {
                installation_id: 12,
                repository_id: 345
            }
        );
        for bad in ["12", "a:1", "1:b", "0:1", "1:+2", ":", "1:2:3", " 1:2"] {
            assert_eq!(
                parse_repository_ref(bad),
                Err(ProjectInputError::InvalidRepositoryRef),
                "{bad}"
            );
        }
    }

    #[test]
    fn settings_are_checked_against_the_catalogue() {
        let ok = ProjectSettings {
            vm_size: Some("large".into()),
            provider: Some("hetzner".into()),
            location: Some("hel1".into()),
            agent: Some("claude-code".into()),
            warm_node_timeout_secs: Some(600),
        };
        assert!(validate_settings(&ok).is_ok());
        assert!(validate_settings(&ProjectSettings::default()).is_ok());
        let codes: Vec<_> = [
            ProjectSettings {
                vm_size: Some("huge".into()),
                ..ProjectSettings::default()
            },
            ProjectSettings {
                provider: Some("aws".into()),
                ..ProjectSettings::default()
            },
            ProjectSettings {
                location: Some("mars".into()),
                ..ProjectSettings::default()
            },
            ProjectSettings {
                agent: Some("cursor".into()),
                ..ProjectSettings::default()
            },
            ProjectSettings {
                warm_node_timeout_secs: Some(5),
                ..ProjectSettings::default()
            },
        ]
        .iter()
        .map(|s| validate_settings(s).unwrap_err().code())
        .collect();
        assert_eq!(
            codes,
            [
                "unknown_size",
                "unknown_provider",
                "unknown_location",
                "unknown_agent",
                "invalid_warm_timeout"
            ]
        );
    }

    #[test]
    fn warm_timeouts_are_bounded_to_ten_seconds_to_a_day() {
        let with = |secs| ProjectSettings {
            warm_node_timeout_secs: Some(secs),
            ..ProjectSettings::default()
        };
        for good in [10, 11, 1800, 86_399, 86_400] {
            assert!(validate_settings(&with(good)).is_ok(), "{good}");
        }
        for bad in [0, 1, 9, 86_401, u64::MAX] {
            let err = validate_settings(&with(bad)).unwrap_err();
            assert_eq!(err, ProjectInputError::InvalidWarmTimeout, "{bad}");
            assert_eq!(err.code(), "invalid_warm_timeout");
        }
        let message = ProjectInputError::InvalidWarmTimeout.to_string();
        assert!(message.contains("10-86400 seconds"), "{message}");
        assert!(
            (MIN_WARM_NODE_TIMEOUT_SECS..=MAX_WARM_NODE_TIMEOUT_SECS)
                .contains(&DEFAULT_WARM_NODE_TIMEOUT_SECS)
        );
    }

    #[test]
    fn the_default_warm_timeout_is_the_lifecycle_default() {
        let ms = crate::lifecycle::LifecycleConfig::default().warm_timeout_ms;
        assert_eq!(
            i64::try_from(DEFAULT_WARM_NODE_TIMEOUT_SECS * 1000).unwrap(),
            ms
        );
    }

    #[test]
    fn settings_json_parses_with_or_without_a_warm_timeout() {
        let parse = |json: &str| serde_json::from_str::<ProjectSettings>(json);
        // JSON written before the setting existed still parses.
        let old =
            parse(r#"{"vm_size":"small","provider":null,"location":null,"agent":null}"#).unwrap();
        assert_eq!(old.warm_node_timeout_secs, None);
        assert_eq!(old.vm_size.as_deref(), Some("small"));
        assert_eq!(parse("{}").unwrap(), ProjectSettings::default());
        for (json, expected) in [
            (r#"{"warm_node_timeout_secs":600}"#, Some(600)),
            (r#"{"warm_node_timeout_secs":"600"}"#, Some(600)),
            (r#"{"warm_node_timeout_secs":" 90 "}"#, Some(90)),
            (r#"{"warm_node_timeout_secs":null}"#, None),
            (r#"{"warm_node_timeout_secs":""}"#, None),
            (r#"{"warm_node_timeout_secs":"  "}"#, None),
        ] {
            assert_eq!(
                parse(json).unwrap().warm_node_timeout_secs,
                expected,
                "{json}"
            );
        }
        for bad in [
            r#"{"warm_node_timeout_secs":-5}"#,
            r#"{"warm_node_timeout_secs":1.5}"#,
            r#"{"warm_node_timeout_secs":"ten"}"#,
            r#"{"warm_node_timeout_secs":"+10"}"#,
            r#"{"warm_node_timeout_secs":"1e3"}"#,
            r#"{"warm_node_timeout_secs":true}"#,
            r#"{"warm_node_timeout_secs":"99999999999999999999999"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // Views serialize the setting as a number (or null).
        let json = serde_json::to_value(ProjectSettings {
            warm_node_timeout_secs: Some(120),
            ..ProjectSettings::default()
        })
        .unwrap();
        assert_eq!(json["warm_node_timeout_secs"], 120);
    }
}
