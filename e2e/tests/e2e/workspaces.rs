//! Workspaces end to end: a project's repository checked out on a node by
//! its vm-agent, which fetches git credentials from the API through its
//! own credential helper, clones from the GitHub stand-in over smart HTTP
//! and reports back; then the user's lifecycle actions.

use std::time::Duration;

use sam_e2e::{Platform, eventually};
use sam_wire::{ErrorBody, NodeView, WorkspaceView};
use serde_json::{Value, json};

/// A signed-in GitHub user with a cloud credential, a project for a new
/// repository and a ready node: what a workspace needs.
pub struct WorkspaceSetup {
    pub client: reqwest::Client,
    pub project_id: String,
    pub node_id: String,
    /// The app's session cookie (`sam_session=…`), for a browser.
    pub session: String,
}

pub async fn workspace_setup(p: &Platform, login: &str) -> WorkspaceSetup {
    let (client, session, project) = sam_e2e::github_project(p, login, "app").await.unwrap();
    let node: NodeView = client
        .post(p.app("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sam_e2e::wait_for_node(&client, &p.app(&format!("/api/nodes/{}", node.id)), "ready")
        .await
        .unwrap();
    WorkspaceSetup {
        client,
        project_id: project["id"].as_str().unwrap().to_owned(),
        node_id: node.id,
        session,
    }
}

pub async fn wait_for_status(
    client: &reqwest::Client,
    p: &Platform,
    id: &str,
    status: &str,
) -> WorkspaceView {
    eventually(
        &format!("workspace {id} to be {status}"),
        Duration::from_secs(60),
        || async {
            let w: WorkspaceView = client
                .get(p.app(&format!("/api/workspaces/{id}")))
                .send()
                .await?
                .json()
                .await?;
            if w.status == "error" && status != "error" {
                anyhow::bail!("workspace failed: {:?}", w.error_message);
            }
            Ok((w.status == status).then_some(w))
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn j14_workspace_lifecycle() {
    let p = Platform::from_env();
    let s = workspace_setup(&p, "j14-owner").await;
    let c = &s.client;

    // Create on the ready node, on a branch the repository does not have yet.
    let resp = c
        .post(p.app("/api/workspaces"))
        .json(&json!({ "project_id": s.project_id, "node_id": s.node_id, "branch": "sam/j14", "name": "j14-ws" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: WorkspaceView = resp.json().await.unwrap();
    assert_eq!(created.status, "creating");
    assert_eq!(created.branch, "sam/j14");
    assert!(
        created
            .url
            .starts_with(&format!("http://ws-{}.", created.id.to_ascii_lowercase())),
        "{}",
        created.url
    );
    let running = wait_for_status(c, &p, &created.id, "running").await;
    assert!(running.ready_at.is_some());
    let log: Value =
        sam_e2e::get_json(c, &p.app(&format!("/api/workspaces/{}/events", created.id))).await;
    let steps: Vec<String> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["step"].as_str().unwrap(),
                e["status"].as_str().unwrap()
            )
        })
        .collect();
    assert!(steps.contains(&"clone:done".to_owned()), "{steps:?}");
    assert!(steps.iter().all(|s| !s.ends_with(":failed")), "{steps:?}");

    // A terminal ticket buys the vm-agent's own workspace cookie, once.
    let ticket: Value = c
        .post(p.app(&format!("/api/workspaces/{}/terminal-ticket", created.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let node: NodeView = sam_e2e::get_json(c, &p.app(&format!("/api/nodes/{}", s.node_id))).await;
    let agent_base = format!(
        "http://{}:{}/workspaces/{}",
        node.ip_address.unwrap(),
        std::env::var("SAM_E2E_VM_AGENT_PORT").unwrap(),
        created.id
    );
    let agent = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = format!("{agent_base}/session?token={ticket}");
    let resp = agent.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("sam_ws=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let resp = agent.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), 401, "a ticket is single use");
    assert_eq!(
        resp.json::<ErrorBody>().await.unwrap().code,
        "token_replayed"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let resp = agent
        .post(format!("{agent_base}/terminals"))
        .header("cookie", &cookie)
        .json(&json!({ "cols": 80, "rows": 24 }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "the cookie opens the workspace's terminals"
    );
    let resp = agent
        .post(format!("{agent_base}/terminals"))
        .json(&json!({ "cols": 80, "rows": 24 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "nothing opens them without it");

    // Names are unique on a node (an explicit one; a default name is made
    // unique); a rename takes.
    let resp = c
        .post(p.app("/api/workspaces"))
        .json(&json!({ "project_id": s.project_id, "node_id": s.node_id, "name": "j14-ws" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<ErrorBody>().await.unwrap().code,
        "workspace_name_taken"
    );
    let renamed: WorkspaceView = c
        .patch(p.app(&format!("/api/workspaces/{}", created.id)))
        .json(&json!({ "name": "j14-renamed" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed.name, "j14-renamed");

    // Another user sees nothing and can do nothing.
    let stranger = p.signed_in("j14-stranger").await.unwrap();
    for (method, path) in [
        ("GET", format!("/api/workspaces/{}", created.id)),
        ("POST", format!("/api/workspaces/{}/stop", created.id)),
        ("DELETE", format!("/api/workspaces/{}", created.id)),
    ] {
        let resp = stranger
            .request(method.parse().unwrap(), p.api(&path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
    let theirs: Value = sam_e2e::get_json(&stranger, &p.api("/api/workspaces")).await;
    assert_eq!(theirs["workspaces"], json!([]));

    // Stop, restart, rebuild, delete.
    let act = |action: &'static str| {
        c.post(p.app(&format!("/api/workspaces/{}/{action}", created.id)))
            .json(&json!({}))
            .send()
    };
    let stopped: WorkspaceView = act("stop").await.unwrap().json().await.unwrap();
    assert_eq!(stopped.status, "stopped");
    let resp = c
        .post(p.app(&format!("/api/workspaces/{}/terminal-ticket", created.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<ErrorBody>().await.unwrap().code,
        "workspace_not_running"
    );
    let restarted: WorkspaceView = act("restart").await.unwrap().json().await.unwrap();
    assert_eq!(restarted.status, "running");
    let rebuilt: WorkspaceView = act("rebuild").await.unwrap().json().await.unwrap();
    assert_eq!(rebuilt.status, "running");
    let resp = c
        .delete(p.app(&format!("/api/workspaces/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deleted: WorkspaceView = resp.json().await.unwrap();
    assert_eq!(deleted.status, "deleted");
    let mine: Value = sam_e2e::get_json(c, &p.app("/api/workspaces")).await;
    assert_eq!(mine["workspaces"], json!([]));
}

/// A running workspace named `name` (on branch `sam/<name>`) on the
/// setup's node.
pub async fn running_workspace(p: &Platform, s: &WorkspaceSetup, name: &str) -> WorkspaceView {
    let resp = s
        .client
        .post(p.app("/api/workspaces"))
        .json(&json!({ "project_id": s.project_id, "node_id": s.node_id, "branch": format!("sam/{name}"), "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: WorkspaceView = resp.json().await.unwrap();
    wait_for_status(&s.client, p, &created.id, "running").await
}
