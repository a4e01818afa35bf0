//! Node routes: the user's lifecycle actions, the live views (node log
//! over a WebSocket, vm-agent logs as Server-Sent Events) and the
//! vm-agent's callbacks.

use sam_auth::{Audience, Grant, TokenClaims};
use sam_control::{
    ControlError, claim_project, claim_warm_node, create_node, delete_node, list_nodes, node_view,
    record_heartbeat, record_ready, release_node, stop_node, user_claim,
};
use sam_domain::ids::NodeId;
use sam_durable_objects::BootEvent;
use sam_store::{NodeRecord, NodeRepository};
use sam_wire::{
    ClaimNodeRequest, ClaimedNode, CreateNodeRequest, HeartbeatReply, HeartbeatRequest, NodeList,
    NodeReadyRequest, ReleaseNodeRequest,
};
use worker::{Env, Fetch, Headers, Request, RequestInit, Response};

use crate::bindings::{
    WorkerNodePorts, WorkerRetryRuntime, d1, lifecycle_stub, now_ms, random_hex, random_u128,
};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

/// How long a management token for one vm-agent call lives.
const MANAGEMENT_TOKEN_TTL_SECS: i64 = 300;

/// A path id that is not a valid node id is simply not found.
fn node_id(ctx: &Ctx) -> ApiResult<String> {
    NodeId::parse(ctx.id())
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found())
}

