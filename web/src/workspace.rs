//! One workspace's page (`/workspaces/{id}`): name, branch, status, its
//! project and node, its creation log and, while it runs, four tabs:
//! Terminals, Files, Changes and Ports.
//!
//! Everything the control plane knows is rendered here and reads without
//! JavaScript. The tabs' content comes from the workspace itself: the
//! browser talks to the workspace's own origin (`WorkspaceView::url`,
//! `ws-<id>.<domain>`) through `static/workspace.js`, after trading a
//! terminal ticket from `POST /api/workspaces/{id}/terminal-ticket` for the
//! vm-agent's workspace cookie (docs/workspaces.md, "Browser access"). The
//! page's CSP allows that origin, and only that one, for `connect-src`
//! (http and ws) and `img-src` ([`workspace_csp`]). Opening a forwarded
//! port takes a port ticket from `POST /api/workspaces/{id}/port-ticket`
//! and a new tab; the public-ports switch is `POST
//! /api/workspaces/{id}/ports` (both on the app's own origin).
//!
//! While the workspace is being created, stopped or deleted the script
//! re-reads `GET /api/workspaces/{id}` and reloads the page when its status
//! changes (without JavaScript, a `<meta refresh>` does).
//!
//! Hooks for the script and the browser tests: `#workspace-head` carries
//! the URLs (`data-workspace-url`, `data-api-url`, `data-ticket-url`,
//! `data-port-ticket-url`, `data-ports-url`) and the status; the tabs are
//! `#tab-terminals`, `#tab-files`, `#tab-changes`, `#tab-ports` with panels
//! `#panel-…`; the terminal lives in `[data-testid=terminal]`, its
//! connection state in `[data-testid=terminal-state]`; the ports are the
//! rows `#ports-list [data-port=N]` with `button.port-open[data-port=N]`,
//! the public-ports switch is `#ports-public` and the details' "Forwarded
//! ports" value `#workspace-ports-public`.

use askama::Template;
use sam_wire::{WorkspaceBootLogEntry, WorkspaceView};

use crate::projects::path_segment;
use crate::time::{self, Stamp, When};
use crate::{RenderError, Viewer, asset_version};

/// What the workspace page shows besides the workspace itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkspaceContext<'a> {
    /// The project's name, when it could be loaded (else its id is shown).
    pub project_name: Option<&'a str>,
    /// The node's name, likewise.
    pub node_name: Option<&'a str>,
    /// The creation log, oldest first; `None` when it could not be loaded.
    pub events: Option<&'a [WorkspaceBootLogEntry]>,
}

/// One workspace. `now_ms` anchors "N s ago".
pub fn render_workspace_page(
    viewer: &Viewer,
    workspace: &WorkspaceView,
    context: &WorkspaceContext,
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let status = workspace.status.as_str();
    let running = status == "running";
    let steps: Vec<StepView> = context
        .events
        .unwrap_or_default()
        .iter()
        .map(|e| StepView::new(e, workspace.created_at))
        .collect();
    let page = WorkspacePage {
        title: &workspace.name,
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        ws: workspace,
        path_id: path_segment(&workspace.id),
        project_path: path_segment(&workspace.project_id),
        node_path: path_segment(&workspace.node_id),
        project_name: context.project_name.filter(|n| !n.is_empty()),
        node_name: context.node_name.filter(|n| !n.is_empty()),
        status_class: workspace_status_class(status),
        running,
        changing: is_changing(status),
        origin: workspace_origin(&workspace.url),
        error_message: workspace
            .error_message
            .as_deref()
            .filter(|m| status == "error" && !m.is_empty()),
        created: time::when(workspace.created_at, now_ms),
        status_since: time::when(workspace.status_since, now_ms),
        ready: workspace.ready_at.map(|at| ReadyView {
            stamp: time::stamp(at),
            after_creation: time::offset(at - workspace.created_at),
        }),
        log_loaded: context.events.is_some(),
        steps,
    };
    Ok(page.render()?)
}

/// Statuses the workspace leaves by itself, which the page waits out.
fn is_changing(status: &str) -> bool {
    matches!(status, "creating" | "stopping" | "deleting")
}

/// A workspace status's badge class, from a closed set (the script derives
/// the same names).
pub(crate) fn workspace_status_class(status: &str) -> &'static str {
    match status {
        "creating" => "status-creating",
        "running" => "status-running",
        "stopping" => "status-stopping",
        "stopped" => "status-stopped",
        "error" => "status-error",
        "deleting" => "status-deleting",
        "deleted" => "status-deleted",
        _ => "status-unknown",
    }
}

/// The origin of a workspace URL (`scheme://host[:port]`), if it is a
/// plain http(s) origin; `None` for anything else, which then is neither
/// allowed by the CSP nor used by the script.
pub fn workspace_origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    let ok = !host_port.is_empty()
        && host_port
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        && !host_port.starts_with(['.', '-', ':']);
    let scheme_len = url.len() - rest.len();
    ok.then(|| &url[..scheme_len + host_port.len()])
}

