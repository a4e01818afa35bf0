//! The spine's temporary local sign-in (`DEV_LOGIN_ENABLED=true` only),
//! sign-out and `me`. The identity issue replaces dev login with GitHub.

use sam_store::{UserRecord, UserRepository};
use sam_wire::Me;
use serde::Deserialize;
use worker::Response;

use crate::bindings::{d1, now_ms, random_u128};
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;
use crate::session;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevLoginRequest {
    login: String,
}

/// The API view of a user.
pub fn me_view(user: &UserRecord) -> Me {
    Me {
        id: user.id.clone(),
        login: user.login.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        avatar_url: user.avatar_url.clone(),
        role: user.role.clone(),
        status: user.status.clone(),
    }
}

/// Signs `login` in, creating the user on first use; returns the user and the cookie.
pub async fn sign_in(ctx: &Ctx, login: &str) -> ApiResult<(Me, String)> {
    if !ctx.config.dev_login_enabled {
        return Err(ApiError::new(404, "not_found", "dev login is disabled"));
    }
    if !sam_domain::accounts::valid_login(login) {
        return Err(ApiError::new(
            400,
            "invalid_login",
            "login must be 1-39 letters, digits or single hyphens",
        ));
    }
    let db = d1(&ctx.env)?;
    let now = now_ms();
    let new_id = sam_domain::ids::new_ulid(now, random_u128());
    let user = UserRepository::new(&db)
        .upsert_by_login(&new_id, login, now)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                409,
                "login_taken",
                "this name belongs to a GitHub account; sign in with GitHub",
            )
        })?;
    let cookie = session::create(&ctx.env, &user.id, ctx.config.secure_cookies).await?;
    Ok((me_view(&user), cookie))
}

pub async fn dev_login(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: DevLoginRequest = ctx.json().await?;
    let (me, cookie) = sign_in(ctx, &body.login).await?;
    let mut response = json_response(200, &me);
    let _ = response.headers_mut().set("set-cookie", &cookie);
    Ok(response)
}

pub async fn logout(ctx: &mut Ctx) -> ApiResult<Response> {
    let cookie = session::destroy(&ctx.env, &ctx.req, ctx.config.secure_cookies).await?;
    let mut response = json_response(200, &serde_json::json!({ "signed_out": true }));
    let _ = response.headers_mut().set("set-cookie", &cookie);
    Ok(response)
}

pub fn me(user: &UserRecord) -> Response {
    json_response(200, &me_view(user))
}