/// The user's node named in the path; another user's is a 404.
async fn owned_node(ctx: &Ctx, user: &str) -> ApiResult<NodeRecord> {
    let id = node_id(ctx)?;
    let db = d1(&ctx.env)?;
    NodeRepository::new(&db)
        .get_owned(user, &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

fn view(ctx: &Ctx, node: &NodeRecord, status: u16) -> Response {
    json_response(status, &node_view(node, &ctx.config.nodes, now_ms()))
}

pub async fn list(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let nodes = list_nodes(&db, &ctx.config.nodes, user, now_ms()).await?;
    Ok(json_response(200, &NodeList { nodes }))
}

pub async fn create(ctx: &mut Ctx, user: &str) -> ApiResult<Response> {
    let req: CreateNodeRequest = ctx.json().await?;
    let db = d1(&ctx.env)?;
    let key = Config::signing_key(&ctx.env)?;
    let ports = WorkerNodePorts::new(&ctx.env, &db, Config::credential_keys(&ctx.env)?);
    let accounts = ports.accounts();
    // Bad input is refused first; then the credential is opened before
    // anything is written: a user without one gets a clear 4xx and no node.
    sam_domain::catalog::validate_node_spec(&req.provider, &req.size, req.location.as_deref())
        .map_err(ControlError::Spec)?;
    let provider = sam_control::CloudAccounts::open(&accounts, user, &req.provider)
        .await?
        .provider;
    let node = create_node(
        &db,
        &provider,
        &WorkerRetryRuntime,
        &ports.ports(&accounts),
        &key,
        &ctx.config.nodes,
        user,
        &req,
        now_ms(),
        random_u128(),
    )
    .await?;
    Ok(view(ctx, &node, 201))
}

pub async fn get(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let node = owned_node(ctx, user).await?;
    Ok(view(ctx, &node, 200))
}

/// What ends a node's server.
pub enum End {
    /// `POST /api/nodes/{id}/stop`: delete the server, keep the node's record.
    Stop,
    /// `DELETE /api/nodes/{id}`: stop, and leave lists once destroyed.
    Delete,
}

pub async fn end(ctx: &Ctx, user: &str, how: End) -> ApiResult<Response> {
    let id = node_id(ctx)?;
    let db = d1(&ctx.env)?;
    let ports = WorkerNodePorts::new(&ctx.env, &db, Config::credential_keys(&ctx.env)?);
    let accounts = ports.accounts();
    let ports = ports.ports(&accounts);
    let (settings, now) = (&ctx.config.nodes, now_ms());
    let node = match how {
        End::Stop => stop_node(&db, &ports, settings, user, &id, now).await?,
        End::Delete => delete_node(&db, &ports, settings, user, &id, now).await?,
    };
    Ok(view(ctx, &node, 200))
}

/// `POST /api/nodes/{id}/release`: the holder is done; the node turns warm.
pub async fn release(ctx: &mut Ctx, user: &str) -> ApiResult<Response> {
    let id = node_id(ctx)?;
    let req: ReleaseNodeRequest = ctx.json_or_default().await?;
    let claim = req.claim_id.unwrap_or_else(|| user_claim(user));
    let db = d1(&ctx.env)?;
    let ports = WorkerNodePorts::new(&ctx.env, &db, Config::credential_keys(&ctx.env)?);
    let accounts = ports.accounts();
    let node = release_node(
        &db,
        &ports.ports(&accounts),
        &ctx.config.nodes,
        user,
        &id,
        &claim,
        now_ms(),
    )
    .await?;
    Ok(view(ctx, &node, 200))
}

/// `POST /api/nodes/claim`: take one of the user's warm nodes.
pub async fn claim(ctx: &mut Ctx, user: &str) -> ApiResult<Response> {
    let req: ClaimNodeRequest = ctx.json_or_default().await?;
    let claim_id = match req.claim_id {
        Some(id) => {
            sam_domain::lifecycle::check_claim_id(&id).map_err(ControlError::from)?;
            id
        }
        None => format!("claim:{}", random_hex(12)),
    };
    let db = d1(&ctx.env)?;
    let project = claim_project(&db, user, req.project_id.as_deref()).await?;
    let ports = WorkerNodePorts::new(&ctx.env, &db, Config::credential_keys(&ctx.env)?);
    let accounts = ports.accounts();
    let node = claim_warm_node(
        &db,
        &ports.ports(&accounts),
        &ctx.config.nodes,
        user,
        &claim_id,
        project.as_ref().map(|(id, warm)| (id.as_str(), *warm)),
        now_ms(),
    )
    .await?;
    Ok(json_response(
        200,
        &ClaimedNode {
            claim_id,
            node: node_view(&node, &ctx.config.nodes, now_ms()),
        },
    ))
}

/// The node's log, from its `NodeLifecycle` object.
pub async fn events(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let node = owned_node(ctx, user).await?;
    let events = boot_log(&ctx.env, &node.id).await?;
    Ok(json_response(200, &serde_json::json!({ "events": events })))
}

/// `GET /api/nodes/{id}/events/ws`: the node's log so far, then each new
/// line as it happens, over a WebSocket served by its `NodeLifecycle`.
pub async fn event_stream(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let node = owned_node(ctx, user).await?;
    super::require_own_page_websocket(ctx, "the node log")?;
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let forwarded = Request::new_with_init("https://node-lifecycle/ws", &init)?;
    Ok(lifecycle_stub(&ctx.env, &node.id)?
        .fetch_with_request(forwarded)
        .await?)
}

/// A node's log, oldest first, from its `NodeLifecycle` object. The
/// caller must already have checked that the node is the user's.
pub async fn boot_log(env: &Env, node_id: &str) -> ApiResult<Vec<BootEvent>> {
    let mut resp = lifecycle_stub(env, node_id)?
        .fetch_with_str("https://node-lifecycle/events")
        .await?;
    Ok(resp.json().await?)
}

/// `GET /api/nodes/{id}/logs`: the vm-agent's recent log lines.
pub async fn agent_logs(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let node = owned_node(ctx, user).await?;
    let query = ctx.query_string();
    agent_call(ctx, &node, &format!("/logs{query}"), "application/json").await
}

/// `GET /api/nodes/{id}/logs/stream`: the vm-agent's log as Server-Sent
/// Events, passed through as it arrives.
pub async fn agent_log_stream(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let node = owned_node(ctx, user).await?;
    let query = ctx.query_string();
    agent_call(
        ctx,
        &node,
        &format!("/logs/stream{query}"),
        "text/event-stream",
    )
    .await
}

/// Calls the node's vm-agent with a short-lived management token scoped
/// to this node, and passes its answer (status, streaming body) on.
///
/// The node is user territory: whatever answers there is not trusted. So
/// the address must be an IP literal, redirects are not followed (the
/// Worker must not become a proxy to anywhere), and only the expected
/// content type (or the agent's JSON errors) is passed on, as inert data
/// (`nosniff`, a sandboxing CSP) — never as a page on our origin.
async fn agent_call(
    ctx: &Ctx,
    node: &NodeRecord,
    path: &str,
    expected_type: &str,
) -> ApiResult<Response> {
    let running = matches!(
        node.status(),
        sam_domain::lifecycle::LifecycleStatus::Ready
            | sam_domain::lifecycle::LifecycleStatus::Warm
    );
    if !running || node.ip_address.is_none() {
        return Err(ApiError::new(
            409,
            "node_not_running",
            "the node's vm-agent is not running; logs are available while the node is ready or warm",
        ));
    }
    let base = sam_control::agent_client::vm_agent_url(node, ctx.config.nodes.vm_agent_port)
        .map_err(|_| bad_agent_answer("the node's address is not an IP address"))?;
    let key = Config::signing_key(&ctx.env)?;
    let token = key.issue(
        &ctx.config.nodes.control_plane_url,
        &Grant::node(
            Audience::NodeManagement,
            &node.id,
            MANAGEMENT_TOKEN_TTL_SECS,
        ),
        now_ms(),
    );
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {token}"))?;
    let mut init = RequestInit::new();
    init.with_headers(headers)
        .with_redirect(worker::RequestRedirect::Manual);
    let url = format!("{base}{path}");
    let request = Request::new_with_init(&url, &init)?;
    let upstream = Fetch::Request(request).send().await.map_err(|e| {
        ApiError::new(
            502,
            "vm_agent_unreachable",
            format!("the node's vm-agent did not answer: {e}"),
        )
    })?;
    let status = upstream.status_code();
    let content_type = upstream
        .headers()
        .get("content-type")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    let acceptable = if (200..300).contains(&status) {
        content_type.starts_with(expected_type)
    } else {
        (400..600).contains(&status) && content_type.starts_with("application/json")
    };
    if !acceptable {
        return Err(bad_agent_answer(&format!(
            "the node's vm-agent answered {status} with an unexpected kind of content"
        )));
    }
    let out = Headers::new();
    out.set("content-type", &content_type)?;
    out.set("cache-control", "no-store")?;
    out.set("x-content-type-options", "nosniff")?;
    out.set("content-security-policy", "default-src 'none'; sandbox")?;
    Ok(Response::from_body(upstream.body().clone())?
        .with_status(status)
        .with_headers(out))
}

fn bad_agent_answer(message: &str) -> ApiError {
    ApiError::new(502, "vm_agent_bad_answer", message)
}

pub async fn ready(ctx: &mut Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let body: NodeReadyRequest = ctx.json().await?;
    let db = d1(&ctx.env)?;
    let ports = WorkerNodePorts::new(&ctx.env, &db, Config::credential_keys(&ctx.env)?);
    let accounts = ports.accounts();
    let node = record_ready(
        &db,
        &ports.ports(&accounts),
        &ctx.config.nodes,
        &claims.node,
        &body.agent_version,
        now_ms(),
    )
    .await?;
    super::tasks::poke_waiting(
        &ctx.env,
        sam_store::WaitingOn::Node,
        &node.id,
        "acquiring_node",
    )
    .await;
    Ok(json_response(
        200,
        &serde_json::json!({ "status": node.status }),
    ))
}

pub async fn heartbeat(ctx: &mut Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let body: HeartbeatRequest = ctx.json().await?;
    let db = d1(&ctx.env)?;
    let key = Config::signing_key(&ctx.env)?;
    let refreshed_token =
        record_heartbeat(&db, &key, &ctx.config.nodes, claims, &body, now_ms()).await?;
    Ok(json_response(
        200,
        &HeartbeatReply {
            next_interval_secs: ctx.config.nodes.heartbeat_interval_secs,
            refreshed_token,
        },
    ))
}
