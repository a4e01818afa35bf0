//! Tasks and project chat: the chat page (`/projects/{id}/chat`), a
//! project's task list (`/projects/{id}/tasks`) and one task's page
//! (`/tasks/{id}`).
//!
//! The chat page renders the project's sessions and the selected session's
//! transcript ([`crate::transcript`]) as it is now; `static/chat.js` then
//! continues it live over `GET /api/projects/{id}/sessions/{sid}/ws?after=`
//! (the last sequence number rendered, `#chat-stream[data-after]`), follows
//! the task (`GET /api/tasks/{id}`), submits tasks, follow-ups and
//! permission answers, and filters the session list. Everything it talks to
//! is on the app's own origin, so the page keeps the default CSP.
//!
//! Hooks for the script and the browser tests: `#task-form` (`#task-message`,
//! `#task-agent`, `#task-vm-size`, `#task-error`), `#session-search`,
//! `#session-list` with `.session-item[data-session-id]`, `#chat` (the
//! selected session's URLs as `data-…`), `#task-status`, `#task-branch`,
//! `#pr-link`, `#task-cancel`, `#chat-stream` (items `.msg-user`,
//! `.msg-agent`, `.msg-thought`, `.tool-call[data-tool-call-id]` with
//! `.diff`, `.msg-plan`, `.permission[data-request-id]`, `.msg-event`),
//! `#chat-pending`, `#followup-form`, `#followup-text`.

use askama::Template;

use crate::projects::{path_segment, safe_http_url};
use crate::time::{self, Stamp, When};
use crate::transcript::{ChatItem, ChatPrompt, ToolContent, Transcript, build_transcript};
use crate::{RenderError, Viewer, asset_version};

/// A task as the pages show it: the API's view.
pub type TaskSummary = sam_wire::TaskView;

/// One status change of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLogRow {
    pub at: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    /// What caused it (`node_acquired`, `deadline_passed`, …).
    pub event: String,
    pub detail: Option<String>,
}

/// A chat session as the list shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: String,
    pub task_id: Option<String>,
    pub agent: String,
    pub title: String,
    /// `pending`, `running`, `waiting_for_input`, `waiting_for_permission`,
    /// `completed`, `failed` or `interrupted`.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The project a chat or task list belongs to.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatProject<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The project's default agent; `None` for the platform's.
    pub agent: Option<&'a str>,
    /// The project's default VM size; `None` for the platform's.
    pub vm_size: Option<&'a str>,
}

/// The choices the new-task form offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskOptions<'a> {
    /// Agent ids, e.g. `claude-code`.
    pub agents: &'a [String],
    /// `small`, `medium`, `large`.
    pub vm_sizes: &'a [String],
}

/// The session shown on the chat page.
#[derive(Debug, Clone, Copy)]
pub struct ChatSelection<'a> {
    pub session: &'a SessionSummary,
    /// Its stored messages in order; `None` when they could not be loaded
    /// (the script then loads them all over the live stream).
    pub messages: Option<&'a [sam_wire::SessionMessage]>,
    pub prompts: &'a [ChatPrompt],
    /// The session's task, if it has one.
    pub task: Option<&'a TaskSummary>,
}

/// Task statuses that do not change any more.
pub(crate) fn task_ended(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// A task status's badge class, from a closed set (`chat.js` derives the
/// same names).
pub(crate) fn task_status_class(status: &str) -> &'static str {
    match status {
        "queued" => "status-queued",
        "acquiring_node" => "status-acquiring_node",
        "creating_workspace" => "status-creating_workspace",
        "starting_agent" => "status-starting_agent",
        "running" => "status-running",
        "finalizing" => "status-finalizing",
        "completed" => "status-completed",
        "failed" => "status-failed",
        "cancelled" => "status-cancelled",
        _ => "status-unknown",
    }
}

/// A session status's badge class, from a closed set.
pub(crate) fn session_status_class(status: &str) -> &'static str {
    match status {
        "pending" => "status-pending",
        "running" => "status-running",
        "waiting_for_input" => "status-waiting_for_input",
        "waiting_for_permission" => "status-waiting_for_permission",
        "completed" => "status-completed",
        "failed" => "status-failed",
        "interrupted" => "status-interrupted",
        _ => "status-unknown",
    }
}

