//! How a browser reaches a running workspace: the `ws-<id>` proxy's target
//! and the tickets that open it (docs/workspaces.md, "Browser access").
//!
//! The proxy itself authorises nothing: the vm-agent does, with the
//! single-use tickets minted here for the workspace's owner only and the
//! cookies it trades them for. What the proxy decides is where a request
//! may go: only to the vm-agent of the node the workspace runs on, only
//! under that workspace's own path, and only while it is running. For a
//! workspace whose public-ports switch is on, it also vouches for requests
//! to forwarded ports with a port-access token of its own, so anyone with
//! the URL can open them.

use sam_auth::{Audience, Grant, SigningKey};
use sam_domain::ids::parse_ulid;
use sam_domain::lifecycle::LifecycleStatus;
use sam_domain::workspace::WorkspaceStatus;
use sam_store::{NodeRepository, SqlDatabase, WorkspaceRepository};
use sam_wire::PortTicket;

use crate::agent_client::vm_agent_url;
use crate::error::ControlError;
use crate::workspaces::{WorkspaceSettings, owned, status_of};

/// Lifetime of a port-access ticket (traded once for the port's cookie)
/// and of the proxy's own port-access token for a public port (one
/// request).
pub const PORT_TICKET_TTL_SECS: i64 = 60;

/// The query parameter the vm-agent takes a port-access ticket from.
pub const PORT_TICKET_PARAM: &str = "port_token";

/// The header the proxy vouches for a public port's request with. A
/// browser's own copy is always removed first.
pub const PORT_ACCESS_HEADER: &str = "x-sam-port-access";

/// Where the proxy sends one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// `http://<node ip>:<vm-agent port>`.
    pub agent_url: String,
    /// `/workspaces/<ID>` or `/workspaces/<ID>/ports/<port>`; the browser's
    /// path is appended.
    pub path_prefix: String,
    /// For a public port: a port-access token to send in
    /// [`PORT_ACCESS_HEADER`].
    pub port_access: Option<String>,
}

impl ProxyTarget {
    /// The vm-agent URL for the browser's `path` (which starts with `/`)
    /// and `query` (with its `?`, or empty).
    pub fn url(&self, path: &str, query: &str) -> String {
        format!("{}{}{path}{query}", self.agent_url, self.path_prefix)
    }
}

/// Where a request to `ws-<id>` (`port` = `None`) or `ws-<id>--<port>`
/// goes. An unknown, deleted or malformed workspace is
/// [`ControlError::NotFound`]; one that exists but does not run is
/// `WorkspaceNotRunning`, on a node that does not run `NodeNotReady`.
/// Anyone may ask (the vm-agent authorises the request itself), so the
/// proxy answers all of them alike (see [`anonymous_refusal`]).
pub async fn proxy_target(
    db: &impl SqlDatabase,
    key: &SigningKey,
    settings: &WorkspaceSettings,
    vm_agent_port: u16,
    id: &str,
    port: Option<u16>,
    now: i64,
) -> Result<ProxyTarget, ControlError> {
    let id = parse_ulid(id).map_err(|_| ControlError::NotFound)?;
    let workspace = WorkspaceRepository::new(db)
        .get(&id)
        .await?
        .ok_or(ControlError::NotFound)?;
    match status_of(&workspace) {
        WorkspaceStatus::Running => {}
        WorkspaceStatus::Deleted => return Err(ControlError::NotFound),
        _ => return Err(ControlError::WorkspaceNotRunning(workspace.status)),
    }
    let node = NodeRepository::new(db)
        .get(&workspace.node_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    if !matches!(
        node.status(),
        LifecycleStatus::Ready | LifecycleStatus::Warm
    ) {
        return Err(ControlError::NodeNotReady(node.status));
    }
    let agent_url = vm_agent_url(&node, vm_agent_port).map_err(ControlError::VmAgent)?;
    let (path_prefix, port_access) = match port {
        None => (format!("/workspaces/{}", workspace.id), None),
        Some(port) => {
            let vouch = (workspace.ports_public != 0).then(|| {
                key.issue(
                    &settings.control_plane_url,
                    &port_grant(
                        Audience::PublicPort,
                        &workspace.node_id,
                        &workspace.id,
                        port,
                    ),
                    now,
                )
            });
            (format!("/workspaces/{}/ports/{port}", workspace.id), vouch)
        }
    };
    Ok(ProxyTarget {
        agent_url,
        path_prefix,
        port_access,
    })
}

/// Whether the proxy forwards a browser's `path` (already parsed, so dot
/// segments are resolved; one left over is refused all the same). On the
/// workspace's own host (`port` = `None`) nothing under `/ports/` is
/// forwarded: a forwarded app must only ever be served from its own
/// `ws-<id>--<port>.` origin, never from `ws-<id>.`, whose pages may use
/// the workspace cookie (terminals, files). The port list `/ports` is the
/// workspace page's own.
pub fn forwards_path(path: &str, port: Option<u16>) -> bool {
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return false;
    }
    port.is_some() || !path.starts_with("/ports/")
}

