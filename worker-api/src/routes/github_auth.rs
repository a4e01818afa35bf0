//! Sign in with GitHub (the OAuth web flow) on the `app.` host.
//!
//! `/auth/github` stores a one-time state (as a keyed hash, 10 minutes) and
//! sends the browser to GitHub; `/auth/github/callback` consumes the state,
//! exchanges the code, upserts the user (the first GitHub user becomes
//! superadmin; later ones wait for approval when the deployment requires
//! it) and starts a session.

use sam_domain::accounts::{AccountStatus, new_account};
use sam_providers::github::GithubOAuthApp;
use sam_store::{GithubProfile, SessionRepository, UserRepository};
use worker::Response;

use crate::bindings::{FetchHttp, d1, now_ms, random_hex, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::routes::Ctx;
use crate::session;

const STATE_TTL_MS: i64 = 10 * 60 * 1000;

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
    let github = app(ctx)?;
    let state = random_hex(32);
    let keys = Config::session_keys(&ctx.env)?;
    let now = now_ms();
    let db = d1(&ctx.env)?;
    SessionRepository::new(&db)
        .create_oauth_state(
            &sam_vault::keyed_hash(&keys, state.as_bytes()),
            now,
            now + STATE_TTL_MS,
        )
        .await?;
    Ok(super::app::redirect(
        &github.authorize_url(&callback_url(ctx), &state),
        None,
    ))
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
    let now = now_ms();
    let db = d1(&ctx.env)?;
    // One-time: a replayed or forged callback finds no state.
    if !SessionRepository::new(&db)
        .consume_oauth_state(&sam_vault::keyed_hashes(&keys, state.as_bytes()), now)
        .await?
    {
        return Err(ApiError::new(
            400,
            "oauth_state_invalid",
            "this sign-in link has expired or was already used; start again",
        ));
    }
    let token = github
        .exchange_code(&FetchHttp, &code, &callback_url(ctx))
        .await
        .map_err(|e| {
            ApiError::new(
                if e.code() == "oauth_code_invalid" {
                    400
                } else {
                    502
                },
                e.code(),
                e.to_string(),
            )
        })?;
    let gh = github
        .user(&FetchHttp, &token)
        .await
        .map_err(|e| ApiError::new(502, e.code(), e.to_string()))?;
    if !sam_domain::accounts::valid_login(&gh.login) {
        return Err(ApiError::new(
            502,
            "github_unexpected_response",
            "GitHub returned an invalid login",
        ));
    }
    let first = new_account(true, ctx.config.require_approval);
    let later = new_account(false, ctx.config.require_approval);
    let user = UserRepository::new(&db)
        .upsert_github(
            &sam_domain::ids::new_ulid(now, random_u128()),
            &GithubProfile {
                github_id: gh.id.to_string(),
                login: gh.login,
                name: gh.name,
                email: gh.email,
                avatar_url: gh.avatar_url,
            },
            now,
            (first.0.as_str(), first.1.as_str()),
            (later.0.as_str(), later.1.as_str()),
        )
        .await?;
    if AccountStatus::parse(&user.status) == Some(AccountStatus::Suspended) {
        return Err(ApiError::new(
            403,
            "account_suspended",
            "your account is suspended",
        ));
    }
    let cookie = session::create(&ctx.env, &user.id, ctx.config.secure_cookies).await?;
    let next = if user.status == AccountStatus::Pending.as_str() {
        "/pending"
    } else {
        "/"
    };
    Ok(super::app::redirect(next, Some(&cookie)))
}
