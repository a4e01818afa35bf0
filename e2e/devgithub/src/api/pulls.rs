//! Pull requests between branches of one repository (forks are not
//! emulated): `POST /repos/{owner}/{repo}/pulls`, `GET …/pulls` (with
//! `state`, `head`, `base`, `sort`, `direction` and pagination),
//! `GET …/pulls/{number}` and `PATCH …/pulls/{number}` (title, body,
//! state). The branches are checked against the bare git repository, so
//! a pull request can only join branches that really exist there, and its
//! counts (`commits`, `changed_files`, …) come from git.
//!
//! Access is the repository routes' (`super::repos`): a repository the
//! caller cannot see is 404. Installation tokens also need the
//! `pull_requests` permission (`write` to open or edit; `read` to list a
//! private repository's), else 403 as on GitHub. Opening needs a token.
//! Other pull request paths (`/files`, `/merge`, reviews…) answer 501.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::pagination::respond;
use super::repos::{RepoRef, with_repo};
use super::{ApiError, JsonBody, Page};
use crate::changes;
use crate::git::{self, Comparison};
use crate::render;
use crate::server::{AppState, Base};
use crate::state::{NewPull, Pull, PullAuthor, PullState, Repo, World};

const CREATE_DOCS: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
const GET_DOCS: &str = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request";

async fn not_emulated() -> Response {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "devgithub does not emulate this pull request endpoint yet",
    )
    .into_response()
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/repos/{owner}/{repo}/pulls", get(list).post(create))
        .route(
            "/repos/{owner}/{repo}/pulls/{number}",
            get(get_one).patch(update),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/{*rest}",
            any(not_emulated),
        )
}

/// Whether the caller may read (`write == false`) or open and edit pull
/// requests of a repository it can see.
fn check_permission(
    world: &World,
    caller: &Caller,
    repo: &Repo,
    write: bool,
) -> Result<(), ApiError> {
    match caller {
        Caller::Anonymous if write => Err(ApiError::requires_authentication()),
        Caller::Installation { token, .. } => {
            let level = world
                .installation_tokens
                .get(token)
                .and_then(|t| t.permissions.get("pull_requests"))
                .map_or("none", String::as_str);
            let allowed = match level {
                "write" | "admin" => true,
                "read" => !write,
                _ => !write && !repo.private,
            };
            if allowed {
                Ok(())
            } else {
                Err(ApiError::forbidden(
                    "Resource not accessible by integration",
                ))
            }
        }
        _ => Ok(()),
    }
}

fn author_of(caller: &Caller) -> PullAuthor {
    match caller {
        Caller::User { user_id, .. } => PullAuthor::User(*user_id),
        _ => PullAuthor::Bot,
    }
}

