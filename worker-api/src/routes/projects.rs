//! Projects and the GitHub App: installations, repositories, branches,
//! project CRUD. Thin adapters over `sam_control::projects`.

use sam_control::projects::{
    NewProject, ProjectPatch, create_project, delete_project, get_project,
    installation_repositories, list_installations, list_projects, repository_branches,
    update_project,
};
use sam_store::{ProjectRecord, ProjectRepository, UserRecord};
use worker::Response;

use crate::bindings::{D1Sql, d1, now_ms, random_u128};
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

/// The user's project or a 404, before anything else looks at the request.
pub async fn owned(db: &D1Sql, user_id: &str, id: &str) -> ApiResult<ProjectRecord> {
    ProjectRepository::new(db)
        .get_owned(user_id, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let projects = list_projects(&db, &user.id).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "projects": projects }),
    ))
}

pub async fn create(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let body: NewProject = ctx.json().await?;
    let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
    let db = d1(&ctx.env)?;
    let now = now_ms();
    let id = sam_domain::ids::new_ulid(now, random_u128());
    let project = create_project(&db, &github, &user.id, &body, now, &id).await?;
    Ok(json_response(201, &project))
}

pub async fn get(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    Ok(json_response(
        200,
        &get_project(&db, &user.id, ctx.id()).await?,
    ))
}

pub async fn update(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    owned(&db, &user.id, ctx.id()).await?;
    let patch: ProjectPatch = ctx.json().await?;
    let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
    let project = update_project(&db, &github, &user.id, ctx.id(), &patch, now_ms()).await?;
    Ok(json_response(200, &project))
}

pub async fn delete(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    delete_project(&db, &user.id, ctx.id()).await?;
    Ok(json_response(200, &serde_json::json!({ "deleted": true })))
}

pub async fn installations(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let installations = list_installations(&db, &user.id).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "installations": installations }),
    ))
}

pub async fn repositories(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
    let repositories = installation_repositories(&db, &github, &user.id, ctx.id()).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "repositories": repositories }),
    ))
}

pub async fn branches(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
    let repository = ctx.params.get(1).map_or("", String::as_str);
    let branches = repository_branches(&db, &github, &user.id, ctx.id(), repository).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "branches": branches }),
    ))
}
