//! The GitHub App client: app JWTs checked by an independent verifier
//! (jsonwebtoken), and the REST calls against a tiny local server that
//! replays GitHub-shaped responses and records what it was sent.
//!
//! The keys under `tests/fixtures/` are throwaway test keys made with
//! `openssl genrsa` (the PKCS#8 and public files are the same key converted
//! with `openssl pkcs8 -topk8` and `openssl rsa -pubout`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Canned, Recorded, ReqwestHttp, canned, closed_port_url, start};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sam_providers::github::GithubError;
use sam_providers::github_app::{Account, Branch, Installation, NewPullRequest, PullRequest};
use sam_providers::{GithubApp, GithubAppKey, InstallationClient};
use serde_json::{Value, json};

const PKCS1: &str = include_str!("fixtures/github_app_test_key.pkcs1.pem");
const PKCS8: &str = include_str!("fixtures/github_app_test_key.pkcs8.pem");
const PUBLIC: &str = include_str!("fixtures/github_app_test_key.pub.pem");
const SMALL: &str = include_str!("fixtures/github_app_small_key.pem");

const APP_ID: u64 = 123_456;
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const INSTALLATION_TOKEN: &str = "ghs_installationTokenForTests0123456789";

// ---- Keys and JWTs ----

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: Value,
}

/// Verifies `jwt` with the fixture's public key and returns its claims.
fn verify(jwt: &str) -> Claims {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let key = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
    jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
        .unwrap()
        .claims
}

#[test]
fn app_jwt_verifies_with_the_public_key_and_carries_github_claims() {
    let key = GithubAppKey::from_pem(PKCS1).unwrap();
    assert_eq!(key.bits(), 2048);
    let jwt = key.app_jwt(APP_ID, NOW);
    let claims = verify(&jwt);
    assert_eq!(claims.iat, NOW - 60);
    assert_eq!(claims.exp, NOW + 540);
    assert_eq!(claims.iss, json!("123456"), "iss is the app id as a string");
    assert!(
        claims.exp - NOW <= 600,
        "GitHub refuses exp beyond ten minutes"
    );
}

#[test]
fn app_jwt_signature_is_rejected_when_tampered() {
    let jwt = GithubAppKey::from_pem(PKCS1).unwrap().app_jwt(1, NOW);
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let other = GithubAppKey::from_pem(PKCS1).unwrap().app_jwt(2, NOW);
    parts[1] = other.split('.').nth(1).unwrap();
    let forged = parts.join(".");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let key = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &validation).is_err());
}

#[test]
fn pkcs1_and_pkcs8_load_the_same_key() {
    let pkcs1 = GithubAppKey::from_pem(PKCS1).unwrap();
    let pkcs8 = GithubAppKey::from_pem(PKCS8).unwrap();
    // RS256 is deterministic: the same key and claims give the same token.
    assert_eq!(pkcs1.app_jwt(APP_ID, NOW), pkcs8.app_jwt(APP_ID, NOW));
    verify(&pkcs8.app_jwt(APP_ID, NOW));
}

#[test]
fn keys_copied_through_env_files_still_load() {
    let reference = GithubAppKey::from_pem(PKCS1).unwrap().app_jwt(APP_ID, NOW);
    for pem in [PKCS1, PKCS8] {
        let escaped = pem.trim_end().replace('\n', "\\n");
        let quoted = format!("\"{escaped}\"");
        let crlf = pem.replace('\n', "\r\n");
        for variant in [escaped, quoted, crlf] {
            let key = GithubAppKey::from_pem(&variant).unwrap();
            assert_eq!(key.app_jwt(APP_ID, NOW), reference);
        }
    }
}

