//! Newline-delimited JSON-RPC 2.0 over an agent's stdio, as ACP speaks it.
//!
//! Why not the `agent-client-protocol` crate's connection: the control plane
//! must receive each `session/update` exactly as the agent sent it, and the
//! crate hands handlers typed values (unknown fields and update kinds of a
//! newer agent would be lost or refused on the way); its handlers must also
//! not block its dispatch loop, while ours must (see [`Peer::run_reader`]).
//! So this module moves raw JSON and the session uses the crate's schema
//! types (`agent-client-protocol-schema`) only to build and read the
//! messages it understands.
//!
//! Ordering: one reader task reads the agent's lines and handles them one
//! at a time, in order: an incoming request or notification is given to the
//! handler (and awaited); a response completes its waiting request. So a
//! response to `session/prompt` is seen only after every update the agent
//! sent before it was handled.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::sync::{Notify, mpsc, oneshot};

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The agent answered with a JSON-RPC error.
    #[error("the agent answered {method} with error {code}: {message}")]
    Remote {
        method: String,
        code: i64,
        message: String,
    },
    /// The agent's stdout closed (it exited) before it answered.
    #[error("the agent went away before answering {0}")]
    Closed(String),
    #[error("the agent's answer to {0} is not what ACP says")]
    BadReply(String),
}

/// What the agent sent us: a request (answer it with [`Peer::respond`]) or
/// a notification.
#[derive(Debug, Clone)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
}

type Pending = HashMap<u64, (String, oneshot::Sender<Result<Value, RpcError>>)>;

/// Our side of the connection. Cheap to share (`Arc`).
pub struct Peer {
    out: mpsc::UnboundedSender<String>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    closed: AtomicBool,
    closed_notify: Notify,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer writing to `stdin` (a writer task is spawned).
    pub fn new<W>(stdin: W) -> Arc<Self>
    where
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (out, mut lines) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(line) = lines.recv().await {
                let written = async {
                    stdin.write_all(line.as_bytes()).await?;
                    stdin.write_all(b"\n").await?;
                    stdin.flush().await
                };
                if written.await.is_err() {
                    break;
                }
            }
            // Dropping stdin closes it: some agents take that as the end.
        });
        Arc::new(Self {
            out,
            pending: Mutex::default(),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
        })
    }

    /// Reads the agent's `stdout` until it closes, handling each message in
    /// order (see the module documentation), then fails every request still
    /// waiting.
    pub async fn run_reader<R, H, F>(self: Arc<Self>, stdout: R, mut handler: H)
    where
        R: tokio::io::AsyncRead + Unpin,
        H: FnMut(Incoming) -> F,
        F: Future<Output = ()>,
    {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(%err, "reading from the agent failed");
                    break;
                }
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Ok(Value::Object(message)) = serde_json::from_str::<Value>(line) else {
                // Agents sometimes print logs to stdout; not ours to act on.
                tracing::debug!(
                    bytes = line.len(),
                    "the agent wrote a line that is not JSON-RPC"
                );
                continue;
            };
            let mut message = message;
            let method = message
                .get("method")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let params = message.remove("params").unwrap_or(Value::Null);
            match (method, message.remove("id")) {
                (Some(method), Some(id)) if !id.is_null() => {
                    handler(Incoming::Request { id, method, params }).await;
                }
                (Some(method), _) => handler(Incoming::Notification { method, params }).await,
                (None, Some(id)) => self.complete(&id, message),
                (None, None) => tracing::debug!("the agent sent a message without method or id"),
            }
        }
        self.close();
    }

    fn complete(&self, id: &Value, mut message: serde_json::Map<String, Value>) {
        let Some(id) = id.as_u64() else {
            tracing::debug!(%id, "a response to no request of ours");
            return;
        };
        let Some((method, waiter)) = self.lock().remove(&id) else {
            tracing::debug!(id, "a response to no waiting request");
            return;
        };
        let outcome = match message.remove("error") {
            Some(error) => Err(RpcError::Remote {
                method,
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .take(2000)
                    .collect(),
            }),
            None => Ok(message.remove("result").unwrap_or(Value::Null)),
        };
        let _ = waiter.send(outcome);
    }

    /// Marks the connection closed and fails every waiting request.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let waiting: Vec<_> = self.lock().drain().collect();
        for (_, (method, waiter)) in waiting {
            let _ = waiter.send(Err(RpcError::Closed(method)));
        }
        self.closed_notify.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Resolves once the connection is closed.
    pub async fn closed(&self) {
        loop {
            let notified = self.closed_notify.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, method: &str, params: impl Serialize) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, (method.to_owned(), tx));
        // Checked after registering: a close in between fails the entry.
        if self.is_closed() {
            self.lock().remove(&id);
            return Err(RpcError::Closed(method.to_owned()));
        }
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        rx.await
            .unwrap_or_else(|_| Err(RpcError::Closed(method.to_owned())))
    }

    /// Sends a request and reads its answer as `T`.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: impl Serialize,
    ) -> Result<T, RpcError> {
        let value = self.request(method, params).await?;
        serde_json::from_value(value).map_err(|_| RpcError::BadReply(method.to_owned()))
    }

    pub fn notify(&self, method: &str, params: impl Serialize) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Answers the agent's request `id`.
    pub fn respond(&self, id: &Value, result: Result<Value, (i64, String)>) {
        let message = match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        };
        self.send(&message);
    }

    fn send(&self, message: &Value) {
        // A gone writer means a gone agent; the reader notices.
        let _ = self.out.send(message.to_string());
    }
}

