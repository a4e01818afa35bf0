//! Projects: the dashboard, the new-project page and one project's page.

use askama::Template;
use sam_wire::{NodeView, WorkspaceView};

use crate::time::{self, When};
use crate::workspace::workspace_status_class;
use crate::{RenderError, Viewer, asset_version};

/// One project on the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectCard {
    /// Project id (ULID); the card links to `/projects/{id}`.
    pub id: String,
    /// The user's name for the project.
    pub name: String,
    /// `owner/name` of the GitHub repository.
    pub repo_full_name: String,
    pub default_branch: String,
    /// `active`, `repository_missing` or `installation_missing`; anything
    /// else shows as unknown.
    pub status: String,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

/// A GitHub App installation the user can create projects from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallationOption {
    /// GitHub's installation id (as text, as the API stores it).
    pub id: String,
    /// The user or organisation the app is installed on.
    pub account_login: String,
    /// Repositories the installation grants access to; may be empty.
    pub repositories: Vec<RepositoryOption>,
}

/// A repository offered in the new-project form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryOption {
    /// GitHub's numeric repository id.
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    pub default_branch: String,
    pub private: bool,
}

/// One project, for its own page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectDetail {
    pub id: String,
    pub name: String,
    /// `owner/name`.
    pub repo_full_name: String,
    /// `https://github.com/owner/name`; linked only if it is an http(s) URL.
    pub repo_html_url: String,
    pub default_branch: String,
    /// Same closed set as [`ProjectCard::status`].
    pub status: String,
    /// Project defaults; `None` means the platform default.
    pub vm_size: Option<String>,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub agent: Option<String>,
    /// How long nodes that worked for the project stay warm, in seconds.
    pub warm_node_timeout_secs: Option<u64>,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// The platform's warm node timeout in seconds, shown as the placeholder of
/// the project's own (`sam_domain::projects::DEFAULT_WARM_NODE_TIMEOUT_SECS`).
const DEFAULT_WARM_NODE_TIMEOUT_SECS: u64 = 30 * 60;
/// The range a project's warm node timeout may take, in seconds
/// (`sam_domain::projects::{MIN,MAX}_WARM_NODE_TIMEOUT_SECS`).
const WARM_NODE_TIMEOUT_SECS_RANGE: (u64, u64) = (10, 86_400);

/// The values the settings selects offer (from the domain catalogue).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsOptions {
    /// `small`, `medium`, `large`.
    pub vm_sizes: Vec<String>,
    /// `hetzner`, ….
    pub providers: Vec<String>,
    /// `fsn1`, `hel1`, ….
    pub locations: Vec<String>,
    /// Agent ids, e.g. `claude-code`.
    pub agents: Vec<String>,
}

/// A stored agent credential, masked (the user's own or a project override).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCredentialRow {
    /// Agent id, e.g. `claude-code`.
    pub agent: String,
    /// `api_key` or `oauth_token`.
    pub kind: String,
    /// E.g. `sk-…abcd`; never the secret.
    pub masked: String,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

/// A project's workspaces, and the nodes a new one can be created on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProjectWorkspaces<'a> {
    /// The project's workspaces that are not deleted, newest first.
    pub workspaces: &'a [WorkspaceView],
    /// The user's nodes: the new-workspace form offers the `ready` ones
    /// (`POST /api/workspaces` needs one; a warm node must be claimed first).
    pub nodes: &'a [NodeView],
}

/// The credential kinds an agent key form offers.
pub(crate) const CREDENTIAL_KINDS: &[&str] = &["api_key", "oauth_token"];

/// The user's projects. `now_ms` anchors "updated N ago".
pub fn render_dashboard_page(
    viewer: &Viewer,
    projects: &[ProjectCard],
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let page = DashboardPage {
        title: "Projects",
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        projects: projects
            .iter()
            .map(|p| CardView {
                card: p,
                status_class: project_status_class(&p.status),
                status_label: project_status_label(&p.status),
                updated: time::when(p.updated_at, now_ms),
            })
            .collect(),
    };
    Ok(page.render()?)
}

