//! The app's install flow on the web host:
//! `GET /apps/{slug}/installations/new?state=…[&login=…]`.
//!
//! devgithub has no browser sessions, so the page first asks who is
//! installing (or takes devgithub's own `login=` parameter), then offers
//! the user's own account and their organizations, "all repositories" or a
//! selection. Submitting installs the app (or updates an existing
//! installation's selection), sends the matching webhooks and redirects to
//! the setup URL with `installation_id`, `setup_action` and `state`.

use std::fmt::Write;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::changes;
use crate::html::{error_page, escape, hidden, page};
use crate::server::{AppState, Base};
use crate::state::{NewInstallation, Refusal, Selection};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InstallQuery {
    state: Option<String>,
    login: Option<String>,
}

fn check_slug(state: &AppState, slug: &str) -> Result<(), Box<Response>> {
    if slug == state.config.app.slug {
        Ok(())
    } else {
        Err(Box::new(error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("There is no app {slug:?} here."),
        )))
    }
}

fn picker(
    state: &AppState,
    slug: &str,
    query: &InstallQuery,
    status: StatusCode,
    note: Option<&str>,
) -> Response {
    let logins: Vec<String> = state
        .store
        .read(|w| w.users().map(|u| u.login.clone()).collect());
    let mut body = String::new();
    if let Some(note) = note {
        let _ = write!(body, r#"<p class="error">{}</p>"#, escape(note));
    }
    body.push_str("<p>Who is installing?</p>");
    if logins.is_empty() {
        body.push_str(
            "<p class=\"note\">No users yet: sign in through /login/oauth/authorize or POST /_devgithub/users first.</p>",
        );
    }
    for login in &logins {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = &query.state {
            q.append_pair("state", s);
        }
        q.append_pair("login", login);
        let _ = write!(
            body,
            r#"<div><a class="button" href="/apps/{}/installations/new?{}">{}</a></div>"#,
            escape(slug),
            escape(&q.finish()),
            escape(login)
        );
    }
    page(status, &format!("Install {slug}"), &body)
}

fn render_page(state: &AppState, slug: &str, query: &InstallQuery) -> Response {
    if let Err(response) = check_slug(state, slug) {
        return *response;
    }
    let Some(login) = query.login.as_deref() else {
        return picker(state, slug, query, StatusCode::OK, None);
    };
    let view = state.store.read(|w| {
        let user = w.user_by_login(login)?;
        let accounts: Vec<(String, bool, Vec<String>)> = w
            .accounts_of_user(user.id)
            .into_iter()
            .map(|a| {
                let installed = w.installation_for_account(a.id).is_some();
                let repos = w.repos_of(a.id).map(|r| w.full_name(r)).collect();
                (a.login.clone(), installed, repos)
            })
            .collect();
        Some((user.login.clone(), accounts))
    });
    let Some((login, accounts)) = view else {
        return picker(
            state,
            slug,
            query,
            StatusCode::BAD_REQUEST,
            Some(&format!("There is no user {login:?}.")),
        );
    };
    let mut body = format!(
        r#"<p>Signed in as <strong>{}</strong>.</p><form method="post" action="/apps/{}/installations/new">"#,
        escape(&login),
        escape(slug)
    );
    body.push_str(&hidden("login", &login));
    if let Some(s) = &query.state {
        body.push_str(&hidden("state", s));
    }
    body.push_str("<fieldset><legend>Install on</legend>");
    for (i, (account, installed, _)) in accounts.iter().enumerate() {
        let _ = write!(
            body,
            r#"<label><input type="radio" name="account" value="{}"{}> {}{}</label>"#,
            escape(account),
            if i == 0 { " checked" } else { "" },
            escape(account),
            if *installed {
                " (installed: update)"
            } else {
                ""
            }
        );
    }
    body.push_str("</fieldset><fieldset><legend>Repository access</legend>");
    body.push_str(r#"<label><input type="radio" name="repository_selection" value="all" checked> All repositories</label>"#);
    body.push_str(r#"<label><input type="radio" name="repository_selection" value="selected"> Only select repositories:</label>"#);
    for (_, _, repos) in &accounts {
        for full_name in repos {
            let _ = write!(
                body,
                r#"<label>&nbsp;&nbsp;<input type="checkbox" name="repositories" value="{}"> {}</label>"#,
                escape(full_name),
                escape(full_name)
            );
        }
    }
    body.push_str(r#"</fieldset><button class="primary" type="submit">Install</button></form>"#);
    page(StatusCode::OK, &format!("Install {slug}"), &body)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<InstallQuery>,
) -> Response {
    render_page(&state, &slug, &query)
}

/// The submitted form; `repositories` repeats, hence manual parsing.
#[derive(Debug, Default)]
struct InstallForm {
    login: String,
    account: String,
    selection: String,
    repositories: Vec<String>,
    state: Option<String>,
}

impl InstallForm {
    fn parse(body: &[u8]) -> Self {
        let mut form = InstallForm::default();
        for (k, v) in url::form_urlencoded::parse(body).into_owned() {
            match k.as_str() {
                "login" => form.login = v,
                "account" => form.account = v,
                "repository_selection" => form.selection = v,
                "repositories" | "repositories[]" => form.repositories.push(v),
                "state" => form.state = Some(v).filter(|s| !s.is_empty()),
                _ => {}
            }
        }
        form
    }
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Base(base): Base,
    Path(slug): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(response) = check_slug(&state, &slug) {
        return *response;
    }
    let form = InstallForm::parse(&body);
    let Some(selection) = Selection::parse(&form.selection) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Install failed",
            "Choose all or selected repositories.",
        );
    };
    let resolved = state.store.read(|w| {
        let user = w.user_by_login(&form.login)?;
        let account = w
            .accounts_of_user(user.id)
            .into_iter()
            .find(|a| a.login.eq_ignore_ascii_case(&form.account))?;
        let existing = w.installation_for_account(account.id).map(|i| i.id);
        let ids = match selection {
            Selection::All => Ok(Vec::new()),
            Selection::Selected => w.resolve_repos(account.id, &form.repositories),
        };
        Some((user.id, account.login.clone(), existing, ids))
    });
    let Some((user_id, account, existing, ids)) = resolved else {
        return error_page(
            StatusCode::FORBIDDEN,
            "Install failed",
            "That user cannot install on that account.",
        );
    };
    let outcome = match (existing, ids) {
        (_, Err(refusal)) => Err(refusal),
        (Some(id), Ok(ids)) => {
            changes::set_installation_selection(&state, &base, id, selection, ids, Some(user_id))
                .map(|_| (id, "update"))
        }
        (None, Ok(_)) => changes::create_installation(
            &state,
            &base,
            NewInstallation {
                account_login: account,
                selection,
                repositories: form.repositories.clone(),
                permissions: None,
                events: None,
            },
            Some(user_id),
        )
        .map(|json| (json["id"].as_u64().unwrap_or_default(), "install")),
    };
    let (id, action) = match outcome {
        Ok(done) => done,
        Err(Refusal::Invalid { message, .. } | Refusal::Custom { message, .. }) => {
            return error_page(StatusCode::UNPROCESSABLE_ENTITY, "Install failed", &message);
        }
        Err(Refusal::NotFound(what)) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Install failed",
                &format!("No such {what}."),
            );
        }
    };
    let Some(setup) = state
        .config
        .app
        .setup_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    else {
        return page(
            StatusCode::OK,
            "Installed",
            &format!(
                "<p>Installation {id} ({}). No setup URL is configured (devgithub --setup-url).</p>",
                escape(action)
            ),
        );
    };
    let mut url = setup;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("installation_id", &id.to_string());
        q.append_pair("setup_action", action);
        if let Some(s) = &form.state {
            q.append_pair("state", s);
        }
    }
    (StatusCode::FOUND, [(LOCATION, url.to_string())]).into_response()
}
