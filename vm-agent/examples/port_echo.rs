//! A small app to forward to, for tests of the port forwarder (the
//! vm-agent's own, and end-to-end ones).
//!
//! `port_echo [PORT] [ADDRESS]` listens on `ADDRESS:PORT` (default
//! `127.0.0.1`, port 0 = any free one), prints exactly `listening on
//! <port>` on stdout (flushed) once it accepts connections, and serves:
//!
//! - `GET /ws` as a WebSocket: every text or binary message is sent back
//!   as it came;
//! - `POST` (any path): the request body, streamed back as it arrives
//!   (`application/octet-stream`), so a test can see both directions
//!   stream through a proxy;
//! - anything else: 200 `text/plain`, the request line (`<METHOD>
//!   <path?query>`) and then every header as `name: value` (lower-case
//!   names, in arrival order), one per line, so a test can check what a
//!   proxy passed on (`host: …`, `cookie: …`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let address: IpAddr = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let listener = tokio::net::TcpListener::bind((address, port)).await?;
    let port = listener.local_addr()?.port();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {port}")?;
    stdout.flush()?;

    let app = Router::new().route("/ws", any(websocket)).fallback(echo);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn websocket(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(echo_messages).into_response(),
        // Not a WebSocket handshake: described like any other request.
        Err(_) => echo(request).await,
    }
}

async fn echo_messages(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            Message::Close(_) => break,
            // Pings are answered by axum itself.
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

async fn echo(request: Request) -> Response {
    if request.method() == Method::POST {
        let body = Body::from_stream(request.into_body().into_data_stream());
        return ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    }
    let mut text = format!(
        "{} {}\n",
        request.method(),
        request.uri().path_and_query().map_or("/", |pq| pq.as_str())
    );
    for (name, value) in request.headers() {
        let _ = writeln!(
            text,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}
