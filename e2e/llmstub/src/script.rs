//! Scripts: rules tried in order against a normalised request, the first
//! that matches choosing the reply. Matching looks only at the request's
//! content, never at how many requests came before, so the side calls
//! agents make (titles, token counts, routers) cannot shift a script.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::normalize::{Api, Request};

/// What a reply says when no rule matches.
pub const DEFAULT_TEXT: &str = "OK.";

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing the script: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("rule {index}: {message}")]
    Invalid { index: usize, message: String },
}

/// A list of rules plus the reply used when none matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Reply when no rule matches; default: the text [`DEFAULT_TEXT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Reply>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A label for the request log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub when: When,
    pub reply: Reply,
}

/// Conditions, all of which must hold; an empty `when` matches anything.
/// Text comparisons ignore case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The API the request came in on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// A substring of the most recent user message with text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_contains: Option<String>,
    /// A substring of the system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_contains: Option<String>,
    /// A substring of the raw request body (for anything else, e.g. a
    /// response schema's property name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Whether the last turn carries a tool result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_tool_result: Option<bool>,
    /// Whether the request offers any tools at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_tools: Option<bool>,
    /// A tool of this name (or of any of these names) is offered; exact,
    /// case-sensitive names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_offered: Option<OneOrMany<String>>,
}

/// What the model answers: optional thinking, optional text, optional
/// tool call, in that order. With a tool call the turn stops for the tool
/// (`tool_use`, `tool_calls`, a `function_call` item); otherwise it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Candidates, tried in order: the first whose name the request offers
    /// is called. A rule none of whose candidates is offered does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<OneOrMany<ToolCallSpec>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallSpec {
    /// The tool's name, or several names this candidate fits.
    pub name: OneOrMany<String>,
    /// Arguments. A key `a|b|c` becomes whichever of `a`, `b`, `c` the
    /// tool's schema declares (the first listed if it declares none).
    /// Strings may hold `{{cwd}}`, the agent's working directory as its
    /// prompt states it (`.` when it states none). For a freeform tool
    /// (Responses `custom`), the call's input is the `input` string, else
    /// the arguments as JSON text.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// One value or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// The reply chosen for one request, ready to render in any API.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Index of the matching rule; `None` for the default reply.
    pub rule: Option<usize>,
    pub rule_name: Option<String>,
    pub thinking: Option<String>,
    pub text: Option<String>,
    pub tool_call: Option<PlannedCall>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    pub name: String,
    /// JSON arguments (for function tools).
    pub arguments: Map<String, Value>,
    /// Free text input, for a freeform tool instead of `arguments`.
    pub input: Option<String>,
}

impl PlannedCall {
    pub fn arguments_json(&self) -> String {
        Value::Object(self.arguments.clone()).to_string()
    }
}

impl Script {
    /// Parses a script: `{"rules": [...], "default": {...}}`, or just the
    /// array of rules.
    pub fn from_json(raw: &str) -> Result<Self, ScriptError> {
        let value: Value = serde_json::from_str(raw)?;
        let script = if value.is_array() {
            Script {
                rules: serde_json::from_value(value)?,
                default: None,
            }
        } else {
            serde_json::from_value(value)?
        };
        script.validate()?;
        Ok(script)
    }

    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let raw = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&raw)
    }

    fn validate(&self) -> Result<(), ScriptError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let reply = &rule.reply;
            if reply.text.is_none() && reply.thinking.is_none() && reply.tool_call.is_none() {
                return Err(ScriptError::Invalid {
                    index,
                    message: "the reply has neither text, thinking nor tool_call".into(),
                });
            }
            if let Some(calls) = &reply.tool_call
                && (calls.as_slice().is_empty()
                    || calls
                        .as_slice()
                        .iter()
                        .any(|c| c.name.as_slice().is_empty()))
            {
                return Err(ScriptError::Invalid {
                    index,
                    message: "a tool_call needs at least one name".into(),
                });
            }
        }
        Ok(())
    }

    /// The first matching rule's reply, or the default.
    pub fn plan(&self, request: &Request, raw_body: &str) -> Plan {
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.when.matches(request, raw_body) {
                continue;
            }
            let tool_call = match &rule.reply.tool_call {
                None => None,
                Some(candidates) => match resolve_call(candidates.as_slice(), request) {
                    Some(call) => Some(call),
                    // None of its tools is offered: the rule does not apply.
                    None => continue,
                },
            };
            return Plan {
                rule: Some(index),
                rule_name: rule.name.clone(),
                thinking: rule.reply.thinking.clone(),
                text: rule.reply.text.clone(),
                tool_call,
            };
        }
        let default = self.default.clone().unwrap_or(Reply {
            text: Some(DEFAULT_TEXT.into()),
            ..Reply::default()
        });
        Plan {
            rule: None,
            rule_name: None,
            thinking: default.thinking,
            text: default.text,
            tool_call: default
                .tool_call
                .and_then(|c| resolve_call(c.as_slice(), request)),
        }
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

