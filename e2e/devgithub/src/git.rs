//! Seam for git's smart HTTP protocol (clone, fetch, push), not emulated
//! yet. `clone_url` already points here (`{base}/{owner}/{repo}.git`); a
//! client that follows it gets a clear 501 instead of a confusing 404.
//!
//! An implementation would serve `GET /{owner}/{repo}.git/info/refs`,
//! `POST …/git-upload-pack` and `POST …/git-receive-pack`, backed by a
//! bare repository per `state::Repo` under the state directory, keep
//! `Repo::branches` in sync with its refs, and announce pushes as `push`
//! webhooks via `crate::hooks`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Whether `path` is one git's smart HTTP client would request.
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

pub(crate) fn not_emulated(path: &str) -> Response {
    tracing::info!(path, "git smart HTTP requested; not emulated");
    (
        StatusCode::NOT_IMPLEMENTED,
        "devgithub does not serve git smart HTTP (clone/fetch/push) yet\n",
    )
        .into_response()
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
}
