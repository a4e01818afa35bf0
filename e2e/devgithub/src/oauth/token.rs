//! `POST /login/oauth/access_token`: trades a code for a `gho_` token.
//!
//! Parameters may come form-encoded, as JSON, or in the query string.
//! Like GitHub, failures still answer HTTP 200 with `error`,
//! `error_description` and `error_uri`; the body is JSON when `Accept`
//! names JSON and form-encoded otherwise.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::callback::{is_under, parse_http_url};
use crate::clock::{now_ms, now_rfc3339};
use crate::ids::{TokenKind, token};
use crate::server::AppState;
use crate::state::UserToken;

const TROUBLESHOOTING: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";

/// GitHub's token-request failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenError {
    IncorrectClientCredentials,
    RedirectUriMismatch,
    BadVerificationCode,
}

impl TokenError {
    fn fields(self) -> [(&'static str, String); 3] {
        let (code, description, anchor) = match self {
            TokenError::IncorrectClientCredentials => (
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
                "incorrect-client-credentials",
            ),
            TokenError::RedirectUriMismatch => (
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "redirect-uri-mismatch2",
            ),
            TokenError::BadVerificationCode => (
                "bad_verification_code",
                "The code passed is incorrect or expired.",
                "bad-verification-code",
            ),
        };
        [
            ("error", code.to_owned()),
            ("error_description", description.to_owned()),
            ("error_uri", format!("{TROUBLESHOOTING}/#{anchor}")),
        ]
    }
}

/// Query, then body (JSON or form); later sources win.
fn params(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.insert(k, v);
            }
        }
    } else {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    params
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"))
}

fn answer(json_wanted: bool, fields: &[(&str, String)]) -> Response {
    if json_wanted {
        let map: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect();
        Json(Value::Object(map)).into_response()
    } else {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        (
            [(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            form.finish(),
        )
            .into_response()
    }
}

/// Checks the request and, when it holds, consumes the code and issues a
/// token; returns the token and its comma-joined scopes.
fn exchange(state: &AppState, p: &HashMap<String, String>) -> Result<(String, String), TokenError> {
    let app = &state.config.app;
    let get = |k: &str| p.get(k).map(String::as_str);
    if get("client_id") != Some(app.client_id.as_str())
        || get("client_secret") != Some(app.client_secret.as_str())
    {
        return Err(TokenError::IncorrectClientCredentials);
    }
    let code = get("code").unwrap_or("");
    let registered = app.callback_url.as_deref().and_then(parse_http_url);
    state.store.update(|w| {
        w.purge_expired(now_ms());
        let record = w
            .oauth_codes
            .get(code)
            .filter(|c| c.client_id == app.client_id)
            .ok_or(TokenError::BadVerificationCode)?;
        if let Some(given) = get("redirect_uri").filter(|r| !r.is_empty()) {
            let matches = match (&record.redirect_uri, &registered) {
                (Some(used), _) => used == given,
                (None, Some(callback)) => {
                    parse_http_url(given).is_some_and(|u| is_under(callback, &u))
                }
                (None, None) => false,
            };
            if !matches {
                return Err(TokenError::RedirectUriMismatch);
            }
        }
        let record = w
            .oauth_codes
            .remove(code)
            .ok_or(TokenError::BadVerificationCode)?;
        let value = token(TokenKind::OAuth);
        let scopes = record.scopes.join(",");
        w.user_tokens.insert(
            value.clone(),
            UserToken {
                user_id: record.user_id,
                scopes: record.scopes,
                created_at: now_rfc3339(),
            },
        );
        Ok((value, scopes))
    })
}

pub(crate) async fn access_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let p = params(&headers, query.as_deref(), &body);
    let json_wanted = wants_json(&headers);
    match exchange(&state, &p) {
        Ok((access_token, scope)) => answer(
            json_wanted,
            &[
                ("access_token", access_token),
                ("scope", scope),
                ("token_type", "bearer".to_owned()),
            ],
        ),
        Err(error) => {
            tracing::info!(?error, "token exchange refused");
            answer(json_wanted, &error.fields())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_form_bodies_and_query_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let p = params(&headers, Some("code=q&x=1"), br#"{"code":"j","n":5}"#);
        assert_eq!(p["code"], "j");
        assert_eq!(p["x"], "1");
        assert_eq!(p["n"], "5");
        let p = params(&HeaderMap::new(), None, b"code=f&client_id=a%20b");
        assert_eq!(p["code"], "f");
        assert_eq!(p["client_id"], "a b");
        assert_eq!(
            json!(TokenError::BadVerificationCode.fields()[0].1),
            json!("bad_verification_code")
        );
    }
}
