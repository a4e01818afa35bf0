//! GitHub App: the app's RS256 JWT, installations and their access tokens,
//! and the installation-scoped REST calls projects need (repositories,
//! branches and pull requests).
//!
//! Like the OAuth flow in [`crate::github`], the API base URL is
//! configuration, time is passed in and every request goes through the
//! [`HttpClient`] port. Secrets (the private key, app JWTs, installation
//! tokens) never appear in `Debug` output or in error text.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::parse_retry_after;
use crate::github::{GithubError, clip};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};

/// `iat` is backdated this much to absorb clock drift, as GitHub advises.
pub const APP_JWT_BACKDATE_SECS: i64 = 60;
/// `exp - now`. GitHub refuses app JWTs that expire more than ten minutes
/// ahead; nine leaves a minute for our clock running ahead of theirs.
pub const APP_JWT_TTL_SECS: i64 = 540;
/// GitHub's largest page.
const PER_PAGE: usize = 100;
/// Pagination stops with an error beyond this many pages (10 000 items), so
/// a misbehaving server cannot keep us looping.
const MAX_PAGES: usize = 100;
/// GitHub App keys are 2048-bit; smaller keys are refused up front (this
/// also guarantees signing cannot fail).
const MIN_KEY_BITS: usize = 2048;

const ACCEPT: &str = "application/vnd.github+json";
const API_VERSION: &str = "2022-11-28";
const USER_AGENT: &str = "sam";

// ---- The app's private key and JWT ----

/// The GitHub App's RSA private key. `Debug` shows only its size.
#[derive(Clone)]
pub struct GithubAppKey {
    signing: SigningKey<Sha256>,
    bits: usize,
}

impl fmt::Debug for GithubAppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubAppKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl GithubAppKey {
    /// Loads an RSA private key from PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`,
    /// what GitHub hands out) or PKCS#8 (`BEGIN PRIVATE KEY`).
    ///
    /// Keys that went through `.env` files or YAML are tolerated: literal
    /// two-character `\n` sequences become newlines, CRLF becomes LF,
    /// surrounding quotes and per-line indentation are dropped.
    pub fn from_pem(pem: &str) -> Result<Self, GithubError> {
        let pem = normalise_pem(pem);
        let key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs1_pem(&pem)
                .map_err(|e| GithubError::InvalidAppKey(format!("PKCS#1 PEM: {e}")))?
        } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs8_pem(&pem)
                .map_err(|e| GithubError::InvalidAppKey(format!("PKCS#8 PEM: {e}")))?
        } else if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(GithubError::InvalidAppKey(
                "encrypted private keys are not supported".into(),
            ));
        } else {
            return Err(GithubError::InvalidAppKey(
                "expected a PEM `RSA PRIVATE KEY` or `PRIVATE KEY`".into(),
            ));
        };
        let bits = key.size() * 8;
        if bits < MIN_KEY_BITS {
            return Err(GithubError::InvalidAppKey(format!(
                "a {bits}-bit key is too small (at least {MIN_KEY_BITS} bits)"
            )));
        }
        Ok(Self {
            signing: SigningKey::<Sha256>::new(key),
            bits,
        })
    }

    /// The key size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// An RS256 JWT authenticating as the app: `iat = now - 60`,
    /// `exp = now + 540`, `iss` = the app id as a string. Valid for ten
    /// minutes, so callers may reuse it for a while.
    ///
    /// PKCS#1 v1.5 signatures are deterministic: no randomness is needed.
    pub fn app_jwt(&self, app_id: u64, now_secs: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iat": now_secs.saturating_sub(APP_JWT_BACKDATE_SECS),
            "exp": now_secs.saturating_add(APP_JWT_TTL_SECS),
            "iss": app_id.to_string(),
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        // Cannot fail: the key is at least MIN_KEY_BITS, far more than a
        // SHA-256 DigestInfo needs.
        let signature = self.signing.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

fn normalise_pem(pem: &str) -> String {
    let pem = pem.trim().trim_matches(|c| c == '"' || c == '\'');
    let pem = pem.replace("\\r\\n", "\n").replace("\\n", "\n");
    let mut out = String::with_capacity(pem.len() + 1);
    for line in pem.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---- Types ----

/// A user or organisation account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: u64,
    pub login: String,
    /// `User`, `Organization` or `Bot`.
    #[serde(rename = "type", default)]
    pub type_: String,
}

/// An installation of our app on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    pub id: u64,
    pub account: Account,
    /// `all` or `selected`.
    #[serde(default)]
    pub repository_selection: String,
    #[serde(default)]
    pub suspended_at: Option<String>,
}