/// The project's chat: the new-task form, the sessions (newest first; the
/// selected one marked) and the selected session's transcript and task.
/// `sessions` is `None` when the list could not be loaded.
#[allow(clippy::too_many_arguments)]
pub fn render_chat_page(
    viewer: &Viewer,
    project: &ChatProject,
    options: &TaskOptions,
    sessions: Option<&[SessionSummary]>,
    selected: Option<&ChatSelection>,
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let title = format!("{} · Chat", project.name);
    let mut list: Vec<&SessionSummary> = sessions.unwrap_or_default().iter().collect();
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let selected_id = selected.map(|s| s.session.id.as_str());
    let project_path = path_segment(project.id);
    let page = ChatPage {
        title: &title,
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        project_name: project.name,
        project_id: project.id,
        agents: options
            .agents
            .iter()
            .map(|a| Option2 {
                value: a,
                selected: project.agent == Some(a.as_str()),
            })
            .collect(),
        default_agent: project.agent,
        vm_sizes: options.vm_sizes,
        default_vm_size: project.vm_size,
        sessions_loaded: sessions.is_some(),
        sessions: list
            .into_iter()
            .map(|s| SessionItem {
                s,
                path_id: path_segment(&s.id),
                status_class: session_status_class(&s.status),
                selected: selected_id == Some(s.id.as_str()),
                created: time::when(s.created_at, now_ms),
            })
            .collect(),
        chat: selected.map(|sel| {
            let session_path = path_segment(&sel.session.id);
            let transcript = sel
                .messages
                .map(|m| build_transcript(m, sel.prompts))
                .unwrap_or_default();
            ChatView {
                session: sel.session,
                session_status_class: session_status_class(&sel.session.status),
                api_base: format!("/api/projects/{project_path}/sessions/{session_path}"),
                task: sel.task.map(|t| TaskHead::new(t, now_ms)),
                transcript,
            }
        }),
        project_path,
    };
    Ok(page.render()?)
}

/// A project's tasks, newest first.
pub fn render_tasks_page(
    viewer: &Viewer,
    project: &ChatProject,
    tasks: &[TaskSummary],
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let title = format!("{} · Tasks", project.name);
    let mut rows: Vec<&TaskSummary> = tasks.iter().collect();
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let page = TasksPage {
        title: &title,
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        project_name: project.name,
        project_path: path_segment(project.id),
        tasks: rows.into_iter().map(|t| TaskHead::new(t, now_ms)).collect(),
    };
    Ok(page.render()?)
}

/// One task: its fields, why it failed, its status log and a link to its
/// chat session. `project_name` is `None` when it could not be loaded.
pub fn render_task_page(
    viewer: &Viewer,
    task: &TaskSummary,
    project_name: Option<&str>,
    log: &[TaskLogRow],
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let title = if task.title.is_empty() {
        "Task".to_owned()
    } else {
        task.title.clone()
    };
    let page = TaskPage {
        title: &title,
        version,
        asset_version: asset_version(),
        active_nav: "projects",
        viewer: Some(viewer),
        project_name: project_name.filter(|n| !n.is_empty()),
        head: TaskHead::new(task, now_ms),
        updated: time::when(task.updated_at, now_ms),
        log: log
            .iter()
            .map(|c| LogView {
                c,
                at: time::stamp(c.at),
                clock: time::clock(c.at),
                offset: time::offset(c.at - task.created_at),
                class: task_status_class(&c.to_status),
            })
            .collect(),
    };
    Ok(page.render()?)
}

/// A select option.
struct Option2<'a> {
    value: &'a str,
    selected: bool,
}

struct SessionItem<'a> {
    s: &'a SessionSummary,
    path_id: String,
    status_class: &'static str,
    selected: bool,
    created: When,
}

struct ChatView<'a> {
    session: &'a SessionSummary,
    session_status_class: &'static str,
    /// `/api/projects/{id}/sessions/{sid}`.
    api_base: String,
    task: Option<TaskHead<'a>>,
    transcript: Transcript,
}

/// What every task view shows of a task.
struct TaskHead<'a> {
    t: &'a TaskSummary,
    path_id: String,
    project_path: String,
    session_path: String,
    status_class: &'static str,
    ended: bool,
    /// The pull request, if its URL is an http(s) one.
    pr_url: Option<&'a str>,
    failure: Option<&'a str>,
    created: When,
}