/// Installing the GitHub App (`install_url`, normally `/github/install`) and,
/// once installations exist, the form that creates a project from one of
/// their repositories.
pub fn render_new_project_page(
    viewer: &Viewer,
    install_url: &str,
    installations: &[InstallationOption],
    version: &str,
) -> Result<String, RenderError> {
    let page = NewProjectPage {
        title: "New project",
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        install_url,
        installations,
        any_repositories: installations.iter().any(|i| !i.repositories.is_empty()),
    };
    Ok(page.render()?)
}

/// One project: its workspaces with the form for a new one, its settings
/// form, per-project agent keys and deletion.
pub fn render_project_page(
    viewer: &Viewer,
    project: &ProjectDetail,
    options: &SettingsOptions,
    agent_overrides: &[AgentCredentialRow],
    workspaces: &ProjectWorkspaces,
    version: &str,
    now_ms: i64,
) -> Result<String, RenderError> {
    let title = project.name.clone();
    let usable = |n: &&NodeView| n.removed_at.is_none();
    let page = ProjectPage {
        title: &title,
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        project,
        repo_link: safe_http_url(&project.repo_html_url),
        status_class: project_status_class(&project.status),
        status_label: project_status_label(&project.status),
        created: time::when(project.created_at, now_ms),
        updated: time::when(project.updated_at, now_ms),
        vm_sizes: choices(&options.vm_sizes, project.vm_size.as_deref()),
        providers: choices(&options.providers, project.provider.as_deref()),
        locations: choices(&options.locations, project.location.as_deref()),
        agents: choices(&options.agents, project.agent.as_deref()),
        warm_default_secs: DEFAULT_WARM_NODE_TIMEOUT_SECS,
        warm_min_secs: WARM_NODE_TIMEOUT_SECS_RANGE.0,
        warm_max_secs: WARM_NODE_TIMEOUT_SECS_RANGE.1,
        agent_options: &options.agents,
        kinds: CREDENTIAL_KINDS,
        overrides: credential_rows(agent_overrides, now_ms),
        agent_key_prefix: format!(
            "/api/projects/{}/agent-credentials/",
            path_segment(&project.id)
        ),
        agent_key_template: format!(
            "/api/projects/{}/agent-credentials/{{agent}}",
            path_segment(&project.id)
        ),
        workspaces: workspaces
            .workspaces
            .iter()
            .filter(|w| w.project_id == project.id && w.status != "deleted")
            .map(|w| WorkspaceRow {
                ws: w,
                path_id: path_segment(&w.id),
                status_class: workspace_status_class(&w.status),
                node_name: workspaces
                    .nodes
                    .iter()
                    .find(|n| n.id == w.node_id)
                    .map(|n| n.name.as_str()),
                created: time::when(w.created_at, now_ms),
            })
            .collect(),
        ready_nodes: workspaces
            .nodes
            .iter()
            .filter(usable)
            .filter(|n| n.status == "ready")
            .collect(),
        warm_nodes: workspaces
            .nodes
            .iter()
            .filter(usable)
            .filter(|n| n.status == "warm")
            .count(),
    };
    Ok(page.render()?)
}

/// One workspace in the project's list.
struct WorkspaceRow<'a> {
    ws: &'a WorkspaceView,
    path_id: String,
    status_class: &'static str,
    node_name: Option<&'a str>,
    created: When,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    projects: Vec<CardView<'a>>,
}

struct CardView<'a> {
    card: &'a ProjectCard,
    status_class: &'static str,
    status_label: &'a str,
    updated: When,
}