/// An installation access token. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    /// RFC 3339, about an hour after issue.
    pub expires_at: String,
}

impl fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A repository, as the project features need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
    /// Empty repositories still report one (usually `main`).
    #[serde(default)]
    pub default_branch: String,
    pub html_url: String,
    #[serde(default)]
    pub clone_url: String,
    pub owner: Account,
}

/// A branch and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BranchReply")]
pub struct Branch {
    pub name: String,
    pub commit_sha: String,
}

#[derive(Deserialize)]
struct BranchReply {
    name: String,
    commit: CommitRef,
}

#[derive(Deserialize)]
struct CommitRef {
    sha: String,
}

impl From<BranchReply> for Branch {
    fn from(b: BranchReply) -> Self {
        Self {
            name: b.name,
            commit_sha: b.commit.sha,
        }
    }
}

/// A pull request to open: `head` is a branch of the repository itself
/// (or `owner:branch`), `base` the branch it should merge into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPullRequest {
    pub title: String,
    pub head: String,
    pub base: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A pull request, as the project features need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PullRequestReply")]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
    /// `open` or `closed`.
    pub state: String,
    /// The head branch's name (`ref`, without the owner).
    pub head_ref: String,
    pub base_ref: String,
}

#[derive(Deserialize)]
struct PullRequestReply {
    number: u64,
    html_url: String,
    state: String,
    head: PullRequestSide,
    base: PullRequestSide,
}

#[derive(Deserialize)]
struct PullRequestSide {
    #[serde(rename = "ref")]
    ref_: String,
}

impl From<PullRequestReply> for PullRequest {
    fn from(p: PullRequestReply) -> Self {
        Self {
            number: p.number,
            html_url: p.html_url,
            state: p.state,
            head_ref: p.head.ref_,
            base_ref: p.base.ref_,
        }
    }
}

#[derive(Deserialize)]
struct RepositoryPage {
    #[serde(default)]
    total_count: Option<usize>,
    repositories: Vec<Repository>,
}

// ---- The app ----

/// Our GitHub App. `Debug` hides the key.
#[derive(Clone)]
pub struct GithubApp {
    /// `https://api.github.com` in production.
    pub api_url: String,
    pub app_id: u64,
    pub key: GithubAppKey,
}

impl fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubApp")
            .field("api_url", &self.api_url)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl GithubApp {
    /// An app JWT for this app at `now_secs`.
    pub fn jwt(&self, now_secs: i64) -> String {
        self.key.app_jwt(self.app_id, now_secs)
    }

    /// `GET /app/installations/{id}`.
    pub async fn installation(
        &self,
        http: &impl HttpClient,
        installation_id: u64,
        now_secs: i64,
    ) -> Result<Installation, GithubError> {
        let path = format!("/app/installations/{installation_id}");
        let resp = send(http, Method::Get, &self.api_url, &path, &self.jwt(now_secs)).await?;
        decode(&path, &resp)
    }

    /// `POST /app/installations/{id}/access_tokens`: a token for everything
    /// the installation grants, valid for about an hour.
    pub async fn installation_token(
        &self,
        http: &impl HttpClient,
        installation_id: u64,
        now_secs: i64,
    ) -> Result<InstallationToken, GithubError> {
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let resp = send(
            http,
            Method::Post,
            &self.api_url,
            &path,
            &self.jwt(now_secs),
        )
        .await?;
        decode(&path, &resp)
    }

    /// Mints an installation token and wraps it in a client.
    pub async fn installation_client(
        &self,
        http: &impl HttpClient,
        installation_id: u64,
        now_secs: i64,
    ) -> Result<InstallationClient, GithubError> {
        let token = self
            .installation_token(http, installation_id, now_secs)
            .await?;
        Ok(InstallationClient::new(&self.api_url, token.token))
    }
}

// ---- Installation-scoped calls ----

/// Calls made with an installation access token. `Debug` hides the token.
#[derive(Clone)]
pub struct InstallationClient {
    pub api_url: String,
    pub token: String,
}

