//! Account administration: list users, approve, suspend, reactivate.
//! The rules (who may do what to whom) live in `sam_domain::accounts`.

use sam_domain::accounts::{AccountStatus, AdminAction, Role, apply_admin_action};
use sam_store::{SessionRepository, UserRecord, UserRepository};
use serde::Serialize;
use worker::Response;

use crate::bindings::{d1, now_ms};
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;
use crate::routes::auth::me_view;

#[derive(Serialize)]
struct UserList {
    users: Vec<sam_wire::Me>,
}

fn require_admin(user: &UserRecord) -> ApiResult<Role> {
    match Role::parse(&user.role) {
        Some(role) if role.is_admin() => Ok(role),
        _ => Err(ApiError::new(
            403,
            "forbidden",
            "only administrators can manage accounts",
        )),
    }
}

pub async fn list_users(ctx: &Ctx, actor: &UserRecord) -> ApiResult<Response> {
    require_admin(actor)?;
    let db = d1(&ctx.env)?;
    let users = UserRepository::new(&db).list().await?;
    Ok(json_response(
        200,
        &UserList {
            users: users.iter().map(me_view).collect(),
        },
    ))
}

/// `POST /api/admin/users/{id}/{approve|suspend|reactivate}`.
pub async fn user_action(ctx: &Ctx, actor: &UserRecord) -> ApiResult<Response> {
    let actor_role = require_admin(actor)?;
    let action = match ctx.params.get(1).map(String::as_str) {
        Some("approve") => AdminAction::Approve,
        Some("suspend") => AdminAction::Suspend,
        Some("reactivate") => AdminAction::Reactivate,
        _ => return Err(ApiError::new(404, "not_found", "unknown account action")),
    };
    let db = d1(&ctx.env)?;
    let users = UserRepository::new(&db);
    let target = users.get(ctx.id()).await?.ok_or_else(ApiError::not_found)?;
    let target_role = Role::parse(&target.role).unwrap_or(Role::User);
    let status = AccountStatus::parse(&target.status).unwrap_or(AccountStatus::Suspended);
    let next = apply_admin_action(
        actor_role,
        actor.id == target.id,
        target_role,
        status,
        action,
    )
    .map_err(|e| {
        ApiError::new(
            if e.code() == "forbidden" { 403 } else { 409 },
            e.code(),
            e.to_string(),
        )
    })?;
    if !users
        .set_status(&target.id, status.as_str(), next.as_str())
        .await?
    {
        return Err(ApiError::new(
            409,
            "invalid_account_transition",
            "the account changed meanwhile; reload and retry",
        ));
    }
    if next == AccountStatus::Suspended {
        // Suspension takes effect at once: every session ends now.
        SessionRepository::new(&db)
            .revoke_all(&target.id, now_ms())
            .await?;
    }
    let updated = users
        .get(&target.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(json_response(200, &me_view(&updated)))
}
