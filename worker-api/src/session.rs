//! Server-side sessions in KV.
//!
//! The cookie holds a random 256-bit id; KV holds `session:<sha256(id)>` →
//! the user id, with a TTL. Storing only the hash means a KV dump does not
//! yield usable cookies, and deleting the key signs the session out at once.

use sha2::{Digest, Sha256};
use worker::{Env, Request};

use crate::bindings::{KV, random_hex};
use crate::error::{ApiError, ApiResult};

pub const COOKIE: &str = "sam_session";
const TTL_SECS: u64 = 7 * 24 * 3600;

fn kv_key(session_id: &str) -> String {
    format!(
        "session:{}",
        hex::encode(Sha256::digest(session_id.as_bytes()))
    )
}

/// Starts a session for `user_id`; returns the `Set-Cookie` value.
pub async fn create(env: &Env, user_id: &str, secure: bool) -> ApiResult<String> {
    let id = random_hex(32);
    env.kv(KV)?
        .put(&kv_key(&id), user_id)
        .map_err(|e| ApiError::internal("session store", &e))?
        .expiration_ttl(TTL_SECS)
        .execute()
        .await
        .map_err(|e| ApiError::internal("session store", &e))?;
    Ok(cookie(&id, TTL_SECS, secure))
}

/// Ends the request's session, if any; returns the clearing `Set-Cookie` value.
pub async fn destroy(env: &Env, req: &Request, secure: bool) -> ApiResult<String> {
    if let Some(id) = session_id(req) {
        env.kv(KV)?
            .delete(&kv_key(&id))
            .await
            .map_err(|e| ApiError::internal("session store", &e))?;
    }
    Ok(cookie("", 0, secure))
}

/// The signed-in user's id, or 401.
pub async fn require_user(env: &Env, req: &Request) -> ApiResult<String> {
    current_user(env, req)
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

/// The signed-in user's id, if the request carries a live session.
pub async fn current_user(env: &Env, req: &Request) -> ApiResult<Option<String>> {
    let Some(id) = session_id(req) else {
        return Ok(None);
    };
    env.kv(KV)?
        .get(&kv_key(&id))
        .text()
        .await
        .map_err(|e| ApiError::internal("session store", &e))
}

fn session_id(req: &Request) -> Option<String> {
    let header = req.headers().get("cookie").ok()??;
    header.split(';').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        // Only well-formed ids reach KV: 64 lowercase hex characters.
        (name == COOKIE && value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| value.to_owned())
    })
}

fn cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}
