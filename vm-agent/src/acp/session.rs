//! One agent session: the agent process, its ACP connection, the prompt
//! queue and the turn in flight.
//!
//! Tasks per session:
//! - the lifecycle ([`Session::run`]): install, spawn, handshake, then the
//!   turn loop (one `session/prompt` at a time, FIFO), then the exit;
//! - the reader ([`Peer::run_reader`]) handling what the agent sends, in
//!   order (updates, permission requests, file requests);
//! - the stdin writer and a stderr drain.
//!
//! Route handlers only touch the shared state (queue a prompt, answer a
//! permission, send `session/cancel`, signal the process group); the
//! lifecycle task owns the child process.
//!
//! Every event is recorded (outbox) before the session acts on it: a
//! prompt is recorded `prompt_sent` before it is written to the agent, a
//! permission answer before it is sent.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_client_protocol_schema::ProtocolVersion;
use agent_client_protocol_schema::v1::{
    AuthenticateRequest, CancelNotification, ClientCapabilities, FileSystemCapabilities,
    Implementation, InitializeRequest, InitializeResponse, LoadSessionRequest, NewSessionRequest,
    NewSessionResponse, PermissionOptionKind, PromptRequest, PromptResponse, ReadTextFileRequest,
    RequestPermissionOutcome, RequestPermissionResponse, SelectedPermissionOutcome, SessionId,
    WriteTextFileRequest,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::{Notify, watch};

use super::catalog::{AgentSpec, Values};
use super::events::{Recorder, kinds};
use super::install::Installer;
use super::rpc::{Incoming, Peer, RpcError, codes};
use crate::workspaces::Secret;

/// How long the handshake's steps may take.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);
const SESSION_SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// After SIGTERM, how long before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// After the agent exits, how long its last output may take to be read.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Lines of the agent's stderr kept for error messages.
const STDERR_LINES: usize = 12;

/// How permission requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// At once, with an allow option.
    Approve,
    /// By the user, through the permissions route.
    Ask,
}

impl Policy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Ask => "ask",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Installing, spawning, handshaking.
    Starting,
    /// Waiting for a prompt.
    Idle,
    /// A turn is running.
    Busy,
    /// Being stopped.
    Stopping,
    /// The agent process is gone.
    Exited,
    /// The agent never started (`agent_start_failed`).
    Failed,
}

/// A prompt as queued.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub id: String,
    pub text: String,
}

/// A permission request waiting for the user.
struct PendingPermission {
    rpc_id: Value,
    option_ids: Vec<String>,
}

struct State {
    status: Status,
    acp_session_id: Option<String>,
    pid: Option<u32>,
    queue: VecDeque<Prompt>,
    /// Every prompt id ever accepted: a repeat is a no-op.
    seen: HashSet<String>,
    current: Option<String>,
    permissions: BTreeMap<String, PendingPermission>,
    error: Option<String>,
}

/// What the API shows of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub workspace_id: String,
    pub agent: String,
    pub status: Status,
    pub permission_policy: Policy,
    pub acp_session_id: Option<String>,
    pub agent_pid: Option<u32>,
    pub current_prompt_id: Option<String>,
    pub queued_prompt_ids: Vec<String>,
    pub pending_permission_ids: Vec<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a session operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the session is {0:?}, not running")]
    NotRunning(Status),
    #[error("no such permission request is pending")]
    NoSuchPermission,
    #[error("option_id is not one of the request's options")]
    InvalidOption,
}

/// Everything the lifecycle needs to start the agent.
pub struct Start {
    pub spec: AgentSpec,
    pub installer: Installer,
    pub api_key: Secret,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub load_session_id: Option<String>,
    pub checkout: PathBuf,
    pub home: PathBuf,
    pub recorder: Recorder,
}

