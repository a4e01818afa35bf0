//! An agent serving workspace routes to "browsers": tickets from the fake
//! control plane, the workspace cookie, WebSockets. Workspaces are created
//! for real, through `POST /workspaces` ([`super::provision`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use sam_auth::{Audience, Grant, SigningKey};
use sam_vm_agent::{Agent, Config};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::provision::{self, Source};
use super::{FakeControlPlane, NODE_ID, config, now_ms};

pub const WORKSPACE: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";
pub const OTHER_WORKSPACE: &str = "01JAB3C4D5E6F7G8H9J0K1M2N4";
pub const APP_ORIGIN: &str = "http://app.localhost:8787";

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running agent with the fake control plane's key, its file system root
/// in a temp dir, a git server to create workspaces from, and an HTTP
/// client that does not follow redirects.
pub struct BrowserHarness {
    pub cp: FakeControlPlane,
    pub key: SigningKey,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub root: tempfile::TempDir,
    pub source: Source,
}

impl BrowserHarness {
    /// Starts an agent with `SAM_APP_ORIGIN` = [`APP_ORIGIN`], `HOME` in
    /// the temp dir and bash as the shell; `tweak` adjusts the config.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let cp = FakeControlPlane::start().await;
        let key = SigningKey::from_seed([7; 32]);
        cp.serve_keys(&[&key]);
        let root = tempfile::tempdir().unwrap();
        let mut cfg = config(&cp, root.path());
        cfg.app_origin = Some(APP_ORIGIN.to_owned());
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        cfg.home = home;
        cfg.shell = Some(PathBuf::from("/bin/bash"));
        tweak(&mut cfg);
        let source = Source::start(&cp).await;
        let agent = Agent::new(cfg).unwrap();
        source.equip(&agent);
        let router = agent.router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // With the peer's address, as the agent serves (forwarded ports
        // pass it on in `X-Forwarded-For`).
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        Self {
            cp,
            key,
            addr,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            root,
            source,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates workspace `id` through `POST /workspaces`, waits until it
    /// runs, and returns its checkout.
    pub async fn workspace(&self, id: &str) -> PathBuf {
        let (status, body) = self
            .manage(
                reqwest::Method::POST,
                "/workspaces",
                Some(&self.source.create_body(&self.cp, &self.key, id)),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let path = format!("/workspaces/{id}");
        provision::until_running(async || self.manage(reqwest::Method::GET, &path, None).await.1)
            .await;
        self.root
            .path()
            .join("var/lib/sam/workspaces")
            .join(id)
            .join("repo")
    }

    /// A management request (`/workspaces/…`) with this node's bearer;
    /// status and JSON body (`Null` when empty).
    pub async fn manage(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.management());
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A node-management token for this node.
    pub fn management(&self) -> String {
        self.cp.token(&self.key, Audience::NodeManagement, NODE_ID)
    }

    /// A 60 s terminal ticket for `workspace` on `node`, issued at `at_ms`.
    pub fn ticket_at(&self, node: &str, workspace: &str, at_ms: i64) -> String {
        self.key.issue(
            &self.cp.url(),
            &Grant::workspace(Audience::Terminal, node, workspace, 60),
            at_ms,
        )
    }

    /// A fresh terminal ticket for `workspace` on this node.
    pub fn ticket(&self, workspace: &str) -> String {
        self.ticket_at(NODE_ID, workspace, now_ms())
    }

    /// Exchanges a fresh ticket at `/session`; returns `sam_ws=<value>`.
    pub async fn cookie(&self, workspace: &str) -> String {
        let resp = self
            .http
            .get(self.url(&format!(
                "/workspaces/{workspace}/session?token={}",
                self.ticket(workspace)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        set_cookie_pair(resp.headers())
    }

    /// `GET path` with extra headers; status, headers and JSON body (or
    /// `Null` when the body is empty).
    pub async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self.http.get(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, headers, body)
    }

    /// Creates a terminal with `auth` (`("authorization", …)` or
    /// `("cookie", …)`); status and body.
    pub async fn create_terminal(
        &self,
        workspace: &str,
        auth: (&str, &str),
        body: Value,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/workspaces/{workspace}/terminals")))
            .header(auth.0, auth.1)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    /// Opens a WebSocket at `path` with extra request headers.
    pub async fn websocket(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, tungstenite::Error> {
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }
}

/// The `name=value` part of a response's `Set-Cookie`.
pub fn set_cookie_pair(headers: &HeaderMap) -> String {
    let cookie = headers["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().trim().to_owned()
}

/// The HTTP status a refused WebSocket handshake got.
pub fn refused_status(result: Result<Socket, tungstenite::Error>) -> StatusCode {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            StatusCode::from_u16(response.status().as_u16()).unwrap()
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the socket opened"),
    }
}

/// What a terminal socket has said so far.
#[derive(Default)]
pub struct Screen {
    pub output: Vec<u8>,
    pub close: Option<(u16, String)>,
}

impl Screen {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Sends input bytes (a binary frame).
pub async fn type_in(socket: &mut Socket, input: &str) {
    socket
        .send(Message::binary(input.as_bytes().to_vec()))
        .await
        .unwrap();
}

/// Sends a control message (a text frame).
pub async fn control(socket: &mut Socket, message: &Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// Reads from `socket` into `screen` until `done` holds, the socket closes,
/// or `limit` passes; returns whether `done` held.
pub async fn read_until(
    socket: &mut Socket,
    screen: &mut Screen,
    limit: Duration,
    mut done: impl FnMut(&Screen) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(screen) {
        let Ok(next) = tokio::time::timeout_at(deadline, socket.next()).await else {
            return false;
        };
        match next {
            Some(Ok(Message::Binary(bytes))) => screen.output.extend_from_slice(&bytes),
            Some(Ok(Message::Text(text))) => panic!("unexpected text frame: {text}"),
            Some(Ok(Message::Close(frame))) => {
                screen.close = Some(
                    frame.map_or((1005, String::new()), |CloseFrame { code, reason }| {
                        (u16::from(code), reason.to_string())
                    }),
                );
                return done(screen);
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return done(screen),
        }
    }
    true
}