impl fmt::Debug for InstallationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationClient")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl InstallationClient {
    pub fn new(api_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            token: token.into(),
        }
    }

    /// Every repository the installation can reach
    /// (`GET /installation/repositories`, all pages).
    pub async fn repositories(
        &self,
        http: &impl HttpClient,
    ) -> Result<Vec<Repository>, GithubError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!("/installation/repositories?per_page={PER_PAGE}&page={page}");
            let reply: RepositoryPage = self.get(http, &path).await?;
            let count = reply.repositories.len();
            all.extend(reply.repositories);
            let complete = reply.total_count.is_some_and(|total| all.len() >= total);
            if count < PER_PAGE || complete {
                return Ok(all);
            }
        }
        Err(too_many_pages("/installation/repositories"))
    }

    /// `GET /repositories/{id}`: stable across renames and transfers.
    pub async fn repository(
        &self,
        http: &impl HttpClient,
        repository_id: u64,
    ) -> Result<Repository, GithubError> {
        self.get(http, &format!("/repositories/{repository_id}"))
            .await
    }

    /// Every branch of a repository (`GET /repositories/{id}/branches`, all
    /// pages).
    pub async fn branches(
        &self,
        http: &impl HttpClient,
        repository_id: u64,
    ) -> Result<Vec<Branch>, GithubError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let path =
                format!("/repositories/{repository_id}/branches?per_page={PER_PAGE}&page={page}");
            let reply: Vec<Branch> = self.get(http, &path).await?;
            let count = reply.len();
            all.extend(reply);
            if count < PER_PAGE {
                return Ok(all);
            }
        }
        Err(too_many_pages("/repositories/{id}/branches"))
    }

    /// `GET /repositories/{id}/branches/{name}`. [`GithubError::NotFound`]
    /// when there is no such branch, including for names git cannot have
    /// (empty, or with a `.` or `..` path segment, which URL normalisation
    /// would otherwise turn into a different endpoint).
    pub async fn branch(
        &self,
        http: &impl HttpClient,
        repository_id: u64,
        name: &str,
    ) -> Result<Branch, GithubError> {
        if name.is_empty() || name.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(GithubError::NotFound);
        }
        let path = format!(
            "/repositories/{repository_id}/branches/{}",
            encode_branch(name)
        );
        self.get(http, &path).await
    }

    /// `POST /repos/{owner}/{repo}/pulls`. Safe to retry: when GitHub
    /// answers that a pull request for the same head and base is already
    /// open, that one is looked up and returned. A head without commits
    /// base lacks is [`GithubError::NoCommitsBetween`]; other refusals
    /// (a branch that does not exist, a missing title) are
    /// [`GithubError::Unprocessable`] with GitHub's message; a repository
    /// the token cannot reach is [`GithubError::NotFound`].
    pub async fn create_pull_request(
        &self,
        http: &impl HttpClient,
        owner: &str,
        repo: &str,
        new: &NewPullRequest,
    ) -> Result<PullRequest, GithubError> {
        let path = format!("{}/pulls", repo_path(owner, repo)?);
        let body = serde_json::to_vec(new)
            .map_err(|e| GithubError::Unexpected(clip(&format!("encoding the request: {e}"))))?;
        let resp = request(
            http,
            Method::Post,
            &self.api_url,
            &path,
            &self.token,
            Some(body),
        )
        .await?;
        if (200..300).contains(&resp.status) {
            return decode(&path, &resp);
        }
        if resp.status != 422 {
            return Err(classify(&path, &resp));
        }
        match refusal(&resp) {
            Refusal::AlreadyExists(message) => {
                let head = new
                    .head
                    .rsplit_once(':')
                    .map_or(new.head.as_str(), |(_, b)| b);
                let owner_of_head = new.head.split_once(':').map_or(owner, |(o, _)| o);
                self.find_open_pull_request_from(http, owner, repo, owner_of_head, head, &new.base)
                    .await?
                    .ok_or(GithubError::Unprocessable(message))
            }
            Refusal::NoCommits(message) => Err(GithubError::NoCommitsBetween(message)),
            Refusal::Other(message) => Err(GithubError::Unprocessable(message)),
        }
    }

    /// The open pull request from `head_branch` (a branch of the
    /// repository itself) into `base`, if there is one
    /// (`GET /repos/{owner}/{repo}/pulls?state=open&head=owner:branch&base=…`).
    pub async fn find_open_pull_request(
        &self,
        http: &impl HttpClient,
        owner: &str,
        repo: &str,
        head_branch: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, GithubError> {
        self.find_open_pull_request_from(http, owner, repo, owner, head_branch, base)
            .await
    }

    async fn find_open_pull_request_from(
        &self,
        http: &impl HttpClient,
        owner: &str,
        repo: &str,
        head_owner: &str,
        head_branch: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, GithubError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", "open")
            .append_pair("head", &format!("{head_owner}:{head_branch}"))
            .append_pair("base", base)
            .append_pair("per_page", &PER_PAGE.to_string())
            .finish();
        let path = format!("{}/pulls?{query}", repo_path(owner, repo)?);
        let pulls: Vec<PullRequest> = self.get(http, &path).await?;
        // GitHub filters already; checking again costs nothing and keeps a
        // server that ignored a filter from handing us the wrong one.
        Ok(pulls
            .into_iter()
            .find(|p| p.state == "open" && p.head_ref == head_branch && p.base_ref == base))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        http: &impl HttpClient,
        path: &str,
    ) -> Result<T, GithubError> {
        let resp = send(http, Method::Get, &self.api_url, path, &self.token).await?;
        decode(path, &resp)
    }
}