pub struct Session {
    pub id: String,
    pub workspace_id: String,
    pub agent: String,
    pub policy: Policy,
    pub created_at: i64,
    state: Mutex<State>,
    /// A prompt was queued (or the session is ending).
    wake: Notify,
    peer: Mutex<Option<Arc<Peer>>>,
    recorder: Recorder,
    /// Set when a stop is asked for.
    stop: watch::Sender<bool>,
    /// Set when the lifecycle is over (agent exited or never started).
    done: watch::Sender<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Errors of the start, with the code `agent_start_failed` carries.
struct StartFailure {
    code: &'static str,
    message: String,
}

fn fail(code: &'static str) -> impl FnOnce(String) -> StartFailure {
    move |message| StartFailure { code, message }
}

/// The running agent, once spawned.
struct Running {
    child: tokio::process::Child,
    peer: Arc<Peer>,
}

impl Session {
    pub fn new(
        id: &str,
        workspace_id: &str,
        agent: &str,
        policy: Policy,
        first_prompt: Option<Prompt>,
        recorder: Recorder,
    ) -> Arc<Self> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::new();
        if let Some(prompt) = first_prompt {
            seen.insert(prompt.id.clone());
            queue.push_back(prompt);
        }
        Arc::new(Self {
            id: id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            agent: agent.to_owned(),
            policy,
            created_at: super::now_ms(),
            state: Mutex::new(State {
                status: Status::Starting,
                acp_session_id: None,
                pid: None,
                queue,
                seen,
                current: None,
                permissions: BTreeMap::new(),
                error: None,
            }),
            wake: Notify::new(),
            peer: Mutex::new(None),
            recorder,
            stop: watch::channel(false).0,
            done: watch::channel(false).0,
        })
    }

    pub fn view(&self) -> SessionView {
        let state = lock(&self.state);
        SessionView {
            id: self.id.clone(),
            workspace_id: self.workspace_id.clone(),
            agent: self.agent.clone(),
            status: state.status,
            permission_policy: self.policy,
            acp_session_id: state.acp_session_id.clone(),
            agent_pid: state.pid,
            current_prompt_id: state.current.clone(),
            queued_prompt_ids: state.queue.iter().map(|p| p.id.clone()).collect(),
            pending_permission_ids: state.permissions.keys().cloned().collect(),
            created_at: self.created_at,
            error: state.error.clone(),
        }
    }

    pub fn status(&self) -> Status {
        lock(&self.state).status
    }

