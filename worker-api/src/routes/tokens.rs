//! Personal access tokens: create (shown once), list, revoke, and
//! `token-login`, which trades a token for a session (for CLIs and smoke
//! tests), rate-limited per client.

use sam_domain::tokens::{format_token, looks_like_token, rate_limit_window, validate_request};
use sam_store::{TokenRecord, TokenRepository, UserRecord};
use serde::{Deserialize, Serialize};
use worker::Response;

use crate::bindings::{KV, d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;
use crate::routes::auth::me_view;
use crate::session;

/// token-login attempts allowed per client per minute.
const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

#[derive(Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    record: TokenRecord,
    /// The secret itself: shown in this response only.
    token: String,
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLogin {
    token: String,
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&random_u128().to_le_bytes());
    bytes[16..].copy_from_slice(&random_u128().to_le_bytes());
    bytes
}

pub async fn create(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let body: CreateToken = ctx.json().await?;
    let now = now_ms();
    let expires_at = validate_request(&body.name, body.expires_in_days, now)
        .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let token = format_token(&random_bytes());
    let keys = Config::session_keys(&ctx.env)?;
    let record = TokenRecord {
        id: sam_domain::ids::new_ulid(now, random_u128()),
        user_id: user.id.clone(),
        name: body.name.trim().to_owned(),
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let db = d1(&ctx.env)?;
    TokenRepository::new(&db)
        .create(&record, &sam_vault::keyed_hash(&keys, token.as_bytes()))
        .await?;
    Ok(json_response(201, &CreatedToken { record, token }))
}

pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let tokens = TokenRepository::new(&db).list(&user.id).await?;
    Ok(json_response(200, &TokenList { tokens }))
}

pub async fn revoke(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    // Another user's token is indistinguishable from a missing one.
    if !TokenRepository::new(&db)
        .revoke(&user.id, ctx.id(), now_ms())
        .await?
    {
        return Err(ApiError::not_found());
    }
    Ok(json_response(200, &serde_json::json!({ "revoked": true })))
}

/// `POST /api/auth/token-login {token}` → a session cookie.
pub async fn login(ctx: &mut Ctx) -> ApiResult<Response> {
    rate_limit(ctx).await?;
    let body: TokenLogin = ctx.json().await?;
    let refused = || {
        ApiError::new(
            401,
            "token_invalid",
            "the token is unknown, expired or revoked",
        )
    };
    if !looks_like_token(&body.token) {
        return Err(refused());
    }
    let keys = Config::session_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let user = TokenRepository::new(&db)
        .use_token(
            &sam_vault::keyed_hashes(&keys, body.token.as_bytes()),
            now_ms(),
        )
        .await?
        .ok_or_else(refused)?;
    crate::routes::require_active(&user)?;
    let cookie = session::create(&ctx.env, &user.id, ctx.config.secure_cookies).await?;
    let mut response = json_response(200, &me_view(&user));
    let _ = response.headers_mut().set("set-cookie", &cookie);
    Ok(response)
}

/// A fixed window per client address in KV. KV counters are approximate
/// under concurrency; that is enough to make guessing tokens pointless
/// (each guess is one of 2^256).
async fn rate_limit(ctx: &Ctx) -> ApiResult<()> {
    let client = ctx
        .req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "local".to_owned());
    let (key, retry_after) = rate_limit_window("token-login", &client, now_ms(), 60);
    let kv = ctx.env.kv(KV)?;
    let seen: u32 = kv
        .get(&key)
        .text()
        .await
        .map_err(|e| ApiError::internal("rate limit", &e))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if seen >= LOGIN_ATTEMPTS_PER_MINUTE {
        let mut err = ApiError::new(
            429,
            "rate_limited",
            format!("too many attempts; retry in {retry_after} s"),
        );
        err.retry_after = Some(retry_after);
        return Err(err);
    }
    kv.put(&key, (seen + 1).to_string())
        .map_err(|e| ApiError::internal("rate limit", &e))?
        .expiration_ttl(120)
        .execute()
        .await
        .map_err(|e| ApiError::internal("rate limit", &e))?;
    Ok(())
}