/// The Content-Security-Policy of a workspace page: the app's own policy,
/// plus the workspace's origin (`workspace_url`, over http(s) and ws(s))
/// for `connect-src` and `img-src` and nothing else. A URL that is not a
/// plain http(s) origin adds nothing.
pub fn workspace_csp(workspace_url: &str) -> String {
    let (connect, img) = match workspace_origin(workspace_url) {
        Some(origin) => {
            let socket = origin
                .strip_prefix("https://")
                .map(|rest| format!("wss://{rest}"))
                .or_else(|| {
                    origin
                        .strip_prefix("http://")
                        .map(|rest| format!("ws://{rest}"))
                })
                .unwrap_or_default();
            (
                format!("connect-src 'self' {origin} {socket}"),
                format!("img-src 'self' data: {origin}"),
            )
        }
        None => (
            "connect-src 'self'".to_owned(),
            "img-src 'self' data:".to_owned(),
        ),
    };
    format!(
        "default-src 'self'; style-src 'self'; {img}; {connect}; form-action 'self'; frame-ancestors 'none'"
    )
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    ws: &'a WorkspaceView,
    /// Ids encoded for URL paths.
    path_id: String,
    project_path: String,
    node_path: String,
    project_name: Option<&'a str>,
    node_name: Option<&'a str>,
    status_class: &'static str,
    /// Running: the tabs (terminal, files, changes, ports) and xterm.js.
    running: bool,
    /// Creating, stopping or deleting: the page follows the status.
    changing: bool,
    /// The workspace's origin, for the script; absent if malformed.
    origin: Option<&'a str>,
    error_message: Option<&'a str>,
    created: When,
    status_since: When,
    ready: Option<ReadyView>,
    /// False when the creation log could not be loaded.
    log_loaded: bool,
    steps: Vec<StepView<'a>>,
}

/// When the workspace first ran.
struct ReadyView {
    stamp: Stamp,
    /// `+42.1 s` after creation.
    after_creation: String,
}

/// One entry of the creation log.
struct StepView<'a> {
    step: &'a str,
    label: &'a str,
    status: &'a str,
    /// From a closed set: `phase-ok`, `phase-error`, `phase-neutral`,
    /// `phase-unknown` (the timeline styles of the node page).
    kind_class: &'static str,
    at: Stamp,
    clock: String,
    offset: String,
    detail: Option<&'a str>,
}

impl<'a> StepView<'a> {
    fn new(event: &'a WorkspaceBootLogEntry, created_at: i64) -> Self {
        let label = match event.step.as_str() {
            "clone" => "Clone",
            "branch" => "Branch",
            "git_identity" => "Git identity",
            "runtime_start" => "Runtime start",
            other => other,
        };
        let kind_class = match event.status.as_str() {
            "done" => "phase-ok",
            "failed" => "phase-error",
            "started" => "phase-neutral",
            _ => "phase-unknown",
        };
        StepView {
            step: &event.step,
            label,
            status: &event.status,
            kind_class,
            at: time::stamp(event.at),
            clock: time::clock(event.at),
            offset: time::offset(event.at - created_at),
            detail: event.detail.as_deref().filter(|d| !d.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_plain_http_origins_only() {
        assert_eq!(
            workspace_origin("http://ws-01abc.localhost:8787"),
            Some("http://ws-01abc.localhost:8787")
        );
        assert_eq!(
            workspace_origin("https://ws-01abc.example.com/"),
            Some("https://ws-01abc.example.com")
        );
        for bad in [
            "",
            "javascript:alert(1)",
            "http://",
            "http://a b",
            "http://a/path",
            "http://a;script-src *",
            "http://a'",
            "ftp://a",
            "http://.a",
            "http://*",
        ] {
            assert_eq!(workspace_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_csp_adds_the_workspace_origin_and_nothing_else() {
        let csp = workspace_csp("http://ws-01abc.localhost:8787");
        assert!(csp.contains(
            "connect-src 'self' http://ws-01abc.localhost:8787 ws://ws-01abc.localhost:8787;"
        ));
        assert!(csp.contains("img-src 'self' data: http://ws-01abc.localhost:8787;"));
        let secure = workspace_csp("https://ws-01abc.example.com");
        assert!(secure.contains(
            "connect-src 'self' https://ws-01abc.example.com wss://ws-01abc.example.com;"
        ));
        let refused = workspace_csp("http://a; script-src *");
        assert!(!refused.contains('*'));
        assert!(refused.contains("connect-src 'self';"));
        for csp in [csp, secure, refused] {
            assert!(csp.starts_with("default-src 'self'; style-src 'self'; "));
            assert!(csp.ends_with("form-action 'self'; frame-ancestors 'none'"));
        }
    }
}
