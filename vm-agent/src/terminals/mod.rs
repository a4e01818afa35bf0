//! Workspace terminals: shells on PTYs, attached over WebSockets.
//!
//! Routes (each authorised by [`crate::access`]: management bearer,
//! workspace cookie, or — for the WebSocket — a terminal ticket):
//!
//! - `POST /workspaces/{id}/terminals` `{cols, rows}` (each 1..=1000,
//!   default 80 × 24) → 201 `{id, created_at}`. The shell is what the
//!   workspace registry says (`Workspaces::shell_command`: the workspace
//!   runtime's login shell, its directory and its complete environment,
//!   built from scratch, so nothing of the agent's own leaks in). At most
//!   [`MAX_TERMINALS`] per workspace, dead ones included (409
//!   `too_many_terminals`); a bad size is 400 `invalid_size`; a workspace
//!   the registry does not know is 404 `not_found`, one that is not running
//!   409 `workspace_not_running`.
//! - `GET /workspaces/{id}/terminals` → `{terminals: [{id, created_at,
//!   last_activity_at, alive, cols, rows, exit_status?}]}`, oldest first
//!   (times in Unix ms; `last_activity_at` moves on input and output).
//! - `DELETE /workspaces/{id}/terminals/{tid}` → 204: hangs up the shell's
//!   session (its process group and every process left in it), kills what
//!   is still there a second later, closes attached sockets.
//! - `GET /workspaces/{id}/terminals/{tid}/ws`: the WebSocket.
//!
//! The WebSocket protocol:
//!
//! - server → client: first the scrollback (the terminal's last 256 KiB of
//!   output) as binary frames, then live output as binary frames (raw
//!   bytes, at most 32 KiB each, not necessarily cut at UTF-8 boundaries).
//!   No text frames.
//! - client → server: **binary** frames are input, written to the terminal
//!   as they are; **text** frames are JSON control messages, of which there
//!   is one: `{"type":"resize","cols":C,"rows":R}`. An unknown or malformed
//!   control message closes the socket with 1003 `invalid control message`,
//!   a size outside 1..=1000 with 1008 `invalid_size`.
//! - when the shell exits, every attached socket gets the rest of the
//!   output, then a close frame 1000 `exited <status>` (`exited 0`,
//!   `exited 130`, `exited signal Hangup`); attaching to a terminal that
//!   has exited replays its scrollback and closes the same way. The
//!   terminal stays listed (`alive: false`) until deleted.
//! - a deleted terminal closes its sockets with 1000 `terminal closed`; so
//!   do all of a workspace's terminals when the workspace is stopped,
//!   restarted, rebuilt or deleted (the management routes end them,
//!   [`Terminals::remove_workspace`]); an agent shutting down closes them
//!   with 1001 `agent shutting down`.
//! - any number of clients may attach at once, and all get the output; the
//!   shell keeps running when they all leave. A client that falls more than
//!   the scrollback behind is closed with 1011 `too slow` (reattaching
//!   replays the scrollback), so a slow client never makes the agent buffer
//!   more; one that does not take a frame for 30 s is dropped.

mod pty;
mod scrollback;
mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::access::{authorize_workspace, authorize_workspace_upgrade, now_ms};
use crate::server::{ApiError, AppState};
use crate::workspaces::{CommandSpec, WorkspaceError, WorkspaceStatus};

pub(crate) use pty::{PtyError, Terminal, TerminalView};

/// Terminals a workspace may have at once (exited ones count until deleted).
pub(crate) const MAX_TERMINALS: usize = 10;
/// Bounds of a terminal's columns and rows.
const MIN_SIZE: u16 = 1;
const MAX_SIZE: u16 = 1000;
/// A WebSocket message (input) is at most this large.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Every workspace's terminals.
#[derive(Default)]
pub struct Terminals {
    workspaces: Mutex<HashMap<String, Slots>>,
}

#[derive(Default)]
struct Slots {
    terminals: Vec<Arc<Terminal>>,
    /// Being started right now; they count against the limit.
    starting: usize,
}

/// Why a terminal could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    #[error("a workspace has at most {MAX_TERMINALS} terminals")]
    TooMany,
    #[error(transparent)]
    Pty(#[from] PtyError),
}