impl When {
    pub fn matches(&self, request: &Request, raw_body: &str) -> bool {
        self.api.is_none_or(|api| api == request.api)
            && self
                .last_user_contains
                .as_deref()
                .is_none_or(|s| contains_ci(request.last_user_text(), s))
            && self
                .system_contains
                .as_deref()
                .is_none_or(|s| contains_ci(&request.system, s))
            && self
                .body_contains
                .as_deref()
                .is_none_or(|s| contains_ci(raw_body, s))
            && self
                .has_tool_result
                .is_none_or(|want| want == request.has_tool_result())
            && self
                .has_tools
                .is_none_or(|want| want != request.tools.is_empty())
            && self
                .tool_offered
                .as_ref()
                .is_none_or(|names| names.as_slice().iter().any(|n| request.tool(n).is_some()))
    }
}

fn resolve_call(candidates: &[ToolCallSpec], request: &Request) -> Option<PlannedCall> {
    let cwd = request.cwd().unwrap_or_else(|| ".".into());
    candidates.iter().find_map(|spec| {
        let tool = spec.name.as_slice().iter().find_map(|n| request.tool(n))?;
        let mut arguments = Map::new();
        for (key, value) in &spec.arguments {
            let alternatives: Vec<&str> = key.split('|').map(str::trim).collect();
            let chosen = alternatives
                .iter()
                .find(|k| tool.has_property(k))
                .unwrap_or(&alternatives[0]);
            arguments.insert((*chosen).to_owned(), substitute(value, &cwd));
        }
        let input = tool.freeform.then(|| match arguments.get("input") {
            Some(Value::String(s)) => s.clone(),
            _ => Value::Object(arguments.clone()).to_string(),
        });
        Some(PlannedCall {
            name: tool.name.clone(),
            arguments,
            input,
        })
    })
}

