//! Sign in with GitHub on the `app.` host: adapters over
//! `sam_control::identity` (the flow) plus the session cookie.

use sam_control::identity::{begin_github_sign_in, finish_github_sign_in};
use sam_providers::github::GithubOAuthApp;
use worker::Response;

use crate::bindings::{FetchHttp, d1, now_ms, random_hex, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::routes::Ctx;
use crate::session;

fn app(ctx: &Ctx) -> ApiResult<&GithubOAuthApp> {
    ctx.config.github.as_ref().ok_or_else(|| {
        ApiError::new(
            404,
            "github_not_configured",
            "GitHub sign-in is not configured here",
        )
    })
}

fn callback_url(ctx: &Ctx) -> String {
    format!("{}/auth/github/callback", ctx.config.app_origin)
}

/// `GET /auth/github`: off to GitHub with a fresh one-time state.
pub async fn start(ctx: &Ctx) -> ApiResult<Response> {
    let keys = Config::session_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let url = begin_github_sign_in(
        &db,
        &keys,
        app(ctx)?,
        &callback_url(ctx),
        &random_hex(32),
        now_ms(),
    )
    .await?;
    Ok(super::app::redirect(&url, None))
}

/// `GET /auth/github/callback?code&state`.
pub async fn callback(ctx: &Ctx) -> ApiResult<Response> {
    let github = app(ctx)?;
    let url = ctx.req.url()?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty() && v.len() <= 512)
    };
    if let Some(error) = param("error") {
        return Err(ApiError::new(
            400,
            "oauth_denied",
            format!("GitHub did not sign you in ({error})"),
        ));
    }
    let (Some(code), Some(state)) = (param("code"), param("state")) else {
        return Err(ApiError::new(
            400,
            "oauth_invalid_request",
            "the sign-in link is incomplete; start again",
        ));
    };
    let keys = Config::session_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let now = now_ms();
    let user = finish_github_sign_in(
        &db,
        &FetchHttp,
        &keys,
        github,
        &callback_url(ctx),
        &state,
        &code,
        ctx.config.require_approval,
        now,
        &sam_domain::ids::new_ulid(now, random_u128()),
    )
    .await?;
    let cookie = session::create(&ctx.env, &user.id, ctx.config.secure_cookies).await?;
    let next = if user.status == "pending" {
        "/pending"
    } else {
        "/"
    };
    Ok(super::app::redirect(next, Some(&cookie)))
}
