//! Tasks and project chat: submitting and cancelling tasks, reading a
//! project's chat sessions (also live), and the vm-agents' delivery of
//! session messages.
//!
//! The run itself is the task's `TaskRunner` Durable Object; the chat is
//! the project's `ProjectData` Durable Object. Each handler checks the
//! caller first (another user's project or task is a 404), then forwards.

use sam_auth::TokenClaims;
use sam_control::tasks::{TaskView, get_task, submit_task};
use sam_durable_objects::project_data::{IngestBatch, Ingested, NewSession, PromptRecord};
use sam_durable_objects::task_runner::{SessionReport, StartTask};
use sam_store::{TaskRepository, UserRecord, WorkspaceRepository};
use sam_wire::{SessionMessagesAck, SessionMessagesBatch, SubmitTaskRequest};
use worker::{Env, Headers, Method, Request, RequestInit, Response, Stub};

use crate::bindings::{PROJECT_DATA, TASK_RUNNER, d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

/// The most messages one delivery may carry (the vm-agent sends 256).
const MAX_BATCH_MESSAGES: usize = 1024;

fn project_data(env: &Env, project_id: &str) -> ApiResult<Stub> {
    Ok(env.durable_object(PROJECT_DATA)?.get_by_name(project_id)?)
}

fn task_runner(env: &Env, task_id: &str) -> ApiResult<Stub> {
    Ok(env.durable_object(TASK_RUNNER)?.get_by_name(task_id)?)
}

/// Calls a Durable Object with a JSON body (or none); its answer as is.
async fn call(
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
                text: submitted.run.prompt.clone(),
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
    // The runner may have moved it on already.
    let task = TaskRepository::new(&db)
        .get_owned(&user.id, &task.id)
        .await?
        .unwrap_or_else(|| task.clone());
    Ok(json_response(
        202,
        &serde_json::json!({ "task": TaskView::from(&task) }),
    ))
}

/// `GET /api/projects/{id}/tasks`: newest first.
pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let tasks = TaskRepository::new(&db)
        .list_for_project(&user.id, &project.id)
        .await?;
    let tasks: Vec<TaskView> = tasks.iter().map(TaskView::from).collect();
    Ok(json_response(200, &serde_json::json!({ "tasks": tasks })))
}

/// `GET /api/tasks/{id}`: the task and its status log.
pub async fn get(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let task = get_task(&db, &user.id, ctx.id()).await?;
    let log = TaskRepository::new(&db).status_log(&task.id).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "task": TaskView::from(&task), "status_log": log }),
    ))
}

/// `POST /api/tasks/{id}/cancel`: ends the task wherever it is (409
/// `invalid_transition` once it has ended).
pub async fn cancel(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let task = get_task(&db, &user.id, ctx.id()).await?;
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
        &serde_json::json!({ "task": TaskView::from(&task) }),
    ))
}

/// The session id in the path (a ULID, or nothing can match).
fn session_param(ctx: &Ctx) -> ApiResult<String> {
    let raw = ctx.params.get(1).map_or("", String::as_str);
    sam_domain::ids::parse_ulid(raw).map_err(|_| ApiError::not_found())
}

/// `GET /api/projects/{id}/sessions`: the project's chat sessions.
pub async fn sessions(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let project = sam_control::projects::get_project(&db, &user.id, ctx.id()).await?;
    let mut resp = call_ok(
        &project_data(&ctx.env, &project.id)?,
        Method::Get,
        "/sessions",
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
    let workspace_id = claims
        .workspace
        .clone()
        .ok_or_else(ApiError::not_found)?;
    let batch: SessionMessagesBatch = ctx.json().await?;
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