impl<'a> TaskHead<'a> {
    fn new(t: &'a TaskSummary, now_ms: i64) -> Self {
        TaskHead {
            t,
            path_id: path_segment(&t.id),
            project_path: path_segment(&t.project_id),
            session_path: path_segment(&t.session_id),
            status_class: task_status_class(&t.status),
            ended: task_ended(&t.status),
            pr_url: t.pr_url.as_deref().and_then(safe_http_url),
            failure: t.failure_reason.as_deref().filter(|r| !r.is_empty()),
            created: time::when(t.created_at, now_ms),
        }
    }
}

struct LogView<'a> {
    c: &'a TaskLogRow,
    at: Stamp,
    clock: String,
    offset: String,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    project_name: &'a str,
    project_id: &'a str,
    project_path: String,
    agents: Vec<Option2<'a>>,
    default_agent: Option<&'a str>,
    vm_sizes: &'a [String],
    default_vm_size: Option<&'a str>,
    sessions_loaded: bool,
    sessions: Vec<SessionItem<'a>>,
    chat: Option<ChatView<'a>>,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    project_name: &'a str,
    project_path: String,
    tasks: Vec<TaskHead<'a>>,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    project_name: Option<&'a str>,
    head: TaskHead<'a>,
    updated: When,
    log: Vec<LogView<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-03-01 10:00:00 UTC.
    const NOW_MS: i64 = 1_772_359_200_000;
    const VIEWER: Viewer<'static> = Viewer {
        login: "octo",
        is_admin: false,
    };

    fn task(status: &str) -> TaskSummary {
        TaskSummary {
            id: "01JTASK0000000000000000000".into(),
            project_id: "01JPROJ0000000000000000000".into(),
            session_id: "01JSESS0000000000000000002".into(),
            agent: "claude-code".into(),
            title: "Please create hello.txt with a greeting".into(),
            branch: "sam/please-create-hello-txt-01jtask0".into(),
            vm_size: "small".into(),
            status: status.into(),
            attempt: 1,
            created_at: NOW_MS - 60_000,
            updated_at: NOW_MS - 5_000,
            ..TaskSummary::default()
        }
    }

    fn session(id: &str, title: &str, status: &str, created_at: i64) -> SessionSummary {
        SessionSummary {
            id: id.into(),
            task_id: Some("01JTASK0000000000000000000".into()),
            agent: "claude-code".into(),
            title: title.into(),
            status: status.into(),
            created_at,
            updated_at: created_at,
        }
    }

    fn message(seq: u64, kind: &str, payload: serde_json::Value) -> sam_wire::SessionMessage {
        sam_wire::SessionMessage {
            seq,
            created_at: NOW_MS,
            kind: kind.into(),
            payload,
        }
    }

    fn project() -> ChatProject<'static> {
        ChatProject {
            id: "01JPROJ0000000000000000000",
            name: "tasks-app",
            agent: Some("openai-codex"),
            vm_size: None,
        }
    }

    fn agents() -> Vec<String> {
        ["claude-code", "openai-codex", "google-gemini", "opencode"]
            .map(String::from)
            .to_vec()
    }

    /// No inline script or style: the CSP is `default-src 'self'`.
    fn assert_csp_clean(html: &str) {
        assert!(!html.contains(" style="), "inline style");
        assert!(!html.contains("<style"), "style element");
        for (at, _) in html.match_indices("<script") {
            assert!(
                html[at..].starts_with("<script src=\"/static/"),
                "inline script"
            );
        }
        assert!(!html.contains(" onclick="));
    }

    #[test]
    fn the_chat_page_renders_the_selected_session_and_its_task() {
        let sessions = [
            session(
                "01JSESS0000000000000000001",
                "Older <b>one</b>",
                "completed",
                NOW_MS - 3_600_000,
            ),
            session(
                "01JSESS0000000000000000002",
                "Please create hello.txt with a greeting",
                "running",
                NOW_MS - 60_000,
            ),
        ];
        let messages = [
            message(1, "session_started", json!({})),
            message(
                2,
                "prompt_sent",
                json!({ "prompt_id": "01JTASK0000000000000000000" }),
            ),
            message(
                3,
                "update",
                json!({ "update": { "sessionUpdate": "agent_message_chunk", "content": { "type": "text", "text": "I'll <script>alert(1)</script>" } } }),
            ),
            message(
                4,
                "update",
                json!({ "update": { "sessionUpdate": "agent_message_chunk", "content": { "type": "text", "text": " create it." } } }),
            ),
            message(
                5,
                "update",
                json!({ "update": { "sessionUpdate": "tool_call", "toolCallId": "t1", "title": "Write hello.txt", "kind": "edit", "status": "completed",
                "content": [{ "type": "diff", "path": "hello.txt", "oldText": null, "newText": "Hello, world!\n" }] } }),
            ),
            message(
                6,
                "permission_requested",
                json!({ "request_id": "r1", "tool_call": { "title": "Run tests" },
                "options": [{ "optionId": "allow", "name": "Allow", "kind": "allow_once" }, { "optionId": "no", "name": "Deny", "kind": "reject_once" }] }),
            ),
        ];
        let prompts = [
            ChatPrompt {
                prompt_id: "01JTASK0000000000000000000".into(),
                text: "Please create hello.txt with a greeting".into(),
                created_at: NOW_MS - 60_000,
            },
            ChatPrompt {
                prompt_id: "p2".into(),
                text: "and then <i>more</i>".into(),
                created_at: NOW_MS,
            },
        ];
        let t = TaskSummary {
            pr_url: Some("http://github.localhost/octo/tasks-app/pull/1".into()),
            ..task("running")
        };
        let agents = agents();
        let sizes = ["small", "medium", "large"].map(String::from).to_vec();
        let html = render_chat_page(
            &VIEWER,
            &project(),
            &TaskOptions {
                agents: &agents,
                vm_sizes: &sizes,
            },
            Some(&sessions),
            Some(&ChatSelection {
                session: &sessions[1],
                messages: Some(&messages),
                prompts: &prompts,
                task: Some(&t),
            }),
            NOW_MS,
            "v",
        )
        .unwrap();
        assert_csp_clean(&html);
        for hook in [
            r#"id="task-form""#,
            r#"id="task-message""#,
            r#"id="session-search""#,
            r#"id="chat-stream" data-after="6""#,
            r#"id="task-status">running</span>"#,
            r#"id="pr-link" rel="noopener noreferrer" href="http://github.localhost/octo/tasks-app/pull/1""#,
            r#"data-task-url="/api/tasks/01JTASK0000000000000000000""#,
            r#"data-api-base="/api/projects/01JPROJ0000000000000000000/sessions/01JSESS0000000000000000002""#,
            r#"<option value="openai-codex" selected>"#,
            r#"class="msg tool-call" data-tool-call-id="t1""#,
            r#"<pre class="diff" tabindex="0"><span class="diff-line diff-add">+Hello, world!</span></pre>"#,
            r#"data-option-id="no">Deny</button>"#,
            r#"id="task-cancel">Cancel task"#,
            r#"<script src="/static/chat.js?v="#,
        ] {
            assert!(html.contains(hook), "{hook}\n{html}");
        }
        // One agent bubble for both chunks, escaped.
        assert_eq!(html.matches("msg msg-agent").count(), 1);
        assert!(html.contains("I&#39;ll &#60;script&#62;alert(1)&#60;/script&#62; create it."));
        assert!(!html.contains("<script>alert"));
        // The sent prompt in the stream, the other one pending.
        assert!(html.contains(r#"data-prompt-id="01JTASK0000000000000000000"><p class="msg-text">Please create hello.txt"#));
        assert!(html.contains(
            r#"msg-pending" data-prompt-id="p2"><p class="msg-text">and then &#60;i&#62;more"#
        ));
        // Newest session first, the selected one marked; titles escaped.
        let newer = html
            .find(r#"data-session-id="01JSESS0000000000000000002""#)
            .unwrap();
        let older = html
            .find(r#"data-session-id="01JSESS0000000000000000001""#)
            .unwrap();
        assert!(newer < older);
        assert!(html.contains(
            r#"session-item session-selected" data-session-id="01JSESS0000000000000000002""#
        ));
        assert!(html.contains("Older &#60;b&#62;one&#60;/b&#62;"));
        assert!(html.contains(r#"class="badge status-completed" data-status="completed""#));
    }

    #[test]
    fn the_chat_page_without_sessions_or_pull_request() {
        let agents = agents();
        let empty = render_chat_page(
            &VIEWER,
            &ChatProject {
                agent: None,
                ..project()
            },
            &TaskOptions {
                agents: &agents,
                vm_sizes: &[],
            },
            Some(&[]),
            None,
            NOW_MS,
            "v",
        )
        .unwrap();
        assert!(empty.contains(r#"id="no-sessions""#));
        assert!(empty.contains(r#"<option value="" selected>platform default</option>"#));
        assert!(!empty.contains(r#"id="chat-stream""#));
        assert_csp_clean(&empty);

        let sessions = [session("01JSESS0000000000000000002", "t", "failed", NOW_MS)];
        let t = TaskSummary {
            pr_url: Some("javascript:alert(1)".into()),
            failed_step: Some("acquire_node".into()),
            failure_reason: Some("no capacity".into()),
            ..task("failed")
        };
        let html = render_chat_page(
            &VIEWER,
            &project(),
            &TaskOptions {
                agents: &agents,
                vm_sizes: &[],
            },
            None,
            Some(&ChatSelection {
                session: &sessions[0],
                messages: None,
                prompts: &[],
                task: Some(&t),
            }),
            NOW_MS,
            "v",
        )
        .unwrap();
        assert!(html.contains(r#"id="sessions-unavailable""#));
        assert!(html.contains(r#"id="pr-link" rel="noopener noreferrer" hidden>"#));
        assert!(!html.contains("javascript:"));
        assert!(html.contains(r#"id="task-cancel" hidden>"#));
        assert!(html.contains(r#"id="task-failure">acquire_node: no capacity</p>"#));
        assert!(html.contains(r#"id="chat-stream" data-after="0""#));
    }

    #[test]
    fn the_task_list_and_a_task_page() {
        let done = TaskSummary {
            pr_url: Some("https://github.com/o/r/pull/7".into()),
            ..task("completed")
        };
        let failed = TaskSummary {
            id: "01JTASK0000000000000000001".into(),
            title: "Break <things>".into(),
            failed_step: Some("create_workspace".into()),
            failure_reason: Some("clone failed: <denied>".into()),
            created_at: NOW_MS - 1_000,
            ..task("failed")
        };
        let list = render_tasks_page(
            &VIEWER,
            &project(),
            &[done.clone(), failed.clone()],
            NOW_MS,
            "v",
        )
        .unwrap();
        assert_csp_clean(&list);
        // Newest first.
        let first = list.find("01JTASK0000000000000000001").unwrap();
        assert!(first < list.find("01JTASK0000000000000000000").unwrap());
        assert!(list.contains(r#"<a class="task-pr" href="https://github.com/o/r/pull/7""#));
        assert!(list.contains("Break &#60;things&#62;"));
        assert!(list.contains(r#"<span class="badge status-failed">failed</span>"#));
        let none = render_tasks_page(&VIEWER, &project(), &[], NOW_MS, "v").unwrap();
        assert!(none.contains(r#"id="no-tasks""#));

        let log = [
            TaskLogRow {
                at: NOW_MS - 1_000,
                from_status: None,
                to_status: "queued".into(),
                event: "submitted".into(),
                detail: None,
            },
            TaskLogRow {
                at: NOW_MS - 500,
                from_status: Some("queued".into()),
                to_status: "failed".into(),
                event: "step_failed".into(),
                detail: Some("<oops>".into()),
            },
        ];
        let page =
            render_task_page(&VIEWER, &failed, Some("tasks-app"), &log, NOW_MS, "v").unwrap();
        assert_csp_clean(&page);
        for hook in [
            r#"id="task-status">failed</span>"#,
            r#"id="task-failed-step">create_workspace</code>"#,
            r#"id="task-failure-reason">clone failed: &#60;denied&#62;</p>"#,
            r#"id="task-chat-link""#,
            r#"href="/projects/01JPROJ0000000000000000000/chat?session=01JSESS0000000000000000002""#,
            r#"data-to-status="queued""#,
            r#"<code class="timeline-code">step_failed</code>"#,
            "&#60;oops&#62;",
            "tasks-app",
        ] {
            assert!(page.contains(hook), "{hook}\n{page}");
        }
        assert!(!page.contains(r#"id="pr-link""#));
    }
}