#[test]
fn garbage_keys_are_refused_without_echoing_them() {
    let cases = [
        String::new(),
        "not a key at all".to_owned(),
        "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END RSA PRIVATE KEY-----\n"
            .to_owned(),
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END PRIVATE KEY-----\n"
            .to_owned(),
        // A public key is not a private key.
        PUBLIC.to_owned(),
        // Truncated.
        PKCS1[..PKCS1.len() / 2].to_owned(),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .to_owned(),
    ];
    for pem in cases {
        let err = GithubAppKey::from_pem(&pem).unwrap_err();
        assert!(
            matches!(err, GithubError::InvalidAppKey(_)),
            "{pem:?}: {err:?}"
        );
        assert_eq!(err.code(), "github_app_key_invalid");
        let text = err.to_string();
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }
}

#[test]
fn small_keys_are_refused() {
    let err = GithubAppKey::from_pem(SMALL).unwrap_err();
    assert!(err.to_string().contains("1024-bit"), "{err}");
}

#[test]
fn debug_output_hides_secrets() {
    let key = GithubAppKey::from_pem(PKCS1).unwrap();
    let body_line = PKCS1.lines().nth(1).unwrap();
    let app = GithubApp {
        api_url: "https://api.github.com".into(),
        app_id: APP_ID,
        key: key.clone(),
    };
    let shown = format!("{key:?} {app:?}");
    assert!(!shown.contains(&body_line[..20]), "{shown}");
    assert!(shown.contains("123456"), "{shown}");

    let token: sam_providers::InstallationToken = serde_json::from_value(json!({
        "token": INSTALLATION_TOKEN,
        "expires_at": "2026-01-01T01:00:00Z",
    }))
    .unwrap();
    let client = InstallationClient::new("https://api.github.com", INSTALLATION_TOKEN);
    let shown = format!("{token:?} {client:?}");
    assert!(!shown.contains(INSTALLATION_TOKEN), "{shown}");
    assert!(shown.contains("2026-01-01T01:00:00Z"), "{shown}");
}

// ---- Helpers (the HTTP port and canned server are in `common`) ----

fn http() -> ReqwestHttp {
    ReqwestHttp::new()
}

fn app(api_url: &str) -> GithubApp {
    GithubApp {
        api_url: api_url.to_owned(),
        app_id: APP_ID,
        key: GithubAppKey::from_pem(PKCS1).unwrap(),
    }
}

fn assert_github_headers(r: &Recorded) {
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(r.header("user-agent"), Some("sam"));
}

fn account(id: u64, login: &str, type_: &str) -> Value {
    json!({
        "login": login,
        "id": id,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "type": type_,
        "site_admin": false,
    })
}

fn repo(id: u64, owner: &str, name: &str, private: bool) -> Value {
    json!({
        "id": id,
        "node_id": "R_kgDOAAAAAQ",
        "name": name,
        "full_name": format!("{owner}/{name}"),
        "private": private,
        "owner": account(9001, owner, "Organization"),
        "html_url": format!("https://github.com/{owner}/{name}"),
        "description": null,
        "fork": false,
        "url": format!("https://api.github.com/repos/{owner}/{name}"),
        "clone_url": format!("https://github.com/{owner}/{name}.git"),
        "default_branch": "main",
        "visibility": if private { "private" } else { "public" },
        "permissions": {"admin": false, "push": true, "pull": true},
    })
}

fn branch(name: &str, sha: &str) -> Value {
    json!({
        "name": name,
        "commit": {"sha": sha, "url": format!("https://api.github.com/repos/acme/widgets/commits/{sha}")},
        "protected": false,
    })
}

// ---- App-authenticated calls ----

