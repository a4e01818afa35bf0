//! The signed-in pages of the `app.` host: load what a page shows through
//! the same use cases the API uses, then render it with `sam_web`.

use sam_control::agent_credentials::list_agent_credentials;
use sam_control::projects::{
    ProjectView, get_project, installation_repositories, list_installations, list_projects,
};
use sam_control::workspaces::{get_workspace, list_workspaces, workspace_events, workspace_view};
use sam_control::{list_nodes, node_view, projects::RepositoryInfo};
use sam_domain::agents::AgentKind;
use sam_domain::catalog::{ProviderKind, VmSize, locations};
use sam_domain::ids::NodeId;
use sam_store::{
    CredentialRepository, NodeRepository, TokenRepository, UserRecord, UserRepository,
};
use sam_web::{
    AgentCredentialRow, BootEventRow, CloudCredentialRow, InstallationOption, ProjectCard,
    ProjectDetail, ProjectWorkspaces, RepositoryOption, SettingsOptions, TokenRow, UserRow, Viewer,
    WorkspaceContext,
};

use crate::bindings::{d1, now_ms};
use crate::config::VERSION;
use crate::error::{ApiError, ApiResult};
use crate::routes::Ctx;

fn viewer(user: &UserRecord) -> Viewer<'_> {
    Viewer {
        login: &user.login,
        is_admin: matches!(user.role.as_str(), "admin" | "superadmin"),
    }
}

fn rendered(r: Result<String, sam_web::RenderError>) -> ApiResult<String> {
    r.map_err(|e| ApiError::internal("page rendering", &e))
}

/// Every choice the settings selects offer, from the catalogue.
fn options() -> SettingsOptions {
    let providers = ProviderKind::ALL;
    SettingsOptions {
        vm_sizes: VmSize::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        providers: providers.iter().map(|p| p.as_str().to_owned()).collect(),
        locations: providers
            .iter()
            .flat_map(|p| locations(*p).iter().map(|l| (*l).to_owned()))
            .collect(),
        agents: AgentKind::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
    }
}

fn agent_rows(
    views: Vec<sam_control::agent_credentials::AgentCredentialView>,
) -> Vec<AgentCredentialRow> {
    views
        .into_iter()
        .map(|c| AgentCredentialRow {
            agent: c.agent,
            kind: c.kind,
            masked: c.masked,
            updated_at: c.updated_at,
        })
        .collect()
}

pub async fn dashboard(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let db = d1(&ctx.env)?;
    let cards: Vec<ProjectCard> = list_projects(&db, &user.id)
        .await?
        .into_iter()
        .map(|p| ProjectCard {
            id: p.id,
            name: p.name,
            repo_full_name: p.repo_full_name,
            default_branch: p.default_branch,
            status: p.status,
            updated_at: p.updated_at,
        })
        .collect();
    rendered(sam_web::render_dashboard_page(
        &viewer(user),
        &cards,
        now_ms(),
        VERSION,
    ))
}

pub async fn nodes(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let db = d1(&ctx.env)?;
    let now = now_ms();
    let nodes = list_nodes(&db, &ctx.config.nodes, &user.id, now).await?;
    rendered(sam_web::render_nodes_page(
        Some(&viewer(user)),
        &nodes,
        now,
        VERSION,
    ))
}

/// One node: `/nodes/{id}`. Looked up by (id, owner) like the API, so
/// another user's node, an unknown id and a malformed one are the same 404.
pub async fn node(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let no_such_node = || ApiError::new(404, "not_found", "there is no such node");
    let path = ctx.req.path();
    let id = NodeId::parse(path.trim_start_matches("/nodes/"))
        .map_err(|_| no_such_node())?
        .to_string();
    let db = d1(&ctx.env)?;
    let record = NodeRepository::new(&db)
        .get_owned(&user.id, &id)
        .await?
        .ok_or_else(no_such_node)?;
    let now = now_ms();
    let view = node_view(&record, &ctx.config.nodes, now);
    // The page is still worth showing without its boot log; the next
    // refresh tries again.
    let boot_log: Option<Vec<BootEventRow>> = match super::nodes::boot_log(&ctx.env, &id).await {
        Ok(events) => Some(
            events
                .into_iter()
                .map(|e| BootEventRow {
                    at: e.at,
                    phase: serde_json::to_value(e.phase)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    detail: e.detail,
                })
                .collect(),
        ),
        Err(e) => {
            worker::console_error!("boot log for the node page: {}: {}", e.code, e.message);
            None
        }
    };
    rendered(sam_web::render_node_page(
        &viewer(user),
        &view,
        boot_log.as_deref(),
        now,
        VERSION,
    ))
}

