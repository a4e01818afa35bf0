//! Workspace terminals: shells on PTYs, attached over WebSockets.
//!
//! Routes (each authorised by [`crate::access`]: management bearer,
//! workspace cookie, or — for the WebSocket — a terminal ticket):
//!
//! - `POST /workspaces/{id}/terminals` `{cols, rows}` (each 1..=1000,
//!   default 80 × 24) → 201 `{id, created_at}`. The shell is `$SHELL` of the
//!   agent if executable, else `/bin/bash`, else `/bin/sh`, started in the
//!   workspace's checkout with only `PATH`, `HOME`, `LANG`, `TERM`
//!   (`xterm-256color`) and `SHELL` in its environment: nothing of the
//!   agent's leaks in. At most [`MAX_TERMINALS`] per workspace, dead ones
//!   included (409 `too_many_terminals`); a bad size is 400 `invalid_size`; a
//!   workspace without a checkout is 404 `not_found`.
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
//! - a deleted terminal closes its sockets with 1000 `terminal closed`; an
//!   agent shutting down with 1001 `agent shutting down`.
//! - any number of clients may attach at once, and all get the output; the
//!   shell keeps running when they all leave. A client that falls more than
//!   the scrollback behind is closed with 1011 `too slow` (reattaching
//!   replays the scrollback), so a slow client never makes the agent buffer
//!   more; one that does not take a frame for 30 s is dropped.

mod pty;
mod scrollback;
mod socket;

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
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
use crate::config::Config;
use crate::server::{ApiError, AppState};

pub(crate) use pty::{PtyError, ShellSpec, Terminal, TerminalView};

/// Terminals a workspace may have at once (exited ones count until deleted).
pub(crate) const MAX_TERMINALS: usize = 10;
/// Bounds of a terminal's columns and rows.
const MIN_SIZE: u16 = 1;
const MAX_SIZE: u16 = 1000;
/// A WebSocket message (input) is at most this large.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// `PATH` of a terminal's shell.
const SHELL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Shells tried when `$SHELL` is unset or unusable, in order.
const FALLBACK_SHELLS: [&str; 2] = ["/bin/bash", "/bin/sh"];

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
        spec: ShellSpec,
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

    /// Deletes every terminal of `workspace` (when it stops or goes away).
    #[allow(dead_code, reason = "for the workspace registry's stop and delete")]
    pub(crate) fn remove_workspace(&self, workspace: &str) {
        let removed = self
            .workspaces()
            .get_mut(workspace)
            .map(|slots| std::mem::take(&mut slots.terminals))
            .unwrap_or_default();
        for terminal in removed {
            terminal.close();
        }
    }
}

/// The shell a workspace's terminals run, and where; `None` when the
/// workspace has no checkout on this node.
///
/// TODO(workspaces): TEMPORARY. Until the workspace registry
/// (`crate::workspaces`) lands, the working directory is derived here from
/// the documented layout (`<fs_root>/var/lib/sam/workspaces/<ID>/repo`) and
/// the command is built here. Switch this one function to the registry's
/// workspace directory and shell `CommandSpec` then; nothing else in this
/// module knows where workspaces live.
pub(crate) fn workspace_shell(state: &AppState, id: &str) -> Option<ShellSpec> {
    let cwd = state
        .config
        .host_path(Path::new("/var/lib/sam/workspaces"))
        .join(id)
        .join("repo");
    if !cwd.is_dir() {
        return None;
    }
    let program = shell_program(&state.config);
    let env = shell_env(&state.config, &program);
    Some(ShellSpec {
        cwd,
        program,
        args: Vec::new(),
        env,
    })
}

/// `$SHELL` if it is an executable file, else the first fallback that is.
fn shell_program(config: &Config) -> PathBuf {
    config
        .shell
        .iter()
        .map(PathBuf::as_path)
        .chain(FALLBACK_SHELLS.iter().map(Path::new))
        .find(|path| executable(path))
        .unwrap_or(Path::new("/bin/sh"))
        .to_path_buf()
}

fn executable(path: &Path) -> bool {
    path.is_absolute()
        && std::fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The whole environment of a terminal's shell, built from scratch.
fn shell_env(config: &Config, program: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), SHELL_PATH.into()),
        ("HOME".into(), config.home.clone().into_os_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "xterm-256color".into()),
        ("SHELL".into(), program.as_os_str().to_owned()),
    ]
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
    let spec = workspace_shell(&state, &id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such workspace"))?;
    match state.terminals.create(&id, spec, cols, rows).await {
        Ok(terminal) => {
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

    #[test]
    fn the_configured_shell_is_used_only_if_executable() {
        let mut vars = std::collections::HashMap::new();
        vars.insert("SAM_NODE_ID".to_owned(), "n".to_owned());
        vars.insert(
            "SAM_CONTROL_PLANE_URL".to_owned(),
            "http://api.localhost".to_owned(),
        );
        let mut config = Config::from_env_map(&vars).unwrap();
        let fallback = shell_program(&config);
        assert!(FALLBACK_SHELLS.contains(&fallback.to_str().unwrap()));
        config.shell = Some(PathBuf::from("/bin/sh"));
        assert_eq!(shell_program(&config), Path::new("/bin/sh"));
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("shell");
        std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
        for unusable in [
            Path::new("/nonexistent/shell"),
            &not_executable,
            Path::new("/bin"),
            Path::new("sh"),
        ] {
            config.shell = Some(unusable.to_path_buf());
            assert_eq!(shell_program(&config), fallback, "{unusable:?}");
        }

        let env = shell_env(&config, Path::new("/bin/sh"));
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(keys, ["PATH", "HOME", "LANG", "TERM", "SHELL"]);
    }
}