impl Terminals {
    fn workspaces(&self) -> MutexGuard<'_, HashMap<String, Slots>> {
        self.workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a terminal in `workspace` running `spec`.
    pub(crate) async fn create(
        self: &Arc<Self>,
        workspace: &str,
        spec: CommandSpec,
        cols: u16,
        rows: u16,
    ) -> Result<Arc<Terminal>, CreateError> {
        {
            let mut workspaces = self.workspaces();
            let slots = workspaces.entry(workspace.to_owned()).or_default();
            if slots.terminals.len() + slots.starting >= MAX_TERMINALS {
                return Err(CreateError::TooMany);
            }
            slots.starting += 1;
        }
        // Started and registered in a task of its own, so a client that
        // goes away mid-request cannot leave a reserved slot or a stray
        // shell behind.
        let registry = Arc::clone(self);
        let workspace = workspace.to_owned();
        let task = tokio::spawn(async move {
            let id =
                ulid::Ulid::from_parts(u64::try_from(now_ms()).unwrap_or_default(), rand::random())
                    .to_string();
            let spawned =
                tokio::task::spawn_blocking(move || Terminal::spawn(id, &spec, cols, rows)).await;
            let mut workspaces = registry.workspaces();
            let slots = workspaces.entry(workspace).or_default();
            slots.starting = slots.starting.saturating_sub(1);
            let terminal = match spawned {
                Ok(result) => result?,
                Err(join) => return Err(PtyError::Spawn(join.to_string()).into()),
            };
            slots.terminals.push(Arc::clone(&terminal));
            Ok(terminal)
        });
        task.await
            .map_err(|join| CreateError::Pty(PtyError::Spawn(join.to_string())))?
    }

    /// The terminals of `workspace`, oldest first.
    pub(crate) fn list(&self, workspace: &str) -> Vec<TerminalView> {
        self.workspaces()
            .get(workspace)
            .map(|slots| slots.terminals.iter().map(|t| t.view()).collect())
            .unwrap_or_default()
    }

    /// The pids of `workspace`'s running shells (port detection counts
    /// their descendants as the workspace's processes).
    pub(crate) fn shell_pids(&self, workspace: &str) -> Vec<i32> {
        self.workspaces()
            .get(workspace)
            .map(|slots| {
                slots
                    .terminals
                    .iter()
                    .filter_map(|t| t.live_pid())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn get(&self, workspace: &str, id: &str) -> Option<Arc<Terminal>> {
        self.workspaces()
            .get(workspace)?
            .terminals
            .iter()
            .find(|t| t.id() == id)
            .cloned()
    }

    /// Deletes one terminal (see [`Terminal::close`]); `false` if unknown.
    pub(crate) fn remove(&self, workspace: &str, id: &str) -> bool {
        let removed = {
            let mut workspaces = self.workspaces();
            let Some(slots) = workspaces.get_mut(workspace) else {
                return false;
            };
            let Some(index) = slots.terminals.iter().position(|t| t.id() == id) else {
                return false;
            };
            let removed = slots.terminals.remove(index);
            if slots.terminals.is_empty() && slots.starting == 0 {
                workspaces.remove(workspace);
            }
            removed
        };
        removed.close();
        true
    }

    /// Deletes every terminal of `workspace` (see [`Terminal::close`]):
    /// the workspace stopped, restarted, was rebuilt or is going away.
    pub(crate) fn remove_workspace(&self, workspace: &str) {
        let removed = {
            let mut workspaces = self.workspaces();
            let Some(slots) = workspaces.get_mut(workspace) else {
                return;
            };
            let removed = std::mem::take(&mut slots.terminals);
            if slots.starting == 0 {
                workspaces.remove(workspace);
            }
            removed
        };
        for terminal in removed {
            terminal.close();
        }
    }
}

/// The terminal routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{id}/terminals", get(list).post(create))
        .route("/workspaces/{id}/terminals/{tid}", delete(remove))
        .route("/workspaces/{id}/terminals/{tid}/ws", get(attach))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTerminal {
    #[serde(default = "default_cols")]
    cols: u32,
    #[serde(default = "default_rows")]
    rows: u32,
}

fn default_cols() -> u32 {
    80
}

fn default_rows() -> u32 {
    24
}

#[derive(Serialize)]
struct Created {
    id: String,
    created_at: i64,
}

#[derive(Serialize)]
struct TerminalList {
    terminals: Vec<TerminalView>,
}

fn checked_size(cols: u32, rows: u32) -> Result<(u16, u16), ApiError> {
    let check = |value: u32| {
        u16::try_from(value)
            .ok()
            .filter(|value| (MIN_SIZE..=MAX_SIZE).contains(value))
    };
    match (check(cols), check(rows)) {
        (Some(cols), Some(rows)) => Ok((cols, rows)),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_size",
            "cols and rows must each be 1 to 1000",
        )),
    }
}

fn no_terminal() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such terminal")
}