pub async fn new_project(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let db = d1(&ctx.env)?;
    let mut installations = Vec::new();
    let linked = list_installations(&db, &user.id).await?;
    if !linked.is_empty() {
        let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
        for installation in linked {
            let repositories: Vec<RepositoryInfo> =
                installation_repositories(&db, &github, &user.id, &installation.id).await?;
            installations.push(InstallationOption {
                id: installation.id,
                account_login: installation.account_login,
                repositories: repositories
                    .into_iter()
                    .map(|r| RepositoryOption {
                        id: r.id,
                        full_name: r.full_name,
                        default_branch: r.default_branch,
                        private: r.private,
                    })
                    .collect(),
            });
        }
    }
    rendered(sam_web::render_new_project_page(
        &viewer(user),
        "/github/install",
        &installations,
        VERSION,
    ))
}

pub async fn project(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let path = ctx.req.path();
    let id = path.trim_start_matches("/projects/");
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::new(404, "not_found", "there is no such page"));
    }
    let db = d1(&ctx.env)?;
    let p: ProjectView = get_project(&db, &user.id, id).await?;
    let overrides = agent_rows(list_agent_credentials(&db, &user.id, Some(&p.id)).await?);
    let now = now_ms();
    // The user's workspaces (the page keeps this project's) and nodes (the
    // new-workspace form offers the ready ones).
    let workspaces = list_workspaces(&db, &ctx.config.workspace_settings(), &user.id).await?;
    let nodes = list_nodes(&db, &ctx.config.nodes, &user.id, now).await?;
    let detail = ProjectDetail {
        id: p.id,
        name: p.name,
        repo_full_name: p.repo_full_name,
        repo_html_url: p.repo_html_url,
        default_branch: p.default_branch,
        status: p.status,
        vm_size: p.settings.vm_size,
        warm_node_timeout_secs: p.settings.warm_node_timeout_secs,
        provider: p.settings.provider,
        location: p.settings.location,
        agent: p.settings.agent,
        created_at: p.created_at,
        updated_at: p.updated_at,
    };
    rendered(sam_web::render_project_page(
        &viewer(user),
        &detail,
        &options(),
        &overrides,
        &ProjectWorkspaces {
            workspaces: &workspaces,
            nodes: &nodes,
        },
        VERSION,
        now,
    ))
}

/// One workspace: `/workspaces/{id}`, with the Content-Security-Policy that
/// lets the page reach the workspace's own origin (and no other). Looked up
/// by (id, owner) like the API, so another user's workspace, an unknown id
/// and a malformed one are the same 404.
pub async fn workspace(ctx: &Ctx, user: &UserRecord) -> ApiResult<(String, String)> {
    let path = ctx.req.path();
    let id = path.trim_start_matches("/workspaces/");
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::new(404, "not_found", "there is no such page"));
    }
    let db = d1(&ctx.env)?;
    let record = get_workspace(&db, &user.id, id).await?;
    let view = workspace_view(&record, &ctx.config.workspace_settings());
    // The page is still worth showing without its log or the names of its
    // project and node; the next refresh tries again.
    let events = match workspace_events(&db, &user.id, &record.id).await {
        Ok(events) => Some(events),
        Err(e) => {
            worker::console_error!("workspace log for its page: {e}");
            None
        }
    };
    let project_name = get_project(&db, &user.id, &record.project_id)
        .await
        .ok()
        .map(|p| p.name);
    let node_name = NodeRepository::new(&db)
        .get_owned(&user.id, &record.node_id)
        .await
        .ok()
        .flatten()
        .map(|n| n.name);
    let body = rendered(sam_web::render_workspace_page(
        &viewer(user),
        &view,
        &WorkspaceContext {
            project_name: project_name.as_deref(),
            node_name: node_name.as_deref(),
            events: events.as_deref(),
        },
        now_ms(),
        VERSION,
    ))?;
    Ok((body, sam_web::workspace_csp(&view.url)))
}

pub async fn settings(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let db = d1(&ctx.env)?;
    let cloud: Vec<CloudCredentialRow> = CredentialRepository::new(&db)
        .list(&user.id)
        .await?
        .into_iter()
        .map(|c| CloudCredentialRow {
            provider: c.provider,
            masked: c.masked,
            updated_at: c.updated_at,
        })
        .collect();
    let agents = agent_rows(list_agent_credentials(&db, &user.id, None).await?);
    let tokens: Vec<TokenRow> = TokenRepository::new(&db)
        .list(&user.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    rendered(sam_web::render_settings_page(
        &viewer(user),
        &cloud,
        &agents,
        &tokens,
        &options(),
        VERSION,
        now_ms(),
    ))
}

pub async fn admin_users(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let me = viewer(user);
    if !me.is_admin {
        return Err(ApiError::new(
            403,
            "forbidden",
            "only administrators can manage accounts",
        ));
    }
    let db = d1(&ctx.env)?;
    let users: Vec<UserRow> = UserRepository::new(&db)
        .list()
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            login: u.login,
            name: u.name,
            role: u.role,
            status: u.status,
            created_at: u.created_at,
        })
        .collect();
    rendered(sam_web::render_admin_users_page(
        &me,
        &users,
        VERSION,
        now_ms(),
    ))
}