    /// Queues a prompt. A prompt id seen before is accepted and ignored.
    pub fn submit(&self, prompt: Prompt) -> Result<(), SessionError> {
        let mut state = lock(&self.state);
        match state.status {
            Status::Starting | Status::Idle | Status::Busy => {}
            other => return Err(SessionError::NotRunning(other)),
        }
        if state.seen.insert(prompt.id.clone()) {
            state.queue.push_back(prompt);
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Cancels the turn in flight, if any: `session/cancel` to the agent,
    /// then every pending permission request answered `cancelled`. The
    /// agent keeps running; its turn ends with `cancelled`.
    pub async fn cancel(&self) {
        let (busy, pending) = {
            let mut state = lock(&self.state);
            let busy = state.current.is_some();
            (busy, std::mem::take(&mut state.permissions))
        };
        let peer = lock(&self.peer).clone();
        let (Some(peer), Some(acp_id)) = (peer, lock(&self.state).acp_session_id.clone()) else {
            return;
        };
        if busy {
            peer.notify(
                "session/cancel",
                CancelNotification::new(SessionId::new(acp_id.clone())),
            );
        }
        for (request_id, pending) in pending {
            self.recorder
                .record(
                    kinds::PERMISSION_ANSWERED,
                    kinds::permission_answered(&request_id, None, "cancel"),
                )
                .await;
            peer.respond(&pending.rpc_id, Ok(permission_reply(None)));
        }
    }

    /// Answers a pending permission request with the user's choice.
    pub async fn answer_permission(
        &self,
        request_id: &str,
        option_id: &str,
    ) -> Result<(), SessionError> {
        let pending = {
            let mut state = lock(&self.state);
            let pending = state
                .permissions
                .get(request_id)
                .ok_or(SessionError::NoSuchPermission)?;
            if !pending.option_ids.iter().any(|o| o == option_id) {
                return Err(SessionError::InvalidOption);
            }
            state
                .permissions
                .remove(request_id)
                .ok_or(SessionError::NoSuchPermission)?
        };
        self.recorder
            .record(
                kinds::PERMISSION_ANSWERED,
                kinds::permission_answered(request_id, Some(option_id), "user"),
            )
            .await;
        if let Some(peer) = lock(&self.peer).clone() {
            peer.respond(&pending.rpc_id, Ok(permission_reply(Some(option_id))));
        }
        Ok(())
    }

    /// Stops the agent: cancel, SIGTERM to its process group, SIGKILL after
    /// `grace`; returns once the lifecycle is over (or gave up waiting).
    pub async fn stop(&self, grace: Duration) {
        self.stop.send_replace(true);
        {
            let mut state = lock(&self.state);
            if matches!(state.status, Status::Starting | Status::Idle | Status::Busy) {
                state.status = Status::Stopping;
            }
        }
        self.wake.notify_one();
        self.cancel().await;
        self.signal(rustix::process::Signal::TERM);
        let mut done = self.done.subscribe();
        if tokio::time::timeout(grace, done.wait_for(|d| *d))
            .await
            .is_err()
        {
            self.signal(rustix::process::Signal::KILL);
            if tokio::time::timeout(Duration::from_secs(10), done.wait_for(|d| *d))
                .await
                .is_err()
            {
                tracing::warn!(session = %self.id, "the session did not end after SIGKILL");
            }
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = lock(&self.state).pid;
        if let Some(pid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // Gone already is fine.
            let _ = rustix::process::kill_process_group(pid, signal);
        }
    }

    fn set_status(&self, status: Status) {
        let mut state = lock(&self.state);
        // A stop in progress stays a stop.
        if state.status != Status::Stopping || matches!(status, Status::Exited | Status::Failed) {
            state.status = status;
        }
    }

    /// The lifecycle (see the module documentation). Records exactly one
    /// of `session_started` or `agent_start_failed`, and after a start
    /// `agent_exited` last.
    pub async fn run(self: Arc<Self>, start: Start) {
        let mut stop = self.stop.subscribe();
        let started = tokio::select! {
            started = self.start_agent(&start) => started,
            _ = stop.wait_for(|s| *s) => Err(StartFailure {
                code: "stopped",
                message: "the session was stopped before the agent started".to_owned(),
            }),
        };
        let running = match started {
            Ok(running) => running,
            Err(failure) => {
                self.signal(rustix::process::Signal::KILL);
                let message = scrub(&failure.message, start.api_key.expose());
                tracing::warn!(session = %self.id, code = failure.code, %message, "the agent did not start");
                self.recorder
                    .record(
                        kinds::AGENT_START_FAILED,
                        kinds::failure(failure.code, &message),
                    )
                    .await;
                {
                    let mut state = lock(&self.state);
                    state.status = Status::Failed;
                    state.error = Some(format!("{}: {message}", failure.code));
                    state.queue.clear();
                }
                self.done.send_replace(true);
                return;
            }
        };
        let Running { mut child, peer } = running;
        self.set_status(Status::Idle);

        let turns = self.turns(&peer);
        tokio::pin!(turns);
        let mut exit = None;
        let during_turn = tokio::select! {
            during = &mut turns => during,
            status = child.wait() => {
                exit = Some(status);
                // What the agent wrote before it went is still handled.
                let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, peer.closed()).await;
                peer.close();
                turns.await
            }
        };
        let status = match exit {
            Some(status) => status,
            None => {
                if let Ok(status) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
                    status
                } else {
                    // Its stdout closed but it lives on: end it.
                    self.signal(rustix::process::Signal::KILL);
                    child.wait().await
                }
            }
        };
        // Whatever it left running in its group goes with it.
        self.signal(rustix::process::Signal::KILL);
        let (code, signal) = match &status {
            Ok(status) => (status.code(), status.signal()),
            Err(_) => (None, None),
        };
        tracing::info!(session = %self.id, ?code, ?signal, during_turn, "the agent exited");
        self.recorder
            .record(
                kinds::AGENT_EXITED,
                kinds::agent_exited(code, signal, during_turn),
            )
            .await;
        {
            let mut state = lock(&self.state);
            state.status = Status::Exited;
            state.current = None;
            state.queue.clear();
            state.permissions.clear();
        }
        *lock(&self.peer) = None;
        self.done.send_replace(true);
    }

    /// Install, spawn, initialize, authenticate, session/new or load; then
    /// `session_started`.
    async fn start_agent(self: &Arc<Self>, start: &Start) -> Result<Running, StartFailure> {
        let bin = start
            .installer
            .ensure(&start.spec)
            .await
            .map_err(|e| fail("install_failed")(e.to_string()))?;
        prepare_home(&start.home).map_err(|e| fail("home_failed")(e.to_string()))?;
        let launch = start.spec.render(&Values {
            api_key: start.api_key.expose(),
            base_url: start.base_url.as_deref(),
            home: &start.home,
            model: start.model.as_deref(),
        });
        for (relative, content) in &launch.files {
            write_private(&start.home.join(relative), content)
                .map_err(|e| fail("home_failed")(e.to_string()))?;
        }
        let mut path = bin
            .parent()
            .map(|dir| dir.as_os_str().to_owned())
            .unwrap_or_default();
        path.push(":");
        path.push(start.installer.path_env());
        let mut command = tokio::process::Command::new(&bin);
        command
            .args(&launch.args)
            .current_dir(&start.checkout)
            .env_clear()
            .env("PATH", path)
            .env(
                "LANG",
                std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_owned()),
            )
            .env("HOME", &start.home)
            .envs(super::install::trust_env())
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| fail("spawn_failed")(e.to_string()))?;
        let pid = child.id().unwrap_or_default();
        lock(&self.state).pid = Some(pid);
        // On disk before the agent is talked to: if this vm-agent dies, the
        // next one ends the agent's group (`recover`).
        start.recorder.remember_process(pid).await;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(fail("spawn_failed")("no pipes to the agent".to_owned()));
        };
        let stderr_tail = drain_stderr(stderr, &self.id, start.api_key.clone());
        let peer = Peer::new(stdin);
        *lock(&self.peer) = Some(Arc::clone(&peer));
        let ctx = Arc::new(HandlerCtx {
            session: Arc::clone(self),
            peer: Arc::clone(&peer),
            checkout: start.checkout.clone(),
            client_fs: start.spec.client_fs,
        });
        tokio::spawn(Arc::clone(&peer).run_reader(stdout, move |incoming| {
            let ctx = Arc::clone(&ctx);
            async move { ctx.handle(incoming).await }
        }));
        let tail = || {
            let lines: Vec<String> = lock(&stderr_tail).iter().cloned().collect();
            if lines.is_empty() {
                String::new()
            } else {
                format!(" (agent stderr: {})", lines.join(" | "))
            }
        };
        let fs = FileSystemCapabilities::new()
            .read_text_file(start.spec.client_fs)
            .write_text_file(start.spec.client_fs);
        let init = InitializeRequest::new(ProtocolVersion::V1)
            .client_capabilities(ClientCapabilities::new().fs(fs))
            .client_info(Implementation::new("sam-vm-agent", crate::AGENT_VERSION));
        let value = step(
            "initialize_failed",
            INITIALIZE_TIMEOUT,
            peer.request("initialize", init),
            &tail,
        )
        .await?;
        let init: InitializeResponse = serde_json::from_value(value)
            .map_err(|e| fail("initialize_failed")(format!("unusable initialize reply: {e}")))?;

        if let Some(method) = &start.spec.authenticate {
            step(
                "authenticate_failed",
                INITIALIZE_TIMEOUT,
                peer.request("authenticate", AuthenticateRequest::new(method.clone())),
                &tail,
            )
            .await?;
        }

        let acp_session_id = match &start.load_session_id {
            Some(id) if init.agent_capabilities.load_session => {
                step(
                    "session_load_failed",
                    SESSION_SETUP_TIMEOUT,
                    peer.request(
                        "session/load",
                        LoadSessionRequest::new(SessionId::new(id.clone()), &start.checkout),
                    ),
                    &tail,
                )
                .await?;
                id.clone()
            }
            _ => {
                let value = step(
                    "session_new_failed",
                    SESSION_SETUP_TIMEOUT,
                    peer.request("session/new", NewSessionRequest::new(&start.checkout)),
                    &tail,
                )
                .await?;
                let created: NewSessionResponse = serde_json::from_value(value).map_err(|e| {
                    fail("session_new_failed")(format!("unusable session/new reply: {e}"))
                })?;
                created.session_id.0.to_string()
            }
        };
        lock(&self.state).acp_session_id = Some(acp_session_id.clone());
        tracing::info!(session = %self.id, agent = %self.agent, pid, acp_session = %acp_session_id, "agent session started");
        self.recorder
            .record(
                kinds::SESSION_STARTED,
                kinds::session_started(&self.agent, &acp_session_id, pid),
            )
            .await;
        Ok(Running { child, peer })
    }

    /// Runs queued prompts one at a time until the connection closes;
    /// returns whether a turn was in flight then.
    async fn turns(&self, peer: &Peer) -> bool {
        let Some(acp_id) = lock(&self.state).acp_session_id.clone() else {
            return false;
        };
        loop {
            let prompt = loop {
                let notified = self.wake.notified();
                if peer.is_closed() || *self.stop.borrow() {
                    // A stop waits for the agent to go: keep reading.
                    if peer.is_closed() {
                        return false;
                    }
                    tokio::select! {
                        () = peer.closed() => return false,
                        () = notified => continue,
                    }
                }
                if let Some(prompt) = self.next_prompt() {
                    break prompt;
                }
                tokio::select! {
                    () = notified => {}
                    () = peer.closed() => {}
                }
            };
            self.recorder
                .record(kinds::PROMPT_SENT, kinds::prompt_sent(&prompt.id))
                .await;
            let request = PromptRequest::new(
                SessionId::new(acp_id.clone()),
                vec![prompt.text.clone().into()],
            );
            let outcome = peer.call::<PromptResponse>("session/prompt", request).await;
            let closed = matches!(outcome, Err(RpcError::Closed(_)));
            match outcome {
                Ok(response) => {
                    let reason = serde_json::to_value(response.stop_reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "end_turn".to_owned());
                    self.recorder
                        .record(kinds::TURN_ENDED, kinds::turn_ended(&prompt.id, &reason))
                        .await;
                }
                Err(err) => {
                    let code = match &err {
                        RpcError::Closed(_) => "agent_exited",
                        RpcError::Remote { .. } => "agent_error",
                        RpcError::BadReply(_) => "bad_reply",
                    };
                    self.recorder
                        .record(
                            kinds::TURN_FAILED,
                            kinds::turn_failed(&prompt.id, code, &err.to_string()),
                        )
                        .await;
                }
            }
            {
                let mut state = lock(&self.state);
                state.current = None;
                if state.status == Status::Busy {
                    state.status = Status::Idle;
                }
            }
            if closed {
                return true;
            }
        }
    }

    fn next_prompt(&self) -> Option<Prompt> {
        let mut state = lock(&self.state);
        if state.status == Status::Stopping {
            return None;
        }
        let prompt = state.queue.pop_front()?;
        state.current = Some(prompt.id.clone());
        state.status = Status::Busy;
        Some(prompt)
    }
}

