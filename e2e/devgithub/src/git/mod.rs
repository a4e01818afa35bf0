//! Git's smart HTTP protocol (clone, fetch, push) at each repository's
//! `clone_url`, `{base}/{owner}/{repo}.git` (the `.git` is optional, as on
//! GitHub):
//!
//! - `GET …/info/refs?service=git-upload-pack|git-receive-pack`
//! - `POST …/git-upload-pack`
//! - `POST …/git-receive-pack`
//!
//! Each repository has a bare repository on disk (`bare`), created with
//! the repository: an initial commit with a README on the default branch,
//! and every seeded branch at that commit (a branch seeded with an
//! explicit `sha` has no commit behind it, so it stays REST-only until a
//! push creates it). Repositories from a state directory that predates
//! this get theirs on first use.
//!
//! Requests are authorized here (`auth`: Basic with a token as password,
//! GitHub's 401/404/403 answers), then served by `git http-backend` as a
//! CGI program (`cgi`) under `GIT_PROJECT_ROOT={state_dir}/git`, with the
//! repository named by id, never by the URL's path. Pushes run under a
//! per-repository lock; the refs before and after become branch updates in
//! the world and `push` webhooks (`push`) before the client hears back.
//! git's dumb protocol is not served.

mod auth;
mod bare;
mod cgi;
mod compare;
mod push;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

pub(crate) use bare::{GitError, GitRepos, Seed};
pub(crate) use compare::Comparison;

use crate::clock::now_ms;
use crate::server::AppState;
use auth::{Access, Denial};

/// The smart HTTP endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    InfoRefs,
    UploadPack,
    ReceivePack,
}

impl Endpoint {
    fn suffix(self) -> &'static str {
        match self {
            Endpoint::InfoRefs => "info/refs",
            Endpoint::UploadPack => "git-upload-pack",
            Endpoint::ReceivePack => "git-receive-pack",
        }
    }
}

/// `/{owner}/{repo}[.git]/{endpoint}` → owner, repository name, endpoint.
fn route(path: &str) -> Option<(&str, &str, Endpoint)> {
    let mut segments = path.strip_prefix('/')?.splitn(3, '/');
    let (owner, repo, rest) = (segments.next()?, segments.next()?, segments.next()?);
    let endpoint = [
        Endpoint::InfoRefs,
        Endpoint::UploadPack,
        Endpoint::ReceivePack,
    ]
    .into_iter()
    .find(|e| e.suffix() == rest)?;
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (!owner.is_empty() && !owner.starts_with('_') && !repo.is_empty())
        .then_some((owner, repo, endpoint))
}

/// Whether `path` is one git's HTTP client would request (smart or dumb).
pub(crate) fn is_git_path(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').splitn(3, '/');
    let (Some(owner), Some(repo)) = (segments.next(), segments.next()) else {
        return false;
    };
    let rest = segments.next().unwrap_or("");
    !owner.is_empty()
        && !owner.starts_with('_')
        && (std::path::Path::new(repo)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("git"))
            || rest == "info/refs"
            || rest == "git-upload-pack"
            || rest == "git-receive-pack")
}

fn plain(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
}

fn internal(error: &GitError) -> Response {
    tracing::error!(%error, "git smart HTTP");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "git failed on the server\n",
    )
}

/// Creates the bare repository of `repo_id` unless it exists, and points
/// the world's branches (except `pinned`, which name commits git does not
/// have) at its initial commit.
pub(crate) async fn materialize(
    state: &AppState,
    repo_id: u64,
    pinned: &[String],
) -> Result<(), GitError> {
    let _guard = state.git.lock(repo_id).await;
    if state.git.exists(repo_id) {
        return Ok(());
    }
    let Some((seed, names)) = state.store.read(|w| {
        let repo = w.repos.get(&repo_id)?;
        let names: Vec<String> = repo
            .branches
            .iter()
            .map(|b| b.name.clone())
            .filter(|n| *n == repo.default_branch || !pinned.contains(n))
            .collect();
        let readme = match repo.description.as_deref().filter(|d| !d.is_empty()) {
            Some(description) => format!("# {}\n\n{description}\n", repo.name),
            None => format!("# {}\n", repo.name),
        };
        let seed = Seed {
            readme,
            default_branch: repo.default_branch.clone(),
            branches: names.clone(),
            date: repo.created_at.clone(),
        };
        Some((seed, names))
    }) else {
        return Ok(());
    };
    let commit = state.git.create(repo_id, &seed).await?;
    state
        .store
        .update(|w| w.set_branch_shas(repo_id, &names, &commit));
    Ok(())
}