/// JSON-RPC error codes we answer with.
pub mod codes {
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    /// ACP's "resource not found".
    pub const NOT_FOUND: i64 = -32002;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_answered_in_order_after_the_messages_before_them() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (their_read, mut their_write) = tokio::io::split(theirs);
        let (our_read, our_write) = tokio::io::split(ours);
        let peer = Peer::new(our_write);
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let seen = Arc::clone(&seen);
            tokio::spawn(Arc::clone(&peer).run_reader(our_read, move |incoming| {
                let seen = Arc::clone(&seen);
                async move {
                    let name = match incoming {
                        Incoming::Request { id, method, .. } => format!("req {id} {method}"),
                        Incoming::Notification { method, .. } => format!("note {method}"),
                    };
                    seen.lock().unwrap().push(name);
                }
            }))
        };
        let call = {
            let peer = Arc::clone(&peer);
            tokio::spawn(async move { peer.request("session/prompt", json!({})).await })
        };
        // The agent reads our request...
        let mut their_lines = tokio::io::BufReader::new(their_read).lines();
        let line = their_lines.next_line().await.unwrap().unwrap();
        let request: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(request["method"], "session/prompt");
        // ...sends an update, a request with a string id, junk, then answers.
        let id = request["id"].clone();
        for line in [
            json!({"jsonrpc":"2.0","method":"session/update","params":{}}).to_string(),
            json!({"jsonrpc":"2.0","id":"x1","method":"fs/read_text_file","params":{}}).to_string(),
            "not json".to_owned(),
            json!({"jsonrpc":"2.0","id":id,"result":{"stopReason":"end_turn"}}).to_string(),
        ] {
            their_write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .unwrap();
        }
        let answer = call.await.unwrap().unwrap();
        assert_eq!(answer["stopReason"], "end_turn");
        assert_eq!(
            *seen.lock().unwrap(),
            ["note session/update", "req \"x1\" fs/read_text_file"]
        );
        // EOF closes the peer and fails later requests.
        drop(their_write);
        drop(their_lines);
        reader.await.unwrap();
        assert!(peer.is_closed());
        assert_eq!(
            peer.request("session/prompt", json!({})).await,
            Err(RpcError::Closed("session/prompt".to_owned()))
        );
    }
}
