//! One WebSocket attached to a terminal (the protocol is described in the
//! module above).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use serde::Deserialize;
use tokio::sync::watch;

use super::pty::{Output, Terminal};
use super::{MAX_SIZE, MIN_SIZE};

/// Output is sent in binary frames of at most this many bytes.
const FRAME_BYTES: usize = 32 * 1024;
/// A client that takes longer than this to accept one frame is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// After our close frame, how long the client gets to answer with its own.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A control message: a JSON text frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Control {
    Resize { cols: u32, rows: u32 },
}

/// Serves one client until it leaves, the shell exits, the terminal is
/// deleted or the agent shuts down.
pub(super) async fn attach(
    mut socket: WebSocket,
    terminal: Arc<Terminal>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut news = terminal.subscribe();
    let mut offset = terminal.replay_start();
    let mut sent_any = false;
    loop {
        news.borrow_and_update();
        match terminal.read(offset, FRAME_BYTES) {
            Output::Bytes(bytes) => {
                offset += bytes.len() as u64;
                if !send(&mut socket, Message::Binary(bytes.into())).await {
                    return;
                }
                sent_any = true;
                continue;
            }
            Output::UpToDate => {}
            Output::Exited(status) => {
                let reason = format!("exited {status}");
                return close(socket, close_code::NORMAL, &reason).await;
            }
            Output::Closed => {
                return close(socket, close_code::NORMAL, "terminal closed").await;
            }
            // Output outran the replay before its first frame went out:
            // nothing is lost yet, so start again from what is held now.
            Output::Lagged if !sent_any => {
                offset = terminal.replay_start();
                continue;
            }
            Output::Lagged => {
                tracing::info!(
                    terminal = terminal.id(),
                    "dropped a terminal client that fell behind"
                );
                return close(socket, close_code::ERROR, "too slow").await;
            }
        }
        tokio::select! {
            changed = news.changed() => {
                if changed.is_err() {
                    return close(socket, close_code::NORMAL, "terminal closed").await;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    // `false`: the shell is going; its exit arrives as output.
                    let _ = terminal.write(bytes.to_vec()).await;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Err((code, reason)) = control(&terminal, &text) {
                        return close(socket, code, reason).await;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            () = shut_down(&mut shutdown) => {
                return close(socket, close_code::AWAY, "agent shutting down").await;
            }
        }
    }
}

/// Resolves once the agent shuts down; never, if its sender is gone first.
async fn shut_down(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Applies a control message; on a bad one, the close code and reason.
fn control(terminal: &Terminal, text: &str) -> Result<(), (u16, &'static str)> {
    let Ok(message) = serde_json::from_str::<Control>(text) else {
        return Err((close_code::UNSUPPORTED, "invalid control message"));
    };
    match message {
        Control::Resize { cols, rows } => {
            let (Some(cols), Some(rows)) = (size(cols), size(rows)) else {
                return Err((close_code::POLICY, "invalid_size"));
            };
            terminal
                .resize(cols, rows)
                .map_err(|_| (close_code::ERROR, "resize failed"))
        }
    }
}

fn size(value: u32) -> Option<u16> {
    u16::try_from(value)
        .ok()
        .filter(|value| (MIN_SIZE..=MAX_SIZE).contains(value))
}

/// Sends one message; `false` if the client is gone or too slow.
async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sends a close frame and waits a little for the client's.
async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    if !send(&mut socket, Message::Close(Some(frame))).await {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
