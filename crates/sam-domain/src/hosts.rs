//! Which surface a request is for, decided by its Host header.
//!
//! Under `BASE_DOMAIN` (e.g. `example.com`, or `localhost` locally):
//! `api.` is the JSON API, `app.` the web UI, `ws-<id>.` a workspace and
//! `ws-<id>--<port>.` a forwarded port in it. Anything else is unknown.

use crate::ids::parse_ulid;

/// The surface a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    Api,
    App,
    Workspace { id: String },
    WorkspacePort { id: String, port: u16 },
    Unknown,
}

/// Classifies `host` (with or without `:port`) against `base_domain`.
pub fn classify(host: &str, base_domain: &str) -> HostKind {
    let host = strip_port(host).to_ascii_lowercase();
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    let Some(label) = host
        .strip_suffix(&base)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return HostKind::Unknown;
    };
    match label {
        "api" => HostKind::Api,
        "app" => HostKind::App,
        _ => classify_workspace(label).unwrap_or(HostKind::Unknown),
    }
}

fn classify_workspace(label: &str) -> Option<HostKind> {
    let rest = label.strip_prefix("ws-")?;
    match rest.split_once("--") {
        None => Some(HostKind::Workspace {
            id: parse_ulid(rest).ok()?,
        }),
        Some((id, port)) => {
            let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
            Some(HostKind::WorkspacePort {
                id: parse_ulid(id).ok()?,
                port,
            })
        }
    }
}

fn strip_port(host: &str) -> &str {
    // IPv6 literals are never our hosts; a plain rsplit is enough.
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01HZX3Y0000000000000000000";

    #[test]
    fn classifies_each_surface() {
        assert_eq!(classify("api.localhost:8787", "localhost"), HostKind::Api);
        assert_eq!(classify("APP.example.com", "example.com"), HostKind::App);
        assert_eq!(
            classify(
                &format!("ws-{}.example.com", ID.to_lowercase()),
                "example.com"
            ),
            HostKind::Workspace { id: ID.to_owned() }
        );
        assert_eq!(
            classify(&format!("ws-{ID}--3000.localhost:8787"), "localhost"),
            HostKind::WorkspacePort {
                id: ID.to_owned(),
                port: 3000
            }
        );
    }

    #[test]
    fn rejects_lookalikes() {
        for host in [
            "localhost:8787",
            "api.localhost.evil.com",
            "evilapi.localhost",
            "x.api.localhost",
            "ws-nope.localhost",
            &format!("ws-{ID}--0.localhost"),
            &format!("ws-{ID}--99999.localhost"),
            "127.0.0.1:8787",
        ] {
            assert_eq!(classify(host, "localhost"), HostKind::Unknown, "{host}");
        }
    }
}
