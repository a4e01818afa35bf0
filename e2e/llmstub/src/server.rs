//! The router, the shared state (script, request log, id counter), API
//! keys, and what every generation endpoint does before rendering: check
//! the key, parse the body, normalise it, choose the reply, log it.

// The error side of these results is the HTTP response to answer at once;
// boxing it would only add noise to every handler.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde_json::{Value, json};

use crate::normalize::{Api, Request};
use crate::script::{Plan, Script};
use crate::{anthropic, chat, gemini, models, responses};

/// Entries kept in the request log; older ones are dropped.
const LOG_CAPACITY: usize = 10_000;

/// How the stand-in starts.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub script: Script,
    /// When set, only this API key is accepted; otherwise any non-empty one.
    pub require_key: Option<String>,
}

/// One received request, as `GET /_llmstub/requests` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    /// `anthropic`, `responses`, `chat`, `gemini`, or `null` for requests
    /// outside the four APIs (model lists, unknown paths).
    pub api: Option<Api>,
    /// `generate`, `count_tokens`, `models` or `unknown`.
    pub kind: &'static str,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub last_user_text: Option<String>,
    pub offered_tools: Vec<String>,
    pub has_tool_result: Option<bool>,
    /// Index of the matching rule; `null` for the default reply (or no reply).
    pub matched_rule: Option<usize>,
    pub rule_name: Option<String>,
    pub reply_text: Option<String>,
    pub reply_tool: Option<String>,
}

impl LoggedRequest {
    fn new(api: Option<Api>, kind: &'static str, method: &str, path: &str) -> Self {
        LoggedRequest {
            seq: 0,
            api,
            kind,
            method: method.to_owned(),
            path: path.to_owned(),
            status: 200,
            model: None,
            stream: None,
            last_user_text: None,
            offered_tools: Vec::new(),
            has_tool_result: None,
            matched_rule: None,
            rule_name: None,
            reply_text: None,
            reply_tool: None,
        }
    }
}

#[derive(Debug)]
struct Inner {
    script: RwLock<Script>,
    require_key: Option<String>,
    log: Mutex<VecDeque<LoggedRequest>>,
    next_seq: AtomicU64,
    next_id: AtomicU64,
}

/// The stand-in: its state plus the axum router over it.
#[derive(Debug, Clone)]
pub struct LlmStub {
    inner: Arc<Inner>,
}

impl LlmStub {
    pub fn new(config: Config) -> Self {
        LlmStub {
            inner: Arc::new(Inner {
                script: RwLock::new(config.script),
                require_key: config.require_key,
                log: Mutex::new(VecDeque::new()),
                next_seq: AtomicU64::new(1),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v1/messages", post(anthropic::messages))
            .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
            .route("/v1/responses", post(responses::create))
            .route("/responses", post(responses::create))
            .route("/v1/chat/completions", post(chat::completions))
            .route("/chat/completions", post(chat::completions))
            .route("/v1/models", get(models::list))
            .route("/models", get(models::list))
            .route("/v1beta/models", get(models::gemini_list))
            .route("/v1beta/models/{model_action}", post(gemini::dispatch));
        let admin = Router::new()
            .route("/_llmstub/script", put(put_script).get(get_script))
            .route(
                "/_llmstub/requests",
                get(list_requests).delete(clear_requests),
            );
        api.merge(admin).fallback(unknown).with_state(self.clone())
    }

    pub fn set_script(&self, script: Script) {
        *self
            .inner
            .script
            .write()
            .unwrap_or_else(PoisonError::into_inner) = script;
    }

    pub fn script(&self) -> Script {
        self.inner
            .script
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log().iter().cloned().collect()
    }

    fn log(&self) -> MutexGuard<'_, VecDeque<LoggedRequest>> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record(&self, mut entry: LoggedRequest) {
        entry.seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            api = ?entry.api,
            path = %entry.path,
            status = entry.status,
            rule = ?entry.matched_rule,
            tool = ?entry.reply_tool,
            "request"
        );
        let mut log = self.log();
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// A fresh id with `prefix` (`msg_`, `toolu_`, `resp_`, …).
    pub(crate) fn id(&self, prefix: &str) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}llmstub{n:012}")
    }

    /// Checks the API key; `Err` holds the 401 to answer (already logged).
    pub(crate) fn authorize(
        &self,
        api: Api,
        kind: &'static str,
        headers: &HeaderMap,
        path: &str,
        query: Option<&str>,
    ) -> Result<(), Response> {
        let key = api_key(api, headers, query).unwrap_or_default();
        let ok = match &self.inner.require_key {
            Some(required) => key == *required,
            None => !key.is_empty(),
        };
        if ok {
            return Ok(());
        }
        let mut entry = LoggedRequest::new(Some(api), kind, "POST", path);
        entry.status = 401;
        self.record(entry);
        Err(api_error(
            api,
            StatusCode::UNAUTHORIZED,
            if key.is_empty() {
                "missing API key"
            } else {
                "invalid API key"
            },
        ))
    }

