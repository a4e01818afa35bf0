//! Gemini: `POST /v1beta/models/{model}:streamGenerateContent` (SSE with
//! `?alt=sse`, else a JSON array of the same chunks),
//! `:generateContent` (one JSON response) and `:countTokens`. Chunks are
//! `GenerateContentResponse`s: thought parts (`thought: true`), text
//! parts, then a last chunk with the `functionCall` part (if any),
//! `finishReason: STOP` and `usageMetadata`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::normalize::{self, Api};
use crate::server::{Call, LlmStub, Sse, api_error, pieces, tokens};

/// Splits `{model}:{action}` and serves the action.
pub(crate) async fn dispatch(
    State(stub): State<LlmStub>,
    Path(model_action): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Some((model, action)) = model_action.rsplit_once(':') else {
        return api_error(
            Api::Gemini,
            StatusCode::NOT_FOUND,
            &format!("unknown method models/{model_action}"),
        );
    };
    let call = Call {
        api: Api::Gemini,
        headers: &headers,
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    let sse = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    match action {
        "generateContent" => generate(&stub, call, model, false, false),
        "streamGenerateContent" => generate(&stub, call, model, true, sse),
        "countTokens" => match stub.count(call, |b| normalize::gemini(b, model, false)) {
            Ok(_) => Json(json!({"totalTokens": tokens(body.len())})).into_response(),
            Err(response) => response,
        },
        other => api_error(
            Api::Gemini,
            StatusCode::NOT_FOUND,
            &format!("llmstub does not serve the method {other}"),
        ),
    }
}

fn generate(stub: &LlmStub, call: Call<'_>, model: &str, stream: bool, sse: bool) -> Response {
    let (request, plan) = match stub.generate(call, |b| normalize::gemini(b, model, stream)) {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let response_id = stub.id("");
    let prompt_tokens = tokens(call.body.len());
    let mut parts = Vec::new();
    if let Some(thinking) = &plan.thinking {
        parts.push(json!({"text": thinking, "thought": true}));
    }
    if let Some(text) = &plan.text {
        parts.push(json!({"text": text}));
    }
    if let Some(c) = &plan.tool_call {
        parts.push(json!({"functionCall": {"name": c.name, "args": c.arguments}}));
    }
    let candidates_tokens = tokens(parts.iter().map(|p| p.to_string().len()).sum());
    let chunk = |parts: Vec<Value>, last: bool| {
        let mut candidate = json!({
            "content": {"parts": parts, "role": "model"},
            "index": 0,
        });
        let mut usage = json!({"promptTokenCount": prompt_tokens});
        if last {
            candidate["finishReason"] = json!("STOP");
            usage = json!({
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": candidates_tokens,
                "totalTokenCount": prompt_tokens + candidates_tokens,
            });
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": request.model,
            "responseId": response_id,
        })
    };
    if !stream {
        return Json(chunk(parts, true)).into_response();
    }

    let mut chunks = Vec::new();
    if let Some(thinking) = &plan.thinking {
        for piece in pieces(thinking, 24) {
            chunks.push(chunk(vec![json!({"text": piece, "thought": true})], false));
        }
    }
    if let Some(text) = &plan.text {
        for piece in pieces(text, 12) {
            chunks.push(chunk(vec![json!({"text": piece})], false));
        }
    }
    let last_parts = plan
        .tool_call
        .as_ref()
        .map(|c| vec![json!({"functionCall": {"name": c.name, "args": c.arguments}})])
        .unwrap_or_default();
    match chunks.last_mut() {
        // The finish reason rides on the last text chunk, as Gemini does.
        Some(last) if last_parts.is_empty() => {
            last["candidates"][0]["finishReason"] = json!("STOP");
            last["usageMetadata"] = json!({
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": candidates_tokens,
                "totalTokenCount": prompt_tokens + candidates_tokens,
            });
        }
        _ => chunks.push(chunk(last_parts, true)),
    }
    if !sse {
        return Json(Value::Array(chunks)).into_response();
    }
    let mut body = Sse::default();
    for c in &chunks {
        body.data(&c.to_string());
    }
    body.into_response()
}