/// A terminal id from a path: a ULID in any case, normalised.
fn terminal_id(raw: &str) -> Option<String> {
    let upper = raw.to_ascii_uppercase();
    (upper.len() == 26 && ulid::Ulid::from_string(&upper).is_ok()).then_some(upper)
}

async fn list(
    State(state): State<AppState>,
    UrlPath(raw_id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<TerminalList>, ApiError> {
    let id = authorize_workspace(&state, &headers, &raw_id).await?;
    Ok(Json(TerminalList {
        terminals: state.terminals.list(&id),
    }))
}

async fn create(
    State(state): State<AppState>,
    UrlPath(raw_id): UrlPath<String>,
    headers: HeaderMap,
    body: Result<Json<CreateTerminal>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let id = authorize_workspace(&state, &headers, &raw_id).await?;
    let Json(body) = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            &rejection.body_text(),
        )
    })?;
    let (cols, rows) = checked_size(body.cols, body.rows)?;
    let spec = state.workspaces.shell_command(&id).await?;
    match state.terminals.create(&id, spec, cols, rows).await {
        Ok(terminal) => {
            // A stop or delete that ended the workspace's terminals while
            // this one was starting did not see it; it goes now. (One that
            // comes after this check sees it.)
            if let Err(err) = still_running(&state, &id).await {
                state.terminals.remove(&id, terminal.id());
                return Err(err.into());
            }
            tracing::info!(workspace = %id, terminal = terminal.id(), cols, rows, "terminal started");
            Ok((
                StatusCode::CREATED,
                Json(Created {
                    id: terminal.id().to_owned(),
                    created_at: terminal.created_at(),
                }),
            ))
        }
        Err(CreateError::TooMany) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_terminals",
            &CreateError::TooMany.to_string(),
        )),
        Err(CreateError::Pty(err)) => {
            tracing::warn!(workspace = %id, %err, "cannot start a terminal");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "terminal_failed",
                &err.to_string(),
            ))
        }
    }
}

/// Whether the workspace is (still) running, as the registry sees it.
async fn still_running(state: &AppState, id: &str) -> Result<(), WorkspaceError> {
    match state.workspaces.get(id).await.map(|info| info.view.status) {
        Some(WorkspaceStatus::Running) => Ok(()),
        None | Some(WorkspaceStatus::Deleting) => Err(WorkspaceError::NotFound),
        Some(_) => Err(WorkspaceError::NotRunning),
    }
}

async fn remove(
    State(state): State<AppState>,
    UrlPath((raw_id, raw_terminal)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = authorize_workspace(&state, &headers, &raw_id).await?;
    let tid = terminal_id(&raw_terminal).ok_or_else(no_terminal)?;
    if !state.terminals.remove(&id, &tid) {
        return Err(no_terminal());
    }
    tracing::info!(workspace = %id, terminal = %tid, "terminal deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn attach(
    State(state): State<AppState>,
    UrlPath((raw_id, raw_terminal)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Credentials first: an anonymous caller learns nothing, not even
    // whether it spoke WebSocket.
    let id = authorize_workspace_upgrade(&state, &headers, query.as_deref(), &raw_id).await?;
    let terminal = terminal_id(&raw_terminal)
        .and_then(|tid| state.terminals.get(&id, &tid))
        .ok_or_else(no_terminal)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            &rejection.body_text(),
        )
    })?;
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |ws| socket::attach(ws, terminal, shutdown))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_one_to_a_thousand() {
        assert_eq!(checked_size(80, 24).unwrap(), (80, 24));
        assert_eq!(checked_size(1, 1000).unwrap(), (1, 1000));
        for (cols, rows) in [(0, 24), (80, 0), (1001, 24), (80, 70_000)] {
            assert!(checked_size(cols, rows).is_err(), "{cols}x{rows}");
        }
    }
}
