//! One internal shape for the requests of the four APIs.
//!
//! Rules match on this shape, never on an API's own fields, so one script
//! drives Claude (Anthropic Messages), Codex (OpenAI Responses), opencode
//! (Chat Completions) and Gemini CLI alike. Normalisation is lenient: a
//! field it does not know is ignored, a field of an unexpected type reads as
//! absent, and nothing here rejects a request.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which wire API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// OpenAI Responses (`/v1/responses`).
    Responses,
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    Chat,
    /// Gemini (`/v1beta/models/{model}:generateContent`).
    Gemini,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// A message that only carries tool output (Chat `tool` messages,
    /// Responses `function_call_output` items).
    Tool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    /// The message's plain text parts, joined by newlines; tool inputs and
    /// outputs, images and thinking are not text.
    pub text: String,
    /// Names of the tools this (assistant) message calls.
    pub tool_calls: Vec<String>,
    /// How many tool results this message carries.
    pub tool_results: usize,
}

impl Message {
    fn new(role: Role) -> Self {
        Message {
            role,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_results: 0,
        }
    }

    /// Adds a text block. Harness notes the agent injects into user turns
    /// (Claude Code's `<system-reminder>` blocks: skill lists, todo hints)
    /// are left out: they are not what the user said, and their words
    /// ("create", "append", ...) would match rules meant for the user's.
    fn push_text(&mut self, text: &str) {
        let said = without_reminders(text);
        if !said.trim().is_empty() {
            push_line(&mut self.text, &said);
        }
    }
}

const REMINDER_OPEN: &str = "<system-reminder>";
const REMINDER_CLOSE: &str = "</system-reminder>";

/// `text` without its `<system-reminder>…</system-reminder>` spans (an
/// unclosed one runs to the end).
fn without_reminders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(REMINDER_OPEN) {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find(REMINDER_CLOSE) {
            Some(end) => &rest[start + end + REMINDER_CLOSE.len()..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// A tool the request offers the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    /// The JSON schema of its arguments, when it has one.
    pub schema: Option<Value>,
    /// A Responses `custom` tool: its call carries free text (`input`), not
    /// JSON arguments (Codex's freeform `apply_patch`).
    pub freeform: bool,
}

impl Tool {
    /// Whether its argument schema declares a top-level property `key`.
    pub fn has_property(&self, key: &str) -> bool {
        self.schema
            .as_ref()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key(key))
    }
}

/// A request of any API, reduced to what rules look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub api: Api,
    pub model: String,
    pub stream: bool,
    /// System prompt text (Anthropic `system`, Responses `instructions` and
    /// system/developer messages, Chat system/developer messages, Gemini
    /// `systemInstruction`), joined by newlines.
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
}

impl Request {
    fn new(api: Api, model: String, stream: bool) -> Self {
        Request {
            api,
            model,
            stream,
            system: String::new(),
            messages: Vec::new(),
            tools: Vec::new(),
        }
    }

    /// The text of the most recent user message that has any text. A
    /// message carrying only tool results has none, so after a tool call
    /// this is still the prompt that started the turn.
    pub fn last_user_text(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User && !m.text.trim().is_empty())
            .map_or("", |m| m.text.as_str())
    }

    /// Whether the last turn (the messages after the last assistant
    /// message) carries a tool result.
    pub fn has_tool_result(&self) -> bool {
        self.messages
            .iter()
            .rev()
            .take_while(|m| m.role != Role::Assistant)
            .any(|m| m.tool_results > 0)
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.name.clone()).collect()
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// The agent's working directory, as its prompts state it: Codex's
    /// `<cwd>…</cwd>`, Claude Code's and opencode's `Working directory: …`
    /// (also `Primary working directory: …`), Gemini CLI's `I'm currently
    /// working in the directory: …`. Only absolute paths count; the system
    /// prompt is searched first, then the messages in order.
    pub fn cwd(&self) -> Option<String> {
        std::iter::once(self.system.as_str())
            .chain(self.messages.iter().map(|m| m.text.as_str()))
            .find_map(cwd_in)
    }
}

fn cwd_in(text: &str) -> Option<String> {
    const MARKERS: [&str; 3] = [
        "working directory:",
        "Working directory:",
        "I'm currently working in the directory:",
    ];
    if let Some(start) = text.find("<cwd>") {
        let rest = &text[start + "<cwd>".len()..];
        if let Some(end) = rest.find("</cwd>") {
            let path = rest[..end].trim();
            if path.starts_with('/') {
                return Some(path.to_owned());
            }
        }
    }
    text.lines().find_map(|line| {
        MARKERS.iter().find_map(|marker| {
            let at = line.find(marker)?;
            let path = line[at + marker.len()..].trim().trim_matches('`');
            path.starts_with('/').then(|| path.to_owned())
        })
    })
}

