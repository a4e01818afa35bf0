//! Each API driven over HTTP with realistic agent requests against the
//! end-to-end script: streamed bodies parsed back into events and checked
//! for the order and shape each client expects.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Event, parse_sse, send, start, start_edit_file};
use sam_llmstub::{Config, Script};
use serde_json::{Value, json};

const CONTENT: &str = "hello from the agent\n";

fn names(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.name.clone().unwrap()).collect()
}

/// Collapses runs of the same name, so the order of kinds is easy to assert.
fn dedup(names: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = names.iter().map(String::as_str).collect();
    out.dedup();
    out
}

fn claude_request(messages: &Value) -> Value {
    json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": "<env>\nWorking directory: /ws/claude\nPlatform: linux\n</env>", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": messages,
        "tools": [
            {"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"name": "Write", "description": "Write a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}, "required": ["file_path", "content"]}}
        ],
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "a_field_from_the_future": {"x": [1, 2, 3]}
    })
}

#[tokio::test]
async fn anthropic_stream_calls_write_with_input_json_deltas() {
    let t = start_edit_file().await;
    let body = claude_request(&json!([{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>context</system-reminder>"},
        {"type": "text", "text": "Please create hello.txt"}
    ]}]));
    let (status, content_type, text) = send(
        t.client
            .post(format!("{}/v1/messages?beta=true", t.base))
            .header("x-api-key", "sk-ant-test")
            .header("anthropic-version", "2023-06-01")
            .header(
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14",
            )
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = parse_sse(&text);
    for e in &events {
        assert_eq!(
            e.json()["type"],
            e.name.clone().unwrap(),
            "event name = data.type"
        );
    }
    let names = names(&events);
    assert_eq!(
        dedup(&names),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = events[0].json();
    assert_eq!(start["message"]["role"], "assistant");
    assert_eq!(start["message"]["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(start["message"]["content"], json!([]));
    assert!(start["message"]["usage"]["input_tokens"].as_u64().unwrap() > 0);

    let block = |index: u64| -> (Value, Vec<Value>) {
        let start = events
            .iter()
            .map(Event::json)
            .find(|d| d["type"] == "content_block_start" && d["index"] == index)
            .unwrap();
        let deltas = events
            .iter()
            .map(Event::json)
            .filter(|d| d["type"] == "content_block_delta" && d["index"] == index)
            .map(|d| d["delta"].clone())
            .collect();
        (start["content_block"].clone(), deltas)
    };
    let (text_block, text_deltas) = block(0);
    assert_eq!(text_block, json!({"type": "text", "text": ""}));
    let said: String = text_deltas
        .iter()
        .map(|d| {
            assert_eq!(d["type"], "text_delta");
            d["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(said, "I will create hello.txt.");

    let (tool_block, json_deltas) = block(1);
    assert_eq!(tool_block["type"], "tool_use");
    assert_eq!(tool_block["name"], "Write");
    assert_eq!(tool_block["input"], json!({}));
    assert!(tool_block["id"].as_str().unwrap().starts_with("toolu_"));
    assert!(json_deltas.len() > 1, "arguments arrive in pieces");
    let partial: String = json_deltas
        .iter()
        .map(|d| {
            assert_eq!(d["type"], "input_json_delta");
            d["partial_json"].as_str().unwrap()
        })
        .collect();
    let input: Value = serde_json::from_str(&partial).unwrap();
    assert_eq!(
        input,
        json!({"file_path": "/ws/claude/hello.txt", "content": CONTENT})
    );

    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn anthropic_tool_result_ends_the_turn_non_streaming() {
    let t = start_edit_file().await;
    let mut body = claude_request(&json!([
        {"role": "user", "content": "Please create hello.txt"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "/ws/claude/hello.txt", "content": CONTENT}}
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "File created"}]}]}
    ]));
    body["stream"] = json!(false);
    let (status, content_type, text) = send(
        t.client
            .post(format!("{}/v1/messages", t.base))
            .bearer_auth("oauth-token")
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("application/json"));
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Done: the file is written."}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn anthropic_side_calls_and_thinking() {
    let t = start_edit_file().await;
    // A title request: no tools, a different system prompt.
    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/messages?beta=true", t.base))
            .header("x-api-key", "k")
            .json(&json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 512,
                "system": [{"type": "text", "text": "Summarize this coding conversation in under 50 characters."}],
                "messages": [{"role": "user", "content": "Please create hello.txt"}],
                "stream": true
            })),
    )
    .await;
    assert_eq!(status, 200);
    let events = parse_sse(&text);
    let said: String = events
        .iter()
        .map(Event::json)
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(said, "Hello from llmstub.");
    assert_eq!(
        events[events.len() - 2].json()["delta"]["stop_reason"],
        "end_turn"
    );

    t.stub.set_script(
        Script::from_json(r#"[{"reply": {"thinking": "Let me think about it.", "text": "Hi."}}]"#)
            .unwrap(),
    );
    let (_, _, text) = send(
        t.client
            .post(format!("{}/v1/messages", t.base))
            .header("x-api-key", "k")
            .json(&json!({"model": "m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    let data: Vec<Value> = parse_sse(&text).iter().map(Event::json).collect();
    let thinking_start = data
        .iter()
        .find(|d| d["type"] == "content_block_start" && d["index"] == 0)
        .unwrap();
    assert_eq!(thinking_start["content_block"]["type"], "thinking");
    let deltas: Vec<&Value> = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta" && d["index"] == 0)
        .map(|d| &d["delta"])
        .collect();
    let thought: String = deltas
        .iter()
        .filter(|d| d["type"] == "thinking_delta")
        .map(|d| d["thinking"].as_str().unwrap())
        .collect();
    assert_eq!(thought, "Let me think about it.");
    assert_eq!(deltas.last().unwrap()["type"], "signature_delta");
    let text_start = data
        .iter()
        .find(|d| d["type"] == "content_block_start" && d["index"] == 1)
        .unwrap();
    assert_eq!(text_start["content_block"]["type"], "text");
}

#[tokio::test]
async fn anthropic_count_tokens() {
    let t = start_edit_file().await;
    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/messages/count_tokens?beta=true", t.base))
            .header("x-api-key", "k")
            .json(&claude_request(
                &json!([{"role": "user", "content": "create"}]),
            )),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let count: Value = serde_json::from_str(&text).unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() > 0);
}

fn codex_request(input: &Value, tools: &Value) -> Value {
    json!({
        "model": "gpt-5.3-codex",
        "instructions": "You are Codex, based on GPT-5.",
        "input": input,
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        "brand_new_option": true
    })
}

fn codex_prompt() -> Value {
    json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>\n  <cwd>/ws/codex</cwd>\n</environment_context>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "create hello.txt"}]}
    ])
}

