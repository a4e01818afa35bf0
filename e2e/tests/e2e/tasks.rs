//! Tasks end to end: a message in project chat becomes a branch and a pull
//! request, made by a real coding agent from npm talking to the LLM
//! stand-in, on a node of the local cloud.

use std::time::Duration;

use sam_e2e::{Platform, eventually, get_json};
use serde_json::{Value, json};

/// How long one task may take here (npm agents start in seconds; the first
/// task of a run also boots a node).
const TASK_TIMEOUT: Duration = Duration::from_secs(240);

/// Submits `message` for `agent`; returns the task's JSON.
pub async fn submit_task(
    client: &reqwest::Client,
    p: &Platform,
    project_id: &str,
    message: &str,
    agent: &str,
) -> Value {
    let (status, body) = post(
        client,
        p.app(&format!("/api/projects/{project_id}/tasks")),
        json!({ "message": message, "agent": agent }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["task"].clone()
}

/// POSTs `body` as JSON; the status and the JSON answer.
pub async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let resp = client.post(url).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits until the task has ended; returns `{task, status_log}`.
pub async fn wait_for_task_end(client: &reqwest::Client, p: &Platform, task_id: &str) -> Value {
    eventually(&format!("task {task_id} to end"), TASK_TIMEOUT, || async {
        let t: Value = client
            .get(p.app(&format!("/api/tasks/{task_id}")))
            .send()
            .await?
            .json()
            .await?;
        let status = t["task"]["status"].as_str().unwrap_or_default().to_owned();
        Ok(["completed", "failed", "cancelled"]
            .contains(&status.as_str())
            .then_some(t))
    })
    .await
    .unwrap()
}

/// The session's stored messages.
pub async fn transcript(
    client: &reqwest::Client,
    p: &Platform,
    project_id: &str,
    session_id: &str,
) -> Value {
    get_json(
        client,
        &p.app(&format!(
            "/api/projects/{project_id}/sessions/{session_id}/messages"
        )),
    )
    .await
}

/// The session updates of one `sessionUpdate` kind.
fn updates<'a>(transcript: &'a Value, kind: &str) -> Vec<&'a Value> {
    transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "update" && m["payload"]["update"]["sessionUpdate"] == kind)
        .collect()
}

