//! Tasks and project chat: submitting and cancelling tasks, reading a
//! project's chat sessions (also live), and the vm-agents' delivery of
//! session messages.
//!
//! The run itself is the task's `TaskRunner` Durable Object; the chat is
//! the project's `ProjectData` Durable Object. Each handler checks the
//! caller first (another user's project or task is a 404), then forwards.

use sam_auth::TokenClaims;
use sam_control::chat_sessions::{
    Launch, SessionCommand, check_permission_policy, check_prompt, command_session, launch_session,
    session_agent, session_workspace,
};
use sam_control::tasks::{get_task, submit_task, task_view};
use sam_durable_objects::project_data::{
    IngestBatch, Ingested, NewSession, PromptRecord, SessionRecord, SessionTranscript,
};
use sam_durable_objects::task_runner::{SessionReport, StartTask};
use sam_store::{TaskRepository, UserRecord, WaitingOn, WorkspaceRepository};
use sam_wire::{
    AgentPrompt, FollowUpRequest, PermissionAnswer, SessionMessagesAck, SessionMessagesBatch,
    StartSessionRequest, SubmitTaskRequest,
};
use worker::{Env, Headers, Method, Request, RequestInit, Response, Stub};

use crate::bindings::{PROJECT_DATA, TASK_RUNNER, d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

/// The most messages one delivery may carry (the vm-agent sends 256).
const MAX_BATCH_MESSAGES: usize = 1024;
/// The largest delivery body: the vm-agent's batches stay under 1 MiB of
/// kinds and payloads (a single message under 256 KiB), plus framing.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

pub(super) fn project_data(env: &Env, project_id: &str) -> ApiResult<Stub> {
    Ok(env.durable_object(PROJECT_DATA)?.get_by_name(project_id)?)
}

fn task_runner(env: &Env, task_id: &str) -> ApiResult<Stub> {
    Ok(env.durable_object(TASK_RUNNER)?.get_by_name(task_id)?)
}

/// Calls a Durable Object with a JSON body (or none); its answer as is.
pub(super) async fn call(
    stub: &Stub,
    method: Method,
    path: &str,
    body: Option<String>,
) -> ApiResult<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body.map(Into::into));
    let req = Request::new_with_init(&format!("https://durable-object{path}"), &init)?;
    Ok(stub.fetch_with_request(req).await?)
}

async fn call_ok(
    stub: &Stub,
    method: Method,
    path: &str,
    body: Option<String>,
) -> ApiResult<Response> {
    let resp = call(stub, method, path, body).await?;
    if resp.status_code() >= 300 {
        return Err(ApiError::internal(
            "durable object",
            &format!("{path} answered {}", resp.status_code()),
        ));
    }
    Ok(resp)
}

fn to_json<T: serde::Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value).map_err(|e| ApiError::internal("encoding", &e))
}

/// `POST /api/projects/{id}/tasks`: 202 with the task, `queued`; its
/// runner starts it at once.
pub async fn submit(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    // Ownership before the body: another user's project is a 404 whatever they send.
    sam_control::tasks::active_project(&db, &user.id, ctx.id()).await?;
    let req: SubmitTaskRequest = ctx.json().await?;
    let keys = Config::credential_keys(&ctx.env)?;
    let platform = Config::platform_agent_credentials(&ctx.env)?;
    let submitted = submit_task(
        &db,
        &keys,
        &platform,
        &ctx.config.tasks,
        user,
        ctx.id(),
        &req,
        now_ms(),
        random_u128(),
    )
    .await?;
    let task = launch_task(ctx, &submitted, &req.message).await?;
    Ok(json_response(
        202,
        &serde_json::json!({ "task": task_view(&task) }),
    ))
}

/// Opens the task's chat session with the user's `message` and starts its
/// runner; the task as it is then (the runner may have moved it on).
async fn launch_task(
    ctx: &Ctx,
    submitted: &sam_control::tasks::SubmittedTask,
    message: &str,
) -> ApiResult<sam_store::TaskRecord> {
    let task = &submitted.record;
    let db = d1(&ctx.env)?;
    if let Err(e) = open_chat_and_start(ctx, submitted, message).await {
        // Never left queued with nobody to run it.
        let mut failed = task.clone();
        "failed".clone_into(&mut failed.status);
        failed.failed_step = Some("queue".to_owned());
        failed.failure_reason = Some(format!("the task could not be started ({})", e.code));
        failed.updated_at = now_ms();
        let change = sam_store::TaskStatusChange {
            at: failed.updated_at,
            from_status: Some(task.status.clone()),
            to_status: failed.status.clone(),
            event: "start_failed".to_owned(),
            detail: failed.failure_reason.clone(),
        };
        TaskRepository::new(&db)
            .record(&failed, Some(&change))
            .await?;
        return Err(e);
    }
    Ok(TaskRepository::new(&db)
        .get_owned(&task.user_id, &task.id)
        .await?
        .unwrap_or_else(|| task.clone()))
}