#[tokio::test]
async fn installation_is_fetched_with_a_valid_app_jwt() {
    let (base, recorded) = start(vec![canned(
        200,
        json!({
            "id": 4242,
            "account": account(9001, "acme", "Organization"),
            "repository_selection": "selected",
            "access_tokens_url": "https://api.github.com/app/installations/4242/access_tokens",
            "repositories_url": "https://api.github.com/installation/repositories",
            "html_url": "https://github.com/organizations/acme/settings/installations/4242",
            "app_id": APP_ID,
            "target_id": 9001,
            "target_type": "Organization",
            "permissions": {"contents": "read", "metadata": "read"},
            "events": ["push"],
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "single_file_name": null,
            "suspended_by": null,
            "suspended_at": null,
        }),
    )])
    .await;
    let installation = app(&base).installation(&http(), 4242, NOW).await.unwrap();
    assert_eq!(
        installation,
        Installation {
            id: 4242,
            account: Account {
                id: 9001,
                login: "acme".into(),
                type_: "Organization".into(),
            },
            repository_selection: "selected".into(),
            suspended_at: None,
        }
    );
    let recorded = recorded.lock().unwrap();
    let r = &recorded[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/app/installations/4242")
    );
    assert_github_headers(r);
    let claims = verify(r.bearer());
    assert_eq!(claims.iss, json!(APP_ID.to_string()));
}

#[tokio::test]
async fn suspended_installation_reports_when() {
    let (base, _) = start(vec![canned(
        200,
        json!({
            "id": 7,
            "account": account(5, "octocat", "User"),
            "repository_selection": "all",
            "suspended_at": "2026-02-03T04:05:06Z",
        }),
    )])
    .await;
    let installation = app(&base).installation(&http(), 7, NOW).await.unwrap();
    assert_eq!(installation.account.type_, "User");
    assert_eq!(
        installation.suspended_at.as_deref(),
        Some("2026-02-03T04:05:06Z")
    );
}

#[tokio::test]
async fn installation_token_is_minted_with_post() {
    let (base, recorded) = start(vec![canned(
        201,
        json!({
            "token": INSTALLATION_TOKEN,
            "expires_at": "2026-01-01T01:00:00Z",
            "permissions": {"contents": "read", "metadata": "read"},
            "repository_selection": "selected",
        }),
    )])
    .await;
    let token = app(&base)
        .installation_token(&http(), 4242, NOW)
        .await
        .unwrap();
    assert_eq!(token.token, INSTALLATION_TOKEN);
    assert_eq!(token.expires_at, "2026-01-01T01:00:00Z");
    let recorded = recorded.lock().unwrap();
    let r = &recorded[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/app/installations/4242/access_tokens")
    );
    assert_github_headers(r);
    verify(r.bearer());
}

#[tokio::test]
async fn installation_client_uses_the_minted_token() {
    let (base, recorded) = start(vec![
        canned(
            201,
            json!({"token": INSTALLATION_TOKEN, "expires_at": "2026-01-01T01:00:00Z"}),
        ),
        canned(200, repo(77, "acme", "widgets", true)),
    ])
    .await;
    let client = app(&base)
        .installation_client(&http(), 4242, NOW)
        .await
        .unwrap();
    let repository = client.repository(&http(), 77).await.unwrap();
    assert_eq!(repository.full_name, "acme/widgets");
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded[1].bearer(), INSTALLATION_TOKEN);
}

// ---- Installation-token calls ----

fn installation_client(base: &str) -> InstallationClient {
    InstallationClient::new(base, INSTALLATION_TOKEN)
}

#[tokio::test]
async fn repositories_follow_pages_until_a_short_one() {
    let first: Vec<Value> = (1..=100)
        .map(|i| repo(i, "acme", &format!("repo-{i}"), i % 2 == 0))
        .collect();
    let (base, recorded) = start(vec![
        canned(
            200,
            json!({"total_count": 101, "repository_selection": "all", "repositories": first}),
        ),
        canned(
            200,
            json!({"total_count": 101, "repository_selection": "all", "repositories": [repo(101, "acme", "last", false)]}),
        ),
    ])
    .await;
    let repos = installation_client(&base)
        .repositories(&http())
        .await
        .unwrap();
    assert_eq!(repos.len(), 101);
    assert_eq!(repos[0].id, 1);
    assert_eq!(repos[100].full_name, "acme/last");
    assert!(repos[1].private);
    let recorded = recorded.lock().unwrap();
    let asked: Vec<(&str, &str)> = recorded
        .iter()
        .map(|r| (r.path.as_str(), r.query.as_str()))
        .collect();
    assert_eq!(
        asked,
        [
            ("/installation/repositories", "per_page=100&page=1"),
            ("/installation/repositories", "per_page=100&page=2"),
        ]
    );
    for r in recorded.iter() {
        assert_github_headers(r);
        assert_eq!(r.bearer(), INSTALLATION_TOKEN);
    }
}