/// `/repos/{owner}/{repo}` with both names percent-encoded as path
/// segments; names that would change the path (empty, `.`, `..`) are
/// [`GithubError::NotFound`], as no repository has them.
fn repo_path(owner: &str, repo: &str) -> Result<String, GithubError> {
    let bad = |s: &str| s.is_empty() || s == "." || s == "..";
    if bad(owner) || bad(repo) {
        return Err(GithubError::NotFound);
    }
    Ok(format!(
        "/repos/{}/{}",
        encode_segment(owner),
        encode_segment(repo)
    ))
}

/// What a 422 from `POST …/pulls` means.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    AlreadyExists(String),
    NoCommits(String),
    Other(String),
}

#[derive(Deserialize)]
struct ValidationReply {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<ValidationItem>,
}

#[derive(Deserialize)]
struct ValidationItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Reads GitHub's `Validation Failed` body: each entry of `errors` has a
/// `message` (`code: custom`) or a `field` and `code` (`head` `invalid`).
fn refusal(resp: &HttpResponse) -> Refusal {
    let reply: ValidationReply = serde_json::from_slice(&resp.body).unwrap_or(ValidationReply {
        message: None,
        errors: Vec::new(),
    });
    let details: Vec<String> = reply
        .errors
        .iter()
        .filter_map(|e| match (&e.message, &e.field, &e.code) {
            (Some(m), _, _) if !m.is_empty() => Some(m.clone()),
            (_, Some(f), Some(c)) => Some(format!("{f} {c}")),
            (_, Some(f), None) => Some(format!("{f} invalid")),
            _ => None,
        })
        .collect();
    let message = reply
        .message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "HTTP 422".to_owned());
    let full = if details.is_empty() {
        clip(&message)
    } else {
        clip(&format!("{message}: {}", details.join("; ")))
    };
    let has = |prefix: &str| details.iter().any(|d| d.starts_with(prefix));
    if has("A pull request already exists") {
        Refusal::AlreadyExists(full)
    } else if let Some(no_commits) = details.iter().find(|d| d.starts_with("No commits between")) {
        Refusal::NoCommits(clip(no_commits))
    } else {
        Refusal::Other(full)
    }
}

fn too_many_pages(what: &str) -> GithubError {
    GithubError::Unexpected(format!(
        "{what} has more than {} items",
        PER_PAGE * MAX_PAGES
    ))
}

/// Percent-encodes a branch name for a path: everything but RFC 3986
/// unreserved characters and `/` (branch names are paths, and GitHub
/// routes `branches/{name}` with the slashes left in).
fn encode_branch(name: &str) -> String {
    encode(name, true)
}

/// Percent-encodes one path segment (an owner or repository name).
fn encode_segment(name: &str) -> String {
    encode(name, false)
}

fn encode(name: &str, keep_slashes: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slashes && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

// ---- HTTP plumbing ----

/// Sends one request (a JSON `body` if given) and returns whatever
/// status came back; only a request that got no response is an error.
async fn request(
    http: &impl HttpClient,
    method: Method,
    api_url: &str,
    path: &str,
    bearer: &str,
    body: Option<Vec<u8>>,
) -> Result<HttpResponse, GithubError> {
    let mut headers = vec![
        ("authorization".into(), format!("Bearer {bearer}")),
        ("accept".into(), ACCEPT.into()),
        ("x-github-api-version".into(), API_VERSION.into()),
        ("user-agent".into(), USER_AGENT.into()),
    ];
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    http.send(HttpRequest {
        method,
        url: format!("{}{path}", api_url.trim_end_matches('/')),
        headers,
        body,
    })
    .await
    .map_err(|e| GithubError::Transport(clip(&e.message)))
}

/// Like [`request`] without a body, with non-2xx statuses classified.
async fn send(
    http: &impl HttpClient,
    method: Method,
    api_url: &str,
    path: &str,
    bearer: &str,
) -> Result<HttpResponse, GithubError> {
    let resp = request(http, method, api_url, path, bearer, None).await?;
    if (200..300).contains(&resp.status) {
        Ok(resp)
    } else {
        Err(classify(path, &resp))
    }
}

fn decode<T: DeserializeOwned>(path: &str, resp: &HttpResponse) -> Result<T, GithubError> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        GithubError::Unexpected(clip(&format!(
            "unreadable reply from {}: {e}",
            strip_query(path)
        )))
    })
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    message: Option<String>,
}