    /// The common path of every generation request: key, body, normalised
    /// request, chosen reply, log entry.
    pub(crate) fn generate(
        &self,
        call: Call<'_>,
        normalize: impl FnOnce(&Value) -> Request,
    ) -> Result<(Request, Plan), Response> {
        self.authorize(call.api, "generate", call.headers, call.path, call.query)?;
        let body = parse_body(call.api, call.body).inspect_err(|_| {
            let mut entry = LoggedRequest::new(Some(call.api), "generate", "POST", call.path);
            entry.status = 400;
            self.record(entry);
        })?;
        let request = normalize(&body);
        let raw = String::from_utf8_lossy(call.body);
        let plan = self.script().plan(&request, &raw);
        let mut entry = LoggedRequest::new(Some(call.api), "generate", "POST", call.path);
        entry.model = Some(request.model.clone());
        entry.stream = Some(request.stream);
        entry.last_user_text = Some(request.last_user_text().to_owned());
        entry.offered_tools = request.tool_names();
        entry.has_tool_result = Some(request.has_tool_result());
        entry.matched_rule = plan.rule;
        entry.rule_name.clone_from(&plan.rule_name);
        entry.reply_text.clone_from(&plan.text);
        entry.reply_tool = plan.tool_call.as_ref().map(|c| c.name.clone());
        self.record(entry);
        Ok((request, plan))
    }

    /// Logs a token-count request after checking its key and body.
    pub(crate) fn count(
        &self,
        call: Call<'_>,
        normalize: impl FnOnce(&Value) -> Request,
    ) -> Result<Request, Response> {
        self.authorize(
            call.api,
            "count_tokens",
            call.headers,
            call.path,
            call.query,
        )?;
        let body = parse_body(call.api, call.body)?;
        let request = normalize(&body);
        let mut entry = LoggedRequest::new(Some(call.api), "count_tokens", "POST", call.path);
        entry.model = Some(request.model.clone());
        entry.last_user_text = Some(request.last_user_text().to_owned());
        entry.offered_tools = request.tool_names();
        entry.has_tool_result = Some(request.has_tool_result());
        self.record(entry);
        Ok(request)
    }

    pub(crate) fn record_models(&self, path: &str) {
        self.record(LoggedRequest::new(None, "models", "GET", path));
    }
}

/// What a generation handler received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub api: Api,
    pub headers: &'a HeaderMap,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let auth = header_str(headers, "authorization")?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// The key as each API's clients send it: Anthropic `x-api-key` (or an
/// OAuth bearer token), OpenAI `Authorization: Bearer`, Gemini
/// `x-goog-api-key` or `?key=`.
fn api_key(api: Api, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    match api {
        Api::Anthropic => header_str(headers, "x-api-key")
            .map(str::to_owned)
            .or_else(|| bearer(headers)),
        Api::Responses | Api::Chat => bearer(headers),
        Api::Gemini => header_str(headers, "x-goog-api-key")
            .map(str::to_owned)
            .or_else(|| {
                query?
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("key="))
                    .map(str::to_owned)
            })
            .or_else(|| bearer(headers)),
    }
}

fn parse_body(api: Api, body: &[u8]) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(api_error(
            api,
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON object",
        )),
        Err(e) => Err(api_error(
            api,
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON body: {e}"),
        )),
    }
}

/// An error in the API's own format.
pub(crate) fn api_error(api: Api, status: StatusCode, message: &str) -> Response {
    let unauthorized = status == StatusCode::UNAUTHORIZED;
    let body = match api {
        Api::Anthropic => json!({
            "type": "error",
            "error": {
                "type": if unauthorized { "authentication_error" } else { "invalid_request_error" },
                "message": message,
            },
        }),
        Api::Responses | Api::Chat => json!({
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": null,
                "code": if unauthorized { "invalid_api_key" } else { "invalid_request_error" },
            },
        }),
        Api::Gemini => json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "status": if unauthorized { "UNAUTHENTICATED" } else { "INVALID_ARGUMENT" },
            },
        }),
    };
    (status, axum::Json(body)).into_response()
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A rough token count: a quarter of the characters, at least one.
pub(crate) fn tokens(chars: usize) -> u64 {
    (chars / 4).max(1) as u64
}

/// Pieces of at most `size` characters, so streamed text arrives in
/// several deltas as it does from a real model.
pub(crate) fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// An SSE body built event by event, sent as one chunk per event.
#[derive(Debug, Default)]
pub(crate) struct Sse {
    chunks: Vec<String>,
}

impl Sse {
    /// `event: NAME` plus `data: JSON` (Anthropic, Responses).
    pub fn named(&mut self, name: &str, data: &Value) {
        self.chunks.push(format!("event: {name}\ndata: {data}\n\n"));
    }

    /// `data: …` only (Chat Completions, Gemini).
    pub fn data(&mut self, data: &str) {
        self.chunks.push(format!("data: {data}\n\n"));
    }

    pub fn into_response(self) -> Response {
        let stream = futures::stream::iter(
            self.chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from(c))),
        );
        let mut response = Response::new(Body::from_stream(stream));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

async fn put_script(State(stub): State<LlmStub>, body: Bytes) -> Response {
    match Script::from_json(&String::from_utf8_lossy(&body)) {
        Ok(script) => {
            stub.set_script(script);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn get_script(State(stub): State<LlmStub>) -> Response {
    axum::Json(stub.script()).into_response()
}

async fn list_requests(State(stub): State<LlmStub>) -> Response {
    axum::Json(stub.requests()).into_response()
}

async fn clear_requests(State(stub): State<LlmStub>) -> Response {
    stub.log().clear();
    StatusCode::NO_CONTENT.into_response()
}

/// Unknown paths: logged (so a test sees what an agent tried) and 404.
async fn unknown(State(stub): State<LlmStub>, request: HttpRequest) -> Response {
    let path = request.uri().path().to_owned();
    tracing::warn!(method = %request.method(), %path, "unknown path");
    let mut entry = LoggedRequest::new(None, "unknown", request.method().as_str(), &path);
    entry.status = 404;
    stub.record(entry);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"message": format!("llmstub does not serve {path}")}})),
    )
        .into_response()
}
