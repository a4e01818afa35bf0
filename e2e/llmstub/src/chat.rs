//! OpenAI Chat Completions: `POST /v1/chat/completions`. Streamed as
//! `chat.completion.chunk`s (a role chunk, `reasoning_content` and
//! `content` deltas, `tool_calls` deltas: id, type and name first, then the
//! arguments in pieces; a final chunk with `finish_reason`; a usage chunk
//! when `stream_options.include_usage`) ending in `data: [DONE]`; or one
//! `chat.completion`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::normalize::{self, Api};
use crate::server::{Call, LlmStub, Sse, now_secs, pieces, tokens};

pub(crate) async fn completions(
    State(stub): State<LlmStub>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = Call {
        api: Api::Chat,
        headers: &headers,
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    let (request, plan) = match stub.generate(call, normalize::chat) {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let id = stub.id("chatcmpl-");
    let created = now_secs();
    let tool_call = plan.tool_call.as_ref().map(|c| {
        (
            stub.id("call_"),
            c.name.clone(),
            c.input.clone().unwrap_or_else(|| c.arguments_json()),
        )
    });
    let finish_reason = if tool_call.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let prompt_tokens = tokens(body.len());
    let completion_tokens = tokens(
        plan.text.as_ref().map_or(0, String::len)
            + plan.thinking.as_ref().map_or(0, String::len)
            + tool_call.as_ref().map_or(0, |c| c.2.len()),
    );
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });

    if !request.stream {
        let mut message = json!({"role": "assistant", "content": plan.text});
        if let Some(thinking) = &plan.thinking {
            message["reasoning_content"] = json!(thinking);
        }
        if let Some((call_id, name, arguments)) = &tool_call {
            message["tool_calls"] = json!([{
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }]);
        }
        return Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
        }))
        .into_response();
    }

    let mut sse = Sse::default();
    let chunk = |sse: &mut Sse, delta: Value, finish: Option<&str>| {
        let data = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish,
            }],
        });
        sse.data(&data.to_string());
    };
    chunk(&mut sse, json!({"role": "assistant", "content": ""}), None);
    if let Some(thinking) = &plan.thinking {
        for piece in pieces(thinking, 24) {
            chunk(&mut sse, json!({"reasoning_content": piece}), None);
        }
    }
    if let Some(text) = &plan.text {
        for piece in pieces(text, 12) {
            chunk(&mut sse, json!({"content": piece}), None);
        }
    }
    if let Some((call_id, name, arguments)) = &tool_call {
        chunk(
            &mut sse,
            json!({"tool_calls": [{
                "index": 0,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }]}),
            None,
        );
        for piece in pieces(arguments, 16) {
            chunk(
                &mut sse,
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                None,
            );
        }
    }
    chunk(&mut sse, json!({}), Some(finish_reason));
    let include_usage = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["stream_options"]["include_usage"].as_bool())
        .unwrap_or(false);
    if include_usage {
        let data = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        });
        sse.data(&data.to_string());
    }
    sse.data("[DONE]");
    sse.into_response()
}
