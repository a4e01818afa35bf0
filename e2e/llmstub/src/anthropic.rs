//! Anthropic Messages: `POST /v1/messages` (any query, e.g. `?beta=true`),
//! streamed as `message_start`, `ping`, per block `content_block_start`,
//! `content_block_delta` (`thinking_delta` + `signature_delta`,
//! `text_delta`, `input_json_delta`), `content_block_stop`, then
//! `message_delta` (stop reason, usage) and `message_stop`; or one JSON
//! message. `POST /v1/messages/count_tokens` answers `{input_tokens}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::normalize::{self, Api};
use crate::script::Plan;
use crate::server::{Call, LlmStub, Sse, pieces, tokens};

/// The signature of thinking blocks; clients send it back, nobody checks it.
const SIGNATURE: &str = "llmstub-signature";

pub(crate) async fn messages(
    State(stub): State<LlmStub>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = Call {
        api: Api::Anthropic,
        headers: &headers,
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    let (request, plan) = match stub.generate(call, normalize::anthropic) {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let input_tokens = tokens(body.len());
    let id = stub.id("msg_");
    let blocks = blocks(&stub, &plan);
    let output_tokens = tokens(blocks.iter().map(|b| b.to_string().len()).sum());
    let stop_reason = if plan.tool_call.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if !request.stream {
        return Json(json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage(input_tokens, output_tokens),
        }))
        .into_response();
    }

    let mut sse = Sse::default();
    sse.named(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(input_tokens, 1),
            },
        }),
    );
    sse.named("ping", &json!({"type": "ping"}));
    for (index, block) in blocks.iter().enumerate() {
        let start = match block["type"].as_str() {
            Some("thinking") => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Some("text") => json!({"type": "text", "text": ""}),
            _ => json!({
                "type": "tool_use",
                "id": block["id"],
                "name": block["name"],
                "input": {},
            }),
        };
        sse.named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        let delta = |sse: &mut Sse, delta: Value| {
            sse.named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        };
        match block["type"].as_str() {
            Some("thinking") => {
                for piece in pieces(block["thinking"].as_str().unwrap_or(""), 24) {
                    delta(
                        &mut sse,
                        json!({"type": "thinking_delta", "thinking": piece}),
                    );
                }
                delta(
                    &mut sse,
                    json!({"type": "signature_delta", "signature": SIGNATURE}),
                );
            }
            Some("text") => {
                for piece in pieces(block["text"].as_str().unwrap_or(""), 12) {
                    delta(&mut sse, json!({"type": "text_delta", "text": piece}));
                }
            }
            _ => {
                for piece in pieces(&block["input"].to_string(), 16) {
                    delta(
                        &mut sse,
                        json!({"type": "input_json_delta", "partial_json": piece}),
                    );
                }
            }
        }
        sse.named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    sse.named(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens},
        }),
    );
    sse.named("message_stop", &json!({"type": "message_stop"}));
    sse.into_response()
}

fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    })
}

/// The reply's content blocks, as the non-streaming message carries them.
fn blocks(stub: &LlmStub, plan: &Plan) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(thinking) = &plan.thinking {
        blocks.push(json!({"type": "thinking", "thinking": thinking, "signature": SIGNATURE}));
    }
    if let Some(text) = &plan.text {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(call) = &plan.tool_call {
        blocks.push(json!({
            "type": "tool_use",
            "id": stub.id("toolu_"),
            "name": call.name,
            "input": call.arguments,
        }));
    }
    blocks
}

pub(crate) async fn count_tokens(
    State(stub): State<LlmStub>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = Call {
        api: Api::Anthropic,
        headers: &headers,
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    match stub.count(call, normalize::anthropic) {
        Ok(_) => Json(json!({"input_tokens": tokens(body.len())})).into_response(),
        Err(response) => response,
    }
}
