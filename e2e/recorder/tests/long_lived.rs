//! Responses that do not end at once: Server-Sent Events streamed through
//! as they come, and WebSocket upgrades tunnelled to the upstream.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use common::{Setup, client, wait_for_records};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};

const PATIENCE: Duration = Duration::from_secs(10);

/// Sends `tx` when dropped: the upstream's stream was let go.
struct Dropped(Option<oneshot::Sender<()>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// An upstream whose body (no `Content-Length`) at
/// `/api/nodes/{id}/logs/stream` sends `one`, waits for `gate`, sends
/// `two`, then stays open (or ends if `ends`); `dropped` fires when the
/// stream is let go.
async fn gated(
    content_type: &'static str,
    ends: bool,
) -> (SocketAddr, Arc<Notify>, oneshot::Receiver<()>) {
    let gate = Arc::new(Notify::new());
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
    let route_gate = Arc::clone(&gate);
    let router = Router::new().route(
        "/api/nodes/{id}/logs/stream",
        get(move || {
            let gate = Arc::clone(&route_gate);
            let guard = Dropped(dropped_tx.lock().unwrap().take());
            async move {
                let stream = futures::stream::unfold((0, guard), move |(step, guard)| {
                    let gate = Arc::clone(&gate);
                    async move {
                        let event = match step {
                            0 => "data: one\n\n",
                            1 => {
                                gate.notified().await;
                                "data: two\n\n"
                            }
                            _ if ends => return None,
                            _ => futures::future::pending().await,
                        };
                        Some((Ok::<_, std::convert::Infallible>(event), (step + 1, guard)))
                    }
                });
                ([(CONTENT_TYPE, content_type)], Body::from_stream(stream)).into_response()
            }
        }),
    );
    (common::serve(router).await, gate, dropped)
}

/// Reads chunks until the body so far is `want`.
async fn read_until(response: &mut reqwest::Response, so_far: &mut String, want: &str) {
    tokio::time::timeout(PATIENCE, async {
        while so_far.len() < want.len() {
            let chunk = response.chunk().await.unwrap().expect("more body");
            so_far.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {so_far:?} in time, waiting for {want:?}"));
    assert_eq!(so_far, want);
}

#[tokio::test]
async fn events_stream_through_as_sent_and_are_recorded_when_the_client_leaves() {
    let (upstream, gate, dropped) = gated("text/event-stream", false).await;
    let s = Setup::in_front_of(&format!("http://{upstream}")).await;
    let mut response = tokio::time::timeout(
        PATIENCE,
        client()
            .get(s.url("/api/nodes/n1/logs/stream?tail=5"))
            .send(),
    )
    .await
    .expect("headers in time")
    .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");

    // The second event is not sent before the first has arrived.
    let mut body = String::new();
    read_until(&mut response, &mut body, "data: one\n\n").await;
    assert!(s.records().is_empty(), "recorded before the end");
    gate.notify_one();
    read_until(&mut response, &mut body, "data: one\n\ndata: two\n\n").await;

    drop(response);
    tokio::time::timeout(PATIENCE, dropped)
        .await
        .expect("the upstream stream let go in time")
        .unwrap();
    let records = wait_for_records(&s.record, 1).await;
    assert_eq!(records.len(), 1);
    let line = &records[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/nodes/n1/logs/stream");
    assert_eq!(line["query"], "tail=5");
    assert_eq!(line["status"], 200);
    assert_eq!(line["content_type"], "text/event-stream");
    assert_eq!(line["body"], "data: one\n\ndata: two\n\n");
    assert_eq!(line["complete"], false);
    assert_eq!(line["kind"], "response");
}

#[tokio::test]
async fn a_chunked_body_that_pauses_is_streamed_and_recorded_before_its_end() {
    let (upstream, gate, _dropped) = gated("text/plain; charset=utf-8", true).await;
    let s = Setup::in_front_of(&format!("http://{upstream}")).await;
    let mut response = tokio::time::timeout(
        PATIENCE,
        client().get(s.url("/api/nodes/n1/logs/stream")).send(),
    )
    .await
    .expect("headers in time")
    .unwrap();
    let mut body = String::new();
    read_until(&mut response, &mut body, "data: one\n\n").await;
    assert!(s.records().is_empty(), "recorded before the end");
    gate.notify_one();
    body.push_str(&response.text().await.unwrap());
    assert_eq!(body, "data: one\n\ndata: two\n\n");
    // No waiting: the line is there once the end of the body is.
    let records = s.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["body"], body);
    assert_eq!(records[0]["complete"], true);
}

#[tokio::test]
async fn streams_that_end_are_recorded_before_the_client_has_the_end() {
    let s = Setup::new().await;
    let c = client();
    for (i, (path, content_type, body)) in [
        (
            "/events/finite",
            "text/event-stream",
            "data: one\n\ndata: two\n\n",
        ),
        ("/chunked", "text/plain", "first second third"),
    ]
    .into_iter()
    .enumerate()
    {
        let response = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), body);
        // No waiting: the line is there once the body is.
        let records = s.records();
        assert_eq!(records.len(), i + 1, "{path}");
        let line = &records[i];
        assert_eq!(line["path"], path);
        assert_eq!(line["content_type"], content_type);
        assert_eq!(line["body"], body);
        assert_eq!(line["complete"], true);
    }
}

/// What the WebSocket upstream saw of a handshake: path and query, and
/// the request headers.
type Handshake = (String, axum::http::HeaderMap);

/// A WebSocket upstream that greets, then echoes every data message (and
/// takes the subprotocol the client offers); it refuses paths that do not end in `/ws` with 403.
async fn websocket_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<Handshake>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                // tungstenite's callback signature, not ours.
                #[allow(clippy::result_large_err)]
                let callback = |request: &WsRequest, mut response: WsResponse| {
                    seen_tx
                        .send((request.uri().to_string(), request.headers().clone()))
                        .unwrap();
                    if request.uri().path().ends_with("/ws") {
                        if let Some(protocol) = request.headers().get("sec-websocket-protocol") {
                            response
                                .headers_mut()
                                .insert("sec-websocket-protocol", protocol.clone());
                        }
                        Ok(response)
                    } else {
                        let mut refusal = ErrorResponse::new(Some("not here".to_owned()));
                        *refusal.status_mut() = axum::http::StatusCode::FORBIDDEN;
                        Err(refusal)
                    }
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                ws.send(Message::text("hello from upstream")).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    match message {
                        Message::Text(_) | Message::Binary(_) => ws.send(message).await.unwrap(),
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// The next message, in time.
async fn next<S, E>(ws: &mut S) -> Message
where
    S: futures::Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Debug,
{
    tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .unwrap()
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled_and_the_handshake_recorded() {
    let (upstream, mut seen) = websocket_upstream().await;
    let s = Setup::in_front_of(&format!("http://{upstream}")).await;
    let ws_url = format!(
        "{}/api/nodes/n1/events/ws?since=7",
        s.base.replace("http", "ws")
    );
    let mut request = ws_url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("host", "api.localhost:8787".parse().unwrap());
    headers.insert("cookie", "sam_session=abc".parse().unwrap());
    headers.insert("sec-websocket-protocol", "sam.events".parse().unwrap());
    headers.insert("origin", "http://app.localhost:8787".parse().unwrap());
    let (mut ws, response) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .expect("a handshake in time")
            .unwrap_or_else(|e| panic!("handshake failed: {e}"));
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "sam.events");

    let (path, upstream_saw) = seen.recv().await.unwrap();
    assert_eq!(path, "/api/nodes/n1/events/ws?since=7");
    for (name, value) in [
        ("host", "api.localhost:8787"),
        ("cookie", "sam_session=abc"),
        ("origin", "http://app.localhost:8787"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "sam.events"),
    ] {
        assert_eq!(upstream_saw[name], value, "{name}");
    }
    assert!(
        upstream_saw["connection"]
            .to_str()
            .unwrap()
            .eq_ignore_ascii_case("upgrade")
    );
    assert!(upstream_saw.contains_key("sec-websocket-key"));

    assert_eq!(next(&mut ws).await, Message::text("hello from upstream"));
    ws.send(Message::text("ping through the tunnel"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::text("ping through the tunnel")
    );
    let big = "é".repeat(50_000);
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text(big.clone()));
    ws.send(Message::binary(vec![0, 1, 2])).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![0, 1, 2]));
    ws.close(None).await.unwrap();

    // The handshake, then the upstream's three text messages (not the
    // binary one).
    let records = wait_for_records(&s.record, 4).await;
    let handshake = &records[0];
    assert_eq!(handshake["method"], "GET");
    assert_eq!(handshake["path"], "/api/nodes/n1/events/ws");
    assert_eq!(handshake["query"], "since=7");
    assert_eq!(handshake["status"], 101);
    assert_eq!(handshake["kind"], "upgrade");
    assert_eq!(handshake["body"], "");
    assert_eq!(handshake["complete"], true);
    let messages: Vec<_> = records[1..]
        .iter()
        .map(|line| {
            assert_eq!(line["kind"], "message");
            assert_eq!(line["status"], 101);
            assert_eq!(line["path"], "/api/nodes/n1/events/ws");
            assert_eq!(line["content_type"], Value::Null);
            line["body"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        messages,
        [
            "hello from upstream",
            "ping through the tunnel",
            big.as_str()
        ]
    );
}

#[tokio::test]
async fn a_refused_websocket_upgrade_is_passed_back_and_recorded() {
    let (upstream, mut seen) = websocket_upstream().await;
    let s = Setup::in_front_of(&format!("http://{upstream}")).await;
    let request = format!("{}/api/nodes/n1/elsewhere", s.base.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    let error = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("an answer in time")
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("not an HTTP refusal: {error}");
    };
    assert_eq!(response.status(), 403);
    assert_eq!(seen.recv().await.unwrap().0, "/api/nodes/n1/elsewhere");
    let records = wait_for_records(&s.record, 1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], 403);
    assert_eq!(records[0]["kind"], "response");
    // The client may hang up before the body has passed.
    assert!(
        "not here".starts_with(records[0]["body"].as_str().unwrap()),
        "{records:?}"
    );
}
