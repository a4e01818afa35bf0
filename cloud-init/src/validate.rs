//! Input validation for [`crate::NodeBootstrap`].
//!
//! Each rule is stricter than the field's own grammar where a looser value
//! could be misread downstream: by PyYAML (YAML 1.1) in cloud-init, or by
//! systemd's environment-file parser.

use crate::{CloudInitError, NodeBootstrap};

/// Longest accepted node id.
const MAX_NODE_ID: usize = 64;
/// Linux `HOST_NAME_MAX` is 64 including the terminator.
const MAX_HOSTNAME: usize = 63;
/// Words YAML 1.1 reads as booleans or null when unquoted. The serialiser
/// (YAML 1.2) leaves them bare, so they must never reach a plain scalar.
const YAML11_SPECIAL_WORDS: &[&str] =
    &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];

pub(crate) fn bootstrap(b: &NodeBootstrap<'_>) -> Result<(), CloudInitError> {
    node_id(b.node_id)?;
    hostname(b.hostname)?;
    url("control_plane_url", b.control_plane_url)?;
    url("app_origin", b.app_origin)?;
    origin_only("app_origin", b.app_origin)?;
    url("agent_download_url", b.agent_download_url)?;
    callback_token(b.callback_token)?;
    if b.heartbeat_interval_secs == 0 {
        return Err(CloudInitError::InvalidHeartbeatInterval);
    }
    if b.vm_agent_port == 0 {
        return Err(CloudInitError::InvalidPort);
    }
    Ok(())
}

fn node_id(raw: &str) -> Result<(), CloudInitError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_NODE_ID
        && raw
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(CloudInitError::InvalidNodeId { value: clip(raw) })
    }
}

fn hostname(raw: &str) -> Result<(), CloudInitError> {
    let reason = if raw.is_empty() || raw.len() > MAX_HOSTNAME {
        Some("expected 1-63 characters")
    } else if !raw
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    {
        Some("only letters, digits, '-' and '.' are allowed")
    } else if !raw.as_bytes()[0].is_ascii_alphabetic() {
        // A leading letter rules out every YAML 1.1 number and timestamp form.
        Some("must start with a letter")
    } else if raw
        .split('.')
        .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        Some("labels must be non-empty and must not start or end with '-'")
    } else if YAML11_SPECIAL_WORDS
        .iter()
        .any(|w| w.eq_ignore_ascii_case(raw))
    {
        Some("reads as a boolean or null in YAML 1.1")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CloudInitError::InvalidHostname {
            value: clip(raw),
            reason,
        }),
    }
}

/// An origin is a scheme and a host (and port): nothing after them.
fn origin_only(field: &'static str, raw: &str) -> Result<(), CloudInitError> {
    let after_scheme = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    if after_scheme.contains(['/', '?', '#', '@']) {
        return Err(CloudInitError::InvalidUrl {
            field,
            value: clip(raw),
            reason: "must be an origin: no path, query, fragment or user",
        });
    }
    Ok(())
}

fn url(field: &'static str, raw: &str) -> Result<(), CloudInitError> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    let reason = match rest {
        None => Some("must start with http:// or https://"),
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Some("has no host"),
        // Graphic ASCII excludes whitespace, newlines and control characters;
        // quotes, backslash and `$` are special to systemd's environment-file
        // parser and have percent-encoded forms anyway.
        Some(_)
            if !raw
                .bytes()
                .all(|c| c.is_ascii_graphic() && !b"\"'\\$`".contains(&c)) =>
        {
            Some("must be printable ASCII without whitespace, quotes, '\\', '$' or '`'")
        }
        Some(_) => None,
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CloudInitError::InvalidUrl {
            field,
            value: clip(raw),
            reason,
        }),
    }
}

/// A compact JWS: three non-empty base64url segments joined by dots.
///
/// Requiring exactly two dots also guarantees that the bare scalar the token
/// becomes in YAML is a string for PyYAML too (no YAML 1.1 number, boolean
/// or timestamp contains two dots and only these characters).
fn callback_token(raw: &str) -> Result<(), CloudInitError> {
    let base64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    let segments: Vec<&str> = raw.split('.').collect();
    if segments.len() != 3 {
        return Err(CloudInitError::InvalidCallbackToken {
            reason: "expected three dot-separated segments",
        });
    }
    if !segments.iter().all(|s| base64url(s)) {
        return Err(CloudInitError::InvalidCallbackToken {
            reason: "segments must be non-empty base64url",
        });
    }
    Ok(())
}

/// Echoed input is clipped so an error cannot reflect megabytes into logs.
fn clip(raw: &str) -> String {
    raw.chars().take(40).collect()
}
