//! Node routes: the user's CRUD and the vm-agent's callbacks.

use sam_auth::TokenClaims;
use sam_control::{
    create_node, delete_node, list_nodes, node_view, record_heartbeat, record_ready,
};
use sam_domain::ids::NodeId;
use sam_durable_objects::BootEvent;
use sam_providers::HetznerClient;
use sam_store::NodeRepository;
use sam_wire::{CreateNodeRequest, HeartbeatReply, HeartbeatRequest, NodeList, NodeReadyRequest};
use worker::{Env, Response};

use crate::bindings::{
    DurableBootLog, FetchHttp, WorkerRetryRuntime, d1, lifecycle_stub, now_ms, random_u128,
};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

/// A Hetzner client acting with the user's own (decrypted) token.
async fn provider(ctx: &Ctx, user: &str) -> ApiResult<HetznerClient<FetchHttp>> {
    let keys = Config::credential_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let secret = sam_control::credentials::cloud_secret(&db, &keys, user, "hetzner").await?;
    let token = secret
        .expose_str()
        .map_err(|e| ApiError::internal("credential", &e))?
        .to_owned();
    Ok(HetznerClient::new(
        FetchHttp,
        ctx.config.hetzner_api_url.clone(),
        token,
    ))
}

/// A path id that is not a valid node id is simply not found.
fn node_id(ctx: &Ctx) -> ApiResult<String> {
    NodeId::parse(ctx.id())
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found())
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
    let provider = provider(ctx, user).await?;
    let boot_log = DurableBootLog { env: &ctx.env };
    let now = now_ms();
    let node = create_node(
        &db,
        &provider,
        &WorkerRetryRuntime,
        &boot_log,
        &key,
        &ctx.config.nodes,
        user,
        &req,
        now,
        random_u128(),
    )
    .await?;
    Ok(json_response(
        201,
        &node_view(&node, &ctx.config.nodes, now),
    ))
}

pub async fn get(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let id = node_id(ctx)?;
    let db = d1(&ctx.env)?;
    let node = NodeRepository::new(&db)
        .get_owned(user, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(json_response(
        200,
        &node_view(&node, &ctx.config.nodes, now_ms()),
    ))
}

pub async fn delete(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let id = node_id(ctx)?;
    let db = d1(&ctx.env)?;
    // Ownership first: another user's node is a 404 whatever their credentials.
    NodeRepository::new(&db)
        .get_owned(user, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let provider = provider(ctx, user).await?;
    let boot_log = DurableBootLog { env: &ctx.env };
    let now = now_ms();
    let node = delete_node(&db, &provider, &boot_log, user, &id, now).await?;
    Ok(json_response(
        200,
        &node_view(&node, &ctx.config.nodes, now),
    ))
}

/// The node's boot log, from its `NodeLifecycle` object.
pub async fn events(ctx: &Ctx, user: &str) -> ApiResult<Response> {
    let id = node_id(ctx)?;
    let db = d1(&ctx.env)?;
    NodeRepository::new(&db)
        .get_owned(user, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let events = boot_log(&ctx.env, &id).await?;
    Ok(json_response(200, &serde_json::json!({ "events": events })))
}

/// A node's boot log, oldest first, from its `NodeLifecycle` object. The
/// caller must already have checked that the node is the user's.
pub async fn boot_log(env: &Env, node_id: &str) -> ApiResult<Vec<BootEvent>> {
    let mut resp = lifecycle_stub(env, node_id)?
        .fetch_with_str("https://node-lifecycle/events")
        .await?;
    Ok(resp.json().await?)
}

pub async fn ready(ctx: &mut Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let body: NodeReadyRequest = ctx.json().await?;
    let db = d1(&ctx.env)?;
    let boot_log = DurableBootLog { env: &ctx.env };
    record_ready(&db, &boot_log, &claims.node, &body.agent_version, now_ms()).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "status": "running" }),
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
