//! OpenAI Responses: `POST /v1/responses`. Streamed as `response.created`,
//! `response.in_progress`, then per output item `response.output_item.added`,
//! its deltas and `response.output_item.done`, and `response.completed`
//! with usage; or the final response object as JSON.
//!
//! Items: `reasoning` (summary text deltas), `message` (`output_text`
//! content part and deltas), `function_call` (argument deltas) or, for a
//! freeform tool, `custom_tool_call` (input deltas).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::normalize::{self, Api};
use crate::script::Plan;
use crate::server::{Call, LlmStub, Sse, now_secs, pieces, tokens};

/// Numbers events with `sequence_number`, as the real stream does.
struct Events {
    sse: Sse,
    seq: u64,
}

impl Events {
    fn emit(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        self.sse.named(kind, &data);
    }
}

pub(crate) async fn create(
    State(stub): State<LlmStub>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = Call {
        api: Api::Responses,
        headers: &headers,
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    let (request, plan) = match stub.generate(call, normalize::responses) {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let items = items(&stub, &plan);
    let input_tokens = tokens(body.len());
    let output_tokens = tokens(items.iter().map(|i| i.to_string().len()).sum());
    let reasoning_tokens = plan.thinking.as_ref().map_or(0, |t| tokens(t.len()));
    let response = json!({
        "id": stub.id("resp_"),
        "object": "response",
        "created_at": now_secs(),
        "status": "in_progress",
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": null,
        "metadata": {},
    });
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    });
    let mut completed = response.clone();
    completed["status"] = json!("completed");
    completed["output"] = json!(items);
    completed["usage"] = usage;
    if !request.stream {
        return Json(completed).into_response();
    }

    let mut events = Events {
        sse: Sse::default(),
        seq: 0,
    };
    events.emit("response.created", json!({"response": &response}));
    events.emit("response.in_progress", json!({"response": response}));
    for (output_index, item) in items.iter().enumerate() {
        stream_item(&mut events, output_index, item);
    }
    events.emit("response.completed", json!({"response": completed}));
    events.sse.into_response()
}

/// The reply's output items, finished.
fn items(stub: &LlmStub, plan: &Plan) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(thinking) = &plan.thinking {
        items.push(json!({
            "id": stub.id("rs_"),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": thinking}],
        }));
    }
    if let Some(text) = &plan.text {
        items.push(json!({
            "id": stub.id("msg_"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }));
    }
    if let Some(call) = &plan.tool_call {
        let item = match &call.input {
            Some(input) => json!({
                "id": stub.id("ctc_"),
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": stub.id("call_"),
                "name": call.name,
                "input": input,
            }),
            None => json!({
                "id": stub.id("fc_"),
                "type": "function_call",
                "status": "completed",
                "call_id": stub.id("call_"),
                "name": call.name,
                "arguments": call.arguments_json(),
            }),
        };
        items.push(item);
    }
    items
}

fn stream_item(events: &mut Events, output_index: usize, item: &Value) {
    let item_id = item["id"].clone();
    let mut added = item.clone();
    match item["type"].as_str() {
        Some("reasoning") => added["summary"] = json!([]),
        Some("message") => {
            added["status"] = json!("in_progress");
            added["content"] = json!([]);
        }
        Some("function_call") => {
            added["status"] = json!("in_progress");
            added["arguments"] = json!("");
        }
        _ => {
            added["status"] = json!("in_progress");
            added["input"] = json!("");
        }
    }
    events.emit(
        "response.output_item.added",
        json!({"output_index": output_index, "item": added}),
    );
    let at = json!({"item_id": item_id, "output_index": output_index});
    let with = |extra: Value| {
        let mut v = at.clone();
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    match item["type"].as_str() {
        Some("reasoning") => {
            let text = item["summary"][0]["text"].as_str().unwrap_or("");
            let part = json!({"type": "summary_text", "text": text});
            events.emit(
                "response.reasoning_summary_part.added",
                with(json!({"summary_index": 0, "part": {"type": "summary_text", "text": ""}})),
            );
            for piece in pieces(text, 24) {
                events.emit(
                    "response.reasoning_summary_text.delta",
                    with(json!({"summary_index": 0, "delta": piece})),
                );
            }
            events.emit(
                "response.reasoning_summary_text.done",
                with(json!({"summary_index": 0, "text": text})),
            );
            events.emit(
                "response.reasoning_summary_part.done",
                with(json!({"summary_index": 0, "part": part})),
            );
        }
        Some("message") => {
            let part = item["content"][0].clone();
            let text = part["text"].as_str().unwrap_or("");
            events.emit(
                "response.content_part.added",
                with(json!({
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                })),
            );
            for piece in pieces(text, 12) {
                events.emit(
                    "response.output_text.delta",
                    with(json!({"content_index": 0, "delta": piece, "logprobs": []})),
                );
            }
            events.emit(
                "response.output_text.done",
                with(json!({"content_index": 0, "text": text, "logprobs": []})),
            );
            events.emit(
                "response.content_part.done",
                with(json!({"content_index": 0, "part": part})),
            );
        }
        Some("function_call") => {
            let arguments = item["arguments"].as_str().unwrap_or("");
            for piece in pieces(arguments, 16) {
                events.emit(
                    "response.function_call_arguments.delta",
                    with(json!({"delta": piece})),
                );
            }
            events.emit(
                "response.function_call_arguments.done",
                with(json!({"arguments": arguments})),
            );
        }
        _ => {
            let input = item["input"].as_str().unwrap_or("");
            for piece in pieces(input, 16) {
                events.emit(
                    "response.custom_tool_call_input.delta",
                    with(json!({"delta": piece})),
                );
            }
            events.emit(
                "response.custom_tool_call_input.done",
                with(json!({"input": input})),
            );
        }
    }
    events.emit(
        "response.output_item.done",
        json!({"output_index": output_index, "item": item}),
    );
}