#[tokio::test]
async fn repositories_stop_at_total_count_on_a_full_last_page() {
    let page: Vec<Value> = (1..=100)
        .map(|i| repo(i, "acme", &format!("r{i}"), false))
        .collect();
    let (base, recorded) = start(vec![canned(
        200,
        json!({"total_count": 100, "repositories": page}),
    )])
    .await;
    let repos = installation_client(&base)
        .repositories(&http())
        .await
        .unwrap();
    assert_eq!(repos.len(), 100);
    assert_eq!(recorded.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn repository_by_id() {
    let (base, recorded) = start(vec![canned(200, repo(77, "acme", "widgets", true))]).await;
    let r = installation_client(&base)
        .repository(&http(), 77)
        .await
        .unwrap();
    assert_eq!(
        r,
        sam_providers::github_app::Repository {
            id: 77,
            name: "widgets".into(),
            full_name: "acme/widgets".into(),
            private: true,
            default_branch: "main".into(),
            html_url: "https://github.com/acme/widgets".into(),
            clone_url: "https://github.com/acme/widgets.git".into(),
            owner: Account {
                id: 9001,
                login: "acme".into(),
                type_: "Organization".into(),
            },
        }
    );
    assert_eq!(recorded.lock().unwrap()[0].path, "/repositories/77");
}

#[tokio::test]
async fn branches_follow_pages() {
    let first: Vec<Value> = (0..100)
        .map(|i| branch(&format!("b{i}"), &format!("{i:040x}")))
        .collect();
    let (base, recorded) = start(vec![
        canned(200, json!(first)),
        canned(200, json!([branch("zeta/last", "f00d")])),
    ])
    .await;
    let branches = installation_client(&base)
        .branches(&http(), 77)
        .await
        .unwrap();
    assert_eq!(branches.len(), 101);
    assert_eq!(
        branches[100],
        Branch {
            name: "zeta/last".into(),
            commit_sha: "f00d".into(),
        }
    );
    let recorded = recorded.lock().unwrap();
    let asked: Vec<(&str, &str)> = recorded
        .iter()
        .map(|r| (r.path.as_str(), r.query.as_str()))
        .collect();
    assert_eq!(
        asked,
        [
            ("/repositories/77/branches", "per_page=100&page=1"),
            ("/repositories/77/branches", "per_page=100&page=2"),
        ]
    );
}

#[tokio::test]
async fn branch_with_a_slash_keeps_it_and_encodes_the_rest() {
    let sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    let (base, recorded) = start(vec![canned(
        200,
        json!({
            "name": "feature/new thing#2",
            "commit": {
                "sha": sha,
                "node_id": "C_kwDOAAAAAQ",
                "commit": {"message": "Fix all the bugs", "tree": {"sha": "abc"}},
                "parents": [],
            },
            "_links": {"self": "x", "html": "y"},
            "protected": true,
            "protection_url": "z",
        }),
    )])
    .await;
    let b = installation_client(&base)
        .branch(&http(), 77, "feature/new thing#2")
        .await
        .unwrap();
    assert_eq!(b.name, "feature/new thing#2");
    assert_eq!(b.commit_sha, sha);
    assert_eq!(
        recorded.lock().unwrap()[0].path,
        "/repositories/77/branches/feature/new%20thing%232"
    );
}

#[tokio::test]
async fn impossible_branch_names_are_not_found_without_asking() {
    let (base, recorded) = start(vec![]).await;
    let client = installation_client(&base);
    for name in ["", "..", "a/../../../user", "./x"] {
        assert_eq!(
            client.branch(&http(), 77, name).await.unwrap_err(),
            GithubError::NotFound,
            "{name:?}"
        );
    }
    assert!(recorded.lock().unwrap().is_empty());
}

// ---- Errors ----

fn github_error(message: &str) -> Value {
    json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": "error",
    })
}