/// What the reader's handler needs.
struct HandlerCtx {
    session: Arc<Session>,
    peer: Arc<Peer>,
    checkout: PathBuf,
    client_fs: bool,
}

impl HandlerCtx {
    async fn handle(&self, incoming: Incoming) {
        match incoming {
            Incoming::Notification { method, mut params } if method == "session/update" => {
                let update = params.get_mut("update").map_or(Value::Null, Value::take);
                self.session
                    .recorder
                    .record(kinds::UPDATE, kinds::update(update))
                    .await;
            }
            Incoming::Notification { method, .. } => {
                tracing::debug!(session = %self.session.id, %method, "ignoring a notification from the agent");
            }
            Incoming::Request { id, method, params } => match method.as_str() {
                "session/request_permission" => self.permission(id, params).await,
                "fs/read_text_file" | "fs/write_text_file" if self.client_fs => {
                    self.file(id, &method, params);
                }
                _ => self.peer.respond(
                    &id,
                    Err((
                        codes::METHOD_NOT_FOUND,
                        format!("{method} is not supported"),
                    )),
                ),
            },
        }
    }

    async fn permission(&self, rpc_id: Value, mut params: Value) {
        let session = &self.session;
        let request_id =
            ulid::Ulid::from_parts(u64::try_from(super::now_ms()).unwrap_or(0), rand::random())
                .to_string();
        let tool_call = params.get_mut("toolCall").map_or(Value::Null, Value::take);
        let options = params.get_mut("options").map_or(Value::Null, Value::take);
        // Read leniently: an option kind this schema does not know must not
        // lose the request.
        let listed: Vec<(String, String)> = options
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                Some((
                    o.get("optionId")?.as_str()?.to_owned(),
                    o.get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                ))
            })
            .collect();
        session
            .recorder
            .record(
                kinds::PERMISSION_REQUESTED,
                kinds::permission_requested(
                    &request_id,
                    tool_call,
                    options,
                    session.policy.as_str(),
                ),
            )
            .await;
        match session.policy {
            Policy::Approve => {
                let allow = |kind: PermissionOptionKind| {
                    let name = serde_json::to_value(kind).ok()?;
                    listed
                        .iter()
                        .find(|(_, k)| Some(k.as_str()) == name.as_str())
                        .map(|(id, _)| id.clone())
                };
                let choice = allow(PermissionOptionKind::AllowOnce)
                    .or_else(|| allow(PermissionOptionKind::AllowAlways));
                session
                    .recorder
                    .record(
                        kinds::PERMISSION_ANSWERED,
                        kinds::permission_answered(&request_id, choice.as_deref(), "policy"),
                    )
                    .await;
                self.peer
                    .respond(&rpc_id, Ok(permission_reply(choice.as_deref())));
            }
            Policy::Ask => {
                let mut state = lock(&session.state);
                state.permissions.insert(
                    request_id,
                    PendingPermission {
                        rpc_id,
                        option_ids: listed.into_iter().map(|(id, _)| id).collect(),
                    },
                );
            }
        }
    }

    /// File requests run on the blocking pool and answer when done; they
    /// need no ordering with other messages.
    fn file(&self, id: Value, method: &str, params: Value) {
        let peer = Arc::clone(&self.peer);
        let checkout = self.checkout.clone();
        let write = method == "fs/write_text_file";
        tokio::spawn(async move {
            let outcome = tokio::task::spawn_blocking(move || -> Result<Value, (i64, String)> {
                let invalid = |e: serde_json::Error| (codes::INVALID_PARAMS, e.to_string());
                let failed = |e: super::fs::FsError| {
                    let code = match &e {
                        super::fs::FsError::Confine(crate::confine::ConfineError::NotFound) => {
                            codes::NOT_FOUND
                        }
                        _ => codes::INTERNAL,
                    };
                    (code, e.to_string())
                };
                if write {
                    let request: WriteTextFileRequest =
                        serde_json::from_value(params).map_err(invalid)?;
                    super::fs::write_text_file(&checkout, &request.path, &request.content)
                        .map_err(failed)?;
                    Ok(json!({}))
                } else {
                    let request: ReadTextFileRequest =
                        serde_json::from_value(params).map_err(invalid)?;
                    let content = super::fs::read_text_file(
                        &checkout,
                        &request.path,
                        request.line,
                        request.limit,
                    )
                    .map_err(failed)?;
                    Ok(json!({ "content": content }))
                }
            })
            .await
            .unwrap_or_else(|_| Err((codes::INTERNAL, "the file operation failed".to_owned())));
            peer.respond(&id, outcome);
        });
    }
}