fn push_line(into: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !into.is_empty() {
        into.push('\n');
    }
    into.push_str(text);
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Text of a content value: a string, or an array of strings and parts
/// with a `text` field (`text`, `input_text`, `output_text`), other parts
/// (images, tool calls and results, thinking) skipped.
fn plain_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Value::String(s) => push_line(&mut out, s),
                    Value::Object(_) => {
                        let kind = str_field(part, "type").unwrap_or("text");
                        if matches!(kind, "text" | "input_text" | "output_text")
                            && let Some(t) = str_field(part, "text")
                        {
                            push_line(&mut out, t);
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        _ => String::new(),
    }
}

fn model_and_stream(body: &Value) -> (String, bool) {
    (
        str_field(body, "model").unwrap_or_default().to_owned(),
        body.get("stream").and_then(Value::as_bool).unwrap_or(false),
    )
}

/// Anthropic Messages: `system` (string or text blocks), `messages` whose
/// content is a string or blocks (`text`, `tool_use`, `tool_result`, …),
/// `tools` with `input_schema` (server tools have only a `type`/`name`).
pub fn anthropic(body: &Value) -> Request {
    let (model, stream) = model_and_stream(body);
    let mut req = Request::new(Api::Anthropic, model, stream);
    if let Some(system) = body.get("system") {
        req.system = plain_text(system);
    }
    for m in array(body, "messages") {
        let role = match str_field(m, "role") {
            Some("assistant") => Role::Assistant,
            // Newer clients put system text between the turns (Claude Code
            // sends its environment that way): it belongs to the system
            // prompt, not to what the user said.
            Some("system") => {
                if let Some(content) = m.get("content") {
                    push_line(&mut req.system, &plain_text(content));
                }
                continue;
            }
            _ => Role::User,
        };
        let mut msg = Message::new(role);
        match m.get("content") {
            Some(Value::String(s)) => msg.push_text(s),
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    match str_field(block, "type") {
                        Some("text") => msg.push_text(str_field(block, "text").unwrap_or("")),
                        Some("tool_use" | "server_tool_use") => {
                            msg.tool_calls
                                .push(str_field(block, "name").unwrap_or("").to_owned());
                        }
                        Some("tool_result") => msg.tool_results += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        req.messages.push(msg);
    }
    for t in array(body, "tools") {
        if let Some(name) = str_field(t, "name") {
            req.tools.push(Tool {
                name: name.to_owned(),
                schema: t.get("input_schema").cloned(),
                freeform: false,
            });
        }
    }
    req
}

/// OpenAI Responses: `instructions`, `input` (a string or items: messages
/// with roles, `function_call`/`custom_tool_call`, their `…_output`s,
/// `reasoning`), `tools` (`function` with `parameters`, `custom` freeform
/// tools, built-ins such as `local_shell` named by their type).
pub fn responses(body: &Value) -> Request {
    let (model, stream) = model_and_stream(body);
    let mut req = Request::new(Api::Responses, model, stream);
    if let Some(instructions) = str_field(body, "instructions") {
        instructions.clone_into(&mut req.system);
    }
    match body.get("input") {
        Some(Value::String(s)) => {
            let mut msg = Message::new(Role::User);
            msg.push_text(s);
            req.messages.push(msg);
        }
        Some(Value::Array(items)) => {
            for item in items {
                let kind = str_field(item, "type").unwrap_or("message");
                match kind {
                    "message" => {
                        let text = item.get("content").map(plain_text).unwrap_or_default();
                        match str_field(item, "role") {
                            Some("system" | "developer") => push_line(&mut req.system, &text),
                            Some("assistant") => {
                                let mut msg = Message::new(Role::Assistant);
                                msg.push_text(&text);
                                req.messages.push(msg);
                            }
                            _ => {
                                let mut msg = Message::new(Role::User);
                                msg.push_text(&text);
                                req.messages.push(msg);
                            }
                        }
                    }
                    "function_call" | "custom_tool_call" => {
                        let mut msg = Message::new(Role::Assistant);
                        msg.tool_calls
                            .push(str_field(item, "name").unwrap_or("").to_owned());
                        req.messages.push(msg);
                    }
                    "local_shell_call" | "web_search_call" => {
                        let mut msg = Message::new(Role::Assistant);
                        msg.tool_calls
                            .push(kind.trim_end_matches("_call").to_owned());
                        req.messages.push(msg);
                    }
                    k if k.ends_with("_call_output") => {
                        let mut msg = Message::new(Role::Tool);
                        msg.tool_results = 1;
                        req.messages.push(msg);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    for t in array(body, "tools") {
        let kind = str_field(t, "type").unwrap_or("function");
        let name = str_field(t, "name").unwrap_or(kind);
        req.tools.push(Tool {
            name: name.to_owned(),
            schema: t.get("parameters").cloned(),
            freeform: kind == "custom",
        });
    }
    req
}

/// OpenAI Chat Completions: `messages` with roles `system`/`developer`,
/// `user`, `assistant` (with `tool_calls`), `tool` (and legacy
/// `function`); `tools` of type `function` (and legacy `functions`).
pub fn chat(body: &Value) -> Request {
    let (model, stream) = model_and_stream(body);
    let mut req = Request::new(Api::Chat, model, stream);
    for m in array(body, "messages") {
        let text = m.get("content").map(plain_text).unwrap_or_default();
        match str_field(m, "role") {
            Some("system" | "developer") => push_line(&mut req.system, &text),
            Some("assistant") => {
                let mut msg = Message::new(Role::Assistant);
                msg.push_text(&text);
                for call in array(m, "tool_calls") {
                    let name = call
                        .get("function")
                        .and_then(|f| str_field(f, "name"))
                        .unwrap_or("");
                    msg.tool_calls.push(name.to_owned());
                }
                if let Some(name) = m.get("function_call").and_then(|f| str_field(f, "name")) {
                    msg.tool_calls.push(name.to_owned());
                }
                req.messages.push(msg);
            }
            Some("tool" | "function") => {
                let mut msg = Message::new(Role::Tool);
                msg.tool_results = 1;
                req.messages.push(msg);
            }
            _ => {
                let mut msg = Message::new(Role::User);
                msg.push_text(&text);
                req.messages.push(msg);
            }
        }
    }
    for t in array(body, "tools") {
        let function = t.get("function").unwrap_or(t);
        if let Some(name) = str_field(function, "name") {
            req.tools.push(Tool {
                name: name.to_owned(),
                schema: function.get("parameters").cloned(),
                freeform: false,
            });
        }
    }
    for f in array(body, "functions") {
        if let Some(name) = str_field(f, "name") {
            req.tools.push(Tool {
                name: name.to_owned(),
                schema: f.get("parameters").cloned(),
                freeform: false,
            });
        }
    }
    req
}

/// Gemini `generateContent`: `systemInstruction`, `contents` (roles `user`
/// and `model`; parts `text` (thought parts skipped), `functionCall`,
/// `functionResponse`), `tools[].functionDeclarations` with `parameters` or
/// `parametersJsonSchema`. The REST API takes snake_case too, so both
/// spellings are read. The model and streaming come from the URL.
pub fn gemini(body: &Value, model: &str, stream: bool) -> Request {
    let mut req = Request::new(Api::Gemini, model.to_owned(), stream);
    if let Some(system) = either(body, "systemInstruction", "system_instruction") {
        req.system = match system {
            Value::String(s) => s.clone(),
            other => gemini_text(array(other, "parts")),
        };
    }
    for content in array(body, "contents") {
        let role = match str_field(content, "role") {
            Some("model") => Role::Assistant,
            _ => Role::User,
        };
        let parts = array(content, "parts");
        let mut msg = Message::new(role);
        msg.text = gemini_text(parts);
        for part in parts {
            if let Some(call) = either(part, "functionCall", "function_call") {
                msg.tool_calls
                    .push(str_field(call, "name").unwrap_or("").to_owned());
            }
            if either(part, "functionResponse", "function_response").is_some() {
                msg.tool_results += 1;
            }
        }
        req.messages.push(msg);
    }
    for tool in array(body, "tools") {
        let declarations = tool
            .get("functionDeclarations")
            .or_else(|| tool.get("function_declarations"))
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for d in declarations {
            if let Some(name) = str_field(d, "name") {
                req.tools.push(Tool {
                    name: name.to_owned(),
                    schema: either(d, "parametersJsonSchema", "parameters_json_schema")
                        .or_else(|| d.get("parameters"))
                        .cloned(),
                    freeform: false,
                });
            }
        }
    }
    req
}

/// A field under its camelCase or its snake_case name.
fn either<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn gemini_text(parts: &[Value]) -> String {
    let mut out = String::new();
    for part in parts {
        let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
        if !thought && let Some(t) = str_field(part, "text") {
            push_line(&mut out, t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Claude Code's shape: system blocks with cache control, a user turn
    /// with a system reminder and the prompt, the assistant's tool use, the
    /// tool result, thinking config and metadata it also sends.
    fn claude_body() -> Value {
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 32000,
            "stream": true,
            "system": [
                {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                {"type": "text", "text": "Here is useful information about the environment you are running in:\n<env>\nWorking directory: /work/ws/project\nIs directory a git repo: Yes\nPlatform: linux\n</env>", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, you can use the following context.\n</system-reminder>"},
                    {"type": "text", "text": "Please create hello.txt", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Writing it.", "signature": "abc"},
                    {"type": "text", "text": "I'll write the file."},
                    {"type": "tool_use", "id": "toolu_01", "name": "Write", "input": {"file_path": "/work/ws/project/hello.txt", "content": "hi"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "File created successfully"}
                ]}
            ],
            "tools": [
                {"name": "Bash", "description": "Runs a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
                {"name": "Write", "description": "Writes a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}, "required": ["file_path", "content"], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
            ],
            "metadata": {"user_id": "user_abc_account__session_1"},
            "thinking": {"type": "enabled", "budget_tokens": 4000},
            "context_management": {"edits": []},
            "temperature": 1
        })
    }

    #[test]
    fn anthropic_request() {
        let req = anthropic(&claude_body());
        assert_eq!(req.api, Api::Anthropic);
        assert_eq!(req.model, "claude-sonnet-4-5-20250929");
        assert!(req.stream);
        assert!(req.system.starts_with("You are Claude Code"));
        assert_eq!(req.messages.len(), 3);
        assert_eq!(req.messages[1].role, Role::Assistant);
        assert_eq!(req.messages[1].tool_calls, ["Write"]);
        assert_eq!(req.messages[1].text, "I'll write the file.");
        assert_eq!(req.messages[2].tool_results, 1);
        assert!(req.last_user_text().ends_with("Please create hello.txt"));
        assert!(req.has_tool_result());
        assert_eq!(req.tool_names(), ["Bash", "Write", "web_search"]);
        let write = req.tool("Write").unwrap();
        assert!(write.has_property("file_path"));
        assert!(!write.has_property("path"));
        assert!(req.tool("web_search").unwrap().schema.is_none());
        assert_eq!(req.cwd().as_deref(), Some("/work/ws/project"));
    }

    #[test]
    fn system_messages_between_turns_join_the_system_prompt() {
        let req = anthropic(&json!({
            "model": "m",
            "system": "base",
            "messages": [
                {"role": "user", "content": "Please append a line"},
                {"role": "system", "content": [{"type": "text", "text": "# Environment\ncreate freely"}]}
            ]
        }));
        assert_eq!(req.last_user_text(), "Please append a line");
        assert!(req.system.contains("# Environment"));
        assert_eq!(req.messages.len(), 1);
    }

    #[test]
    fn harness_reminders_are_not_what_the_user_said() {
        let req = anthropic(&json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>Skills: create ANY chart</system-reminder>"},
                    {"type": "text", "text": "Please take your time<system-reminder>todo: append</system-reminder> now"}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>create files freely</system-reminder>"}
                ]}
            ]
        }));
        assert_eq!(req.last_user_text(), "Please take your time now");
        assert_eq!(without_reminders("a<system-reminder>b"), "a");
    }

    #[test]
    fn anthropic_string_system_and_content() {
        let req = anthropic(&json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 512,
            "system": "Generate a concise title for this conversation.",
            "messages": [{"role": "user", "content": "create hello.txt"}]
        }));
        assert!(!req.stream);
        assert_eq!(
            req.system,
            "Generate a concise title for this conversation."
        );
        assert_eq!(req.last_user_text(), "create hello.txt");
        assert!(!req.has_tool_result());
        assert!(req.tools.is_empty());
        assert_eq!(req.cwd(), None);
    }

    /// Codex's shape: instructions, a developer message, the environment
    /// context and the prompt as user messages, reasoning, a freeform
    /// `apply_patch` call and its output; function and custom tools.
    fn codex_body() -> Value {
        json!({
            "model": "gpt-5.3-codex",
            "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions instructions>approval policy: on-request</permissions instructions>"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>\n  <cwd>/work/ws/codex</cwd>\n  <shell>bash</shell>\n</environment_context>"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "create hello.txt please"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
                {"type": "custom_tool_call", "id": "ctc_1", "status": "completed", "call_id": "call_1", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch\n"},
                {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Success."}
            ],
            "tools": [
                {"type": "function", "name": "shell_command", "description": "Runs a shell command", "strict": false, "parameters": {"type": "object", "properties": {"command": {"type": "string"}, "workdir": {"type": "string"}}, "required": ["command"], "additionalProperties": false}},
                {"type": "custom", "name": "apply_patch", "description": "Use the apply_patch tool to edit files.", "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
                {"type": "web_search"}
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "store": false,
            "stream": true,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "019a-session",
            "text": {"verbosity": "low"}
        })
    }

    #[test]
    fn responses_request() {
        let req = responses(&codex_body());
        assert_eq!(req.api, Api::Responses);
        assert_eq!(req.model, "gpt-5.3-codex");
        assert!(req.stream);
        assert!(req.system.starts_with("You are Codex"));
        assert!(req.system.contains("approval policy"));
        assert_eq!(req.last_user_text(), "create hello.txt please");
        assert!(req.has_tool_result());
        assert_eq!(
            req.tool_names(),
            ["shell_command", "apply_patch", "web_search"]
        );
        assert!(req.tool("apply_patch").unwrap().freeform);
        assert!(!req.tool("shell_command").unwrap().freeform);
        assert!(req.tool("shell_command").unwrap().has_property("workdir"));
        assert_eq!(req.cwd().as_deref(), Some("/work/ws/codex"));
    }

    #[test]
    fn responses_function_call_output_and_string_input() {
        let mut body = codex_body();
        body["input"] = json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run ls"}]},
            {"type": "function_call", "name": "shell_command", "arguments": "{\"command\":\"ls\"}", "call_id": "c1"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt"}
        ]);
        let req = responses(&body);
        assert!(req.has_tool_result());
        assert_eq!(req.messages[1].tool_calls, ["shell_command"]);

        let req = responses(&json!({"model": "gpt-5", "input": "hello there"}));
        assert!(!req.stream);
        assert_eq!(req.last_user_text(), "hello there");
        assert!(!req.has_tool_result());
    }

    /// opencode's shape (`@ai-sdk/openai-compatible`): system messages,
    /// user content as parts, assistant `tool_calls`, `tool` messages.
    fn opencode_body() -> Value {
        json!({
            "model": "stub-model",
            "messages": [
                {"role": "system", "content": "You are opencode, an interactive CLI tool.\n<env>\n  Working directory: /work/ws/oc\n  Is directory a git repo: no\n</env>"},
                {"role": "user", "content": [{"type": "text", "text": "create hello.txt"}]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "write", "arguments": "{\"filePath\":\"/work/ws/oc/hello.txt\",\"content\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Wrote file successfully."}
            ],
            "tools": [
                {"type": "function", "function": {"name": "read", "description": "Reads a file", "parameters": {"type": "object", "properties": {"filePath": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "write", "description": "Writes a file", "parameters": {"type": "object", "properties": {"content": {"type": "string"}, "filePath": {"type": "string"}}, "required": ["content", "filePath"]}}}
            ],
            "tool_choice": "auto",
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 32000,
            "temperature": 0
        })
    }

    #[test]
    fn chat_request() {
        let req = chat(&opencode_body());
        assert_eq!(req.api, Api::Chat);
        assert!(req.stream);
        assert!(req.system.starts_with("You are opencode"));
        assert_eq!(req.messages.len(), 3);
        assert_eq!(req.messages[1].tool_calls, ["write"]);
        assert_eq!(req.messages[2].role, Role::Tool);
        assert_eq!(req.last_user_text(), "create hello.txt");
        assert!(req.has_tool_result());
        assert_eq!(req.tool_names(), ["read", "write"]);
        assert!(req.tool("write").unwrap().has_property("filePath"));
        assert_eq!(req.cwd().as_deref(), Some("/work/ws/oc"));
    }

    #[test]
    fn chat_title_side_call_has_no_tools_and_no_tool_result() {
        let req = chat(&json!({
            "model": "stub-model",
            "messages": [
                {"role": "system", "content": "You are a title generator. You output ONLY a thread title."},
                {"role": "user", "content": "Generate a title for this conversation:\n"},
                {"role": "user", "content": "create hello.txt"}
            ],
            "stream": false
        }));
        assert!(req.tools.is_empty());
        assert!(!req.has_tool_result());
        assert_eq!(req.last_user_text(), "create hello.txt");
        assert!(req.system.contains("title generator"));
    }

    /// Gemini CLI's shape (`@google/genai`): camelCase, the setup context
    /// as the first user turn, a functionCall turn, a functionResponse turn,
    /// declarations with `parametersJsonSchema`.
    fn gemini_body() -> Value {
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "This is the Gemini CLI. We are setting up the context for our chat.\nToday's date is Monday.\nMy operating system is: linux\nI'm currently working in the directory: /work/ws/gem\n"}]},
                {"role": "model", "parts": [{"text": "Got it. Thanks for the context!"}]},
                {"role": "user", "parts": [{"text": "create hello.txt"}]},
                {"role": "model", "parts": [{"text": "thinking...", "thought": true}, {"functionCall": {"name": "write_file", "args": {"file_path": "/work/ws/gem/hello.txt", "content": "x"}}, "thoughtSignature": "sig"}]},
                {"role": "user", "parts": [{"functionResponse": {"id": "write_file-1", "name": "write_file", "response": {"output": "Successfully created"}}}]}
            ],
            "systemInstruction": {"role": "user", "parts": [{"text": "You are an interactive CLI agent specializing in software engineering tasks."}]},
            "tools": [{"functionDeclarations": [
                {"name": "read_file", "description": "Reads a file", "parametersJsonSchema": {"type": "object", "properties": {"absolute_path": {"type": "string"}}}},
                {"name": "write_file", "description": "Writes a file", "parametersJsonSchema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}, "required": ["file_path", "content"]}}
            ]}],
            "generationConfig": {"temperature": 0, "topP": 1, "thinkingConfig": {"includeThoughts": true, "thinkingBudget": -1}}
        })
    }

    #[test]
    fn gemini_request() {
        let req = gemini(&gemini_body(), "gemini-2.5-pro", true);
        assert_eq!(req.api, Api::Gemini);
        assert_eq!(req.model, "gemini-2.5-pro");
        assert!(req.stream);
        assert!(req.system.starts_with("You are an interactive CLI agent"));
        assert_eq!(req.messages.len(), 5);
        assert_eq!(req.messages[3].role, Role::Assistant);
        assert_eq!(req.messages[3].tool_calls, ["write_file"]);
        assert_eq!(req.messages[3].text, "", "thought parts are not text");
        assert_eq!(req.last_user_text(), "create hello.txt");
        assert!(req.has_tool_result());
        assert_eq!(req.tool_names(), ["read_file", "write_file"]);
        assert!(req.tool("write_file").unwrap().has_property("file_path"));
        assert_eq!(req.cwd().as_deref(), Some("/work/ws/gem"));
    }

    #[test]
    fn gemini_snake_case_and_legacy_parameters() {
        let req = gemini(
            &json!({
                "system_instruction": {"parts": [{"text": "Be brief."}]},
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"function_declarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}}}]}]
            }),
            "gemini-2.5-flash",
            false,
        );
        assert_eq!(req.system, "Be brief.");
        assert_eq!(req.last_user_text(), "hi");
        assert!(req.tool("f").unwrap().has_property("x"));
        assert!(!req.has_tool_result());
    }

    #[test]
    fn tool_result_only_counts_in_the_last_turn() {
        let mut body = opencode_body();
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": "Done."}));
        messages.push(json!({"role": "user", "content": "now something else"}));
        let req = chat(&body);
        assert!(!req.has_tool_result());
        assert_eq!(req.last_user_text(), "now something else");
    }

    #[test]
    fn odd_shapes_are_ignored_not_rejected() {
        let req = anthropic(&json!({"messages": "nope", "tools": {"a": 1}, "system": 5}));
        assert!(req.messages.is_empty() && req.tools.is_empty() && req.system.is_empty());
        let req = chat(&json!({"messages": [{"role": "user", "content": null}, 7]}));
        assert_eq!(req.last_user_text(), "");
        let req = responses(
            &json!({"input": [{"type": "brand_new_item"}], "tools": [{"type": "function"}]}),
        );
        assert!(req.messages.is_empty());
        assert_eq!(req.tool_names(), ["function"]);
    }
}
