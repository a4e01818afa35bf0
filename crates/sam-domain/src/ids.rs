//! Opaque identifiers.
//!
//! IDs are ULIDs rendered as 26 Crockford base32 characters: sortable by
//! creation time, safe in hostnames (`ws-<id>.`) and stored as TEXT, never
//! as integers (JavaScript loses precision beyond 2^53).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id: expected 26 Crockford base32 characters")]
pub struct InvalidId;

/// Builds a new ULID string from a timestamp and 80 bits of caller-supplied randomness.
pub fn new_ulid(now: UnixMillis, random: u128) -> String {
    let millis = u64::try_from(now).unwrap_or(0);
    ulid::Ulid::from_parts(millis, random).to_string()
}

/// Parses and normalises (uppercase) a ULID string.
pub fn parse_ulid(raw: &str) -> Result<String, InvalidId> {
    if raw.len() != 26 {
        return Err(InvalidId);
    }
    ulid::Ulid::from_string(raw)
        .map(|id| id.to_string())
        .map_err(|_| InvalidId)
}

/// A node (VM) identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// Creates a fresh node id.
    pub fn generate(now: UnixMillis, random: u128) -> Self {
        Self(new_ulid(now, random))
    }

    /// Validates an id that came from outside (a path, a token claim).
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        parse_ulid(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_sort_by_time() {
        let a = NodeId::generate(1_700_000_000_000, 42);
        let b = NodeId::generate(1_700_000_000_001, 1);
        assert_eq!(NodeId::parse(a.as_str()).unwrap(), a);
        assert!(a < b);
        assert_eq!(a.as_str().len(), 26);
    }

    #[test]
    fn lowercase_is_normalised_and_garbage_rejected() {
        let id = NodeId::generate(1_700_000_000_000, 7);
        let lower = id.as_str().to_lowercase();
        assert_eq!(NodeId::parse(&lower).unwrap(), id);
        for bad in [
            "",
            "short",
            "../../etc/passwd",
            "01ARZ3NDEKTSV4RRFFQ69G5FA!",
            "ÄÄÄÄÄÄÄÄÄÄÄÄÄ",
        ] {
            assert_eq!(NodeId::parse(bad), Err(InvalidId), "{bad}");
        }
    }
}