/// One handshake step, bounded in time; failures carry the agent's last
/// stderr lines.
async fn step(
    code: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<Value, RpcError>>,
    tail: &(dyn Fn() -> String + Sync),
) -> Result<Value, StartFailure> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(fail(code)(format!("{err}{}", tail()))),
        Err(_) => Err(fail(code)(format!(
            "no answer in {}s{}",
            timeout.as_secs(),
            tail()
        ))),
    }
}

fn permission_reply(option_id: Option<&str>) -> Value {
    let outcome = match option_id {
        Some(id) => {
            RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(id.to_owned()))
        }
        None => RequestPermissionOutcome::Cancelled,
    };
    serde_json::to_value(RequestPermissionResponse::new(outcome)).unwrap_or(Value::Null)
}

/// `text` without the key.
fn scrub(text: &str, key: &str) -> String {
    if key.len() >= 8 {
        text.replace(key, "[redacted]")
    } else {
        text.to_owned()
    }
}

/// Reads the agent's stderr to the end (it must not fill the pipe): logged
/// at debug, the last lines kept for error messages; the key is scrubbed.
fn drain_stderr(
    stderr: tokio::process::ChildStderr,
    session: &str,
    key: Secret,
) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let kept = Arc::clone(&tail);
    let session = session.to_owned();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line: String = scrub(&line, key.expose()).chars().take(500).collect();
            tracing::debug!(session = %session, "agent stderr: {line}");
            let mut tail = lock(&kept);
            if tail.len() >= STDERR_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
    tail
}

/// The session's HOME: created 0700 (with its parents).
fn prepare_home(home: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
}

/// Writes a file of the session's HOME, 0600.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())
}
