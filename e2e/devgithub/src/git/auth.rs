//! Who may clone, fetch and push, decided the way GitHub does for git over
//! HTTPS.
//!
//! The credential is HTTP Basic whose password is a token (the username is
//! ignored; `x-access-token` is conventional). A token given as the
//! username with an empty password works too, as on GitHub, and so does
//! `Authorization: Bearer|token T` (what `http.extraHeader` setups send).
//! Tokens: an installation access token (`ghs_…`, unexpired, not revoked)
//! or a user's OAuth token (`gho_…`).
//!
//! - Read (`git-upload-pack`): public repositories for anyone, anonymous
//!   included; private ones for users on the owner's side (the owner, or a
//!   member of the owning organization) and for installation tokens that
//!   reach the repository and hold `contents: read` or `write`.
//! - Write (`git-receive-pack`): users on the owner's side; installation
//!   tokens that reach the repository with `contents: write`.
//! - No credential where one is needed, or a bad one (even on a public
//!   repository) → 401 with `WWW-Authenticate: Basic realm="GitHub"`, so
//!   git asks its credential helper. A valid token that cannot see the
//!   repository (or a repository that does not exist) → 404. One that can
//!   read but not write, on a push → 403.
//!
//! OAuth scopes are not checked, as devgithub's REST side does not check
//! them for repositories either.

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::AppConfig;
use crate::state::{InstallationToken, RepoLookup, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// Who is behind a request that was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Actor {
    Anonymous,
    User(u64),
    Installation(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub repo_id: u64,
    pub actor: Actor,
    /// `REMOTE_USER` for `git http-backend` (which enables receive-pack
    /// only when it is set): the user's login or the app's bot login.
    pub remote_user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    NoCredentials,
    BadCredentials,
    NotFound,
    Forbidden(String),
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let text = |status: StatusCode, body: String| {
            (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        };
        match self {
            Denial::NoCredentials | Denial::BadCredentials => {
                let body = if self == Denial::NoCredentials {
                    "Authentication required.\n"
                } else {
                    "Invalid username or token. Password authentication is not supported for Git operations.\n"
                };
                let mut response = text(StatusCode::UNAUTHORIZED, body.to_owned());
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Basic realm=\"GitHub\""),
                );
                response
            }
            Denial::NotFound => text(StatusCode::NOT_FOUND, "Repository not found.\n".into()),
            Denial::Forbidden(message) => text(StatusCode::FORBIDDEN, format!("{message}\n")),
        }
    }
}

/// The token a request presents: `Ok(None)` for none, `Err` for an
/// `Authorization` header that cannot be read.
pub(crate) fn presented_token(headers: &HeaderMap) -> Result<Option<String>, Denial> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Denial::BadCredentials)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(Denial::BadCredentials)?;
    let rest = rest.trim();
    let token = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or(Denial::BadCredentials)?;
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if password.is_empty() {
            user.to_owned()
        } else {
            password.to_owned()
        }
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        rest.to_owned()
    } else {
        return Err(Denial::BadCredentials);
    };
    if token.is_empty() {
        return Err(Denial::BadCredentials);
    }
    Ok(Some(token))
}

/// `contents` of an installation token: 0 none, 1 read, 2 write or admin.
fn contents_level(token: &InstallationToken) -> u8 {
    match token.permissions.get("contents").map(String::as_str) {
        Some("read") => 1,
        Some("write" | "admin") => 2,
        _ => 0,
    }
}

/// The app's bot account, which installation tokens act as.
pub(crate) fn bot_login(app: &AppConfig) -> String {
    format!("{}[bot]", app.slug)
}