fn assert_no_secrets(err: &GithubError) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(INSTALLATION_TOKEN), "{text}");
    assert!(!text.contains("eyJ"), "no JWT in {text}");
}

#[tokio::test]
async fn unauthorized_is_bad_credentials() {
    let (base, _) = start(vec![
        canned(401, github_error("Bad credentials")),
        canned(
            401,
            github_error("'Expiration time' claim ('exp') is too far in the future"),
        ),
    ])
    .await;
    let err = installation_client(&base)
        .repositories(&http())
        .await
        .unwrap_err();
    assert_eq!(err, GithubError::BadCredentials);
    assert_eq!(err.code(), "github_token_invalid");
    assert_no_secrets(&err);
    let err = app(&base).installation(&http(), 1, NOW).await.unwrap_err();
    assert_eq!(err, GithubError::BadCredentials);
    assert_no_secrets(&err);
}

#[tokio::test]
async fn missing_is_not_found() {
    let (base, _) = start(vec![
        canned(404, github_error("Not Found")),
        canned(404, github_error("Branch not found")),
        canned(404, github_error("Not Found")),
    ])
    .await;
    let err = app(&base)
        .installation_token(&http(), 999, NOW)
        .await
        .unwrap_err();
    assert_eq!(err, GithubError::NotFound);
    assert_eq!(err.code(), "github_not_found");
    let client = installation_client(&base);
    assert_eq!(
        client.branch(&http(), 77, "gone").await.unwrap_err(),
        GithubError::NotFound
    );
    assert_eq!(
        client.repository(&http(), 78).await.unwrap_err(),
        GithubError::NotFound
    );
}

#[tokio::test]
async fn rate_limits_are_classified_and_other_403s_are_not() {
    let (base, _) = start(vec![
        Canned {
            status: 403,
            headers: vec![
                ("x-ratelimit-limit", "5000".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", "1767229200".into()),
            ],
            body: github_error("API rate limit exceeded for installation ID 4242.").to_string(),
        },
        Canned {
            status: 429,
            headers: vec![("retry-after", "60".into())],
            body: github_error("You have exceeded a secondary rate limit.").to_string(),
        },
        canned(403, github_error("Resource not accessible by integration")),
    ])
    .await;
    let client = installation_client(&base);
    let err = client.branches(&http(), 77).await.unwrap_err();
    assert_eq!(
        err,
        GithubError::RateLimited {
            retry_after_secs: None,
            reset_at: Some(1_767_229_200),
        }
    );
    assert_eq!(err.code(), "github_rate_limited");
    let err = client.repository(&http(), 77).await.unwrap_err();
    assert_eq!(
        err,
        GithubError::RateLimited {
            retry_after_secs: Some(60),
            reset_at: None,
        }
    );
    let err = client.repository(&http(), 77).await.unwrap_err();
    assert_eq!(err.code(), "github_unexpected_response");
    assert!(
        err.to_string()
            .contains("HTTP 403 from /repositories/77: Resource not accessible by integration"),
        "{err}"
    );
    assert_no_secrets(&err);
}

#[tokio::test]
async fn unreadable_bodies_and_other_statuses_are_unexpected() {
    let (base, _) = start(vec![
        canned(200, json!({"unexpected": true})),
        canned(502, json!("Bad gateway")),
    ])
    .await;
    let client = installation_client(&base);
    let err = client.repository(&http(), 1).await.unwrap_err();
    assert!(matches!(err, GithubError::Unexpected(_)), "{err:?}");
    let err = client.repository(&http(), 1).await.unwrap_err();
    assert_eq!(
        err,
        GithubError::Unexpected("HTTP 502 from /repositories/1".into())
    );
}

#[tokio::test]
async fn unreachable_github_is_a_transport_error() {
    let err = app(&closed_port_url())
        .installation(&http(), 1, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, GithubError::Transport(_)), "{err:?}");
    assert_eq!(err.code(), "github_unreachable");
    assert_no_secrets(&err);
}

