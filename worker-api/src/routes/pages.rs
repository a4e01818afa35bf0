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
use sam_durable_objects::project_data::{SessionRecord, SessionTranscript};
use sam_store::{
    CredentialRepository, NodeRepository, TaskRepository, TokenRepository, UserRecord,
    UserRepository,
};
use sam_web::{
    AgentCredentialRow, BootEventRow, ChatProject, ChatPrompt, ChatSelection, CloudCredentialRow,
    InstallationOption, ProjectCard, ProjectDetail, ProjectWorkspaces, RepositoryOption,
    SessionSummary, SettingsOptions, TaskLogRow, TaskOptions, TaskSummary, TokenRow, UserRow,
    Viewer, WorkspaceContext,
};
use worker::Method;

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

/// The `{id}` of `/projects/{id}/<page>`, or a 404.
fn project_path_id<'a>(path: &'a str, page: &str) -> ApiResult<&'a str> {
    path.strip_prefix("/projects/")
        .and_then(|rest| rest.strip_suffix(page))
        .and_then(|rest| rest.strip_suffix('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| ApiError::new(404, "not_found", "there is no such page"))
}

/// A `GET` to the project's chat (`ProjectData`), decoded; `None` for a 404.
async fn project_data_get<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    project_id: &str,
    path: &str,
) -> ApiResult<Option<T>> {
    let stub = super::tasks::project_data(&ctx.env, project_id)?;
    let mut resp = super::tasks::call(&stub, Method::Get, path, None).await?;
    match resp.status_code() {
        404 => Ok(None),
        200..=299 => Ok(Some(resp.json().await?)),
        status => Err(ApiError::internal(
            "chat storage",
            &format!("{path} answered {status}"),
        )),
    }
}

/// A project's chat: `/projects/{id}/chat[?session=<sid>]`. The sessions
/// and the selected one's transcript come from the project's chat; when
/// they cannot be loaded the page still renders (the script then loads the
/// transcript over the live stream). An unknown `session` is a 404.
pub async fn chat(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let path = ctx.req.path();
    let id = project_path_id(&path, "chat")?;
    let db = d1(&ctx.env)?;
    let p: ProjectView = get_project(&db, &user.id, id).await?;
    let wanted = ctx.req.url().ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "session")
            .map(|(_, v)| v.into_owned())
    });
    let sessions: Option<Vec<SessionSummary>> =
        match project_data_get::<Vec<SessionRecord>>(ctx, &p.id, "/sessions").await {
            Ok(list) => Some(
                list.unwrap_or_default()
                    .into_iter()
                    .map(|s| SessionSummary {
                        id: s.id,
                        task_id: s.task_id,
                        agent: s.agent,
                        title: s.title,
                        status: s.status,
                        created_at: s.created_at,
                        updated_at: s.updated_at,
                    })
                    .collect(),
            ),
            Err(e) => {
                worker::console_error!("sessions for the chat page: {}: {}", e.code, e.message);
                None
            }
        };
    let no_such_session = || ApiError::new(404, "not_found", "there is no such session");
    let selected: Option<&SessionSummary> = match (&sessions, wanted.as_deref()) {
        (Some(list), Some(sid)) => Some(
            list.iter()
                .find(|s| s.id == sid)
                .ok_or_else(no_such_session)?,
        ),
        (Some(list), None) => list
            .iter()
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))),
        (None, _) => None,
    };
    let mut transcript: Option<SessionTranscript> = None;
    let mut task: Option<TaskSummary> = None;
    if let Some(session) = selected {
        let path = format!(
            "/sessions/{}/messages?limit=1000",
            sam_domain::ids::parse_ulid(&session.id).map_err(|_| no_such_session())?
        );
        transcript = match project_data_get::<SessionTranscript>(ctx, &p.id, &path).await {
            Ok(t) => t,
            Err(e) => {
                worker::console_error!("transcript for the chat page: {}: {}", e.code, e.message);
                None
            }
        };
        if let Some(task_id) = &session.task_id {
            task = TaskRepository::new(&db)
                .get_owned(&user.id, task_id)
                .await?
                .as_ref()
                .map(sam_control::tasks::task_view);
        }
    }
    let prompts: Vec<ChatPrompt> = transcript
        .as_ref()
        .map(|t| {
            t.prompts
                .iter()
                .map(|q| ChatPrompt {
                    prompt_id: q.prompt_id.clone(),
                    text: q.text.clone(),
                    created_at: q.created_at,
                })
                .collect()
        })
        .unwrap_or_default();
    let selection = selected.map(|session| ChatSelection {
        session,
        messages: transcript.as_ref().map(|t| t.messages.as_slice()),
        prompts: &prompts,
        task: task.as_ref(),
    });
    let options = options();
    rendered(sam_web::render_chat_page(
        &viewer(user),
        &ChatProject {
            id: &p.id,
            name: &p.name,
            agent: p.settings.agent.as_deref(),
            vm_size: p.settings.vm_size.as_deref(),
        },
        &TaskOptions {
            agents: &options.agents,
            vm_sizes: &options.vm_sizes,
        },
        sessions.as_deref(),
        selection.as_ref(),
        now_ms(),
        VERSION,
    ))
}

/// A project's tasks: `/projects/{id}/tasks`.
pub async fn tasks(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let path = ctx.req.path();
    let id = project_path_id(&path, "tasks")?;
    let db = d1(&ctx.env)?;
    let p: ProjectView = get_project(&db, &user.id, id).await?;
    let tasks: Vec<TaskSummary> = TaskRepository::new(&db)
        .list_for_project(&user.id, &p.id)
        .await?
        .iter()
        .map(sam_control::tasks::task_view)
        .collect();
    rendered(sam_web::render_tasks_page(
        &viewer(user),
        &ChatProject {
            id: &p.id,
            name: &p.name,
            agent: p.settings.agent.as_deref(),
            vm_size: p.settings.vm_size.as_deref(),
        },
        &tasks,
        now_ms(),
        VERSION,
    ))
}

/// One task: `/tasks/{id}`, looked up by (id, owner) like the API.
pub async fn task(ctx: &Ctx, user: &UserRecord) -> ApiResult<String> {
    let path = ctx.req.path();
    let id = path.trim_start_matches("/tasks/");
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::new(404, "not_found", "there is no such page"));
    }
    let db = d1(&ctx.env)?;
    let record = sam_control::tasks::get_task(&db, &user.id, id).await?;
    let log: Vec<TaskLogRow> = TaskRepository::new(&db)
        .status_log(&record.id)
        .await?
        .into_iter()
        .map(|c| TaskLogRow {
            at: c.at,
            from_status: c.from_status,
            to_status: c.to_status,
            event: c.event,
            detail: c.detail,
        })
        .collect();
    let project_name = get_project(&db, &user.id, &record.project_id)
        .await
        .ok()
        .map(|p| p.name);
    rendered(sam_web::render_task_page(
        &viewer(user),
        &sam_control::tasks::task_view(&record),
        project_name.as_deref(),
        &log,
        now_ms(),
        VERSION,
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