/// Decides a request for `owner/name` (a renamed repository's old name is
/// served too; GitHub redirects it).
pub(crate) fn decide(
    world: &World,
    app: &AppConfig,
    owner: &str,
    name: &str,
    token: Option<&str>,
    access: Access,
    now_ms: i64,
) -> Result<Grant, Denial> {
    enum Who<'a> {
        Anonymous,
        User(u64),
        Installation(&'a InstallationToken),
    }
    let who = match token {
        None => Who::Anonymous,
        Some(t) => {
            if let Some(user) = world.user_tokens.get(t) {
                Who::User(user.user_id)
            } else if let Some(inst) = world.installation_tokens.get(t).filter(|i| {
                i.expires_at_ms > now_ms && world.installations.contains_key(&i.installation_id)
            }) {
                Who::Installation(inst)
            } else {
                return Err(Denial::BadCredentials);
            }
        }
    };
    let hidden = || match who {
        Who::Anonymous => Denial::NoCredentials,
        _ => Denial::NotFound,
    };
    let repo = match world.lookup_repo(owner, name) {
        RepoLookup::Found(id) | RepoLookup::Moved(id) => world.repos.get(&id),
        RepoLookup::Missing => None,
    }
    .ok_or_else(hidden)?;
    let (can_read, can_write, actor, remote_user) = match &who {
        Who::Anonymous => (!repo.private, false, Actor::Anonymous, None),
        Who::User(id) => (
            world.user_can_read(*id, repo),
            world.user_is_owner_side(*id, repo),
            Actor::User(*id),
            world.accounts.get(id).map(|a| a.login.clone()),
        ),
        Who::Installation(t) => {
            let reaches = world.token_repo_ids(t).contains(&repo.id);
            let level = contents_level(t);
            (
                !repo.private || (reaches && level >= 1),
                reaches && level >= 2,
                Actor::Installation(t.installation_id),
                Some(bot_login(app)),
            )
        }
    };
    if !can_read {
        return Err(hidden());
    }
    if access == Access::Write && !can_write {
        if matches!(who, Who::Anonymous) {
            return Err(Denial::NoCredentials);
        }
        let full_name = world.full_name(repo);
        let whom = remote_user.as_deref().unwrap_or("you");
        return Err(Denial::Forbidden(format!(
            "Permission to {full_name}.git denied to {whom}."
        )));
    }
    Ok(Grant {
        repo_id: repo.id,
        actor,
        remote_user,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::{NewInstallation, NewRepo, Selection, UserToken};

    fn app() -> AppConfig {
        AppConfig {
            id: 1,
            slug: "sam".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            public_key_pem: String::new(),
            callback_url: None,
            setup_url: None,
        }
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn credentials_come_from_basic_or_bearer() {
        assert_eq!(presented_token(&HeaderMap::new()), Ok(None));
        assert_eq!(
            presented_token(&basic("x-access-token", "ghs_1")),
            Ok(Some("ghs_1".into()))
        );
        // The token as the username, as GitHub also takes it.
        assert_eq!(
            presented_token(&basic("gho_2", "")),
            Ok(Some("gho_2".into()))
        );
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer ghs_3".parse().unwrap());
        assert_eq!(presented_token(&headers), Ok(Some("ghs_3".into())));
        headers.insert(AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(presented_token(&headers), Err(Denial::BadCredentials));
        headers.insert(AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(presented_token(&headers), Err(Denial::BadCredentials));
    }

    fn world() -> World {
        let mut w = World::default();
        let owner = w.create_user("octo", None, None).unwrap().id;
        let stranger = w.create_user("stranger", None, None).unwrap().id;
        for (name, private) in [("secret", true), ("open", false), ("other", true)] {
            w.create_repo(NewRepo {
                owner: "octo".into(),
                name: name.into(),
                private,
                description: None,
                default_branch: None,
                branches: Vec::new(),
            })
            .unwrap();
        }
        let inst = w
            .create_installation(NewInstallation {
                account_login: "octo".into(),
                selection: Selection::Selected,
                repositories: vec!["secret".into(), "open".into()],
                permissions: None,
                events: None,
            })
            .unwrap();
        for (token, contents) in [("ghs_write", "write"), ("ghs_read", "read")] {
            w.installation_tokens.insert(
                token.into(),
                InstallationToken {
                    installation_id: inst.id,
                    expires_at_ms: 2_000,
                    repository_ids: None,
                    permissions: BTreeMap::from([("contents".into(), contents.into())]),
                },
            );
        }
        for (token, user_id) in [("gho_owner", owner), ("gho_stranger", stranger)] {
            w.user_tokens.insert(
                token.into(),
                UserToken {
                    user_id,
                    scopes: Vec::new(),
                    created_at: String::new(),
                },
            );
        }
        w
    }

    fn check(w: &World, repo: &str, token: Option<&str>, access: Access) -> Result<Actor, Denial> {
        decide(w, &app(), "octo", repo, token, access, 1_000).map(|g| g.actor)
    }

    #[test]
    fn github_rules_for_tokens_and_repositories() {
        use Access::{Read, Write};
        let w = world();
        // Anonymous: public reads only; everything else asks for credentials.
        assert_eq!(check(&w, "open", None, Read), Ok(Actor::Anonymous));
        assert_eq!(check(&w, "open", None, Write), Err(Denial::NoCredentials));
        assert_eq!(check(&w, "secret", None, Read), Err(Denial::NoCredentials));
        assert_eq!(check(&w, "nope", None, Read), Err(Denial::NoCredentials));
        // Unknown or expired tokens are bad credentials, public or not.
        assert_eq!(
            check(&w, "open", Some("ghs_unknown"), Read),
            Err(Denial::BadCredentials)
        );
        let late = decide(&w, &app(), "octo", "open", Some("ghs_read"), Read, 5_000);
        assert_eq!(late.unwrap_err(), Denial::BadCredentials);
        // Installation tokens: what they reach, with contents permission.
        let inst = check(&w, "secret", Some("ghs_write"), Write).unwrap();
        assert!(matches!(inst, Actor::Installation(_)));
        assert!(check(&w, "secret", Some("ghs_read"), Read).is_ok());
        assert_eq!(
            check(&w, "secret", Some("ghs_read"), Write),
            Err(Denial::Forbidden(
                "Permission to octo/secret.git denied to sam[bot].".into()
            ))
        );
        assert_eq!(
            check(&w, "other", Some("ghs_write"), Read),
            Err(Denial::NotFound)
        );
        assert_eq!(
            check(&w, "nope", Some("ghs_write"), Read),
            Err(Denial::NotFound)
        );
        // Users: the owner side writes; others read public ones only.
        assert!(check(&w, "other", Some("gho_owner"), Write).is_ok());
        assert!(check(&w, "open", Some("gho_stranger"), Read).is_ok());
        assert!(matches!(
            check(&w, "open", Some("gho_stranger"), Write),
            Err(Denial::Forbidden(_))
        ));
        assert_eq!(
            check(&w, "secret", Some("gho_stranger"), Read),
            Err(Denial::NotFound)
        );
        let grant = decide(&w, &app(), "OCTO", "Secret", Some("gho_owner"), Write, 0).unwrap();
        assert_eq!(grant.remote_user.as_deref(), Some("octo"));
    }
}