async fn open_chat_and_start(
    ctx: &Ctx,
    submitted: &sam_control::tasks::SubmittedTask,
    message: &str,
) -> ApiResult<()> {
    let task = &submitted.record;
    // The chat shows the session, with the message, from the start.
    call_ok(
        &project_data(&ctx.env, &task.project_id)?,
        Method::Post,
        "/sessions",
        Some(to_json(&NewSession {
            id: task.session_id.clone(),
            task_id: Some(task.id.clone()),
            agent: task.agent.clone(),
            title: task.title.clone(),
            prompt: Some(PromptRecord {
                prompt_id: task.id.clone(),
                text: message.trim().to_owned(),
                created_at: task.created_at,
            }),
        })?),
    )
    .await?;
    call_ok(
        &task_runner(&ctx.env, &task.id)?,
        Method::Post,
        "/start",
        Some(to_json(&StartTask {
            task: task.clone(),
            run: submitted.run.clone(),
        })?),
    )
    .await?;
    Ok(())
}

/// `GET /api/projects/{id}/tasks`: newest first.
pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let tasks = TaskRepository::new(&db)
        .list_for_project(&user.id, &project.id)
        .await?;
    let tasks: Vec<sam_wire::TaskView> = tasks.iter().map(task_view).collect();
    Ok(json_response(200, &serde_json::json!({ "tasks": tasks })))
}

/// `GET /api/tasks/{id}`: the task and its status log.
pub async fn get(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let task = get_task(&db, &user.id, ctx.id()).await?;
    let log = TaskRepository::new(&db).status_log(&task.id).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "task": task_view(&task), "status_log": log }),
    ))
}

/// `POST /api/tasks/{id}/cancel`: ends the task wherever it is. Repeating
/// it is harmless; a task that already completed or failed answers 409
/// `task_ended`.
pub async fn cancel(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let task = get_task(&db, &user.id, ctx.id()).await?;
    if matches!(task.status.as_str(), "completed" | "failed") {
        return Err(ApiError::new(
            409,
            "task_ended",
            format!("the task has already ended ({})", task.status),
        ));
    }
    let mut resp = call(
        &task_runner(&ctx.env, &task.id)?,
        Method::Post,
        "/event",
        Some(r#"{"type":"cancel_requested"}"#.to_owned()),
    )
    .await?;
    if resp.status_code() == 409 {
        let body: sam_wire::ErrorBody = resp.json().await?;
        return Err(ApiError::new(409, "invalid_transition", body.message));
    }
    if resp.status_code() >= 300 {
        return Err(ApiError::internal(
            "task runner",
            &format!("cancel answered {}", resp.status_code()),
        ));
    }
    let task = get_task(&db, &user.id, &task.id).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "task": task_view(&task) }),
    ))
}

/// The session id in the path (a ULID, or nothing can match).
fn session_param(ctx: &Ctx) -> ApiResult<String> {
    let raw = ctx.params.get(1).map_or("", String::as_str);
    sam_domain::ids::parse_ulid(raw).map_err(|_| ApiError::not_found())
}

/// `GET /api/projects/{id}/sessions[?q=<words>]`: the project's chat
/// sessions, newest first; with `q`, those whose title, prompts or agent
/// text contain every word.
pub async fn sessions(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let mut resp = call_ok(
        &project_data(&ctx.env, &project.id)?,
        Method::Get,
        &format!("/sessions{}", ctx.query_string()),
        None,
    )
    .await?;
    let sessions: serde_json::Value = resp.json().await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "sessions": sessions }),
    ))
}

/// `GET /api/projects/{id}/sessions/{session}/messages?after=&limit=`:
/// the session, its messages after `after` in order, and the prompts.
pub async fn messages(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let session = session_param(ctx)?;
    let path = format!("/sessions/{session}/messages{}", ctx.query_string());
    let mut resp = call(
        &project_data(&ctx.env, &project.id)?,
        Method::Get,
        &path,
        None,
    )
    .await?;
    if resp.status_code() == 404 {
        return Err(ApiError::not_found());
    }
    let transcript: serde_json::Value = resp.json().await?;
    Ok(json_response(200, &transcript))
}

