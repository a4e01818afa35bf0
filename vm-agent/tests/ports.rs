//! Forwarded ports end to end: a real agent, a real host-runtime
//! workspace, and the `port_echo` example app started inside it (directly
//! with its working directory in the checkout, or from a terminal), seen
//! by `GET /workspaces/{id}/ports` and reached through
//! `/workspaces/{id}/ports/{port}/…` with the port's own credentials.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::browser::{
    APP_ORIGIN, BrowserHarness, OTHER_WORKSPACE, Screen, WORKSPACE, read_until, refused_status,
    set_cookie_pair, type_in,
};
use common::{NODE_ID, now_ms, wait_until};
use futures::{SinkExt as _, StreamExt as _};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use sam_auth::{Audience, Grant};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

const PATIENCE: Duration = Duration::from_secs(15);

/// The `port_echo` example, which `cargo test` builds next to the tests.
fn port_echo() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/ports-<hash> → target/<profile>/examples/
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/port_echo");
    // `cargo test -p sam-vm-agent` builds examples; `--test ports` alone
    // does not.
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p sam-vm-agent --example port_echo` first",
        path.display()
    );
    path
}

/// A `port_echo` running until dropped.
struct App {
    port: u16,
    _child: tokio::process::Child,
}

/// Starts `port_echo` with `args` in `cwd`; waits until it listens.
async fn start_app(cwd: &Path, args: &[&str]) -> App {
    let mut child = tokio::process::Command::new(port_echo())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let port = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    App {
        port,
        _child: child,
    }
}

/// A port JWT of `audience` (a `port-access` ticket, or the proxy's
/// `public-port` token) for `port` of `workspace` on `node`, issued at
/// `at_ms`.
fn port_jwt(
    h: &BrowserHarness,
    audience: Audience,
    (node, workspace, port): (&str, &str, u16),
    at_ms: i64,
) -> String {
    h.key.issue(
        &h.cp.url(),
        &Grant {
            port: Some(port),
            ..Grant::workspace(audience, node, workspace, 60)
        },
        at_ms,
    )
}

/// A port-access ticket for `port` of `workspace` on `node`.
fn port_token_at(h: &BrowserHarness, node: &str, workspace: &str, port: u16, at_ms: i64) -> String {
    port_jwt(h, Audience::PortAccess, (node, workspace, port), at_ms)
}

fn port_token(h: &BrowserHarness, port: u16) -> String {
    port_token_at(h, NODE_ID, WORKSPACE, port, now_ms())
}

/// The proxy's token for a public `port` of this node's `WORKSPACE`.
fn public_port_token(h: &BrowserHarness, port: u16) -> String {
    port_jwt(
        h,
        Audience::PublicPort,
        (NODE_ID, WORKSPACE, port),
        now_ms(),
    )
}

fn bearer(h: &BrowserHarness) -> String {
    format!("Bearer {}", h.management())
}

fn at(port: u16, rest: &str) -> String {
    format!("/workspaces/{WORKSPACE}/ports/{port}{rest}")
}

/// What came back.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .map(|body| body["code"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// The request `port_echo` saw: its request line and header lines.
    fn seen(&self) -> Vec<String> {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.text().lines().map(str::to_owned).collect()
    }
}

async fn send(
    h: &BrowserHarness,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut req = h.http.request(method, h.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

async fn get(h: &BrowserHarness, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(h, Method::GET, path, headers, None).await
}

/// `GET /workspaces/{id}/ports` with `auth`.
async fn listed(h: &BrowserHarness, workspace: &str, auth: (&str, &str)) -> (StatusCode, Value) {
    let answer = get(h, &format!("/workspaces/{workspace}/ports"), &[auth]).await;
    let body = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status, body)
}

async fn listed_ports(h: &BrowserHarness) -> Vec<u16> {
    let (status, body) = listed(h, WORKSPACE, ("authorization", &bearer(h))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u16::try_from(p["port"].as_u64().unwrap()).unwrap())
        .collect()
}

/// Trades a fresh ticket for the port's cookie; returns `sam_port_<p>=…`.
async fn port_cookie(h: &BrowserHarness, port: u16) -> String {
    let answer = get(
        h,
        &at(port, &format!("/?port_token={}", port_token(h, port))),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    set_cookie_pair(&answer.headers)
}

#[tokio::test]
async fn the_workspace_s_listening_ports_are_listed_and_nothing_else() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    let v4 = start_app(&repo, &["0"]).await;
    let v6 = start_app(&repo.join("sub"), &["0", "::1"]).await;
    // Not the workspace's: an app elsewhere, and the agent's own process
    // (this test) listening.
    let stranger = start_app(h.root.path(), &["0"]).await;
    let own = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_port = own.local_addr().unwrap().port();

    let (status, body) = listed(&h, WORKSPACE, ("authorization", &bearer(&h))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut expected = vec![
        json!({ "port": v4.port, "address": "127.0.0.1" }),
        json!({ "port": v6.port, "address": "::1" }),
    ];
    expected.sort_by_key(|p| p["port"].as_u64());
    assert_eq!(body, json!({ "ports": expected }));
    for absent in [stranger.port, own_port, h.addr.port()] {
        assert!(!listed_ports(&h).await.contains(&absent), "{absent}");
    }

    // The workspace cookie lists them too; nothing else does.
    let cookie = h.cookie(WORKSPACE).await;
    let (status, same) = listed(&h, WORKSPACE, ("cookie", &cookie)).await;
    assert_eq!((status, &same), (StatusCode::OK, &body));
    let (status, refused) = listed(&h, WORKSPACE, ("x-other", "1")).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_missing"))
    );
    let port_only = port_cookie(&h, v4.port).await;
    let (status, _) = listed(&h, WORKSPACE, ("cookie", &port_only)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A workspace the agent does not know.
    let (status, missing) = listed(&h, OTHER_WORKSPACE, ("authorization", &bearer(&h))).await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // An app that stops is no longer listed.
    let gone = v4.port;
    drop(v4);
    let mut ports = Vec::new();
    for _ in 0..100 {
        ports = listed_ports(&h).await;
        if !ports.contains(&gone) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ports, [v6.port]);
}

/// The port a `port_echo` started in a terminal announced.
fn announced_port(screen: &Screen) -> Option<u16> {
    let text = screen.text();
    text.match_indices("listening on ")
        .find_map(|(at, needle)| {
            let digits: String = text[at + needle.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let complete = text[at + needle.len() + digits.len()..].starts_with(['\r', '\n']);
            complete.then(|| digits.parse().ok()).flatten()
        })
}

#[tokio::test]
async fn a_server_started_in_a_terminal_counts_wherever_it_runs() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let auth = bearer(&h);
    let (status, body) = h
        .create_terminal(WORKSPACE, ("authorization", &auth), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let terminal = body["id"].as_str().unwrap().to_owned();
    let mut socket = h
        .websocket(
            &format!("/workspaces/{WORKSPACE}/terminals/{terminal}/ws"),
            &[("authorization", &auth)],
        )
        .await
        .unwrap();
    // Out of the workspace's directory: found as the shell's descendant.
    type_in(
        &mut socket,
        &format!("cd / && {} 0\n", port_echo().display()),
    )
    .await;
    let mut screen = Screen::default();
    assert!(
        read_until(&mut socket, &mut screen, PATIENCE, |s| announced_port(s)
            .is_some())
        .await,
        "{}",
        screen.text()
    );
    let port = announced_port(&screen).unwrap();
    assert_eq!(listed_ports(&h).await, [port]);
    let answer = get(
        &h,
        &at(port, "/hi"),
        &[("x-sam-port-access", &public_port_token(&h, port))],
    )
    .await;
    assert_eq!(answer.seen()[0], "GET /hi");

    // Deleting the terminal ends it, and the port with it.
    let resp = h
        .http
        .delete(h.url(&format!("/workspaces/{WORKSPACE}/terminals/{terminal}")))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let mut ports = vec![port];
    for _ in 0..100 {
        ports = listed_ports(&h).await;
        if ports.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ports.is_empty(), "{ports:?}");
}

#[tokio::test]
async fn requests_reach_the_app_rewritten_and_without_sam_s_credentials() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    let app = start_app(&repo, &["0"]).await;
    let p = app.port;
    let cookie = port_cookie(&h, p).await;
    let browser_host = format!("ws-{}--{p}.localhost:8787", WORKSPACE.to_lowercase());

    // A GET with the cookie, through the Worker (which sets the
    // forwarded host and protocol).
    let mixed = format!("app=1; sam_ws=abc; {cookie}; sam_port_9=zzz; theme=dark");
    let answer = get(
        &h,
        &at(p, "/some/page?x=1&y=%20"),
        &[
            ("cookie", &mixed),
            ("authorization", "Bearer the-app-s-own"),
            ("x-forwarded-host", &browser_host),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(answer.header("content-type"), "text/plain; charset=utf-8");
    let seen = answer.seen();
    assert_eq!(seen[0], "GET /some/page?x=1&y=%20");
    for line in [
        format!("host: localhost:{p}"),
        "cookie: app=1; theme=dark".to_owned(),
        "authorization: Bearer the-app-s-own".to_owned(),
        format!("x-forwarded-host: {browser_host}"),
        "x-forwarded-proto: https".to_owned(),
        "x-forwarded-for: 127.0.0.1".to_owned(),
    ] {
        assert!(seen.contains(&line), "no {line:?} in {seen:?}");
    }
    assert!(!answer.text().contains("sam_"), "{seen:?}");

    // Another method with the proxy's header token and a stale ticket in
    // the query: the app sees neither, nor the agent's address as host.
    let answer = send(
        &h,
        Method::DELETE,
        &at(p, "/items/7?port_token=stale&keep=1&port_token=again"),
        &[("x-sam-port-access", &public_port_token(&h, p))],
        None,
    )
    .await;
    let seen = answer.seen();
    assert_eq!(seen[0], "DELETE /items/7?keep=1");
    assert!(
        seen.contains(&format!("x-forwarded-host: {}", h.addr)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"x-forwarded-proto: http".to_owned()),
        "{seen:?}"
    );
    assert!(!answer.text().contains("x-sam-port-access"), "{seen:?}");
    assert!(!answer.text().contains("port_token"), "{seen:?}");

    // The port's root, with and without the slash.
    for root in ["", "/"] {
        let answer = get(&h, &at(p, root), &[("cookie", &cookie)]).await;
        assert_eq!(answer.seen()[0], "GET /", "{root:?}");
    }

    // A large upload, and its echo, come through whole.
    let upload: Vec<u8> = (0..8 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let answer = send(
        &h,
        Method::POST,
        &at(p, "/upload"),
        &[
            ("cookie", &cookie),
            ("content-type", "application/octet-stream"),
        ],
        Some(upload.clone()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), upload.len());
    assert!(answer.body == upload);
}

#[tokio::test]
async fn bodies_stream_both_ways_and_websockets_are_joined() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    let app = start_app(&repo, &["0"]).await;
    let p = app.port;
    let cookie = port_cookie(&h, p).await;

    // The request body is still being written while the answer comes:
    // each chunk goes to the app and back before the next is sent, which
    // only works if neither side is buffered whole.
    let streamed = async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let chunks = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
        });
        tx.send(b"one;".to_vec()).await.unwrap();
        let mut resp = h
            .http
            .post(h.url(&at(p, "/stream")))
            .header("cookie", &cookie)
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut echoed = Vec::new();
        for (chunk, so_far) in [(&b"two;"[..], &b"one;"[..]), (b"three;", b"one;two;")] {
            while echoed.len() < so_far.len() {
                echoed.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
            }
            assert_eq!(echoed, so_far);
            tx.send(chunk.to_vec()).await.unwrap();
        }
        drop(tx);
        while let Some(more) = resp.chunk().await.unwrap() {
            echoed.extend_from_slice(&more);
        }
        assert_eq!(echoed, b"one;two;three;");
    };
    tokio::time::timeout(PATIENCE, streamed)
        .await
        .expect("the bodies did not stream");

    // A WebSocket with the cookie.
    let mut socket = h
        .websocket(&at(p, "/ws"), &[("cookie", &cookie)])
        .await
        .unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("hello"));
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echo = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    assert_eq!(
        echo.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    socket.close(None).await.unwrap();

    // With a ticket, accepted directly, once.
    let ticket = port_token(&h, p);
    let path = at(p, &format!("/ws?port_token={ticket}"));
    let mut socket = h.websocket(&path, &[]).await.unwrap();
    socket.send(Message::text("again")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("again"));
    assert_eq!(
        refused_status(h.websocket(&path, &[]).await),
        StatusCode::UNAUTHORIZED
    );
    // And with nothing at all, or the workspace's own credentials, no.
    assert_eq!(
        refused_status(h.websocket(&at(p, "/ws"), &[]).await),
        StatusCode::UNAUTHORIZED
    );
    let workspace_cookie = h.cookie(WORKSPACE).await;
    assert_eq!(
        refused_status(
            h.websocket(&at(p, "/ws"), &[("cookie", &workspace_cookie)])
                .await
        ),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn only_ports_the_workspace_listens_on_are_forwarded() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    let app = start_app(&repo, &["0"]).await;
    let stranger = start_app(h.root.path(), &["0"]).await;
    let own = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_port = own.local_addr().unwrap().port();

    let ok = get(
        &h,
        &at(app.port, "/"),
        &[("x-sam-port-access", &public_port_token(&h, app.port))],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Listening, but not the workspace's (another app, the agent's own
    // process, the agent's API port): never reached.
    for port in [stranger.port, own_port, h.addr.port()] {
        let answer = get(
            &h,
            &at(port, "/"),
            &[("x-sam-port-access", &public_port_token(&h, port))],
        )
        .await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::NOT_FOUND, "port_not_listening"),
            "{port}"
        );
    }
    for bad in ["0", "70000", "65536", "abc", "03000", "+80", "-1"] {
        let answer = get(&h, &format!("/workspaces/{WORKSPACE}/ports/{bad}/"), &[]).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_port"),
            "{bad}"
        );
    }
    // A workspace the agent does not know, with a token for it.
    let token = port_jwt(
        &h,
        Audience::PublicPort,
        (NODE_ID, OTHER_WORKSPACE, app.port),
        now_ms(),
    );
    let answer = get(
        &h,
        &format!("/workspaces/{OTHER_WORKSPACE}/ports/{}/", app.port),
        &[("x-sam-port-access", &token)],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn a_port_ticket_buys_the_port_s_cookie_once() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    let app = start_app(&repo, &["0"]).await;
    let other = start_app(&repo, &["0"]).await;
    let p = app.port;

    let ticket = port_token(&h, p);
    let url = at(p, &format!("/dir/page.html?a=1&port_token={ticket}&b=%20"));
    let answer = get(&h, &url, &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    assert_eq!(answer.header("location"), "./page.html?a=1&b=%20");
    assert_eq!(answer.header("cache-control"), "no-store");
    let set_cookie = answer.header("set-cookie");
    let prefix = format!("sam_port_{p}=");
    let value = set_cookie
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split(';').next())
        .unwrap();
    assert_eq!(value.len(), 64, "{set_cookie}");
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{set_cookie}");
    assert_eq!(
        set_cookie
            .strip_prefix(&format!("{prefix}{value}"))
            .unwrap(),
        "; HttpOnly; SameSite=Lax; Path=/; Max-Age=28800"
    );
    let cookie = set_cookie_pair(&answer.headers);

    // Used once: a replay is refused, unless the browser holds a cookie.
    let replay = get(&h, &url, &[]).await;
    assert_eq!(
        (replay.status, replay.code().as_str()),
        (StatusCode::UNAUTHORIZED, "token_replayed")
    );
    assert!(!replay.headers.contains_key("set-cookie"));
    let harmless = get(&h, &url, &[("cookie", &cookie)]).await;
    assert_eq!(harmless.status, StatusCode::SEE_OTHER);
    assert!(!harmless.headers.contains_key("set-cookie"));

    // The cookie opens the port.
    let answer = get(&h, &at(p, "/dir/page.html?a=1"), &[("cookie", &cookie)]).await;
    assert_eq!(answer.seen()[0], "GET /dir/page.html?a=1");

    // The port's root: `./`; over https the cookie is Secure.
    let answer = get(
        &h,
        &at(p, &format!("/?port_token={}", port_token(&h, p))),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(answer.header("location"), "./");
    assert!(answer.header("set-cookie").ends_with("; Secure"));

    // Not another port's: by its own name it is not even looked at, under
    // the other port's name it is the wrong scope.
    let q = other.port;
    let answer = get(&h, &at(q, "/"), &[("cookie", &cookie)]).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::UNAUTHORIZED, "token_missing")
    );
    let renamed = format!("sam_port_{q}={value}");
    let answer = get(&h, &at(q, "/"), &[("cookie", &renamed)]).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::FORBIDDEN, "token_scope_mismatch")
    );
    let unknown = format!("sam_port_{p}={}", "ab".repeat(32));
    let answer = get(&h, &at(p, "/"), &[("cookie", &unknown)]).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::UNAUTHORIZED, "session_invalid")
    );

    // Pages of the same workspace and the app may use it; others may not.
    let ws = WORKSPACE.to_lowercase();
    for (origin, expected) in [
        (
            format!("http://ws-{ws}--{p}.localhost:8787"),
            StatusCode::OK,
        ),
        (
            format!("http://ws-{ws}--{q}.localhost:8787"),
            StatusCode::OK,
        ),
        (format!("http://ws-{ws}.localhost:8787"), StatusCode::OK),
        (APP_ORIGIN.to_owned(), StatusCode::OK),
        (
            format!(
                "http://ws-{}--{p}.localhost:8787",
                OTHER_WORKSPACE.to_lowercase()
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "http://evil.localhost:8787".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        ("null".to_owned(), StatusCode::FORBIDDEN),
    ] {
        let answer = get(&h, &at(p, "/"), &[("cookie", &cookie), ("origin", &origin)]).await;
        assert_eq!(answer.status, expected, "{origin}: {}", answer.text());
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(answer.code(), "origin_not_allowed");
        }
    }

    // A POST with a ticket opens that request only (no cookie).
    let answer = send(
        &h,
        Method::POST,
        &at(p, &format!("/form?port_token={}", port_token(&h, p))),
        &[],
        Some(b"posted".to_vec()),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (StatusCode::OK, &b"posted"[..])
    );
    assert!(!answer.headers.contains_key("set-cookie"));
}

#[tokio::test]
async fn tokens_scoped_elsewhere_and_workspace_credentials_are_refused() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    let app = start_app(&repo, &["0"]).await;
    let p = app.port;
    let now = now_ms();

    // The proxy's header token opens the port on every request.
    let header_token = public_port_token(&h, p);
    for _ in 0..3 {
        let answer = get(&h, &at(p, "/"), &[("x-sam-port-access", &header_token)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }

    // A ticket is no proxy token and a proxy token no ticket.
    let as_header = get(
        &h,
        &at(p, "/"),
        &[("x-sam-port-access", &port_token(&h, p))],
    )
    .await;
    assert_eq!(
        (as_header.status, as_header.code().as_str()),
        (StatusCode::UNAUTHORIZED, "token_wrong_audience")
    );
    let public = public_port_token(&h, p);
    let as_ticket = get(&h, &at(p, &format!("/?port_token={public}")), &[]).await;
    assert_eq!(
        (as_ticket.status, as_ticket.code().as_str()),
        (StatusCode::UNAUTHORIZED, "token_wrong_audience")
    );

    // Each case as a ticket and as the proxy's token (its own audience).
    let terminal = h.ticket(WORKSPACE);
    let management = h.management();
    let scoped = |scope: (&str, &str, u16), at_ms: i64| {
        [Audience::PortAccess, Audience::PublicPort]
            .map(|audience| port_jwt(&h, audience, scope, at_ms))
    };
    let same = |token: String| [token.clone(), token];
    let cases = [
        (
            scoped((NODE_ID, OTHER_WORKSPACE, p), now),
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
        ),
        (
            scoped((NODE_ID, WORKSPACE, p ^ 1), now),
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
        ),
        (
            scoped(("01HZX3Y0000000000000000001", WORKSPACE, p), now),
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
        ),
        (
            scoped((NODE_ID, WORKSPACE, p), now - 120_000),
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        (
            same(terminal),
            StatusCode::UNAUTHORIZED,
            "token_wrong_audience",
        ),
        (
            same(management),
            StatusCode::UNAUTHORIZED,
            "token_wrong_audience",
        ),
        (
            same("not-a-token".to_owned()),
            StatusCode::UNAUTHORIZED,
            "token_malformed",
        ),
    ];
    for ([ticket, proxy_token], status, code) in &cases {
        let as_ticket = get(&h, &at(p, &format!("/?port_token={ticket}")), &[]).await;
        assert_eq!(
            (as_ticket.status, as_ticket.code().as_str()),
            (*status, *code),
            "ticket {ticket}"
        );
        assert!(!as_ticket.headers.contains_key("set-cookie"));
        let as_header = get(&h, &at(p, "/"), &[("x-sam-port-access", proxy_token)]).await;
        assert_eq!(
            (as_header.status, as_header.code().as_str()),
            (*status, *code),
            "header {proxy_token}"
        );
    }

    // The workspace's own credentials open the workspace, not its ports.
    let workspace_cookie = h.cookie(WORKSPACE).await;
    for auth in [
        ("authorization", bearer(&h)),
        ("cookie", workspace_cookie.clone()),
    ] {
        let answer = get(&h, &at(p, "/"), &[(auth.0, &auth.1)]).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::UNAUTHORIZED, "token_missing"),
            "{}",
            auth.0
        );
    }
    let value = workspace_cookie.strip_prefix("sam_ws=").unwrap();
    let renamed = format!("sam_port_{p}={value}");
    let answer = get(&h, &at(p, "/"), &[("cookie", &renamed)]).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::FORBIDDEN, "token_scope_mismatch")
    );
    // Nor does a port's cookie open the workspace.
    let cookie = port_cookie(&h, p).await;
    let value = cookie.split_once('=').unwrap().1;
    let answer = get(
        &h,
        &format!("/workspaces/{WORKSPACE}/terminals"),
        &[("cookie", &format!("sam_ws={value}"))],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::UNAUTHORIZED, "session_invalid")
    );
}

#[tokio::test]
async fn stopping_the_workspace_ends_its_port_sessions() {
    let h = BrowserHarness::start(|_| {}).await;
    let repo = h.workspace(WORKSPACE).await;
    let app = start_app(&repo, &["0"]).await;
    let cookie = port_cookie(&h, app.port).await;
    let answer = get(&h, &at(app.port, "/"), &[("cookie", &cookie)]).await;
    assert_eq!(answer.status, StatusCode::OK);

    let (status, body) = h
        .manage(Method::POST, &format!("/workspaces/{WORKSPACE}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = get(&h, &at(app.port, "/"), &[("cookie", &cookie)]).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::UNAUTHORIZED, "session_invalid")
    );
    // The app went with the workspace's other processes.
    assert!(
        wait_until(PATIENCE, || std::net::TcpStream::connect((
            "127.0.0.1",
            app.port
        ))
        .is_err())
        .await
    );
    assert!(listed_ports(&h).await.is_empty());
}
