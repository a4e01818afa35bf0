//! Server-side sessions in D1.
//!
//! The cookie holds a random 256-bit id; D1 holds only its keyed hash (the
//! vault's session keys), with the user, an expiry and a revocation time.
//! Revoking a session or suspending a user takes effect on the very next
//! request. Lookups try the hash under every key in the ring, so a key
//! rotation does not sign anyone out.

use sam_store::{SessionRecord, SessionRepository};
use worker::{Env, Request};

use crate::bindings::{d1, now_ms, random_hex};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};

pub const COOKIE: &str = "sam_session";
const TTL_SECS: i64 = 7 * 24 * 3600;

/// Starts a session for `user_id`; returns the `Set-Cookie` value.
pub async fn create(env: &Env, user_id: &str, secure: bool) -> ApiResult<String> {
    let keys = Config::session_keys(env)?;
    let id = random_hex(32);
    let now = now_ms();
    let db = d1(env)?;
    SessionRepository::new(&db)
        .create(
            &sam_vault::keyed_hash(&keys, id.as_bytes()),
            user_id,
            now,
            now + TTL_SECS * 1000,
        )
        .await?;
    Ok(cookie(&id, TTL_SECS, secure))
}

/// Revokes the request's session, if any; returns the clearing `Set-Cookie` value.
pub async fn destroy(env: &Env, req: &Request, secure: bool) -> ApiResult<String> {
    if let Some(id) = session_id(req) {
        let keys = Config::session_keys(env)?;
        let db = d1(env)?;
        SessionRepository::new(&db)
            .revoke(&sam_vault::keyed_hashes(&keys, id.as_bytes()), now_ms())
            .await?;
    }
    Ok(cookie("", 0, secure))
}

/// The request's live session with its user, if any.
pub async fn current(env: &Env, req: &Request) -> ApiResult<Option<SessionRecord>> {
    let Some(id) = session_id(req) else {
        return Ok(None);
    };
    let keys = Config::session_keys(env)?;
    let db = d1(env)?;
    Ok(SessionRepository::new(&db)
        .find_live(&sam_vault::keyed_hashes(&keys, id.as_bytes()), now_ms())
        .await?)
}

/// The live session, or 401.
pub async fn require(env: &Env, req: &Request) -> ApiResult<SessionRecord> {
    current(env, req)
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

fn session_id(req: &Request) -> Option<String> {
    let header = req.headers().get("cookie").ok()??;
    // Only one well-formed id reaches the database.
    sam_domain::accounts::session_cookie_value(&header, COOKIE)
}

fn cookie(value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}