/// `GET /api/projects/{id}/sessions/{session}/ws?after=`: the session's
/// messages after `after`, then each new one, live.
pub async fn stream(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let session = session_param(ctx)?;
    super::require_own_page_websocket(ctx, "the chat stream")?;
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let forwarded = Request::new_with_init(
        &format!(
            "https://durable-object/sessions/{session}/ws{}",
            ctx.query_string()
        ),
        &init,
    )?;
    Ok(project_data(&ctx.env, &project.id)?
        .fetch_with_request(forwarded)
        .await?)
}

/// `POST /api/workspaces/{id}/sessions/{session}/messages` (the
/// workspace's callback token): stores a batch from the vm-agent's outbox
/// and answers up to where the chat holds every message. Messages a task
/// acts on (its turn ended, its agent died) go on to the task's runner.
pub async fn ingest(ctx: &mut Ctx, claims: &TokenClaims) -> ApiResult<Response> {
    let session = session_param(ctx)?;
    let workspace_id = claims.workspace.clone().ok_or_else(ApiError::not_found)?;
    let batch: SessionMessagesBatch = ctx.json_up_to(MAX_BATCH_BYTES).await?;
    if batch.messages.len() > MAX_BATCH_MESSAGES {
        return Err(ApiError::new(
            413,
            "batch_too_large",
            format!("a delivery carries at most {MAX_BATCH_MESSAGES} messages"),
        ));
    }
    let db = d1(&ctx.env)?;
    let workspace = WorkspaceRepository::new(&db)
        .get(&workspace_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut resp = call(
        &project_data(&ctx.env, &workspace.project_id)?,
        Method::Post,
        &format!("/sessions/{session}/messages"),
        Some(to_json(&IngestBatch {
            workspace_id: workspace.id.clone(),
            messages: batch.messages,
        })?),
    )
    .await?;
    if resp.status_code() == 404 {
        return Err(ApiError::not_found());
    }
    if resp.status_code() >= 300 {
        return Err(ApiError::internal(
            "chat storage",
            &format!("ingest answered {}", resp.status_code()),
        ));
    }
    let ingested: Ingested = resp.json().await?;
    if let Some(task_id) = &ingested.task_id {
        let runner = task_runner(&ctx.env, task_id)?;
        for message in &ingested.notable {
            // A follow-up is waiting: this turn's end does not end the task.
            if message.kind == "turn_ended" && ingested.outstanding_prompts > 0 {
                continue;
            }
            // A report the runner cannot take (the run has moved on) is
            // not the vm-agent's problem: it is stored either way.
            let report = SessionReport {
                kind: message.kind.clone(),
                payload: message.payload.clone(),
            };
            if let Err(e) = call(&runner, Method::Post, "/report", Some(to_json(&report)?)).await {
                worker::console_error!("task {task_id}: report failed: {}", e.message);
            }
        }
    }
    Ok(json_response(
        200,
        &SessionMessagesAck {
            acked_up_to: ingested.acked_up_to,
        },
    ))
}

/// The session `{session}` of the user's project `{id}`, from the chat.
async fn chat_session(
    ctx: &Ctx,
    user: &UserRecord,
) -> ApiResult<(sam_control::projects::ProjectView, SessionRecord)> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let session = session_param(ctx)?;
    let mut resp = call(
        &project_data(&ctx.env, &project.id)?,
        Method::Get,
        &format!("/sessions/{session}"),
        None,
    )
    .await?;
    if resp.status_code() == 404 {
        return Err(ApiError::not_found());
    }
    Ok((project, resp.json().await?))
}

