//! `GET /login/oauth/authorize`: checks the client and redirect, then shows
//! the local users to sign in as (or, with devgithub's own `login=`
//! parameter, signs that user in at once). `POST` creates a user from the
//! page's form and signs them in. Either way the browser goes back to
//! `redirect_uri?code=…&state=…`.

use std::fmt::Write;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use url::Url;

use super::callback::{is_under, parse_http_url, with_params};
use super::parse_scopes;
use crate::clock::now_ms;
use crate::html::{error_page, escape, hidden, page};
use crate::ids::oauth_code;
use crate::server::AppState;
use crate::state::{OAuthCode, Refusal};

/// Query of the authorize page, and fields of its create-user form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    /// devgithub only: sign this user in without showing the page.
    login: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

/// Where the code goes, once the request checks out.
struct Target {
    url: Url,
    /// The `redirect_uri` as given (the exchange must repeat it).
    given: Option<String>,
}

fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(LOCATION, location.to_owned())]).into_response()
}

/// Checks `client_id` and `redirect_uri`; the error is the response to send.
fn check(state: &AppState, params: &AuthorizeParams) -> Result<Target, Box<Response>> {
    let app = &state.config.app;
    if params.client_id.as_deref() != Some(app.client_id.as_str()) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "The client_id in this authorization request does not belong to any application here.",
        )));
    }
    let registered = app.callback_url.as_deref().and_then(parse_http_url);
    let Some(given) = params.redirect_uri.as_deref().filter(|r| !r.is_empty()) else {
        return registered.map(|url| Target { url, given: None }).ok_or_else(|| {
            Box::new(error_page(
                StatusCode::BAD_REQUEST,
                "Missing redirect_uri",
                "redirect_uri is required: no callback URL is registered (devgithub --callback-url).",
            ))
        });
    };
    let Some(url) = parse_http_url(given) else {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect_uri",
            "redirect_uri must be an absolute http(s) URL.",
        )));
    };
    if let Some(callback) = registered
        && !is_under(&callback, &url)
    {
        // GitHub sends the browser to the registered callback with an error.
        let mut error = vec![
            ("error", "redirect_uri_mismatch"),
            (
                "error_description",
                "The redirect_uri MUST match the registered callback URL for this application.",
            ),
            (
                "error_uri",
                "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
            ),
        ];
        if let Some(s) = params.state.as_deref() {
            error.push(("state", s));
        }
        return Err(Box::new(found(&with_params(&callback, &error))));
    }
    Ok(Target {
        url,
        given: Some(given.to_owned()),
    })
}

/// Issues a code for `user_id` and redirects to the target with it.
fn sign_in(state: &AppState, params: &AuthorizeParams, target: Target, user_id: u64) -> Response {
    let code = oauth_code();
    let ttl_ms = i64::try_from(state.config.oauth_code_ttl.as_millis()).unwrap_or(i64::MAX);
    let record = OAuthCode {
        user_id,
        client_id: state.config.app.client_id.clone(),
        redirect_uri: target.given,
        scopes: parse_scopes(params.scope.as_deref()),
        expires_at_ms: now_ms().saturating_add(ttl_ms),
    };
    state.store.update(|w| {
        w.purge_expired(now_ms());
        w.oauth_codes.insert(code.clone(), record);
    });
    let mut query = vec![("code", code.as_str())];
    if let Some(s) = params.state.as_deref() {
        query.push(("state", s));
    }
    found(&with_params(&target.url, &query))
}

/// The OAuth parameters to carry through links and forms.
fn carried(params: &AuthorizeParams) -> Vec<(&'static str, &str)> {
    [
        ("client_id", params.client_id.as_deref()),
        ("redirect_uri", params.redirect_uri.as_deref()),
        ("state", params.state.as_deref()),
        ("scope", params.scope.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

fn chooser(
    state: &AppState,
    params: &AuthorizeParams,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let users: Vec<(String, Option<String>)> = state.store.read(|w| {
        w.users()
            .map(|u| (u.login.clone(), u.name.clone()))
            .collect()
    });
    let mut body = String::new();
    if let Some(error) = error {
        let _ = write!(body, r#"<p class="error">{}</p>"#, escape(error));
    }
    let scopes = parse_scopes(params.scope.as_deref());
    let _ = write!(
        body,
        "<p>Sign in to <strong>{}</strong>{}.</p>",
        escape(&state.config.app.slug),
        if scopes.is_empty() {
            String::new()
        } else {
            format!(" with scopes <code>{}</code>", escape(&scopes.join(", ")))
        }
    );
    if users.is_empty() {
        body.push_str("<p class=\"note\">No users yet: create one below.</p>");
    } else {
        body.push_str("<fieldset><legend>Continue as</legend>");
        for (login, name) in &users {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in carried(params) {
                query.append_pair(k, v);
            }
            query.append_pair("login", login);
            let label = match name {
                Some(name) => format!("{} ({})", escape(login), escape(name)),
                None => escape(login),
            };
            let _ = write!(
                body,
                r#"<div><a class="button" href="/login/oauth/authorize?{}">{label}</a></div>"#,
                escape(&query.finish())
            );
        }
        body.push_str("</fieldset>");
    }
    body.push_str(r#"<form method="post" action="/login/oauth/authorize"><fieldset><legend>New user</legend>"#);
    for (k, v) in carried(params) {
        body.push_str(&hidden(k, v));
    }
    body.push_str(concat!(
        r#"<label>Login <input type="text" name="login" required pattern="[A-Za-z0-9](-?[A-Za-z0-9])*" maxlength="39"></label>"#,
        r#"<label>Name <input type="text" name="name"></label>"#,
        r#"<label>Email <input type="email" name="email"></label>"#,
        r#"<button class="primary" type="submit">Create and sign in</button></fieldset></form>"#,
    ));
    page(status, "Sign in to devgithub", &body)
}

pub(crate) async fn authorize_page(
    State(state): State<AppState>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let target = match check(&state, &params) {
        Ok(target) => target,
        Err(response) => return *response,
    };
    let Some(login) = params.login.as_deref() else {
        return chooser(&state, &params, StatusCode::OK, None);
    };
    match state.store.read(|w| w.user_by_login(login).map(|u| u.id)) {
        Some(user_id) => sign_in(&state, &params, target, user_id),
        None => chooser(
            &state,
            &params,
            StatusCode::BAD_REQUEST,
            Some(&format!("There is no user {login:?}.")),
        ),
    }
}

pub(crate) async fn authorize_submit(
    State(state): State<AppState>,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    let target = match check(&state, &params) {
        Ok(target) => target,
        Err(response) => return *response,
    };
    let login = params.login.clone().unwrap_or_default();
    let created = state
        .store
        .update(|w| w.create_user(&login, params.name.clone(), params.email.clone()));
    match created {
        Ok(user) => sign_in(&state, &params, target, user.id),
        Err(Refusal::Invalid { message, .. } | Refusal::Custom { message, .. }) => chooser(
            &state,
            &params,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&message),
        ),
        Err(Refusal::NotFound(what)) => error_page(StatusCode::NOT_FOUND, "Not found", &what),
    }
}
