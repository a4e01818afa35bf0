//! Shared test harness: an in-process devgithub on 127.0.0.1:0 with the
//! fixture app key, a client that does not follow redirects, app JWTs,
//! seeding helpers, and a webhook receiver that checks signatures itself.

#![allow(dead_code)] // each test crate uses a different subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Response;
use reqwest::redirect::Policy;
use sam_devgithub::{AppConfig, Config, DevGitHub, WebhookConfig};
use serde_json::{Value, json};
use sha2::Sha256;

pub const CLIENT_ID: &str = "Iv1.devgithubtest";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const APP_ID: u64 = 4242;
pub const APP_SLUG: &str = "sam-test";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const SETUP_URL: &str = "http://app.localhost:8787/github/setup";
pub const CALLBACK: &str = "http://app.localhost:8787/auth/github/callback";

pub const APP_PRIVATE_KEY: &str = include_str!("../fixtures/app-private-key.pem");
pub const APP_PUBLIC_KEY: &str = include_str!("../fixtures/app-public-key.pem");
pub const OTHER_PRIVATE_KEY: &str = include_str!("../fixtures/other-private-key.pem");

/// Knobs a test may turn before starting.
#[derive(Clone)]
pub struct Options {
    pub webhook_url: Option<String>,
    pub callback_url: Option<String>,
    pub oauth_code_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            webhook_url: None,
            callback_url: None,
            oauth_code_ttl: Duration::from_secs(600),
        }
    }
}

pub struct TestHub {
    pub base: String,
    pub client: reqwest::Client,
    pub state_dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

/// Serves `router` on an ephemeral loopback port; returns the port.
pub async fn serve(router: Router) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (port, task)
}

pub fn config(state_dir: &Path, public_url: Option<String>, options: &Options) -> Config {
    Config {
        state_dir: state_dir.to_path_buf(),
        public_url,
        app: AppConfig {
            id: APP_ID,
            slug: APP_SLUG.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            public_key_pem: APP_PUBLIC_KEY.into(),
            callback_url: options.callback_url.clone(),
            setup_url: Some(SETUP_URL.into()),
        },
        webhook: options.webhook_url.clone().map(|url| WebhookConfig {
            url,
            secret: Some(WEBHOOK_SECRET.into()),
            retry_delay: Duration::from_millis(20),
            max_attempts: 3,
        }),
        oauth_code_ttl: options.oauth_code_ttl,
        installation_token_ttl: Duration::from_secs(3600),
    }
}

impl TestHub {
    pub async fn start(state_dir: &Path) -> Self {
        Self::start_with(state_dir, Options::default()).await
    }

    /// Binds first, so the configured public URL carries the real port,
    /// exactly as the binary does.
    pub async fn start_with(state_dir: &Path, options: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let hub = DevGitHub::start(config(state_dir, Some(base.clone()), &options)).unwrap();
        let router = hub.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TestHub {
            base,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            state_dir: state_dir.to_path_buf(),
            server,
        }
    }

    pub fn stop(self) {
        self.server.abort();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (StatusCode, Value) {
        decode(
            self.client
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        (status, value)
    }

    pub async fn create_user(&self, login: &str, email: Option<&str>) -> Value {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/_devgithub/users",
                json!({"login": login, "name": format!("{login} Example"), "email": email}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn create_repo(&self, owner: &str, name: &str, private: bool) -> Value {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/_devgithub/repos",
                json!({"owner": owner, "name": name, "private": private}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn install(&self, account: &str, repositories: &[&str]) -> Value {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/_devgithub/installations",
                json!({"account_login": account, "repositories": repositories}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Runs the OAuth web flow for `login` (the `login=` shortcut) and
    /// returns the user token.
    pub async fn user_token(&self, login: &str, scope: &str) -> String {
        let redirect = "http://app.localhost:8787/auth/github/callback";
        let response = self
            .client
            .get(self.url("/login/oauth/authorize"))
            .query(&[
                ("client_id", CLIENT_ID),
                ("redirect_uri", redirect),
                ("state", "s"),
                ("scope", scope),
                ("login", login),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let code = query_param(&location(&response), "code").unwrap();
        let (_, body) = decode(
            self.client
                .post(self.url("/login/oauth/access_token"))
                .header("accept", "application/json")
                .form(&[
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("code", &code),
                    ("redirect_uri", redirect),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A fresh installation token.
    pub async fn installation_token(
        &self,
        installation_id: u64,
        body: Value,
    ) -> (StatusCode, Value) {
        decode(
            self.client
                .post(self.url(&format!(
                    "/app/installations/{installation_id}/access_tokens"
                )))
                .bearer_auth(app_jwt())
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn deliveries(&self) -> Vec<Value> {
        let (_, body) = decode(
            self.client
                .get(self.url("/_devgithub/deliveries"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        body.as_array().unwrap().clone()
    }

    /// Waits until `n` deliveries have settled (not `pending`).
    pub async fn settled_deliveries(&self, n: usize) -> Vec<Value> {
        wait_until(
            Duration::from_secs(10),
            &format!("{n} deliveries"),
            || async {
                let all = self.deliveries().await;
                (all.len() >= n && all.iter().all(|d| d["status"] != "pending")).then_some(all)
            },
        )
        .await
    }
}

pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Signs `claims` as RS256 with `pem`.
pub fn sign(claims: &Value, pem: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A valid app JWT the way GitHub's docs build one.
pub fn app_jwt() -> String {
    let now = now();
    sign(
        &json!({"iat": now - 60, "exp": now + 540, "iss": APP_ID.to_string()}),
        APP_PRIVATE_KEY,
    )
}

pub async fn decode(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, body)
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One webhook as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether `X-Hub-Signature-256` matched our own HMAC of the body.
    pub signature_ok: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer with, in order; 204 once used up.
    script: Arc<Mutex<Vec<StatusCode>>>,
}

/// A webhook endpoint that verifies signatures independently of devgithub.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
    _task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let signature_ok = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    state.received.lock().unwrap().push(Received {
        headers,
        body,
        signature_ok,
    });
    let mut script = state.script.lock().unwrap();
    if script.is_empty() {
        StatusCode::NO_CONTENT
    } else {
        script.remove(0)
    }
}

impl Receiver {
    pub async fn start() -> Self {
        Self::scripted(Vec::new()).await
    }

    /// Answers with `statuses` in turn, then 204.
    pub async fn scripted(statuses: Vec<StatusCode>) -> Self {
        let state = ReceiverState {
            received: Arc::default(),
            script: Arc::new(Mutex::new(statuses)),
        };
        let router = Router::new()
            .route("/webhooks/github", post(receive))
            .with_state(state.clone());
        let (port, task) = serve(router).await;
        Receiver {
            url: format!("http://127.0.0.1:{port}/webhooks/github"),
            state,
            _task: task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits for at least `n` webhooks.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        wait_until(
            Duration::from_secs(10),
            &format!("{n} webhooks"),
            || async {
                let got = self.received();
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }
}