/// `POST /api/workspaces/{id}/sessions` `{agent?, message?,
/// permission_policy?}`: starts an agent in the user's running workspace;
/// its messages stream into the project's chat. 202 `{session_id}`.
pub async fn start_session(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    // Ownership before the body: another user's workspace is a 404.
    let (workspace, _) = session_workspace(&db, &user.id, ctx.id()).await?;
    let req: StartSessionRequest = ctx.json_or_default().await?;
    let project = sam_control::tasks::active_project(&db, &user.id, &workspace.project_id).await?;
    let agent = session_agent(
        req.agent.as_deref(),
        project.agent.as_deref(),
        ctx.config.tasks.default_agent,
    )?;
    let policy = check_permission_policy(req.permission_policy.as_deref().unwrap_or("ask"))?;
    // Checked before anything is written: no session is left pending for
    // an agent that could never start.
    sam_control::agent_credentials::resolve_agent_credential(
        &db,
        &Config::credential_keys(&ctx.env)?,
        &Config::platform_agent_credentials(&ctx.env)?,
        &user.id,
        Some(&project.id),
        agent.as_str(),
    )
    .await?;
    let now = now_ms();
    let session_id = sam_domain::ids::new_ulid(now, random_u128());
    let prompt = match req.message.as_deref() {
        Some(text) => Some(AgentPrompt {
            prompt_id: sam_domain::ids::new_ulid(now, random_u128()),
            text: check_prompt(text)?.to_owned(),
        }),
        None => None,
    };
    let chat = project_data(&ctx.env, &project.id)?;
    call_ok(
        &chat,
        Method::Post,
        "/sessions",
        Some(to_json(&NewSession {
            id: session_id.clone(),
            task_id: None,
            agent: agent.as_str().to_owned(),
            title: prompt.as_ref().map_or_else(
                || format!("{} in {}", agent.as_str(), workspace.name),
                |p| sam_domain::task::derive_title(&p.text),
            ),
            prompt: prompt.as_ref().map(|p| PromptRecord {
                prompt_id: p.prompt_id.clone(),
                text: p.text.clone(),
                created_at: now,
            }),
        })?),
    )
    .await?;
    // Bound before the agent starts, so its first message is accepted.
    call_ok(
        &chat,
        Method::Post,
        &format!("/sessions/{session_id}/workspace"),
        Some(to_json(
            &serde_json::json!({ "workspace_id": workspace.id }),
        )?),
    )
    .await?;
    let key = Config::signing_key(&ctx.env)?;
    launch_session(
        &db,
        &super::workspaces::agent(ctx, &key),
        &Config::credential_keys(&ctx.env)?,
        &Config::platform_agent_credentials(&ctx.env)?,
        &ctx.config.tasks.model_apis,
        &Launch {
            user_id: &user.id,
            project_id: &project.id,
            agent: agent.as_str(),
            session_id: &session_id,
            workspace_id: &workspace.id,
            prompt,
            permission_policy: policy,
        },
    )
    .await?;
    Ok(json_response(
        202,
        &serde_json::json!({ "session_id": session_id, "project_id": project.id }),
    ))
}

/// What the user asks of a chat session.
#[derive(Clone, Copy)]
pub enum Command {
    Prompt,
    Cancel,
    Stop,
    Permission,
}

/// `POST /api/projects/{id}/sessions/{session}/prompts|cancel|stop|permissions/{request}`.
pub async fn command(ctx: &mut Ctx, user: &UserRecord, which: Command) -> ApiResult<Response> {
    let (project, session) = chat_session(ctx, user).await?;
    let db = d1(&ctx.env)?;
    let command = match which {
        Command::Prompt => {
            let req: FollowUpRequest = ctx.json().await?;
            SessionCommand::Prompt(AgentPrompt {
                prompt_id: sam_domain::ids::new_ulid(now_ms(), random_u128()),
                text: check_prompt(&req.text)?.to_owned(),
            })
        }
        Command::Cancel => SessionCommand::Cancel,
        Command::Stop => SessionCommand::Stop,
        Command::Permission => {
            let req: PermissionAnswer = ctx.json().await?;
            SessionCommand::Permission {
                request_id: ctx.params.get(2).cloned().unwrap_or_default(),
                option_id: req.option_id,
            }
        }
    };
    let chat = project_data(&ctx.env, &project.id)?;
    // A task's agent takes follow-ups while the task runs; once it is
    // pushing its work the follow-up waits, and after it ended a new task
    // continues the conversation.
    if let (SessionCommand::Prompt(prompt), Some(task_id)) = (&command, &session.task_id) {
        let task = get_task(&db, &user.id, task_id).await?;
        match task.status.as_str() {
            "finalizing" => {
                return Err(ApiError::new(
                    409,
                    "task_finalizing",
                    "the task is pushing its work; send the follow-up when it has finished",
                ));
            }
            "completed" | "failed" | "cancelled" => {
                return continue_conversation(ctx, user, task_id, &session, &prompt.text).await;
            }
            _ => {}
        }
    }
    if let SessionCommand::Prompt(prompt) = &command {
        // Recorded before the agent can start it, so the end of the turn
        // before it is never taken for the session's last.
        call_ok(
            &chat,
            Method::Post,
            &format!("/sessions/{}/prompts", session.id),
            Some(to_json(&PromptRecord {
                prompt_id: prompt.prompt_id.clone(),
                text: prompt.text.clone(),
                created_at: 0,
            })?),
        )
        .await?;
    }
    let key = Config::signing_key(&ctx.env)?;
    let sent = command_session(
        &db,
        &super::workspaces::agent(ctx, &key),
        &user.id,
        &session.id,
        session.workspace_id.as_deref(),
        &command,
    )
    .await;
    let SessionCommand::Prompt(prompt) = &command else {
        sent?;
        return Ok(json_response(200, &serde_json::json!({ "ok": true })));
    };
    match sent {
        Ok(()) => Ok(json_response(
            202,
            &serde_json::json!({ "prompt_id": prompt.prompt_id, "session_id": session.id }),
        )),
        Err(e) => {
            // The vm-agent may have queued a prompt whose answer was lost:
            // only a definite refusal takes it out of the chat.
            let refused = !matches!(
                e,
                sam_control::ControlError::VmAgent(sam_control::AgentError::Unreachable(_))
            );
            if refused {
                call_ok(
                    &chat,
                    Method::Delete,
                    &format!("/sessions/{}/prompts/{}", session.id, prompt.prompt_id),
                    None,
                )
                .await?;
            }
            match (&e, &session.task_id) {
                // The task's workspace is gone: a new task continues the
                // conversation on the same branch.
                (
                    sam_control::ControlError::SessionState {
                        code: "session_workspace_gone",
                        ..
                    },
                    Some(task_id),
                ) => continue_conversation(ctx, user, task_id, &session, &prompt.text).await,
                _ => Err(e.into()),
            }
        }
    }
}

