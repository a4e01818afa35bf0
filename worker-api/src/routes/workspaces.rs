//! Workspace routes: the user's CRUD and actions, and the vm-agent's
//! callbacks (authenticated with the workspace's own callback token).

use sam_auth::TokenClaims;
use sam_control::agent_client::HttpNodeAgent;
use sam_control::workspaces::{
    WorkspaceSettings, append_workspace_event, create_workspace, delete_workspace, get_workspace,
    list_workspaces, rebuild_workspace, record_provisioning_failed, record_workspace_ready,
    rename_workspace, restart_workspace, set_ports_public, stop_workspace, terminal_ticket,
    workspace_events, workspace_git_token, workspace_view,
};
use sam_store::{UserRecord, WorkspaceRecord};
use sam_wire::{
    CreateWorkspaceRequest, PortTicketRequest, RenameWorkspaceRequest, WorkspaceBootLogEntry,
    WorkspaceFailedRequest, WorkspaceList, WorkspacePortsRequest,
};
use worker::Response;

use crate::bindings::{FetchHttpNoRedirects, d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiResult, json_response};
use crate::routes::Ctx;

/// Where workspaces are reached and what their tokens say.
fn settings(ctx: &Ctx) -> WorkspaceSettings {
    ctx.config.workspace_settings()
}

fn view(ctx: &Ctx, w: &WorkspaceRecord, status: u16) -> Response {
    json_response(status, &workspace_view(w, &settings(ctx)))
}

/// The node's vm-agent, called with this request's time.
pub(super) fn agent<'a>(
    ctx: &'a Ctx,
    key: &'a sam_auth::SigningKey,
) -> HttpNodeAgent<'a, FetchHttpNoRedirects> {
    HttpNodeAgent {
        http: FetchHttpNoRedirects,
        key,
        issuer: &ctx.config.api_origin,
        port: ctx.config.nodes.vm_agent_port,
        now: now_ms(),
    }
}

pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let workspaces = list_workspaces(&db, &settings(ctx), &user.id).await?;
    Ok(json_response(200, &WorkspaceList { workspaces }))
}

pub async fn create(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let req: CreateWorkspaceRequest = ctx.json().await?;
    let db = d1(&ctx.env)?;
    let key = Config::signing_key(&ctx.env)?;
    let workspace = create_workspace(
        &db,
        &agent(ctx, &key),
        &key,
        &settings(ctx),
        user,
        &req,
        now_ms(),
        random_u128(),
    )
    .await?;
    Ok(view(ctx, &workspace, 201))
}

pub async fn get(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let workspace = get_workspace(&db, &user.id, ctx.id()).await?;
    Ok(view(ctx, &workspace, 200))
}

pub async fn rename(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    // Ownership before the body: another user's workspace is a 404 whatever they send.
    get_workspace(&db, &user.id, ctx.id()).await?;
    let req: RenameWorkspaceRequest = ctx.json().await?;
    let workspace = rename_workspace(&db, &user.id, ctx.id(), &req.name, now_ms()).await?;
    Ok(view(ctx, &workspace, 200))
}

pub async fn ports(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    get_workspace(&db, &user.id, ctx.id()).await?;
    let req: WorkspacePortsRequest = ctx.json().await?;
    let workspace = set_ports_public(&db, &user.id, ctx.id(), req.ports_public, now_ms()).await?;
    Ok(view(ctx, &workspace, 200))
}

/// What the user asked the workspace to do.
#[derive(Clone, Copy)]
pub enum Action {
    Stop,
    Restart,
    Rebuild,
    Delete,
}

pub async fn act(ctx: &Ctx, user: &UserRecord, action: Action) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let key = Config::signing_key(&ctx.env)?;
    let agent = agent(ctx, &key);
    let (id, now) = (ctx.id(), now_ms());
    let workspace = match action {
        Action::Stop => stop_workspace(&db, &agent, &user.id, id, now).await?,
        Action::Restart => restart_workspace(&db, &agent, &user.id, id, now).await?,
        Action::Rebuild => rebuild_workspace(&db, &agent, &user.id, id, now).await?,
        Action::Delete => delete_workspace(&db, &agent, &user.id, id, now).await?,
    };
    Ok(view(ctx, &workspace, 200))
}

/// A single-use ticket into the running workspace, for the browser.
pub async fn ticket(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let key = Config::signing_key(&ctx.env)?;
    let ticket = terminal_ticket(&db, &key, &settings(ctx), &user.id, ctx.id(), now_ms()).await?;
    Ok(json_response(200, &ticket))
}

/// A single-use ticket to one of the running workspace's forwarded ports.
pub async fn port_ticket(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    get_workspace(&db, &user.id, ctx.id()).await?;
    let req: PortTicketRequest = ctx.json().await?;
    let key = Config::signing_key(&ctx.env)?;
    let ticket = sam_control::workspace_access::port_ticket(
        &db,
        &key,
        &settings(ctx),
        &user.id,
        ctx.id(),
        req.port,
        now_ms(),
    )
    .await?;
    Ok(json_response(200, &ticket))
}

/// The workspace's creation log.
pub async fn events(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let events = workspace_events(&db, &user.id, ctx.id()).await?;
    Ok(json_response(200, &serde_json::json!({ "events": events })))
}

pub async fn ready(ctx: &Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let workspace = record_workspace_ready(&db, claims, now_ms()).await?;
    super::tasks::poke_waiting(
        &ctx.env,
        sam_store::WaitingOn::Workspace,
        &workspace.id,
        "creating_workspace",
    )
    .await;
    Ok(json_response(
        200,
        &serde_json::json!({ "status": workspace.status }),
    ))
}

pub async fn provisioning_failed(ctx: &mut Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let req: WorkspaceFailedRequest = ctx.json().await?;
    let db = d1(&ctx.env)?;
    let workspace = record_provisioning_failed(&db, claims, &req.reason, now_ms()).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "status": workspace.status }),
    ))
}

pub async fn boot_log(ctx: &mut Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let entry: WorkspaceBootLogEntry = ctx.json().await?;
    let db = d1(&ctx.env)?;
    append_workspace_event(&db, claims, &entry, now_ms()).await?;
    Ok(json_response(200, &serde_json::json!({ "recorded": true })))
}

/// A short-lived token for the project's repository, for git on the node.
pub async fn git_token(ctx: &Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
    let reply = workspace_git_token(&db, &github, claims).await?;
    Ok(json_response(200, &reply))
}
