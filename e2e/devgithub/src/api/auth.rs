//! Who is calling: an OAuth user token (`gho_…`), an installation token
//! (`ghs_…`), or nobody. Tokens come as `Authorization: Bearer T` or
//! `Authorization: token T`, as GitHub accepts both.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::ApiError;
use crate::clock::now_ms;
use crate::server::AppState;
use crate::state::World;

/// The credential in `Authorization`, if any.
pub(crate) fn presented_token(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.to_owned())
        .filter(|t| !t.is_empty())
}

/// A resolved caller of a REST endpoint.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Anonymous,
    User { user_id: u64, scopes: Vec<String> },
    Installation { installation_id: u64, token: String },
}

impl Caller {
    fn resolve(world: &World, token: Option<String>) -> Result<Self, ApiError> {
        let Some(token) = token else {
            return Ok(Caller::Anonymous);
        };
        if let Some(t) = world.user_tokens.get(&token) {
            return Ok(Caller::User {
                user_id: t.user_id,
                scopes: t.scopes.clone(),
            });
        }
        match world.installation_tokens.get(&token) {
            Some(t) if t.expires_at_ms > now_ms() => Ok(Caller::Installation {
                installation_id: t.installation_id,
                token,
            }),
            _ => Err(ApiError::bad_credentials()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(parts);
        state.store.read(|w| Caller::resolve(w, token))
    }
}

/// A caller that must be a signed-in user.
#[derive(Debug, Clone)]
pub(crate) struct UserAuth {
    pub user_id: u64,
    pub scopes: Vec<String>,
}

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User { user_id, scopes } => Ok(UserAuth { user_id, scopes }),
            Caller::Anonymous => Err(ApiError::requires_authentication()),
            Caller::Installation { .. } => Err(ApiError::forbidden(
                "Resource not accessible by integration",
            )),
        }
    }
}

/// A caller that must hold an installation access token.
#[derive(Debug, Clone)]
pub(crate) struct InstallationAuth {
    pub installation_id: u64,
    pub token: String,
}

impl FromRequestParts<AppState> for InstallationAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Installation {
                installation_id,
                token,
            } => Ok(InstallationAuth {
                installation_id,
                token,
            }),
            Caller::Anonymous => Err(ApiError::requires_authentication()),
            Caller::User { .. } => Err(ApiError::forbidden(
                "You must authenticate with an installation access token to use this endpoint.",
            )),
        }
    }
}
