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
    let resp = client
        .post(p.app(&format!("/api/projects/{project_id}/tasks")))
        .json(&json!({ "message": message, "agent": agent }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body["task"].clone()
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
        assert_eq!(kinds.first(), Some(&"session_started"), "{kinds:?}");
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
