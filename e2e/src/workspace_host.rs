//! A browser's side of a workspace: its own host `ws-<id>.sam.localhost` (and
//! `ws-<id>--<port>.sam.localhost` for forwarded ports), reached through the
//! Worker's proxy exactly as the app's pages reach it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::{NodeEventSocket, Platform};

/// A signed-in user's view of one running workspace through `ws-<id>.`,
/// after trading a terminal ticket for the vm-agent's cookie.
pub struct WorkspaceHost {
    /// Talks to `ws-<id>.sam.localhost` (and `app.sam.localhost`), keeps cookies,
    /// sends the app's Origin like the app's pages do.
    pub client: reqwest::Client,
    /// `http://ws-<id>.sam.localhost:<port>`.
    pub base: String,
    /// `ws-<id>.sam.localhost:<port>`.
    pub host: String,
    /// `sam_ws=<value>`: the workspace cookie, for WebSocket handshakes.
    pub cookie: String,
    port: u16,
}

/// A client that reaches `host` (and the app) on the platform's port, keeps
/// cookies and says it comes from the app's pages.
pub fn browser_client(p: &Platform, hosts: &[&str]) -> reqwest::Client {
    let addr = SocketAddr::from(([127, 0, 0, 1], p.port));
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(origin) = reqwest::header::HeaderValue::from_str(&p.app("")) {
        headers.insert(reqwest::header::ORIGIN, origin);
    }
    let mut builder = reqwest::Client::builder()
        .resolve("app.sam.localhost", addr)
        .default_headers(headers)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    for host in hosts {
        builder = builder.resolve(host, addr);
    }
    builder.build().expect("build http client")
}

impl WorkspaceHost {
    /// Asks the API (as `app`'s user) for a terminal ticket and trades it at
    /// `ws-<id>.` for the workspace cookie.
    pub async fn open(p: &Platform, app: &reqwest::Client, id: &str) -> Result<Self> {
        let ticket = ticket(p, app, id).await?;
        let name = format!("ws-{}.sam.localhost", id.to_ascii_lowercase());
        let client = browser_client(p, &[&name]);
        let host = format!("{name}:{}", p.port);
        let base = format!("http://{host}");
        let resp = client
            .get(format!("{base}/session?token={ticket}"))
            .send()
            .await?;
        if resp.status() != 204 {
            bail!(
                "trading the ticket answered {}: {}",
                resp.status(),
                resp.text().await?
            );
        }
        let cookie = resp
            .headers()
            .get("set-cookie")
            .context("no workspace cookie")?
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            client,
            base,
            host,
            cookie,
            port: p.port,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens a new terminal (80×24); returns its id.
    pub async fn new_terminal(&self) -> Result<String> {
        let resp = self
            .client
            .post(self.url("/terminals"))
            .json(&serde_json::json!({ "cols": 80, "rows": 24 }))
            .send()
            .await?;
        if resp.status() != 201 {
            bail!("creating a terminal answered {}", resp.status());
        }
        let body: serde_json::Value = resp.json().await?;
        Ok(body["id"].as_str().context("terminal id")?.to_owned())
    }

    /// Attaches to terminal `tid` through the proxy with the workspace
    /// cookie and the app's Origin.
    pub async fn attach(&self, tid: &str) -> Result<NodeEventSocket> {
        let url = format!("ws://{}/terminals/{tid}/ws", self.host);
        upgrade(
            self.port,
            &url,
            &[("cookie", &self.cookie), ("origin", &app_origin(self.port))],
        )
        .await
    }
}

fn app_origin(port: u16) -> String {
    format!("http://app.sam.localhost:{port}")
}

/// A terminal ticket for the user's workspace `id`.
pub async fn ticket(p: &Platform, app: &reqwest::Client, id: &str) -> Result<String> {
    let resp = app
        .post(p.app(&format!("/api/workspaces/{id}/terminal-ticket")))
        .json(&serde_json::json!({}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("terminal ticket: {} {}", resp.status(), resp.text().await?);
    }
    let body: serde_json::Value = resp.json().await?;
    Ok(body["ticket"].as_str().context("ticket")?.to_owned())
}

/// A WebSocket handshake to `url` (whose host is one of ours) over a
/// connection to the platform's port; a refusal is an error naming the
/// HTTP status (`upgrade refused with HTTP 401`).
pub async fn upgrade(port: u16, url: &str, headers: &[(&str, &str)]) -> Result<NodeEventSocket> {
    upgrade_to(SocketAddr::from(([127, 0, 0, 1], port)), url, headers).await
}

/// Like [`upgrade`], over a connection to `addr`.
pub async fn upgrade_to(
    addr: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<NodeEventSocket> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
            value.parse().context("header value")?,
        );
    }
    let stream = tokio::net::TcpStream::connect(addr).await?;
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            bail!("upgrade refused with HTTP {}", resp.status().as_u16())
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends `input` as a binary frame (as the terminal page does).
pub async fn type_into(socket: &mut NodeEventSocket, input: &str) -> Result<()> {
    socket
        .send(Message::Binary(input.as_bytes().to_vec().into()))
        .await?;
    Ok(())
}

/// Reads the terminal's output until it contains `needle` (within
/// `timeout`); returns everything read. Ends early with an error when the
/// socket closes first.
pub async fn read_until(
    socket: &mut NodeEventSocket,
    needle: &str,
    timeout: Duration,
) -> Result<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if String::from_utf8_lossy(&seen).contains(needle) {
            return Ok(String::from_utf8_lossy(&seen).into_owned());
        }
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        match next {
            Err(_) => bail!(
                "{needle:?} did not appear within {timeout:?}; saw {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(None) => bail!("the socket closed before {needle:?} appeared"),
            Ok(Some(frame)) => match frame? {
                Message::Binary(bytes) => seen.extend_from_slice(&bytes),
                Message::Close(frame) => bail!("closed ({frame:?}) before {needle:?} appeared"),
                _ => {}
            },
        }
    }
}
