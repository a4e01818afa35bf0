//! The cross-user matrix: every route that names a user's resource by id,
//! taken from the Worker's own route table, answers another user with 404
//! (and changes nothing). A new route with an id and no fixture here fails
//! this test until someone says what resource it names.

use sam_e2e::Platform;
use sam_wire::routes::{API_ROUTES, Auth};
use serde_json::{Value, json};

/// The owner's resource ids, by the path prefix that names them.
struct Fixtures {
    node: String,
    token: String,
    project: String,
    installation: String,
    repository: String,
    workspace: String,
    task: String,
    session: String,
}

impl Fixtures {
    fn id_for(&self, pattern: &str) -> Option<&str> {
        if pattern.starts_with("/api/nodes/{id}") {
            Some(&self.node)
        } else if pattern.starts_with("/api/auth/tokens/{id}") {
            Some(&self.token)
        } else if pattern.starts_with("/api/projects/{id}") {
            Some(&self.project)
        } else if pattern.starts_with("/api/github/installations/{id}") {
            Some(&self.installation)
        } else if pattern.starts_with("/api/workspaces/{id}") {
            Some(&self.workspace)
        } else if pattern.starts_with("/api/tasks/{id}") {
            Some(&self.task)
        } else {
            None
        }
    }
}

#[tokio::test]
async fn authz_cross_user_matrix() {
    let p = Platform::from_env();
    let (owner, _, project) = sam_e2e::github_project(&p, "authz-owner", "private-app")
        .await
        .unwrap();
    // A project override exists, so a leak through its routes would show.
    let resp = owner
        .put(p.app(&format!(
            "/api/projects/{}/agent-credentials/claude-code",
            project["id"].as_str().unwrap()
        )))
        .json(&json!({ "kind": "api_key", "secret": "sk-authz-owner-000000001" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let other = p.signed_in("authz-other").await.unwrap();

    let node: Value = owner
        .post(p.app("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "authz-node" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A running workspace on that node (the vm-agent clones the project).
    let node_id = node["id"].as_str().unwrap().to_owned();
    sam_e2e::wait_for_node(&owner, &p.app(&format!("/api/nodes/{node_id}")), "ready")
        .await
        .unwrap();
    let workspace: Value = owner
        .post(p.app("/api/workspaces"))
        .json(&json!({ "project_id": project["id"], "node_id": node_id }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let workspace_id = workspace["id"].as_str().unwrap().to_owned();
    crate::workspaces::wait_for_status(&owner, &p, &workspace_id, "running").await;
    let token: Value = owner
        .post(p.app("/api/auth/tokens"))
        .json(&json!({ "name": "authz" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A task (cancelled at once: the matrix needs its id and its chat
    // session, not its work).
    let task: Value = owner
        .post(p.app(&format!(
            "/api/projects/{}/tasks",
            project["id"].as_str().unwrap()
        )))
        .json(&json!({ "message": "authz fixture task", "agent": "claude-code" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = task["task"].clone();
    let cancel = owner
        .post(p.app(&format!(
            "/api/tasks/{}/cancel",
            task["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success() || cancel.status() == 409);
    let fixtures = Fixtures {
        node: node["id"].as_str().unwrap().to_owned(),
        token: token["id"].as_str().unwrap().to_owned(),
        project: project["id"].as_str().unwrap().to_owned(),
        installation: project["installation_id"].as_str().unwrap().to_owned(),
        repository: project["repository_id"].to_string(),
        workspace: workspace_id,
        task: task["id"].as_str().unwrap().to_owned(),
        session: task["session_id"].as_str().unwrap().to_owned(),
    };

    let mut checked = Vec::new();
    for route in API_ROUTES.iter().filter(|r| r.auth == Auth::Session) {
        if route.pattern.starts_with("/api/admin/") {
            // Admin routes act on other accounts by design; a non-admin is refused outright.
            let path = route
                .pattern
                .replace("{id}", &fixtures.node)
                .replace("{action}", "approve");
            let resp = other
                .request(route.method.parse().unwrap(), p.api(&path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 403, "{} {}", route.method, route.pattern);
            checked.push(route.pattern);
            continue;
        }
        if !route.pattern.contains("{id}") {
            continue;
        }
        let id = fixtures.id_for(route.pattern).unwrap_or_else(|| {
            panic!(
                "no fixture for {} {}: add the resource it names",
                route.method, route.pattern
            )
        });
        let path = route
            .pattern
            .replace("{id}", id)
            .replace("{agent}", "claude-code")
            .replace("{repository}", &fixtures.repository)
            .replace("{session}", &fixtures.session)
            .replace("{request}", "1");
        let resp = other
            .request(route.method.parse().unwrap(), p.api(&path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            404,
            "{} {} as another user",
            route.method,
            route.pattern
        );
        checked.push(route.pattern);
    }
    assert!(checked.len() >= 15, "the matrix covered {checked:?}");

    // Lists never show another user's resources.
    for list in [
        "/api/nodes",
        "/api/auth/tokens",
        "/api/projects",
        "/api/github/installations",
        "/api/credentials/agents",
        "/api/workspaces",
    ] {
        let body = other
            .get(p.api(list))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains(&fixtures.node)
                && !body.contains(&fixtures.token)
                && !body.contains(&fixtures.project)
                && !body.contains(&format!("\"{}\"", fixtures.installation)),
            "{list}: {body}"
        );
    }

    // Nothing changed: the owner still has both, intact.
    let mine: Value =
        sam_e2e::get_json(&owner, &p.app(&format!("/api/nodes/{}", fixtures.node))).await;
    assert_ne!(mine["status"], "destroyed");
    let ws: Value = sam_e2e::get_json(
        &owner,
        &p.app(&format!("/api/workspaces/{}", fixtures.workspace)),
    )
    .await;
    assert_eq!(ws["status"], "running", "{ws}");
    let tokens: Value = sam_e2e::get_json(&owner, &p.app("/api/auth/tokens")).await;
    let still = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == fixtures.token.as_str())
        .expect("the owner's token is still listed");
    assert!(still["revoked_at"].is_null(), "{still}");

    let still: Value = sam_e2e::get_json(
        &owner,
        &p.app(&format!("/api/projects/{}", fixtures.project)),
    )
    .await;
    assert_eq!(still["status"], "active");
    let keys: Value = sam_e2e::get_json(
        &owner,
        &p.app(&format!(
            "/api/projects/{}/agent-credentials",
            fixtures.project
        )),
    )
    .await;
    assert_eq!(keys["overrides"].as_array().unwrap().len(), 1, "{keys}");

    let resp = owner
        .delete(p.app(&format!("/api/nodes/{}", fixtures.node)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
