//! Server-rendered HTML views (askama templates in `web/templates/`) and the
//! static assets they link to.
//!
//! Pure: callers pass in everything a page shows, including `now` and the
//! build version, so the same output comes from the Worker and from tests.
//! askama escapes every interpolated value for HTML, so user-chosen strings
//! (node names, provider error messages) cannot inject markup.
//!
//! Pages for signed-in users take a [`Viewer`] and show the main navigation.
//! Their forms talk to the JSON API through `static/forms.js`: a form marked
//! `data-api="METHOD"` is sent as JSON with `fetch` (see that file's header
//! for the full contract). Status badges get CSS classes from closed sets,
//! so an unexpected status string never becomes an arbitrary class name.
//!
//! A workspace's page ([`render_workspace_page`]) also talks to the
//! workspace's own origin, through `static/workspace.js` and xterm.js (an
//! npm package that `build.rs` vendors into the asset table); its CSP
//! comes from [`workspace_csp`].
//!
//! A project's chat ([`render_chat_page`]) renders its sessions and the
//! selected session's transcript ([`build_transcript`]), which
//! `static/chat.js` continues live over the session's WebSocket; the task
//! list and a task's page are [`render_tasks_page`] and [`render_task_page`].

mod admin;
mod assets;
mod node;
mod projects;
mod settings;
mod tasks;
mod time;
mod transcript;
mod workspace;

use askama::Template;
use sam_wire::NodeView;

pub use admin::{UserRow, render_admin_users_page};
pub use assets::{STATIC_PREFIX, StaticAsset, asset_names, asset_version, static_asset};
pub use node::{BootEventRow, render_node_page};
pub use projects::{
    AgentCredentialRow, InstallationOption, ProjectCard, ProjectDetail, ProjectWorkspaces,
    RepositoryOption, SettingsOptions, render_dashboard_page, render_new_project_page,
    render_project_page,
};
pub use settings::{CloudCredentialRow, TokenRow, render_settings_page};
pub use tasks::{
    ChatProject, ChatSelection, SessionSummary, TaskLogRow, TaskOptions, TaskSummary,
    render_chat_page, render_task_page, render_tasks_page,
};
pub use transcript::{
    ChatItem, ChatPrompt, DiffLine, Permission, PermissionOption, PlanEntry, ToolCall, ToolContent,
    Transcript, build_transcript, line_diff,
};
pub use workspace::{WorkspaceContext, render_workspace_page, workspace_csp, workspace_origin};

/// The signed-in user, for the header: the login name, the sign-out button
/// and the navigation (with the Admin link only for admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer<'a> {
    /// GitHub (or developer) login, shown next to "Sign out".
    pub login: &'a str,
    /// Admins and superadmins: shows the Admin link.
    pub is_admin: bool,
}

/// A page could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template rendering failed: {0}")]
    Template(#[from] askama::Error),
}

/// The nodes overview. `now_ms` (epoch milliseconds) anchors "N s ago".
pub fn render_nodes_page(
    viewer: Option<&Viewer>,
    nodes: &[NodeView],
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let page = NodesPage {
        title: "Nodes",
        version,
        asset_version: asset_version(),
        active_nav: "nodes",
        viewer,
        nodes: nodes.iter().map(|n| NodeRow::new(n, now_ms)).collect(),
    };
    Ok(page.render()?)
}

/// The sign-in page. With `dev_login_enabled` it offers the local developer
/// sign-in form; otherwise it says sign-in is unavailable.
pub fn render_login_page(
    dev_login_enabled: bool,
    github_enabled: bool,
    version: &str,
) -> Result<String, RenderError> {
    let page = LoginPage {
        title: "Sign in",
        version,
        asset_version: asset_version(),
        active_nav: "",
        viewer: None,
        dev_login_enabled,
        github_enabled,
    };
    Ok(page.render()?)
}

/// For accounts that signed up while approval is required.
pub fn render_pending_page(login: &str, version: &str) -> Result<String, RenderError> {
    let page = PendingPage {
        title: "Waiting for approval",
        version,
        asset_version: asset_version(),
        active_nav: "",
        viewer: None,
        login,
    };
    Ok(page.render()?)
}

#[derive(Template)]
#[template(path = "pending.html")]
struct PendingPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    login: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    dev_login_enabled: bool,
    github_enabled: bool,
}

/// A full-page error, for browser requests that fail.
pub fn render_error_page(
    status: u16,
    code: &str,
    message: &str,
    version: &str,
) -> Result<String, RenderError> {
    let title = format!("Error {status}");
    let page = ErrorPage {
        title: &title,
        version,
        asset_version: asset_version(),
        active_nav: "",
        viewer: None,
        status,
        code,
        message,
    };
    Ok(page.render()?)
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    nodes: Vec<NodeRow<'a>>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    status: u16,
    code: &'a str,
    message: &'a str,
}

/// One node as the table shows it.
struct NodeRow<'a> {
    id: &'a str,
    name: &'a str,
    provider: &'a str,
    size: &'a str,
    server_type: &'a str,
    location: &'a str,
    status: &'a str,
    /// CSS class from a closed set, so an unexpected status string can never
    /// become an arbitrary class name.
    status_class: &'static str,
    /// Who holds a `ready` node: "you" for the user's own hold.
    holder: Option<&'a str>,
    /// The user asked to delete the node; it leaves the list once destroyed.
    removing: bool,
    /// What happens next, as on the node's page.
    deadline: Option<node::Deadline>,
    health: &'a str,
    health_class: &'static str,
    error_message: Option<&'a str>,
    ip_address: Option<&'a str>,
    created: time::Stamp,
    last_heartbeat: Option<time::When>,
}

impl<'a> NodeRow<'a> {
    fn new(node: &'a NodeView, now_ms: i64) -> Self {
        let last_heartbeat = node.last_heartbeat_at.map(|at| time::when(at, now_ms));
        NodeRow {
            id: &node.id,
            name: &node.name,
            provider: &node.provider,
            size: &node.size,
            server_type: &node.server_type,
            location: &node.location,
            status: &node.status,
            status_class: status_class(&node.status),
            holder: node.claimed_by.as_deref().map(node::holder),
            removing: node.removed_at.is_some() && node.status != "destroyed",
            deadline: node::Deadline::of(node, now_ms),
            health: &node.health,
            health_class: health_class(&node.health),
            // A message is only worth showing while the node is in error;
            // stale text on a later, healthy node would mislead.
            error_message: node
                .error_message
                .as_deref()
                .filter(|m| node.status == "error" && !m.is_empty()),
            ip_address: node.ip_address.as_deref().filter(|ip| !ip.is_empty()),
            created: time::stamp(node.created_at),
            last_heartbeat,
        }
    }
}

/// A node status's badge class: `status-<status>` for the statuses the
/// lifecycle knows (`node-live.js` derives the same names), `status-unknown`
/// for anything else.
pub(crate) fn status_class(status: &str) -> &'static str {
    match status {
        "provisioning" => "status-provisioning",
        "booting" => "status-booting",
        "ready" => "status-ready",
        "warm" => "status-warm",
        "destroying" => "status-destroying",
        "destroyed" => "status-destroyed",
        "error" => "status-error",
        _ => "status-unknown",
    }
}

/// A node health's dot class, from a closed set like [`status_class`].
pub(crate) fn health_class(health: &str) -> &'static str {
    match health {
        "healthy" => "health-healthy",
        "stale" => "health-stale",
        "unhealthy" => "health-unhealthy",
        _ => "health-unknown",
    }
}
