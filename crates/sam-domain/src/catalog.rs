//! Which providers, sizes and locations a node may be created with.
//!
//! Users pick a provider-neutral size (`small`, `medium`, `large`); the
//! catalogue maps it to the provider's server type. Unknown values are
//! rejected here, before anything is written or any provider is called.

use serde::{Deserialize, Serialize};

/// A cloud provider SAM can create nodes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Hetzner,
    Scaleway,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 2] = [ProviderKind::Hetzner, ProviderKind::Scaleway];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Hetzner => "hetzner",
            ProviderKind::Scaleway => "scaleway",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

/// Provider-neutral VM size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmSize {
    Small,
    Medium,
    Large,
}

impl VmSize {
    pub const ALL: [VmSize; 3] = [VmSize::Small, VmSize::Medium, VmSize::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            VmSize::Small => "small",
            VmSize::Medium => "medium",
            VmSize::Large => "large",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// CPU architecture of a server type; decides which vm-agent build a node downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// One concrete server type at a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerType {
    pub name: &'static str,
    pub arch: Arch,
    pub vcpus: u32,
    pub memory_gb: u32,
    pub disk_gb: u32,
}

const HETZNER_LOCATIONS: &[&str] = &["fsn1", "nbg1", "hel1", "ash", "hil"];
/// Scaleway's Instance API zones.
const SCALEWAY_ZONES: &[&str] = &["fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-1"];

/// The image new nodes boot (Ubuntu 24.04), by the provider's name for it.
pub fn default_image(provider: ProviderKind) -> &'static str {
    match provider {
        ProviderKind::Hetzner => "ubuntu-24.04",
        ProviderKind::Scaleway => "ubuntu_noble",
    }
}

/// The provider's server type for a size.
pub fn server_type(provider: ProviderKind, size: VmSize) -> ServerType {
    match (provider, size) {
        (ProviderKind::Hetzner, VmSize::Small) => ServerType {
            name: "cx23",
            arch: Arch::X86_64,
            vcpus: 2,
            memory_gb: 4,
            disk_gb: 40,
        },
        (ProviderKind::Hetzner, VmSize::Medium) => ServerType {
            name: "cx33",
            arch: Arch::X86_64,
            vcpus: 4,
            memory_gb: 8,
            disk_gb: 80,
        },
        (ProviderKind::Hetzner, VmSize::Large) => ServerType {
            name: "cx43",
            arch: Arch::X86_64,
            vcpus: 8,
            memory_gb: 16,
            disk_gb: 160,
        },
        (ProviderKind::Scaleway, VmSize::Small) => ServerType {
            name: "DEV1-S",
            arch: Arch::X86_64,
            vcpus: 2,
            memory_gb: 2,
            disk_gb: 20,
        },
        (ProviderKind::Scaleway, VmSize::Medium) => ServerType {
            name: "DEV1-M",
            arch: Arch::X86_64,
            vcpus: 3,
            memory_gb: 4,
            disk_gb: 40,
        },
        (ProviderKind::Scaleway, VmSize::Large) => ServerType {
            name: "DEV1-L",
            arch: Arch::X86_64,
            vcpus: 4,
            memory_gb: 8,
            disk_gb: 80,
        },
    }
}

/// Locations a provider offers, default first.
pub fn locations(provider: ProviderKind) -> &'static [&'static str] {
    match provider {
        ProviderKind::Hetzner => HETZNER_LOCATIONS,
        ProviderKind::Scaleway => SCALEWAY_ZONES,
    }
}

/// Why a node request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown provider '{0}'; supported: hetzner, scaleway")]
    UnknownProvider(String),
    #[error("unknown size '{0}'; supported: small, medium, large")]
    UnknownSize(String),
    #[error("unknown location '{location}' for {provider}; supported: {supported}")]
    UnknownLocation {
        provider: &'static str,
        location: String,
        supported: String,
    },
    #[error(
        "node name must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    InvalidName,
}

impl SpecError {
    /// Stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            SpecError::UnknownProvider(_) => "unknown_provider",
            SpecError::UnknownSize(_) => "unknown_size",
            SpecError::UnknownLocation { .. } => "unknown_location",
            SpecError::InvalidName => "invalid_name",
        }
    }
}

/// A validated request for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub provider: ProviderKind,
    pub size: VmSize,
    pub location: String,
    pub server_type: ServerType,
}

/// Validates raw provider/size/location strings; `location` defaults to the provider's first.
pub fn validate_node_spec(
    provider: &str,
    size: &str,
    location: Option<&str>,
) -> Result<NodeSpec, SpecError> {
    let provider =
        ProviderKind::parse(provider).ok_or_else(|| SpecError::UnknownProvider(clip(provider)))?;
    let size = VmSize::parse(size).ok_or_else(|| SpecError::UnknownSize(clip(size)))?;
    let offered = locations(provider);
    let location = match location {
        None => offered[0],
        Some(wanted) => offered
            .iter()
            .copied()
            .find(|l| *l == wanted)
            .ok_or_else(|| SpecError::UnknownLocation {
                provider: provider.as_str(),
                location: clip(wanted),
                supported: offered.join(", "),
            })?,
    };
    Ok(NodeSpec {
        provider,
        size,
        location: location.to_owned(),
        server_type: server_type(provider, size),
    })
}

/// Validates a user-chosen node name (it becomes part of a hostname).
pub fn validate_node_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::InvalidName)
    }
}

/// Echoed user input is clipped so an error message cannot be used to reflect megabytes.
fn clip(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaleway_sizes_map_to_commercial_types_in_its_zones() {
        let spec = validate_node_spec("scaleway", "small", None).unwrap();
        assert_eq!(
            (spec.server_type.name, spec.location.as_str()),
            ("DEV1-S", "fr-par-1")
        );
        let spec = validate_node_spec("scaleway", "large", Some("nl-ams-1")).unwrap();
        assert_eq!(spec.server_type.name, "DEV1-L");
        assert_eq!(
            validate_node_spec("scaleway", "small", Some("fsn1"))
                .unwrap_err()
                .code(),
            "unknown_location"
        );
        assert_eq!(default_image(ProviderKind::Scaleway), "ubuntu_noble");
    }

    #[test]
    fn valid_spec_maps_size_to_server_type() {
        let spec = validate_node_spec("hetzner", "medium", Some("hel1")).unwrap();
        assert_eq!(spec.server_type.name, "cx33");
        assert_eq!(spec.location, "hel1");
        let defaulted = validate_node_spec("hetzner", "small", None).unwrap();
        assert_eq!(defaulted.location, "fsn1");
    }

    #[test]
    fn unknown_values_are_rejected_with_stable_codes() {
        let cases = [
            (validate_node_spec("aws", "small", None), "unknown_provider"),
            (validate_node_spec("hetzner", "huge", None), "unknown_size"),
            (
                validate_node_spec("hetzner", "small", Some("mars1")),
                "unknown_location",
            ),
        ];
        for (result, code) in cases {
            assert_eq!(result.unwrap_err().code(), code);
        }
    }

    #[test]
    fn error_messages_clip_echoed_input() {
        let long = "x".repeat(10_000);
        let message = validate_node_spec(&long, "small", None)
            .unwrap_err()
            .to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn node_names_are_hostname_safe() {
        assert!(validate_node_name("dev-box-1").is_ok());
        for bad in ["", "-a", "a-", "UPPER", "a_b", "a.b", &"a".repeat(64)] {
            assert!(validate_node_name(bad).is_err(), "{bad}");
        }
    }
}