#[derive(Template)]
#[template(path = "new_project.html")]
struct NewProjectPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    install_url: &'a str,
    installations: &'a [InstallationOption],
    any_repositories: bool,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    project: &'a ProjectDetail,
    repo_link: Option<&'a str>,
    status_class: &'static str,
    status_label: &'a str,
    created: When,
    updated: When,
    vm_sizes: Vec<Choice<'a>>,
    providers: Vec<Choice<'a>>,
    locations: Vec<Choice<'a>>,
    agents: Vec<Choice<'a>>,
    /// Placeholder of the warm node timeout field (empty = this default).
    warm_default_secs: u64,
    warm_min_secs: u64,
    warm_max_secs: u64,
    agent_options: &'a [String],
    kinds: &'static [&'static str],
    overrides: Vec<CredentialView<'a>>,
    /// Delete URL of a project key, without the agent id.
    agent_key_prefix: String,
    /// PUT URL of a project key; forms.js fills `{agent}`.
    agent_key_template: String,
    workspaces: Vec<WorkspaceRow<'a>>,
    /// Nodes the new-workspace form offers.
    ready_nodes: Vec<&'a NodeView>,
    /// Warm nodes, which would need a claim first.
    warm_nodes: usize,
}

/// One `<option>` of a settings select.
pub(crate) struct Choice<'a> {
    pub value: &'a str,
    pub selected: bool,
}

/// The offered values with the current one selected. A current value the
/// catalogue no longer offers is kept as an extra option, so saving the form
/// does not silently change it.
pub(crate) fn choices<'a>(offered: &'a [String], current: Option<&'a str>) -> Vec<Choice<'a>> {
    let mut out: Vec<Choice<'a>> = offered
        .iter()
        .map(|value| Choice {
            value,
            selected: current == Some(value.as_str()),
        })
        .collect();
    if let Some(current) = current.filter(|c| !c.is_empty() && !out.iter().any(|o| o.selected)) {
        out.push(Choice {
            value: current,
            selected: true,
        });
    }
    out
}

/// An agent credential row as the tables show it.
pub(crate) struct CredentialView<'a> {
    pub row: &'a AgentCredentialRow,
    pub updated: When,
}

pub(crate) fn credential_rows(rows: &[AgentCredentialRow], now_ms: i64) -> Vec<CredentialView<'_>> {
    rows.iter()
        .map(|row| CredentialView {
            row,
            updated: time::when(row.updated_at, now_ms),
        })
        .collect()
}

fn project_status_class(status: &str) -> &'static str {
    match status {
        "active" => "status-active",
        "repository_missing" => "status-repo-missing",
        "installation_missing" => "status-install-missing",
        _ => "status-unknown",
    }
}

fn project_status_label(status: &str) -> &str {
    match status {
        "active" => "active",
        "repository_missing" => "repository missing",
        "installation_missing" => "installation missing",
        other => other,
    }
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved
/// characters), so an id can never add path segments or a query.
pub(crate) fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// `url` if it is an absolute http(s) URL; anything else (`javascript:`,
/// relative paths) is not linked.
pub(crate) fn safe_http_url(url: &str) -> Option<&str> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("01JABC-x_y.z~"), "01JABC-x_y.z~");
        assert_eq!(path_segment("a/../b?c"), "a%2F..%2Fb%3Fc");
        assert_eq!(path_segment("{agent}"), "%7Bagent%7D");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn only_http_urls_are_linked() {
        assert_eq!(
            safe_http_url("https://github.com/a/b"),
            Some("https://github.com/a/b")
        );
        assert!(safe_http_url("HTTP://x").is_some());
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "",
            "data:text/html,x",
            "https:/x",
        ] {
            assert_eq!(safe_http_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_current_value_outside_the_catalogue_is_kept() {
        let offered = vec!["small".to_owned(), "medium".to_owned()];
        let picked = choices(&offered, Some("medium"));
        assert_eq!(picked.len(), 2);
        assert!(picked[1].selected);
        let legacy = choices(&offered, Some("huge"));
        assert_eq!(legacy.len(), 3);
        assert_eq!(legacy[2].value, "huge");
        assert!(legacy[2].selected);
        assert!(choices(&offered, None).iter().all(|c| !c.selected));
    }
}