/// A follow-up to a task whose workspace is gone: a new task on the same
/// branch whose first prompt carries the conversation so far. 202 with the
/// new task and session.
async fn continue_conversation(
    ctx: &Ctx,
    user: &UserRecord,
    parent_id: &str,
    session: &SessionRecord,
    text: &str,
) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let parent = get_task(&db, &user.id, parent_id).await?;
    // The whole session, page by page: the most recent exchanges matter most.
    let chat = project_data(&ctx.env, &parent.project_id)?;
    let mut prompts: Vec<(String, String)> = Vec::new();
    let mut messages: Vec<(String, serde_json::Value)> = Vec::new();
    let mut after = 0;
    loop {
        let mut resp = call_ok(
            &chat,
            Method::Get,
            &format!("/sessions/{}/messages?after={after}", session.id),
            None,
        )
        .await?;
        let page: SessionTranscript = resp.json().await?;
        if prompts.is_empty() {
            prompts = page
                .prompts
                .into_iter()
                .map(|p| (p.prompt_id, p.text))
                .collect();
        }
        let Some(last) = page.messages.last().map(|m| m.seq) else {
            break;
        };
        messages.extend(page.messages.into_iter().map(|m| (m.kind, m.payload)));
        after = last;
    }
    let history = sam_domain::chat::conversation(&prompts, &messages);
    let submitted = sam_control::tasks::continue_task(
        &db,
        &Config::credential_keys(&ctx.env)?,
        &Config::platform_agent_credentials(&ctx.env)?,
        &ctx.config.tasks,
        user,
        &parent,
        text,
        &sam_domain::chat::continuation_prompt(&history, text),
        now_ms(),
        random_u128(),
    )
    .await?;
    let task = launch_task(ctx, &submitted, text).await?;
    Ok(json_response(
        202,
        &serde_json::json!({
            "session_id": task.session_id,
            "continued_from": session.id,
            "task": task_view(&task),
        }),
    ))
}

/// Wakes the runners of tasks in `status` that wait for this node or
/// workspace: the callback that made it ready saves them their next poll.
/// Best effort: a runner not woken still sees it at its next look.
pub async fn poke_waiting(env: &Env, on: WaitingOn, id: &str, status: &str) {
    let Ok(db) = d1(env) else { return };
    let Ok(tasks) = TaskRepository::new(&db).waiting_on(on, id, status).await else {
        return;
    };
    for task_id in tasks {
        let poked = match task_runner(env, &task_id) {
            Ok(stub) => call(&stub, Method::Post, "/poke", None).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = poked {
            worker::console_error!("task {task_id}: poke failed: {}", e.message);
        }
    }
}