/// Whether the proxy passes a browser's request header on to the
/// vm-agent: not `Host` (the proxy's fetch sets the vm-agent's), not
/// anything claiming to come from the proxy ([`PORT_ACCESS_HEADER`],
/// `X-Forwarded-*`, which it sets itself) and not Cloudflare's own.
/// `name` is lower case, as the Fetch API's headers are.
pub fn passes_on(name: &str) -> bool {
    !(name == "host"
        || name == PORT_ACCESS_HEADER
        || name.starts_with("x-forwarded-")
        || name.starts_with("cf-")
        || name == "x-real-ip")
}

/// What the proxy tells an anonymous browser when [`proxy_target`] fails:
/// nothing about whether the workspace exists or runs, just that there is
/// nothing to reach (storage failures stay errors).
pub fn anonymous_refusal(error: ControlError) -> ControlError {
    match error {
        ControlError::Store(_) => error,
        _ => ControlError::NotFound,
    }
}

fn port_grant(audience: Audience, node_id: &str, workspace_id: &str, port: u16) -> Grant {
    Grant {
        port: Some(port),
        ..Grant::workspace(audience, node_id, workspace_id, PORT_TICKET_TTL_SECS)
    }
}

/// A single-use ticket to the user's running workspace's forwarded `port`,
/// and the URL that redeems it (`ws-<id>--<port>.<domain>/?port_token=…`):
/// opening it sets the port's cookie and lands on the app's `/`.
pub async fn port_ticket(
    db: &impl SqlDatabase,
    key: &SigningKey,
    settings: &WorkspaceSettings,
    user_id: &str,
    id: &str,
    port: u16,
    now: i64,
) -> Result<PortTicket, ControlError> {
    if port == 0 {
        return Err(ControlError::InvalidPort);
    }
    let workspace = owned(db, user_id, id).await?;
    if status_of(&workspace) != WorkspaceStatus::Running {
        return Err(ControlError::WorkspaceNotRunning(workspace.status));
    }
    let ticket = key.issue(
        &settings.control_plane_url,
        &port_grant(
            Audience::PortAccess,
            &workspace.node_id,
            &workspace.id,
            port,
        ),
        now,
    );
    let url = format!(
        "{}/?{PORT_TICKET_PARAM}={ticket}",
        workspace_port_url(settings, &workspace.id, port)
    );
    Ok(PortTicket {
        ticket,
        url,
        expires_at: now + PORT_TICKET_TTL_SECS * 1000,
    })
}

/// `{scheme}://ws-<lowercase id>--<port>.<base domain>[:port]`.
pub fn workspace_port_url(settings: &WorkspaceSettings, id: &str, port: u16) -> String {
    let public_port = settings
        .url_port
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!(
        "{}://ws-{}--{port}.{}{public_port}",
        settings.url_scheme,
        id.to_ascii_lowercase(),
        settings.base_domain.trim_end_matches('.')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WorkspaceSettings {
        WorkspaceSettings {
            control_plane_url: "http://api.localhost:8787".into(),
            callback_token_ttl_secs: 3600,
            base_domain: "localhost".into(),
            url_scheme: "http".into(),
            url_port: Some(8787),
        }
    }

    #[test]
    fn port_urls_use_the_lowercase_id_and_the_public_port() {
        assert_eq!(
            workspace_port_url(&settings(), "01ABC", 5173),
            "http://ws-01abc--5173.localhost:8787"
        );
        let mut production = settings();
        production.url_scheme = "https".into();
        production.url_port = None;
        production.base_domain = "example.com.".into();
        assert_eq!(
            workspace_port_url(&production, "01ABC", 80),
            "https://ws-01abc--80.example.com"
        );
    }

    #[test]
    fn forwarded_apps_are_never_served_from_the_workspace_host() {
        assert!(forwards_path("/terminals/1/ws", None));
        assert!(forwards_path("/ports", None));
        assert!(!forwards_path("/ports/3000/", None));
        assert!(!forwards_path("/ports/3000/index.html", None));
        assert!(forwards_path("/ports/3000/index.html", Some(3000)));
        assert!(forwards_path("/", Some(3000)));
        for path in ["/a/../b", "/./x", "/.."] {
            assert!(!forwards_path(path, None), "{path}");
            assert!(!forwards_path(path, Some(80)), "{path}");
        }
    }

    #[test]
    fn the_browser_cannot_vouch_for_itself() {
        for name in [
            "host",
            "x-sam-port-access",
            "x-forwarded-for",
            "x-forwarded-host",
            "cf-connecting-ip",
            "x-real-ip",
        ] {
            assert!(!passes_on(name), "{name}");
        }
        for name in [
            "cookie",
            "upgrade",
            "sec-websocket-key",
            "content-type",
            "authorization",
        ] {
            assert!(passes_on(name), "{name}");
        }
    }

    #[test]
    fn targets_append_the_browser_path_under_the_workspace() {
        let target = ProxyTarget {
            agent_url: "http://10.0.0.5:8443".into(),
            path_prefix: "/workspaces/01ABC/ports/3000".into(),
            port_access: None,
        };
        assert_eq!(
            target.url("/a/b", "?x=1"),
            "http://10.0.0.5:8443/workspaces/01ABC/ports/3000/a/b?x=1"
        );
    }
}