fn substitute(value: &Value, cwd: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("{{cwd}}", cwd)),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, cwd)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, cwd)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::normalize;

    const EDIT_FILE: &str = include_str!("../scripts/edit-file.json");

    fn edit_file() -> Script {
        Script::from_json(EDIT_FILE).unwrap()
    }

    fn prompt_with_tools(tools: &Value) -> Request {
        normalize::anthropic(&json!({
            "model": "m",
            "system": "<env>\nWorking directory: /ws/p\n</env>",
            "messages": [{"role": "user", "content": "Please create hello.txt"}],
            "tools": tools,
        }))
    }

    #[test]
    fn first_matching_rule_wins_and_default_applies_otherwise() {
        let script = Script::from_json(
            r#"[
                {"name": "a", "when": {"last_user_contains": "HELLO"}, "reply": {"text": "one"}},
                {"name": "b", "when": {"last_user_contains": "hello"}, "reply": {"text": "two"}}
            ]"#,
        )
        .unwrap();
        let req =
            normalize::chat(&json!({"messages": [{"role": "user", "content": "well, Hello"}]}));
        let plan = script.plan(&req, "");
        assert_eq!(plan.rule, Some(0));
        assert_eq!(plan.rule_name.as_deref(), Some("a"));
        assert_eq!(plan.text.as_deref(), Some("one"));

        let req = normalize::chat(&json!({"messages": [{"role": "user", "content": "bye"}]}));
        let plan = script.plan(&req, "");
        assert_eq!(plan.rule, None);
        assert_eq!(plan.text.as_deref(), Some(DEFAULT_TEXT));
        assert!(plan.tool_call.is_none());
    }

    #[test]
    fn conditions_combine() {
        let when: When = serde_json::from_value(json!({
            "api": "anthropic",
            "system_contains": "working DIRECTORY",
            "has_tool_result": false,
            "has_tools": true,
            "tool_offered": ["Nope", "Write"],
        }))
        .unwrap();
        let req = prompt_with_tools(&json!([{"name": "Write", "input_schema": {}}]));
        assert!(when.matches(&req, ""));
        let no_tools = prompt_with_tools(&json!([]));
        assert!(!when.matches(&no_tools, ""));
        let other_api = When {
            api: Some(Api::Gemini),
            ..When::default()
        };
        assert!(!other_api.matches(&req, ""));
        let body = When {
            body_contains: Some("next_speaker".into()),
            ..When::default()
        };
        assert!(body.matches(
            &req,
            r#"{"responseSchema":{"properties":{"next_speaker":{}}}}"#
        ));
        assert!(!body.matches(&req, "{}"));
    }

    #[test]
    fn claude_write_gets_file_path_and_cwd() {
        let req = prompt_with_tools(&json!([
            {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {}}}},
            {"name": "Write", "input_schema": {"type": "object", "properties": {"file_path": {}, "content": {}}}}
        ]));
        let plan = edit_file().plan(&req, "");
        assert_eq!(plan.rule_name.as_deref(), Some("create-file"));
        let call = plan.tool_call.unwrap();
        assert_eq!(call.name, "Write");
        assert_eq!(
            Value::Object(call.arguments),
            json!({"file_path": "/ws/p/hello.txt", "content": "hello from the agent\n"})
        );
        assert_eq!(call.input, None);
    }

    #[test]
    fn opencode_write_gets_file_path_in_camel_case() {
        let req = normalize::chat(&json!({
            "messages": [{"role": "system", "content": "Working directory: /ws/oc"}, {"role": "user", "content": "create it"}],
            "tools": [{"type": "function", "function": {"name": "write", "parameters": {"type": "object", "properties": {"content": {}, "filePath": {}}}}}]
        }));
        let call = edit_file().plan(&req, "").tool_call.unwrap();
        assert_eq!(call.name, "write");
        assert_eq!(call.arguments["filePath"], "/ws/oc/hello.txt");
        assert!(!call.arguments.contains_key("file_path"));
    }

    #[test]
    fn codex_freeform_apply_patch_gets_the_patch_as_input() {
        let req = normalize::responses(&json!({
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "create hello.txt"}]}],
            "tools": [
                {"type": "function", "name": "shell_command", "parameters": {"type": "object", "properties": {"command": {}}}},
                {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}}
            ]
        }));
        let call = edit_file().plan(&req, "").tool_call.unwrap();
        assert_eq!(call.name, "apply_patch");
        let input = call.input.unwrap();
        assert!(
            input.starts_with("*** Begin Patch\n*** Add File: hello.txt\n+hello from the agent\n")
        );
    }

    #[test]
    fn codex_shell_only_gets_a_shell_command_with_unknown_cwd_as_dot() {
        let req = normalize::responses(&json!({
            "input": "create hello.txt",
            "tools": [{"type": "function", "name": "shell_command", "parameters": {"type": "object", "properties": {"command": {}, "workdir": {}}}}]
        }));
        let call = edit_file().plan(&req, "").tool_call.unwrap();
        assert_eq!(call.name, "shell_command");
        assert_eq!(call.arguments["workdir"], ".");
        assert!(
            call.arguments["command"]
                .as_str()
                .unwrap()
                .contains("hello.txt")
        );
    }

    #[test]
    fn tool_results_and_side_calls_get_text() {
        let script = edit_file();
        let after = normalize::chat(&json!({
            "messages": [
                {"role": "user", "content": "create hello.txt"},
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "write", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "ok"}
            ],
            "tools": [{"type": "function", "function": {"name": "write"}}]
        }));
        let plan = script.plan(&after, "");
        assert_eq!(plan.rule_name.as_deref(), Some("after-tool"));
        assert_eq!(plan.text.as_deref(), Some("Done: the file is written."));
        assert!(plan.tool_call.is_none());

        let title = normalize::chat(&json!({
            "messages": [{"role": "system", "content": "You are a title generator."}, {"role": "user", "content": "create hello.txt"}]
        }));
        let plan = script.plan(&title, "");
        assert_eq!(plan.rule_name.as_deref(), Some("side-call"));
        assert!(plan.tool_call.is_none());
    }

    #[test]
    fn a_rule_whose_tools_are_not_offered_is_skipped() {
        let req = prompt_with_tools(&json!([{"name": "Read", "input_schema": {}}]));
        let plan = edit_file().plan(&req, "");
        assert_eq!(plan.rule_name.as_deref(), Some("side-call"));
    }

    #[test]
    fn invalid_scripts_are_refused() {
        assert!(matches!(
            Script::from_json(r#"{"rules": [{"when": {}, "reply": {}}]}"#),
            Err(ScriptError::Invalid { index: 0, .. })
        ));
        assert!(matches!(
            Script::from_json(r#"{"rules": [{"when": {"typo": 1}, "reply": {"text": "x"}}]}"#),
            Err(ScriptError::Parse(_))
        ));
        assert!(matches!(
            Script::from_json(r#"[{"reply": {"tool_call": {"name": []}}}]"#),
            Err(ScriptError::Invalid { .. })
        ));
    }
}

#[cfg(test)]
mod shipped_scripts {
    use super::Script;

    /// Every script in `scripts/` is valid (the platform's is loaded by
    /// `cargo xtask` at start-up, where a mistake would stop everything).
    #[test]
    fn every_shipped_script_parses() {
        for text in [
            include_str!("../scripts/edit-file.json"),
            include_str!("../scripts/acp-host.json"),
            include_str!("../scripts/platform.json"),
        ] {
            Script::from_json(text).unwrap();
        }
    }
}