/// Compares the pull request's branches in git; a comparison git cannot
/// make (a SHA it does not have) reads as empty.
async fn compare(state: &AppState, repo_id: u64, base: &str, head: &str) -> Comparison {
    match state.git.compare(repo_id, base, head).await {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, repo_id, "comparing pull request branches");
            Comparison::default()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CreatePull {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    draft: Option<bool>,
}

fn missing(field: &str) -> Value {
    json!({ "resource": "PullRequest", "field": field, "code": "missing_field" })
}

fn invalid(field: &str) -> Value {
    json!({ "resource": "PullRequest", "field": field, "code": "invalid" })
}

fn validation(errors: Vec<Value>) -> ApiError {
    ApiError::validation(Value::Array(errors)).docs(CREATE_DOCS)
}

/// 201 with the pull request, or 422 `Validation Failed` when a field is
/// missing, a branch does not exist, head has no commits base lacks, or
/// a pull request for the same branches is already open.
pub(super) async fn create(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path((owner, name)): Path<(String, String)>,
    JsonBody(input): JsonBody<CreatePull>,
) -> Result<Response, ApiError> {
    if matches!(caller, Caller::Anonymous) {
        return Err(ApiError::requires_authentication());
    }
    let (repo_id, owner_login) = with_repo(
        &state,
        &base,
        &uri,
        &caller,
        RepoRef::Name(owner, name),
        |w, repo| {
            check_permission(w, &caller, repo, true)?;
            let login = w.repo_owner(repo).map_or("ghost", |a| a.login.as_str());
            Ok((repo.id, login.to_owned()))
        },
    )?;

    let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let (title, head, base_ref) = (
        present(input.title),
        present(input.head),
        present(input.base),
    );
    let mut errors: Vec<Value> = [("title", &title), ("head", &head), ("base", &base_ref)]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(field, _)| missing(field))
        .collect();
    let (Some(title), Some(head), Some(base_ref)) = (title, head, base_ref) else {
        return Err(validation(errors));
    };
    // `owner:branch` names a branch of that owner's fork; only the
    // repository's own owner has one here.
    let head_ref = match head.split_once(':') {
        Some((who, branch)) if who.eq_ignore_ascii_case(&owner_login) => branch.to_owned(),
        Some(_) => String::new(),
        None => head.clone(),
    };

    if !state.git.exists(repo_id)
        && let Err(error) = git::materialize(&state, repo_id, &[]).await
    {
        tracing::error!(%error, "creating a bare repository");
    }
    let refs = state.git.refs(repo_id).await.map_err(|error| {
        tracing::error!(%error, "reading refs");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "git failed on the server",
        )
    })?;
    let sha_of = |branch: &str| refs.get(&format!("refs/heads/{branch}")).cloned();
    let (head_sha, base_sha) = (sha_of(&head_ref), sha_of(&base_ref));
    if head_sha.is_none() || head_ref.is_empty() {
        errors.push(invalid("head"));
    }
    if base_sha.is_none() {
        errors.push(invalid("base"));
    }
    let (Some(head_sha), Some(base_sha)) = (head_sha, base_sha) else {
        return Err(validation(errors));
    };

    let exists = state
        .store
        .read(|w| w.open_pull(repo_id, &head_ref, &base_ref).is_some());
    let comparison = if exists {
        Comparison::default()
    } else {
        compare(&state, repo_id, &base_sha, &head_sha).await
    };
    if !exists && (head_ref == base_ref || comparison.commits == 0) {
        return Err(validation(vec![json!({
            "resource": "PullRequest",
            "code": "custom",
            "message": format!("No commits between {base_ref} and {head_ref}"),
        })]));
    }
    let spec = NewPull {
        repo_id,
        title,
        body: input.body,
        draft: input.draft.unwrap_or(false),
        head_ref,
        head_sha,
        base_ref,
        base_sha,
        author: author_of(&caller),
    };
    let body = changes::open_pull(&state, &base, spec, &comparison)
        .map_err(|refusal| ApiError::from(refusal).docs(CREATE_DOCS))?;
    let mut response = (StatusCode::CREATED, Json(body.clone())).into_response();
    if let Some(location) = body["url"]
        .as_str()
        .and_then(|u| HeaderValue::from_str(u).ok())
    {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// `?state=open|closed|all` (default `open`), `head=owner:branch`,
/// `base=branch`, `sort=created|updated`, `direction=asc|desc`.
fn list_filter(uri: &Uri, owner_login: &str) -> impl Fn(&Pull) -> bool + use<> {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let wanted = match param("state").as_deref() {
        Some("closed") => Some(PullState::Closed),
        Some("all") => None,
        _ => Some(PullState::Open),
    };
    // GitHub filters by `user:ref-name`; a head of another owner matches
    // nothing here.
    let head = param("head")
        .filter(|h| !h.is_empty())
        .map(|h| match h.split_once(':') {
            Some((who, branch)) if who.eq_ignore_ascii_case(owner_login) => Some(branch.to_owned()),
            Some(_) => None,
            None => Some(h),
        });
    let base = param("base").filter(|b| !b.is_empty());
    move |p: &Pull| {
        wanted.is_none_or(|s| p.state == s)
            && head
                .as_ref()
                .is_none_or(|h| h.as_deref() == Some(p.head_ref.as_str()))
            && base.as_ref().is_none_or(|b| *b == p.base_ref)
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    page: Page,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let by_updated = query.iter().any(|(k, v)| k == "sort" && v == "updated");
    let ascending = query.iter().any(|(k, v)| k == "direction" && v == "asc");
    let paged = with_repo(
        &state,
        &base,
        &uri,
        &caller,
        RepoRef::Name(owner, name),
        |w, repo| {
            check_permission(w, &caller, repo, false)?;
            let login = w.repo_owner(repo).map_or("ghost", |a| a.login.as_str());
            let keep = list_filter(&uri, login);
            let mut pulls: Vec<&Pull> = w
                .pulls
                .values()
                .filter(|p| p.repo_id == repo.id && keep(p))
                .collect();
            // Newest first by default; numbers break ties within a second.
            pulls.sort_by(|a, b| {
                let key = |p: &Pull| {
                    let at = if by_updated {
                        &p.updated_at
                    } else {
                        &p.created_at
                    };
                    (at.clone(), p.number)
                };
                key(a).cmp(&key(b))
            });
            if !ascending {
                pulls.reverse();
            }
            let items: Vec<Value> = pulls
                .into_iter()
                .map(|p| render::pull(&base, &state.config.app, w, repo, p, None))
                .collect();
            Ok(page.apply(items))
        },
    )?;
    Ok(respond(Value::Array(paged.items), paged.link))
}

fn pull_not_found() -> ApiError {
    ApiError::not_found().docs(GET_DOCS)
}

/// The repository's pull request `number`, checked like a read.
fn find_pull(
    state: &AppState,
    base: &str,
    uri: &Uri,
    caller: &Caller,
    reference: RepoRef,
    number: &str,
    write: bool,
) -> Result<Pull, ApiError> {
    let number: u64 = number.parse().map_err(|_| pull_not_found())?;
    with_repo(state, base, uri, caller, reference, |w, repo| {
        check_permission(w, caller, repo, write)?;
        w.pull_by_number(repo.id, number)
            .cloned()
            .ok_or_else(pull_not_found)
    })
}

/// The full shape, with the branches compared in git.
async fn full(state: &AppState, base: &str, pull: &Pull) -> Result<Json<Value>, ApiError> {
    let comparison = compare(state, pull.repo_id, &pull.base_sha, &pull.head_sha).await;
    state
        .store
        .read(|w| {
            let repo = w.repos.get(&pull.repo_id)?;
            let pull = w.pulls.get(&pull.id)?;
            Some(render::pull(
                base,
                &state.config.app,
                w,
                repo,
                pull,
                Some(&comparison),
            ))
        })
        .map(Json)
        .ok_or_else(pull_not_found)
}

pub(super) async fn get_one(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path((owner, name, number)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let pull = find_pull(
        &state,
        &base,
        &uri,
        &caller,
        RepoRef::Name(owner, name),
        &number,
        false,
    )?;
    full(&state, &base, &pull).await
}

#[derive(Debug, Deserialize)]
pub(super) struct UpdatePull {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

/// `PATCH`: title, body, and `state` `open` or `closed`. Reopening while
/// another pull request for the same branches is open is a 422.
pub(super) async fn update(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path((owner, name, number)): Path<(String, String, String)>,
    JsonBody(input): JsonBody<UpdatePull>,
) -> Result<Json<Value>, ApiError> {
    if matches!(caller, Caller::Anonymous) {
        return Err(ApiError::requires_authentication());
    }
    let pull = find_pull(
        &state,
        &base,
        &uri,
        &caller,
        RepoRef::Name(owner, name),
        &number,
        true,
    )?;
    let new_state = match input.state.as_deref() {
        None => None,
        Some("open") => Some(PullState::Open),
        Some("closed") => Some(PullState::Closed),
        Some(_) => {
            return Err(ApiError::validation(json!([{
                "resource": "PullRequest",
                "field": "state",
                "code": "invalid",
            }])));
        }
    };
    if input.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::validation(json!([missing("title")])));
    }
    let pull = changes::update_pull(
        &state,
        &base,
        pull.id,
        input.title,
        input.body,
        new_state,
        author_of(&caller),
    )?;
    full(&state, &base, &pull).await
}