// ---- Pull requests ----

/// A pull request as GitHub answers with it (trimmed to what matters).
fn pull(number: u64, head: &str, base: &str, state: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/acme/widgets/pulls/{number}"),
        "id": 1_000_000 + number,
        "number": number,
        "state": state,
        "title": "Agent changes",
        "body": null,
        "html_url": format!("https://github.com/acme/widgets/pull/{number}"),
        "user": account(41_000_001, "sam[bot]", "Bot"),
        "head": {"label": format!("acme:{head}"), "ref": head, "sha": "a".repeat(40),
                 "repo": repo(77, "acme", "widgets", true)},
        "base": {"label": format!("acme:{base}"), "ref": base, "sha": "b".repeat(40),
                 "repo": repo(77, "acme", "widgets", true)},
        "draft": false,
        "merged": false,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    })
}

// By value so call sites can pass `json!(...)` literals directly.
#[allow(clippy::needless_pass_by_value)]
fn validation_failed(errors: Value) -> Value {
    json!({
        "message": "Validation Failed",
        "errors": errors,
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        "status": "422",
    })
}

fn new_pull() -> NewPullRequest {
    NewPullRequest {
        title: "Agent changes".into(),
        head: "sam/task-1".into(),
        base: "main".into(),
        body: Some("Made by an agent.".into()),
    }
}

fn expected(number: u64) -> PullRequest {
    PullRequest {
        number,
        html_url: format!("https://github.com/acme/widgets/pull/{number}"),
        state: "open".into(),
        head_ref: "sam/task-1".into(),
        base_ref: "main".into(),
    }
}

#[tokio::test]
async fn pull_request_is_created_with_post() {
    let (base, recorded) = start(vec![canned(201, pull(7, "sam/task-1", "main", "open"))]).await;
    let pr = installation_client(&base)
        .create_pull_request(&http(), "acme", "widgets", &new_pull())
        .await
        .unwrap();
    assert_eq!(pr, expected(7));
    let recorded = recorded.lock().unwrap();
    let r = &recorded[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/repos/acme/widgets/pulls")
    );
    assert_github_headers(r);
    assert_eq!(r.bearer(), INSTALLATION_TOKEN);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"title": "Agent changes", "head": "sam/task-1", "base": "main",
               "body": "Made by an agent."})
    );
}

#[tokio::test]
async fn a_pull_request_without_body_sends_none() {
    let (base, recorded) = start(vec![canned(201, pull(1, "sam/task-1", "main", "open"))]).await;
    let new = NewPullRequest {
        body: None,
        ..new_pull()
    };
    installation_client(&base)
        .create_pull_request(&http(), "acme", "widgets", &new)
        .await
        .unwrap();
    let body = recorded.lock().unwrap()[0].json();
    assert!(body.get("body").is_none(), "{body}");
}

#[tokio::test]
async fn creating_again_returns_the_open_pull_request() {
    let (base, recorded) = start(vec![
        canned(
            422,
            validation_failed(json!([{"resource": "PullRequest", "code": "custom",
                "message": "A pull request already exists for acme:sam/task-1."}])),
        ),
        canned(200, json!([pull(7, "sam/task-1", "main", "open")])),
    ])
    .await;
    let pr = installation_client(&base)
        .create_pull_request(&http(), "acme", "widgets", &new_pull())
        .await
        .unwrap();
    assert_eq!(pr, expected(7));
    let recorded = recorded.lock().unwrap();
    let r = &recorded[1];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_str()),
        (
            "GET",
            "/repos/acme/widgets/pulls",
            "state=open&head=acme%3Asam%2Ftask-1&base=main&per_page=100"
        )
    );
    assert_github_headers(r);
    assert_eq!(r.bearer(), INSTALLATION_TOKEN);
}

