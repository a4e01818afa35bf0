//! `GET /{owner}/{repo}/pull/{number}`: a plain page for a pull request
//! (title, state, author, head → base, body and the files it changes), so
//! a person or a browser test can look at what was opened. Like the admin
//! API it needs no sign-in (devgithub only listens on loopback).

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::html::{error_page, escape, page};
use crate::render;
use crate::server::{AppState, Base};
use crate::state::{Pull, PullState, RepoLookup};

fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such pull request.",
    )
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Base(base): Base,
    Path((owner, name, number)): Path<(String, String, String)>,
) -> Response {
    let Ok(number) = number.parse::<u64>() else {
        return not_found();
    };
    let found = state.store.read(|w| {
        let id = match w.lookup_repo(&owner, &name) {
            RepoLookup::Found(id) | RepoLookup::Moved(id) => id,
            RepoLookup::Missing => return None,
        };
        let pull = w.pull_by_number(id, number)?.clone();
        let author = render::pull_author(&base, &state.config.app, w, &pull)["login"]
            .as_str()
            .unwrap_or("ghost")
            .to_owned();
        let full_name = w.full_name(w.repos.get(&id)?);
        Some((pull, author, full_name))
    });
    let Some((pull, author, full_name)) = found else {
        return not_found();
    };
    let comparison = state
        .git
        .compare(pull.repo_id, &pull.base_sha, &pull.head_sha)
        .await
        .unwrap_or_default();
    let body = describe(&base, &full_name, &pull, &author, &comparison);
    page(
        StatusCode::OK,
        &format!("{} #{}", pull.title, pull.number),
        &body,
    )
}

fn describe(
    base: &str,
    full_name: &str,
    pull: &Pull,
    author: &str,
    comparison: &crate::git::Comparison,
) -> String {
    let state = if pull.draft && pull.state == PullState::Open {
        "draft"
    } else {
        pull.state.as_str()
    };
    let commits = comparison.commits;
    let mut html = format!(
        r#"<p><strong class="state" data-state="{state}">{state}</strong> · <span class="author">{author}</span> wants to merge {commits} commit{s} into <code class="base">{base_ref}</code> from <code class="head">{head_ref}</code></p>"#,
        author = escape(author),
        s = if commits == 1 { "" } else { "s" },
        base_ref = escape(&pull.base_ref),
        head_ref = escape(&pull.head_ref),
    );
    match pull.body.as_deref().filter(|b| !b.trim().is_empty()) {
        Some(text) => {
            let _ = write!(
                html,
                r#"<div class="body" style="white-space:pre-wrap;border:1px solid #d1d9e0;border-radius:6px;padding:.5rem 1rem">{}</div>"#,
                escape(text)
            );
        }
        None => html.push_str(r#"<p class="note body">No description provided.</p>"#),
    }
    let files = comparison.files.len();
    let _ = write!(
        html,
        r#"<h2 style="font-size:1.1rem">Files changed <span class="count">{files}</span> <span class="note">(+{} −{})</span></h2><ul class="files">"#,
        comparison.additions(),
        comparison.deletions(),
    );
    for file in &comparison.files {
        let counts = match (file.additions, file.deletions) {
            (Some(a), Some(d)) => format!("+{a} −{d}"),
            _ => "binary".to_owned(),
        };
        let _ = write!(
            html,
            r#"<li data-status="{status}"><code>{path}</code> <span class="note">{status}, {counts}</span></li>"#,
            status = file.status,
            path = escape(&file.path),
        );
    }
    html.push_str("</ul>");
    let _ = write!(
        html,
        r#"<p class="note">Head <code>{}</code> · base <code>{}</code> · <a href="{base}/repos/{full_name}/pulls/{}">API</a></p>"#,
        escape(&pull.head_sha),
        escape(&pull.base_sha),
        pull.number,
        base = escape(base),
        full_name = escape(full_name),
    );
    html
}
