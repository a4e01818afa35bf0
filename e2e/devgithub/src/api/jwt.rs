//! GitHub App authentication: an RS256 JWT signed with the app's private
//! key, `iss` = the app id (or its client id), `iat` not in the future,
//! `exp` in the future but at most ten minutes ahead. Failures answer 401
//! with the messages GitHub uses.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use super::auth::presented_token;
use crate::clock::now_secs;
use crate::config::AppConfig;
use crate::server::AppState;

/// Longest `exp - now` GitHub accepts.
const MAX_LIFETIME_SECS: i64 = 600;
/// Clock skew tolerated on `iat` and on the ten-minute bound.
const SKEW_SECS: i64 = 30;

const UNDECODABLE: &str = "A JSON web token could not be decoded";
const BAD_IAT: &str = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
const BAD_EXP: &str = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
const EXP_TOO_FAR: &str = "'Expiration time' claim ('exp') is too far in the future";

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    iat: Value,
    #[serde(default)]
    exp: Value,
    #[serde(default)]
    iss: Value,
}

/// Checks `jwt` against the app's key and GitHub's claim rules at `now`.
pub(crate) fn verify(
    jwt: &str,
    key: &DecodingKey,
    app: &AppConfig,
    now: i64,
) -> Result<(), ApiError> {
    let header = decode_header(jwt).map_err(|_| ApiError::jwt(UNDECODABLE))?;
    if header.alg != Algorithm::RS256 {
        return Err(ApiError::jwt(UNDECODABLE));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // Claims are checked below, with GitHub's rules and messages.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let claims = decode::<Claims>(jwt, key, &validation)
        .map_err(|_| ApiError::jwt(UNDECODABLE))?
        .claims;
    let issuer_ok = match &claims.iss {
        Value::Number(n) => n.as_u64() == Some(app.id),
        Value::String(s) => *s == app.id.to_string() || *s == app.client_id,
        _ => false,
    };
    if !issuer_ok {
        // GitHub picks the verifying key by `iss`; an unknown one leaves
        // nothing to verify with.
        return Err(ApiError::jwt(UNDECODABLE));
    }
    match claims.iat.as_i64() {
        Some(iat) if iat <= now + SKEW_SECS => {}
        _ => return Err(ApiError::jwt(BAD_IAT)),
    }
    match claims.exp.as_i64() {
        Some(exp) if exp <= now => Err(ApiError::jwt(BAD_EXP)),
        Some(exp) if exp > now + MAX_LIFETIME_SECS + SKEW_SECS => Err(ApiError::jwt(EXP_TOO_FAR)),
        Some(_) => Ok(()),
        None => Err(ApiError::jwt(BAD_EXP)),
    }
}

/// Proof that the request carries a valid app JWT.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppAuth;

impl FromRequestParts<AppState> for AppAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(jwt) = presented_token(parts) else {
            return Err(ApiError::jwt(UNDECODABLE));
        };
        verify(&jwt, &state.app_key, &state.config.app, now_secs())?;
        Ok(AppAuth)
    }
}