#[tokio::test]
async fn already_exists_but_gone_when_looked_up_is_unprocessable() {
    let (base, _) = start(vec![
        canned(
            422,
            validation_failed(json!([{"resource": "PullRequest", "code": "custom",
                "message": "A pull request already exists for acme:sam/task-1."}])),
        ),
        canned(200, json!([])),
    ])
    .await;
    let err = installation_client(&base)
        .create_pull_request(&http(), "acme", "widgets", &new_pull())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GithubError::Unprocessable(
            "Validation Failed: A pull request already exists for acme:sam/task-1.".into()
        )
    );
}

#[tokio::test]
async fn refusals_carry_githubs_message() {
    let (base, _) = start(vec![
        canned(
            422,
            validation_failed(json!([{"resource": "PullRequest", "code": "custom",
                "message": "No commits between main and sam/task-1"}])),
        ),
        canned(
            422,
            validation_failed(json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}])),
        ),
        canned(
            422,
            validation_failed(json!([{"resource": "PullRequest", "field": "title", "code": "missing_field"},
                                     {"resource": "PullRequest", "field": "base", "code": "invalid"}])),
        ),
        canned(404, github_error("Not Found")),
        canned(403, github_error("Resource not accessible by integration")),
    ])
    .await;
    let client = installation_client(&base);
    let (http, new) = (http(), new_pull());
    let create = || client.create_pull_request(&http, "acme", "widgets", &new);
    let err = create().await.unwrap_err();
    assert_eq!(
        err,
        GithubError::NoCommitsBetween("No commits between main and sam/task-1".into())
    );
    assert_eq!(err.code(), "github_no_commits_between");
    let err = create().await.unwrap_err();
    assert_eq!(
        err,
        GithubError::Unprocessable("Validation Failed: head invalid".into())
    );
    assert_eq!(err.code(), "github_validation_failed");
    let err = create().await.unwrap_err();
    assert_eq!(
        err,
        GithubError::Unprocessable("Validation Failed: title missing_field; base invalid".into())
    );
    assert_eq!(create().await.unwrap_err(), GithubError::NotFound);
    let err = create().await.unwrap_err();
    assert!(matches!(err, GithubError::Unexpected(_)), "{err:?}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn open_pull_requests_are_found_by_head_and_base() {
    let (base, recorded) = start(vec![
        canned(200, json!([pull(3, "sam/task-1", "main", "open")])),
        canned(200, json!([])),
        // A server that ignored the filters: nothing matching is returned.
        canned(200, json!([pull(4, "other", "main", "open")])),
        canned(404, github_error("Not Found")),
    ])
    .await;
    let client = installation_client(&base);
    let http = http();
    let find = || client.find_open_pull_request(&http, "acme", "widgets", "sam/task-1", "main");
    assert_eq!(find().await.unwrap(), Some(expected(3)));
    assert_eq!(find().await.unwrap(), None);
    assert_eq!(find().await.unwrap(), None);
    assert_eq!(find().await.unwrap_err(), GithubError::NotFound);
    let recorded = recorded.lock().unwrap();
    assert_eq!(
        recorded[0].query,
        "state=open&head=acme%3Asam%2Ftask-1&base=main&per_page=100"
    );
}

#[tokio::test]
async fn owner_and_repo_names_cannot_change_the_path() {
    let (base, recorded) = start(vec![canned(200, json!([]))]).await;
    let client = installation_client(&base);
    for (owner, repo) in [("", "widgets"), ("acme", ".."), (".", "x")] {
        let err = client
            .create_pull_request(&http(), owner, repo, &new_pull())
            .await
            .unwrap_err();
        assert_eq!(err, GithubError::NotFound);
    }
    client
        .find_open_pull_request(&http(), "ac/me", "wid?gets", "b", "main")
        .await
        .unwrap();
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/repos/ac%2Fme/wid%3Fgets/pulls");
}