/// Deletes the repository's bare repository; failures are only logged.
pub(crate) async fn remove(state: &AppState, repo_id: u64) {
    if let Err(error) = state.git.remove(repo_id).await {
        tracing::warn!(%error, repo_id, "removing a bare repository");
    }
}

/// Serves one smart HTTP request for a path [`is_git_path`] accepted.
pub(crate) async fn serve(state: AppState, base: String, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some((owner, name, endpoint)) = route(&path) else {
        tracing::info!(path, "git request outside the smart protocol");
        return plain(
            StatusCode::NOT_FOUND,
            "devgithub serves git's smart HTTP protocol only\n",
        );
    };
    let query = request.uri().query().unwrap_or("").to_owned();
    let access = match endpoint {
        Endpoint::ReceivePack => Access::Write,
        Endpoint::UploadPack => Access::Read,
        Endpoint::InfoRefs => {
            let service = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "service")
                .map(|(_, v)| v.into_owned());
            if service.as_deref() == Some("git-receive-pack") {
                Access::Write
            } else {
                Access::Read
            }
        }
    };
    let grant = match auth::presented_token(request.headers()).and_then(|token| {
        state.store.read(|w| {
            auth::decide(
                w,
                &state.config.app,
                owner,
                name,
                token.as_deref(),
                access,
                now_ms(),
            )
        })
    }) {
        Ok(grant) => grant,
        Err(denial) => {
            if denial != Denial::NoCredentials {
                tracing::info!(path, ?denial, "git request refused");
            }
            return denial.into_response();
        }
    };
    if !state.git.exists(grant.repo_id)
        && let Err(error) = materialize(&state, grant.repo_id, &[]).await
    {
        return internal(&error);
    }

    let (parts, body) = request.into_parts();
    let cgi_request = cgi::CgiRequest {
        path_info: format!("/{}.git/{}", grant.repo_id, endpoint.suffix()),
        query: &query,
        method: &parts.method,
        headers: &parts.headers,
        remote_user: grant.remote_user.as_deref(),
    };
    let root = state.git.root().to_path_buf();
    if endpoint != Endpoint::ReceivePack {
        return match cgi::spawn(&root, &cgi_request, body) {
            Ok(running) => running.respond().await,
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| internal(&e));
    }

    // A push: serialize it with others to the repository, and record what
    // it changed before answering, so the REST API and webhooks agree with
    // the client as soon as `git push` returns.
    let _guard = state.git.lock(grant.repo_id).await;
    let dir = state.git.dir(grant.repo_id);
    let result = async {
        let before = state.git.refs(grant.repo_id).await?;
        let (head, out) = cgi::spawn(&root, &cgi_request, body)?.finish().await?;
        let after = state.git.refs(grant.repo_id).await?;
        let mut pushes = Vec::new();
        for update in push::diff(&before, &after) {
            pushes.push(push::details(&root, &dir, &before, update).await?);
        }
        Ok::<_, GitError>((head, out, pushes))
    }
    .await;
    match result {
        Ok((head, out, pushes)) => {
            if !pushes.is_empty() {
                push::apply(&state, &base, grant.repo_id, &grant.actor, &pushes);
            }
            cgi::buffered_response(head, out)
        }
        Err(e) => internal(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_git_paths() {
        assert!(is_git_path("/octo/hello.git"));
        assert!(is_git_path("/octo/hello.git/info/refs"));
        assert!(is_git_path("/octo/hello/info/refs"));
        assert!(is_git_path("/octo/hello/git-upload-pack"));
        assert!(!is_git_path("/octo/hello"));
        assert!(!is_git_path("/repos/octo/hello"));
        assert!(!is_git_path("/_devgithub/x.git"));
    }

    #[test]
    fn routes_smart_http_endpoints() {
        assert_eq!(
            route("/octo/hello.git/info/refs"),
            Some(("octo", "hello", Endpoint::InfoRefs))
        );
        assert_eq!(
            route("/octo/hello/git-upload-pack"),
            Some(("octo", "hello", Endpoint::UploadPack))
        );
        assert_eq!(
            route("/octo/hello.git/git-receive-pack"),
            Some(("octo", "hello", Endpoint::ReceivePack))
        );
        assert_eq!(route("/octo/hello.git"), None);
        assert_eq!(route("/octo/hello.git/HEAD"), None);
        assert_eq!(route("/octo/hello.git/objects/info/packs"), None);
        assert_eq!(route("/_devgithub/x.git/info/refs"), None);
        assert_eq!(route("/octo/.git/info/refs"), None);
    }
}