async fn responses_events(t: &common::TestStub, body: &Value) -> Vec<Value> {
    let (status, content_type, text) = send(
        t.client
            .post(format!("{}/v1/responses", t.base))
            .bearer_auth("sk-test")
            .json(body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/event-stream"));
    let events = parse_sse(&text);
    for (i, e) in events.iter().enumerate() {
        let data = e.json();
        assert_eq!(data["type"], e.name.clone().unwrap());
        assert_eq!(data["sequence_number"], i);
    }
    events.iter().map(Event::json).collect()
}

#[tokio::test]
async fn responses_stream_message_then_function_call() {
    let t = start_edit_file().await;
    let tools = json!([
        {"type": "function", "name": "shell_command", "description": "Run", "strict": false,
         "parameters": {"type": "object", "properties": {"command": {"type": "string"}, "workdir": {"type": "string"}}, "required": ["command"]}},
        {"type": "web_search"}
    ]);
    let data = responses_events(&t, &codex_request(&codex_prompt(), &tools)).await;
    let kinds: Vec<String> = data
        .iter()
        .map(|d| d["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        dedup(&kinds),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(data[0]["response"]["status"], "in_progress");
    let said: String = data
        .iter()
        .filter(|d| d["type"] == "response.output_text.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(said, "I will create hello.txt.");
    let done: Vec<&Value> = data
        .iter()
        .filter(|d| d["type"] == "response.output_item.done")
        .collect();
    assert_eq!(done[0]["item"]["type"], "message");
    assert_eq!(
        done[0]["item"]["content"][0]["text"],
        "I will create hello.txt."
    );
    let call = &done[1]["item"];
    assert_eq!(done[1]["output_index"], 1);
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "shell_command");
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["workdir"], "/ws/codex");
    let streamed: String = data
        .iter()
        .filter(|d| d["type"] == "response.function_call_arguments.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, call["arguments"].as_str().unwrap());

    let completed = &data.last().unwrap()["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"].as_array().unwrap().len(), 2);
    let usage = &completed["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn responses_freeform_apply_patch_and_tool_output() {
    let t = start_edit_file().await;
    let tools = json!([
        {"type": "function", "name": "shell_command", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
        {"type": "custom", "name": "apply_patch", "description": "Edit files", "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}}
    ]);
    let data = responses_events(&t, &codex_request(&codex_prompt(), &tools)).await;
    let item = data
        .iter()
        .filter(|d| d["type"] == "response.output_item.done")
        .map(|d| d["item"].clone())
        .next_back()
        .unwrap();
    assert_eq!(item["type"], "custom_tool_call");
    assert_eq!(item["name"], "apply_patch");
    assert_eq!(
        item["input"],
        "*** Begin Patch\n*** Add File: hello.txt\n+hello from the agent\n*** End Patch\n"
    );
    let streamed: String = data
        .iter()
        .filter(|d| d["type"] == "response.custom_tool_call_input.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, item["input"].as_str().unwrap());

    let mut input = codex_prompt();
    input.as_array_mut().unwrap().extend([
        json!({"type": "custom_tool_call", "call_id": "call_9", "name": "apply_patch", "input": "*** Begin Patch"}),
        json!({"type": "custom_tool_call_output", "call_id": "call_9", "output": "Success. Updated: A hello.txt"}),
    ]);
    let data = responses_events(&t, &codex_request(&input, &tools)).await;
    let output = &data.last().unwrap()["response"]["output"];
    assert_eq!(output.as_array().unwrap().len(), 1);
    assert_eq!(output[0]["type"], "message");
    assert_eq!(
        output[0]["content"][0]["text"],
        "Done: the file is written."
    );
}

#[tokio::test]
async fn responses_non_streaming() {
    let t = start_edit_file().await;
    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/responses", t.base))
            .bearer_auth("sk")
            .json(&json!({"model": "gpt-5", "input": "say hi"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "Hello from llmstub."
    );
}

fn opencode_request(messages: &Value, stream: bool) -> Value {
    json!({
        "model": "stub-model",
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": "read", "parameters": {"type": "object", "properties": {"filePath": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "write", "parameters": {"type": "object", "properties": {"content": {"type": "string"}, "filePath": {"type": "string"}}, "required": ["content", "filePath"]}}}
        ],
        "tool_choice": "auto",
        "stream": stream,
        "stream_options": {"include_usage": true},
        "providerOptions": {"anything": true}
    })
}

#[tokio::test]
async fn chat_stream_tool_call_deltas_end_in_done() {
    let t = start_edit_file().await;
    let messages = json!([
        {"role": "system", "content": "You are opencode.\n<env>\n  Working directory: /ws/oc\n</env>"},
        {"role": "user", "content": [{"type": "text", "text": "create hello.txt"}]}
    ]);
    let (status, content_type, text) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("sk")
            .json(&opencode_request(&messages, true)),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/event-stream"));
    let events = parse_sse(&text);
    assert!(events.iter().all(|e| e.name.is_none()));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "I will create hello.txt.");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(calls.len() > 2);
    assert!(calls.iter().all(|c| c["index"] == 0));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "write");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert!(calls[1].get("id").is_none());
    let arguments: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(
        arguments,
        json!({"filePath": "/ws/oc/hello.txt", "content": CONTENT})
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn chat_non_streaming_after_tool_and_title_side_call() {
    let t = start_edit_file().await;
    let messages = json!([
        {"role": "user", "content": "create hello.txt"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "write", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Wrote file successfully."}
    ]);
    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("sk")
            .json(&opencode_request(&messages, false)),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    let choice = &completion["choices"][0];
    assert_eq!(choice["message"]["content"], "Done: the file is written.");
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"].get("tool_calls").is_none());

    let (_, _, text) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("sk")
            .json(&json!({
                "model": "stub-model",
                "messages": [
                    {"role": "system", "content": "You are a title generator."},
                    {"role": "user", "content": "create hello.txt"}
                ]
            })),
    )
    .await;
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Hello from llmstub."
    );
}

fn gemini_request(contents: &Value) -> Value {
    json!({
        "contents": contents,
        "systemInstruction": {"role": "user", "parts": [{"text": "You are an interactive CLI agent."}]},
        "tools": [{"functionDeclarations": [
            {"name": "read_file", "parametersJsonSchema": {"type": "object", "properties": {"absolute_path": {"type": "string"}}}},
            {"name": "write_file", "parametersJsonSchema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}, "required": ["file_path", "content"]}}
        ]}],
        "generationConfig": {"temperature": 0, "thinkingConfig": {"includeThoughts": true}},
        "someNewField": 1
    })
}

fn gemini_prompt() -> Value {
    json!([
        {"role": "user", "parts": [{"text": "This is the Gemini CLI.\nI'm currently working in the directory: /ws/gem\n"}]},
        {"role": "model", "parts": [{"text": "Got it."}]},
        {"role": "user", "parts": [{"text": "create hello.txt"}]}
    ])
}

#[tokio::test]
async fn gemini_stream_function_call() {
    let t = start_edit_file().await;
    let (status, content_type, text) = send(
        t.client
            .post(format!(
                "{}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                t.base
            ))
            .header("x-goog-api-key", "AIza-test")
            .json(&gemini_request(&gemini_prompt())),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/event-stream"));
    let chunks: Vec<Value> = parse_sse(&text).iter().map(Event::json).collect();
    assert!(chunks.len() > 2);
    for c in &chunks[..chunks.len() - 1] {
        assert!(c["candidates"][0].get("finishReason").is_none());
        assert_eq!(c["candidates"][0]["content"]["role"], "model");
    }
    let said: String = chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .clone()
        })
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(said, "I will create hello.txt.");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"name": "write_file", "args": {"file_path": "/ws/gem/hello.txt", "content": CONTENT}})
    );
    assert!(last["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    assert_eq!(last["modelVersion"], "gemini-2.5-pro");
}

#[tokio::test]
async fn gemini_generate_after_function_response_and_json_side_call() {
    let t = start_edit_file().await;
    let mut contents = gemini_prompt();
    contents.as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [{"functionCall": {"name": "write_file", "args": {}}}]}),
        json!({"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {"output": "ok"}}}]}),
    ]);
    let (status, _, text) = send(
        t.client
            .post(format!(
                "{}/v1beta/models/gemini-2.5-flash:generateContent?key=AIza",
                t.base
            ))
            .json(&gemini_request(&contents)),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    let candidate = &response["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(
        candidate["content"]["parts"],
        json!([{"text": "Done: the file is written."}])
    );

    // Gemini CLI's next-speaker check asks for JSON by schema.
    let (_, _, text) = send(
        t.client
            .post(format!(
                "{}/v1beta/models/gemini-2.5-flash:generateContent",
                t.base
            ))
            .header("x-goog-api-key", "AIza")
            .json(&json!({
                "contents": [{"role": "user", "parts": [{"text": "Analyze the preceding response."}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object", "properties": {"reasoning": {"type": "string"}, "next_speaker": {"type": "string", "enum": ["user", "model"]}}}}
            })),
    )
    .await;
    let response: Value = serde_json::from_str(&text).unwrap();
    let answer: Value = serde_json::from_str(
        response["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(answer["next_speaker"], "user");

    let (status, _, text) = send(
        t.client
            .post(format!(
                "{}/v1beta/models/gemini-2.5-pro:countTokens",
                t.base
            ))
            .header("x-goog-api-key", "AIza")
            .json(&json!({"contents": gemini_prompt()})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let count: Value = serde_json::from_str(&text).unwrap();
    assert!(count["totalTokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn default_reply_without_a_script() {
    let t = start(Config::default()).await;
    let (status, _, text) = send(
        t.client
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth("sk")
            .json(&json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(status, 200);
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "OK.");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
}