#[tokio::test]
async fn j08_task_to_pull_request() {
    let p = Platform::from_env();
    let login = "octo-tasks";
    let (client, _session, project) = sam_e2e::github_project(&p, login, "tasks-app")
        .await
        .unwrap();
    let project_id = project["id"].as_str().unwrap();
    // Claude runs on the platform's key; Codex on the user's own.
    let resp = client
        .put(p.app("/api/credentials/agents/openai-codex"))
        .json(&json!({ "kind": "api_key", "secret": "sk-user-codex-0123456789" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

    // An Anthropic-speaking agent, then an OpenAI-speaking one (which gets
    // the node the first one left warm).
    let mut nodes = Vec::new();
    for agent in ["claude-code", "openai-codex"] {
        let task = submit_task(
            &client,
            &p,
            project_id,
            "Please create hello.txt with a greeting",
            agent,
        )
        .await;
        let task_id = task["id"].as_str().unwrap();
        let branch = task["branch"].as_str().unwrap().to_owned();
        assert!(
            branch.starts_with("sam/please-create-hello-txt"),
            "{branch}"
        );
        assert_eq!(task["title"], "Please create hello.txt with a greeting");

        let ended = wait_for_task_end(&client, &p, task_id).await;
        let task = &ended["task"];
        assert_eq!(task["status"], "completed", "{agent}: {ended}");
        assert_eq!(task["stop_reason"], "end_turn");
        let pr_url = task["pr_url"].as_str().expect("a pull request");
        nodes.push(task["node_id"].as_str().unwrap().to_owned());

        // A completed task cannot be cancelled.
        let resp = client
            .post(p.app(&format!("/api/tasks/{task_id}/cancel")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409);
        assert_eq!(resp.json::<Value>().await.unwrap()["code"], "task_ended");

        // Every status change is logged, in order.
        let log: Vec<&str> = ended["status_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["to_status"].as_str().unwrap())
            .collect();
        assert_eq!(
            log,
            [
                "queued",
                "acquiring_node",
                "creating_workspace",
                "starting_agent",
                "running",
                "finalizing",
                "completed"
            ],
            "{agent}"
        );

        // The stand-in's git has the branch with the agent's file, and a
        // pull request from it into main.
        let pulls: Value = get_json(
            &reqwest::Client::new(),
            &format!(
                "{}/_devgithub/pulls?repo={login}/tasks-app",
                p.devgithub_url
            ),
        )
        .await;
        let pull = pulls
            .as_array()
            .or_else(|| pulls["pulls"].as_array())
            .unwrap()
            .iter()
            .find(|pr| pr["head_ref"] == branch.as_str())
            .unwrap_or_else(|| panic!("no pull request from {branch}: {pulls}"))
            .clone();
        assert!(
            pr_url.ends_with(&format!("/{login}/tasks-app/pull/{}", pull["number"])),
            "{pr_url} {pull}"
        );
        assert_eq!(pull["base_ref"], "main");
        assert_eq!(pull["state"], "open");
        let page = reqwest::get(pr_url).await.unwrap().text().await.unwrap();
        assert!(
            page.contains("hello.txt"),
            "{agent}: the PR changes hello.txt"
        );

        // The chat has the user's message, the agent's text, the tool call
        // that wrote the file with its diff, and the end of the turn.
        let t = transcript(
            &client,
            &p,
            project_id,
            task["session_id"].as_str().unwrap(),
        )
        .await;
        assert_eq!(
            t["prompts"][0]["text"],
            "Please create hello.txt with a greeting"
        );
        assert!(
            !updates(&t, "agent_message_chunk").is_empty(),
            "{agent}: agent text in the chat: {t}"
        );
        let tool_calls = updates(&t, "tool_call");
        assert!(
            !tool_calls.is_empty(),
            "{agent}: a tool call in the chat: {t}"
        );
        let has_diff = t["messages"].as_array().unwrap().iter().any(|m| {
            m["payload"]["update"]["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "diff"))
        });
        assert!(has_diff, "{agent}: the tool call's diff in the chat: {t}");
        let kinds: Vec<&str> = t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["kind"].as_str().unwrap())
            .collect();
        // The agent may announce its commands while its session is being
        // created, before the vm-agent records the start; the prompt comes after.
        let at = |kind: &str| kinds.iter().position(|k| *k == kind);
        assert!(at("session_started") < at("prompt_sent"), "{kinds:?}");
        assert!(kinds.contains(&"turn_ended"), "{kinds:?}");
        // Sequence numbers are 1, 2, 3, ... without gaps or repeats.
        for (i, m) in t["messages"].as_array().unwrap().iter().enumerate() {
            assert_eq!(m["seq"].as_u64(), Some(i as u64 + 1));
        }

        // The workspace is cleaned up and the node is warm for reuse.
        let node: Value = eventually("the node to be warm", Duration::from_secs(30), || {
            let client = client.clone();
            let url = p.app(&format!("/api/nodes/{}", task["node_id"].as_str().unwrap()));
            async move {
                let n: Value = client.get(url).send().await?.json().await?;
                Ok((n["status"] == "warm").then_some(n))
            }
        })
        .await
        .unwrap();
        assert_eq!(node["status"], "warm");
    }
    assert_eq!(nodes[0], nodes[1], "the second task reused the warm node");

    // Another user sees none of it.
    let other = p.signed_in("task-stranger").await.unwrap();
    let resp = other
        .get(p.api(&format!("/api/projects/{project_id}/tasks")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// Waits until the session's transcript satisfies `done`; returns it.
pub async fn wait_for_transcript(
    client: &reqwest::Client,
    p: &Platform,
    project_id: &str,
    session_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, TASK_TIMEOUT, || async {
        let t: Value = client
            .get(p.app(&format!(
                "/api/projects/{project_id}/sessions/{session_id}/messages"
            )))
            .send()
            .await?
            .json()
            .await?;
        Ok(done(&t).then_some(t))
    })
    .await
    .unwrap()
}

/// The messages of one kind.
fn of_kind<'a>(t: &'a Value, kind: &str) -> Vec<&'a Value> {
    t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == kind)
        .collect()
}

/// The pull request page of `pr_url` (devgithub's HTML).
async fn pull_page(pr_url: &str) -> String {
    reqwest::get(pr_url).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn j10_follow_up_conversation() {
    let p = Platform::from_env();
    let (client, _session, project) = sam_e2e::github_project(&p, "octo-followup", "followup-app")
        .await
        .unwrap();
    let project_id = project["id"].as_str().unwrap();

    // A first turn that takes a few seconds; a follow-up sent meanwhile
    // waits for it and runs next, in the same session and workspace.
    let task = submit_task(
        &client,
        &p,
        project_id,
        "Please take a short break before anything else",
        "claude-code",
    )
    .await;
    let (task_id, session_id) = (
        task["id"].as_str().unwrap().to_owned(),
        task["session_id"].as_str().unwrap().to_owned(),
    );
    wait_for_transcript(
        &client,
        &p,
        project_id,
        &session_id,
        "the first turn to start",
        |t| !of_kind(t, "prompt_sent").is_empty(),
    )
    .await;
    let (status, body) = post(
        &client,
        p.app(&format!(
            "/api/projects/{project_id}/sessions/{session_id}/prompts"
        )),
        json!({ "text": "Now please create hello.txt" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["session_id"], session_id.as_str());
    let follow_up_id = body["prompt_id"].as_str().unwrap().to_owned();

    let ended = wait_for_task_end(&client, &p, &task_id).await;
    assert_eq!(ended["task"]["status"], "completed", "{ended}");
    let pr_url = ended["task"]["pr_url"].as_str().unwrap().to_owned();
    // Both turns ran, in order, in one agent: one session_started, the
    // prompts sent in the order given, each turn ended before the next.
    let t = transcript(&client, &p, project_id, &session_id).await;
    assert_eq!(of_kind(&t, "session_started").len(), 1, "{t}");
    let kinds: Vec<(String, String)> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "prompt_sent" || m["kind"] == "turn_ended")
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["payload"]["prompt_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("prompt_sent".to_owned(), task_id.clone()),
            ("turn_ended".to_owned(), task_id.clone()),
            ("prompt_sent".to_owned(), follow_up_id.clone()),
            ("turn_ended".to_owned(), follow_up_id.clone()),
        ]
    );
    let prompts: Vec<&str> = t["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        prompts,
        [
            "Please take a short break before anything else",
            "Now please create hello.txt"
        ]
    );
    // The follow-up's work is in the pull request (the task waited for it).
    assert!(
        pull_page(&pr_url).await.contains("hello.txt</code>"),
        "the PR has the follow-up's file"
    );

    // The workspace is gone now; a follow-up continues the conversation in
    // a fresh workspace on the same branch, with the history.
    let (status, body) = post(
        &client,
        p.app(&format!(
            "/api/projects/{project_id}/sessions/{session_id}/prompts"
        )),
        json!({ "text": "Please append a second line to hello.txt" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["continued_from"], session_id.as_str());
    let next = &body["task"];
    assert_eq!(next["branch"], ended["task"]["branch"], "same branch");
    assert_ne!(next["workspace_id"], ended["task"]["workspace_id"]);
    let next_end = wait_for_task_end(&client, &p, next["id"].as_str().unwrap()).await;
    assert_eq!(next_end["task"]["status"], "completed", "{next_end}");
    // The same pull request now has both lines.
    assert_eq!(next_end["task"]["pr_url"], pr_url.as_str());
    let page = pull_page(&pr_url).await;
    assert!(
        page.contains("hello.txt</code> <span class=\"note\">added, +2 −0"),
        "the PR's hello.txt has both lines: {page}"
    );
    // The agent was given the earlier conversation.
    let requests: Value = get_json(
        &reqwest::Client::new(),
        &format!("{}/_llmstub/requests", p.llmstub_url),
    )
    .await;
    let saw_history = requests
        .to_string()
        .contains("User: Now please create hello.txt");
    assert!(saw_history, "the continuation's prompt carries the history");
}

#[tokio::test]
async fn j11_cancel_and_stop() {
    let p = Platform::from_env();
    let s = crate::workspaces::workspace_setup(&p, "octo-cancel").await;
    let ws = crate::workspaces::running_workspace(&p, &s, "cancel").await;

    // An agent in the workspace, on a long turn.
    let (status, body) = post(&s.client, p.app(&format!("/api/workspaces/{}/sessions", ws.id)), json!({ "agent": "claude-code", "message": "Please take your time", "permission_policy": "approve" })).await;
    assert_eq!(status, 202, "{body}");
    let sid = body["session_id"].as_str().unwrap().to_owned();
    let pid = &s.project_id;
    let started = wait_for_transcript(&s.client, &p, pid, &sid, "the slow tool to run", |t| {
        !updates(t, "tool_call").is_empty()
    })
    .await;
    assert_eq!(started["session"]["status"], "running", "{started}");
    let agent_pid = of_kind(&started, "session_started")[0]["payload"]["agent_pid"].clone();

    // Cancel ends the turn, not the agent.
    let cancel = |which: &'static str| {
        let client = s.client.clone();
        let url = p.app(&format!("/api/projects/{pid}/sessions/{sid}/{which}"));
        async move { client.post(url).send().await.unwrap() }
    };
    let began = std::time::Instant::now();
    assert_eq!(cancel("cancel").await.status(), 200);
    let t = wait_for_transcript(&s.client, &p, pid, &sid, "the turn to end cancelled", |t| {
        of_kind(t, "turn_ended")
            .iter()
            .any(|m| m["payload"]["stop_reason"] == "cancelled")
    })
    .await;
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "cancel took {:?}",
        began.elapsed()
    );
    assert_eq!(t["session"]["status"], "waiting_for_input", "{t}");
    assert!(
        of_kind(&t, "agent_exited").is_empty(),
        "the agent still runs"
    );

    // The same agent takes the next prompt.
    let resp = s
        .client
        .post(p.app(&format!("/api/projects/{pid}/sessions/{sid}/prompts")))
        .json(&json!({ "text": "Please create hello.txt" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let t = wait_for_transcript(&s.client, &p, pid, &sid, "the next turn to end", |t| {
        of_kind(t, "turn_ended")
            .iter()
            .any(|m| m["payload"]["stop_reason"] == "end_turn")
    })
    .await;
    let started = of_kind(&t, "session_started");
    assert_eq!(started.len(), 1, "not restarted: {t}");
    assert_eq!(started[0]["payload"]["agent_pid"], agent_pid);
    // Stop ends the agent; the session is then over.
    assert_eq!(cancel("stop").await.status(), 200);
    let t = wait_for_transcript(&s.client, &p, pid, &sid, "the agent to exit", |t| {
        !of_kind(t, "agent_exited").is_empty()
    })
    .await;
    assert_eq!(t["session"]["status"], "completed", "{t}");
    let resp = s
        .client
        .post(p.app(&format!("/api/projects/{pid}/sessions/{sid}/prompts")))
        .json(&json!({ "text": "anyone there?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "session_not_running", "{body}");

    // A task is cancelled wherever it is: mid-turn here.
    let task = submit_task(&s.client, &p, pid, "Please take your time", "claude-code").await;
    let task_id = task["id"].as_str().unwrap();
    wait_for_transcript(
        &s.client,
        &p,
        pid,
        task["session_id"].as_str().unwrap(),
        "the task's agent to work",
        |t| !updates(t, "tool_call").is_empty(),
    )
    .await;
    let resp = s
        .client
        .post(p.app(&format!("/api/tasks/{task_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ended = wait_for_task_end(&s.client, &p, task_id).await;
    assert_eq!(ended["task"]["status"], "cancelled", "{ended}");
    assert!(ended["task"]["pr_url"].is_null());
    // Cleaned up: its workspace deleted, its node warm again.
    let ws_id = ended["task"]["workspace_id"].as_str().unwrap();
    let w: Value = eventually(
        "the task's workspace to be deleted",
        Duration::from_secs(30),
        || {
            let client = s.client.clone();
            let url = p.app(&format!("/api/workspaces/{ws_id}"));
            async move {
                let w: Value = client.get(url).send().await?.json().await?;
                Ok((w["status"] == "deleted").then_some(w))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(w["status"], "deleted");
    // Cancelling again is harmless.
    let resp = s
        .client
        .post(p.app(&format!("/api/tasks/{task_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["task"]["status"], "cancelled");
}

/// Lets the session's turn run to its end, answering every permission
/// request it makes with an `allow` option through the chat API (as the
/// chat page's buttons do); returns the transcript and how many were
/// answered.
async fn run_turn_answering(
    client: &reqwest::Client,
    p: &Platform,
    project_id: &str,
    session_id: &str,
    turns_before: usize,
) -> (Value, usize) {
    let mut answered = std::collections::BTreeSet::new();
    loop {
        let t = wait_for_transcript(
            client,
            p,
            project_id,
            session_id,
            "the turn to end or ask",
            |t| {
                of_kind(t, "turn_ended").len() > turns_before
                    || of_kind(t, "permission_requested").len()
                        > of_kind(t, "permission_answered").len()
            },
        )
        .await;
        if of_kind(&t, "turn_ended").len() > turns_before {
            return (t, answered.len());
        }
        let pending: Vec<&Value> = of_kind(&t, "permission_requested")
            .into_iter()
            .filter(|r| {
                !of_kind(&t, "permission_answered")
                    .iter()
                    .any(|a| a["payload"]["request_id"] == r["payload"]["request_id"])
            })
            .collect();
        for request in pending {
            let rid = request["payload"]["request_id"]
                .as_str()
                .unwrap()
                .to_owned();
            if !answered.insert(rid.clone()) {
                continue;
            }
            assert_eq!(t["session"]["status"], "waiting_for_permission", "{t}");
            let allow = request["payload"]["options"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["kind"].as_str().is_some_and(|k| k.starts_with("allow")))
                .unwrap_or_else(|| panic!("no allow option: {request}"));
            let resp = client
                .post(p.app(&format!(
                    "/api/projects/{project_id}/sessions/{session_id}/permissions/{rid}"
                )))
                .json(&json!({ "option_id": allow["optionId"] }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        }
    }
}

#[tokio::test]
async fn j16_interactive_agent_in_workspace() {
    let p = Platform::from_env();
    let s = crate::workspaces::workspace_setup(&p, "octo-interactive").await;
    let ws = crate::workspaces::running_workspace(&p, &s, "interactive").await;
    let pid = s.project_id.as_str();

    // Another user can neither start an agent there nor read a session.
    let other = p.signed_in("interactive-stranger").await.unwrap();
    let resp = other
        .post(p.api(&format!("/api/workspaces/{}/sessions", ws.id)))
        .json(&json!({ "agent": "claude-code" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The user starts an agent in their workspace from the chat; its
    // permission requests come to the chat and are answered there.
    let (status, body) = post(&s.client, p.app(&format!("/api/workspaces/{}/sessions", ws.id)), json!({ "agent": "claude-code", "message": "Please create hello.txt", "permission_policy": "ask" })).await;
    assert_eq!(status, 202, "{body}");
    let sid = body["session_id"].as_str().unwrap().to_owned();
    let (t, asked_first) = run_turn_answering(&s.client, &p, pid, &sid, 0).await;
    assert_eq!(
        of_kind(&t, "turn_ended")[0]["payload"]["stop_reason"],
        "end_turn",
        "{t}"
    );
    let host = sam_e2e::workspace_host::WorkspaceHost::open(&p, &s.client, &ws.id)
        .await
        .unwrap();
    let read = |path: &'static str| {
        let client = host.client.clone();
        let url = host.url(&format!("/files/content?path={path}"));
        async move {
            let v: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            v["text"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(read("hello.txt").await, "hello from the agent\n");

    // A follow-up in the same session runs a shell command in the workspace.
    let resp = s
        .client
        .post(p.app(&format!("/api/projects/{pid}/sessions/{sid}/prompts")))
        .json(&json!({ "text": "Please append a second line to hello.txt" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let (t, asked_second) = run_turn_answering(&s.client, &p, pid, &sid, 1).await;
    assert_eq!(
        read("hello.txt").await,
        "hello from the agent\nsecond line\n"
    );
    assert!(
        asked_first + asked_second > 0,
        "the agent asked for permission at least once under `ask`: {t}"
    );
    for answer in of_kind(&t, "permission_answered") {
        assert_eq!(answer["payload"]["by"], "user", "{answer}");
    }
    let sessions: Value =
        get_json(&s.client, &p.app(&format!("/api/projects/{pid}/sessions"))).await;
    let listed = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == sid.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["status"], "waiting_for_input", "{listed}");
    // Search finds it by what was said in it (the agent's text too).
    for (query, found) in [
        ("second line", true),
        ("Done written", true),
        ("\"NEAR(", false),
        ("nowhere-to-be-found", false),
    ] {
        let hits: Value = get_json(
            &s.client,
            &p.app(&format!(
                "/api/projects/{pid}/sessions?q={}",
                url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
            )),
        )
        .await;
        let ids: Vec<&str> = hits["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.contains(&sid.as_str()), found, "{query}: {hits}");
    }
    assert_eq!(listed["workspace_id"], ws.id.as_str());
    let resp = other
        .get(p.api(&format!("/api/projects/{pid}/sessions/{sid}/messages")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Stop: the agent ends, the workspace stays.
    let resp = s
        .client
        .post(p.app(&format!("/api/projects/{pid}/sessions/{sid}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t = wait_for_transcript(&s.client, &p, pid, &sid, "the agent to exit", |t| {
        !of_kind(t, "agent_exited").is_empty()
    })
    .await;
    assert_eq!(t["session"]["status"], "completed", "{t}");
    let w = crate::workspaces::wait_for_status(&s.client, &p, &ws.id, "running").await;
    assert_eq!(w.status, "running");
}

#[tokio::test]
async fn j09_warm_reuse_then_destroy() {
    let p = Platform::from_env();
    let (client, _session, project) = sam_e2e::github_project(&p, "octo-warm", "warm-app")
        .await
        .unwrap();
    let project_id = project["id"].as_str().unwrap();
    // This project's idle nodes stay warm 10 s.
    let resp = client
        .patch(p.app(&format!("/api/projects/{project_id}")))
        .json(&json!({ "settings": { "warm_node_timeout_secs": 10 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // The first task provisions a node; when it is done the node is warm.
    let first = submit_task(
        &client,
        &p,
        project_id,
        "Please create hello.txt",
        "claude-code",
    )
    .await;
    let first = wait_for_task_end(&client, &p, first["id"].as_str().unwrap()).await;
    assert_eq!(first["task"]["status"], "completed", "{first}");
    let node_id = first["task"]["node_id"].as_str().unwrap().to_owned();
    let node_url = p.app(&format!("/api/nodes/{node_id}"));
    let warm = sam_e2e::wait_for_node(&client, &node_url, "warm")
        .await
        .unwrap();
    let server_id = warm.provider_server_id.clone().unwrap();

    // The next task, submitted while it is warm, reuses it: no new node.
    let second = submit_task(
        &client,
        &p,
        project_id,
        "Please create hello.txt again",
        "claude-code",
    )
    .await;
    let second = wait_for_task_end(&client, &p, second["id"].as_str().unwrap()).await;
    assert_eq!(second["task"]["status"], "completed", "{second}");
    assert_eq!(
        second["task"]["node_id"],
        node_id.as_str(),
        "reused the warm node"
    );
    let nodes: Value = get_json(&client, &p.app("/api/nodes")).await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");

    // Warm again, and nobody claims it: at the project's warm timeout the
    // node is destroyed and its server is gone from the cloud.
    let warm = sam_e2e::wait_for_node(&client, &node_url, "warm")
        .await
        .unwrap();
    let warm_until = warm.warm_until.unwrap();
    assert!(warm_until - warm.status_since <= 10_000, "{warm:?}");
    let destroyed = eventually(
        "the warm node to be destroyed",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let url = node_url.clone();
            async move {
                let n: sam_wire::NodeView = client.get(url).send().await?.json().await?;
                Ok((n.status == "destroyed").then_some(n))
            }
        },
    )
    .await
    .unwrap();
    assert!(destroyed.status_since >= warm_until, "{destroyed:?}");
    assert!(p.devcloud_server(&server_id).await.unwrap().is_none());
}
