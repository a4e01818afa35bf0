//! GitHub: the OAuth web flow and the REST calls sign-in needs.
//!
//! Base URLs are configuration (`https://github.com` and
//! `https://api.github.com` in production, the local stand-in in tests), so
//! this code runs unchanged against both.

use serde::Deserialize;

use crate::http::{HttpClient, HttpRequest, Method};

/// Provider text echoed into errors is clipped.
const MAX_MESSAGE_CHARS: usize = 300;

/// Why a GitHub call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    /// The authorization code is unknown, used or expired (`bad_verification_code`).
    #[error("GitHub refused the sign-in code: {0}")]
    BadCode(String),
    /// Our client credentials or redirect URI are wrong: a deployment problem.
    #[error("GitHub refused our OAuth app configuration: {0}")]
    Misconfigured(String),
    /// The token (user token, app JWT or installation token) was refused.
    #[error("GitHub refused the access token")]
    BadCredentials,
    /// The resource does not exist or our credentials cannot see it (GitHub
    /// answers 404 for both).
    #[error("GitHub has no such resource, or it is not visible to us")]
    NotFound,
    /// A primary or secondary rate limit. `retry_after_secs` comes from
    /// `Retry-After`, `reset_at` (Unix seconds) from `X-RateLimit-Reset`.
    #[error("GitHub rate limit exceeded")]
    RateLimited {
        retry_after_secs: Option<u64>,
        reset_at: Option<i64>,
    },
    /// The GitHub App private key could not be loaded: a deployment problem.
    #[error("the GitHub App private key is unusable: {0}")]
    InvalidAppKey(String),
    /// GitHub would not open the pull request because head has no commits
    /// base lacks (including head == base). Carries GitHub's message, e.g.
    /// `No commits between main and feature`.
    #[error("GitHub refused the pull request: {0}")]
    NoCommitsBetween(String),
    /// GitHub refused the request as invalid (422 `Validation Failed`), e.g.
    /// a branch that does not exist. Carries GitHub's message and errors.
    #[error("GitHub refused the request: {0}")]
    Unprocessable(String),
    #[error("GitHub could not be reached: {0}")]
    Transport(String),
    #[error("GitHub answered unexpectedly: {0}")]
    Unexpected(String),
}

impl GithubError {
    pub fn code(&self) -> &'static str {
        match self {
            GithubError::BadCode(_) => "oauth_code_invalid",
            GithubError::Misconfigured(_) => "oauth_misconfigured",
            GithubError::BadCredentials => "github_token_invalid",
            GithubError::NotFound => "github_not_found",
            GithubError::RateLimited { .. } => "github_rate_limited",
            GithubError::InvalidAppKey(_) => "github_app_key_invalid",
            GithubError::NoCommitsBetween(_) => "github_no_commits_between",
            GithubError::Unprocessable(_) => "github_validation_failed",
            GithubError::Transport(_) => "github_unreachable",
            GithubError::Unexpected(_) => "github_unexpected_response",
        }
    }
}

/// Our OAuth app at GitHub. `Debug` hides the client secret.
#[derive(Clone)]
pub struct GithubOAuthApp {
    pub web_url: String,
    pub api_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for GithubOAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubOAuthApp")
            .field("web_url", &self.web_url)
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A GitHub user as sign-in needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubUser {
    pub id: u64,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubEmail {
    pub email: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub verified: bool,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(crate) fn clip(s: &str) -> String {
    s.chars().take(MAX_MESSAGE_CHARS).collect()
}

impl GithubOAuthApp {
    /// Where to send the browser to sign in.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("scope", "read:user user:email")
            .finish();
        format!(
            "{}/login/oauth/authorize?{query}",
            self.web_url.trim_end_matches('/')
        )
    }

    /// Exchanges an authorization code for a user access token.
    pub async fn exchange_code(
        &self,
        http: &impl HttpClient,
        code: &str,
        redirect_uri: &str,
    ) -> Result<String, GithubError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .finish();
        let resp = http
            .send(HttpRequest {
                method: Method::Post,
                url: format!(
                    "{}/login/oauth/access_token",
                    self.web_url.trim_end_matches('/')
                ),
                headers: vec![
                    ("accept".into(), "application/json".into()),
                    (
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ),
                    ("user-agent".into(), "sam".into()),
                ],
                body: Some(body.into_bytes()),
            })
            .await
            .map_err(|e| GithubError::Transport(e.to_string()))?;
        if resp.status >= 300 {
            return Err(GithubError::Unexpected(format!("HTTP {}", resp.status)));
        }
        let reply: TokenReply = serde_json::from_slice(&resp.body)
            .map_err(|_| GithubError::Unexpected("token reply is not JSON".into()))?;
        // GitHub reports OAuth errors with HTTP 200 and an `error` field.
        match (reply.access_token, reply.error) {
            (Some(token), None) if !token.is_empty() => Ok(token),
            (_, Some(error)) => {
                let detail = clip(&reply.error_description.unwrap_or_else(|| error.clone()));
                if error == "bad_verification_code" {
                    Err(GithubError::BadCode(detail))
                } else {
                    Err(GithubError::Misconfigured(format!("{error}: {detail}")))
                }
            }
            _ => Err(GithubError::Unexpected(
                "no access token in the reply".into(),
            )),
        }
    }

    /// The signed-in user, with their primary verified email when the
    /// profile has none public.
    pub async fn user(
        &self,
        http: &impl HttpClient,
        token: &str,
    ) -> Result<GithubUser, GithubError> {
        let mut user: GithubUser = self.get(http, token, "/user").await?;
        if user.email.is_none() {
            let emails: Vec<GithubEmail> = self.get(http, token, "/user/emails").await?;
            user.email = emails
                .into_iter()
                .find(|e| e.primary && e.verified)
                .map(|e| e.email);
        }
        Ok(user)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        http: &impl HttpClient,
        token: &str,
        path: &str,
    ) -> Result<T, GithubError> {
        let resp = http
            .send(HttpRequest {
                method: Method::Get,
                url: format!("{}{path}", self.api_url.trim_end_matches('/')),
                headers: vec![
                    ("authorization".into(), format!("Bearer {token}")),
                    ("accept".into(), "application/vnd.github+json".into()),
                    ("user-agent".into(), "sam".into()),
                ],
                body: None,
            })
            .await
            .map_err(|e| GithubError::Transport(e.to_string()))?;
        match resp.status {
            200 => serde_json::from_slice(&resp.body)
                .map_err(|e| GithubError::Unexpected(clip(&e.to_string()))),
            401 => Err(GithubError::BadCredentials),
            status => Err(GithubError::Unexpected(format!(
                "HTTP {status} from {path}"
            ))),
        }
    }
}
