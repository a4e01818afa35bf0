//! Model lists: `GET /v1/models` in OpenAI's shape, or Anthropic's when the
//! request carries `anthropic-version`; `GET /v1beta/models` in Gemini's.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::LlmStub;

const OPENAI: [&str; 4] = ["gpt-5.3-codex", "gpt-5-codex", "gpt-5", "gpt-4.1"];
const ANTHROPIC: [(&str, &str); 3] = [
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-opus-4-1", "Claude Opus 4.1"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
];
const GEMINI: [&str; 3] = [
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
];

pub(crate) async fn list(State(stub): State<LlmStub>, headers: HeaderMap, uri: Uri) -> Response {
    stub.record_models(uri.path());
    if headers.contains_key("anthropic-version") {
        let data: Vec<_> = ANTHROPIC
            .iter()
            .map(|(id, name)| {
                json!({
                    "type": "model",
                    "id": id,
                    "display_name": name,
                    "created_at": "2025-01-01T00:00:00Z",
                })
            })
            .collect();
        return Json(json!({
            "data": data,
            "has_more": false,
            "first_id": ANTHROPIC[0].0,
            "last_id": ANTHROPIC[ANTHROPIC.len() - 1].0,
        }))
        .into_response();
    }
    let data: Vec<_> = OPENAI
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_735_689_600, "owned_by": "llmstub"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub(crate) async fn gemini_list(State(stub): State<LlmStub>, uri: Uri) -> Response {
    stub.record_models(uri.path());
    let models: Vec<_> = GEMINI
        .iter()
        .map(|id| {
            json!({
                "name": format!("models/{id}"),
                "displayName": id,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
            })
        })
        .collect();
    Json(json!({"models": models})).into_response()
}