/// Maps a non-2xx reply to an error. Only GitHub's `message` is echoed
/// (clipped): it never contains the credentials we sent.
fn classify(path: &str, resp: &HttpResponse) -> GithubError {
    let message = serde_json::from_slice::<ErrorReply>(&resp.body)
        .ok()
        .and_then(|r| r.message)
        .unwrap_or_default();
    let retry_after_secs = resp.header("retry-after").and_then(parse_retry_after);
    let reset_at = resp
        .header("x-ratelimit-reset")
        .and_then(|v| v.trim().parse::<i64>().ok());
    let exhausted = resp
        .header("x-ratelimit-remaining")
        .is_some_and(|v| v.trim() == "0");
    let says_rate_limit = message.to_ascii_lowercase().contains("rate limit");
    match resp.status {
        401 => GithubError::BadCredentials,
        404 => GithubError::NotFound,
        429 => GithubError::RateLimited {
            retry_after_secs,
            reset_at,
        },
        403 if exhausted || retry_after_secs.is_some() || says_rate_limit => {
            GithubError::RateLimited {
                retry_after_secs,
                reset_at,
            }
        }
        status if message.is_empty() => {
            GithubError::Unexpected(clip(&format!("HTTP {status} from {}", strip_query(path))))
        }
        status => GithubError::Unexpected(clip(&format!(
            "HTTP {status} from {}: {message}",
            strip_query(path)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_keep_slashes_and_encode_the_rest() {
        assert_eq!(encode_branch("main"), "main");
        assert_eq!(encode_branch("feature/x-1.2_~"), "feature/x-1.2_~");
        assert_eq!(encode_branch("a b#c?d%e"), "a%20b%23c%3Fd%25e");
        assert_eq!(encode_branch("fix/é"), "fix/%C3%A9");
    }

    #[test]
    fn pem_normalisation_handles_env_file_escapes() {
        let got = normalise_pem("\"-----BEGIN X-----\\nAAAA\\r\\nBBBB\\n-----END X-----\\n\"");
        assert_eq!(got, "-----BEGIN X-----\nAAAA\nBBBB\n-----END X-----\n");
        let got = normalise_pem("  -----BEGIN X-----\r\n    AAAA\r\n  -----END X-----  ");
        assert_eq!(got, "-----BEGIN X-----\nAAAA\n-----END X-----\n");
    }

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_are_classified() {
        let p = "/repositories/1?page=2";
        assert_eq!(
            classify(p, &reply(401, &[], "")),
            GithubError::BadCredentials
        );
        assert_eq!(classify(p, &reply(404, &[], "")), GithubError::NotFound);
        assert_eq!(
            classify(
                p,
                &reply(
                    403,
                    &[
                        ("X-RateLimit-Remaining", "0"),
                        ("X-RateLimit-Reset", "1700000000")
                    ],
                    r#"{"message":"API rate limit exceeded for installation ID 7."}"#
                )
            ),
            GithubError::RateLimited {
                retry_after_secs: None,
                reset_at: Some(1_700_000_000)
            }
        );
        assert_eq!(
            classify(
                p,
                &reply(
                    403,
                    &[],
                    r#"{"message":"You have exceeded a secondary rate limit."}"#
                )
            ),
            GithubError::RateLimited {
                retry_after_secs: None,
                reset_at: None
            }
        );
        assert_eq!(
            classify(p, &reply(429, &[("retry-after", "30")], "")),
            GithubError::RateLimited {
                retry_after_secs: Some(30),
                reset_at: None
            }
        );
        let e = classify(
            p,
            &reply(
                403,
                &[("x-ratelimit-remaining", "4999")],
                r#"{"message":"Resource not accessible by integration"}"#,
            ),
        );
        assert_eq!(
            e,
            GithubError::Unexpected(
                "HTTP 403 from /repositories/1: Resource not accessible by integration".into()
            )
        );
        assert_eq!(e.code(), "github_unexpected_response");
    }
}
