//! Agent credentials: the user's own per agent, and per-project overrides.
//! Secrets are sealed before storage and never returned.

use sam_control::agent_credentials::{
    NewAgentCredential, delete_agent_credential, effective_agent_credentials,
    list_agent_credentials, store_agent_credential,
};
use sam_store::UserRecord;
use serde::Deserialize;
use worker::Response;

use crate::bindings::{d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiResult, json_response};
use crate::routes::Ctx;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutAgentCredential {
    kind: String,
    secret: String,
}

/// The path's `{agent}`: the only parameter of user routes, the second of project routes.
fn agent(ctx: &Ctx) -> String {
    ctx.params.last().cloned().unwrap_or_default()
}

/// `PUT /api/credentials/agents/{agent}` and `PUT /api/projects/{id}/agent-credentials/{agent}`.
pub async fn put(ctx: &mut Ctx, user: &UserRecord, project: Option<&str>) -> ApiResult<Response> {
    let agent = agent(ctx);
    let project = project.map(str::to_owned);
    let db = d1(&ctx.env)?;
    // Another user's project is a 404 whatever the body says.
    if let Some(project) = &project {
        super::projects::owned(&db, &user.id, project).await?;
    }
    let body: PutAgentCredential = ctx.json().await?;
    let keys = Config::credential_keys(&ctx.env)?;
    let now = now_ms();
    let view = store_agent_credential(
        &db,
        &keys,
        NewAgentCredential {
            user_id: &user.id,
            project_id: project.as_deref(),
            agent: &agent,
            kind: &body.kind,
            secret: body.secret.trim(),
        },
        now,
        &sam_domain::ids::new_ulid(now, random_u128()),
        super::credentials::nonce(),
    )
    .await?;
    Ok(json_response(200, &view))
}

/// `GET /api/credentials/agents`.
pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let credentials = list_agent_credentials(&db, &user.id, None).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "credentials": credentials }),
    ))
}

/// `GET /api/projects/{id}/agent-credentials`: the project's overrides and,
/// per agent, which credential a run would use (project, user or platform).
pub async fn list_for_project(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = ctx.id();
    let overrides = list_agent_credentials(&db, &user.id, Some(project)).await?;
    let platform = Config::platform_agent_credentials(&ctx.env)?;
    let effective = effective_agent_credentials(&db, &platform, &user.id, project).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "overrides": overrides, "effective": effective }),
    ))
}

/// `DELETE /api/credentials/agents/{agent}` and the project variant.
pub async fn delete(ctx: &Ctx, user: &UserRecord, project: Option<&str>) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    delete_agent_credential(&db, &user.id, project, &agent(ctx)).await?;
    Ok(json_response(200, &serde_json::json!({ "deleted": true })))
}
