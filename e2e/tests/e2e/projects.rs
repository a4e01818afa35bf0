//! Projects from GitHub repositories: install the GitHub App through the
//! stand-in's install page, pick a repository and branch, manage the
//! project, and watch GitHub's webhooks keep it in sync.

use std::time::Duration;

use sam_e2e::{
    Platform, create_github_repo, eventually, get_json, github_user_signed_in, install_github_app,
};
use sam_wire::ErrorBody;
use serde_json::{Value, json};

async fn error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap();
    (status, body.code)
}

async fn project(client: &reqwest::Client, p: &Platform, id: &str) -> Value {
    get_json(client, &p.app(&format!("/api/projects/{id}"))).await
}

#[tokio::test]
async fn j06_project_from_github_repo() {
    let p = Platform::from_env();
    let login = "j06-octo";
    let user = github_user_signed_in(&p, login).await.unwrap();
    let app = create_github_repo(&p, login, "app", &["main", "develop", "feature/x"])
        .await
        .unwrap();
    let other = create_github_repo(&p, login, "other", &["trunk"])
        .await
        .unwrap();
    let app_id = app["id"].as_u64().unwrap();
    let other_id = other["id"].as_u64().unwrap();

    // Before installing there is nothing to choose from.
    let none: Value = get_json(&user, &p.app("/api/github/installations")).await;
    assert_eq!(none["installations"], json!([]), "{none}");

    let installation = install_github_app(&p, &user, login).await.unwrap();
    let listed: Value = get_json(&user, &p.app("/api/github/installations")).await;
    assert_eq!(listed["installations"][0]["id"], installation.as_str());
    assert_eq!(listed["installations"][0]["account_login"], login);

    let repos: Value = get_json(
        &user,
        &p.app(&format!(
            "/api/github/installations/{installation}/repositories"
        )),
    )
    .await;
    let names: Vec<&str> = repos["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"j06-octo/app") && names.contains(&"j06-octo/other"),
        "{names:?}"
    );
    let branches: Value = get_json(
        &user,
        &p.app(&format!(
            "/api/github/installations/{installation}/repositories/{app_id}/branches"
        )),
    )
    .await;
    assert_eq!(
        branches["branches"],
        json!(["develop", "feature/x", "main"])
    );

    // Bad requests are refused with a stable code and write nothing.
    let create = |body: Value| user.post(p.app("/api/projects")).json(&body).send();
    let repository = format!("{installation}:{app_id}");
    for (body, want) in [
        (
            json!({ "repository": "not-a-ref" }),
            (400, "invalid_repository"),
        ),
        (
            json!({ "repository": format!("{installation}:999999") }),
            (404, "not_found"),
        ),
        (
            json!({ "repository": format!("424242:{app_id}") }),
            (404, "not_found"),
        ),
        (
            json!({ "repository": repository, "default_branch": "nope" }),
            (400, "branch_not_found"),
        ),
        (
            json!({ "repository": repository, "default_branch": "-rf" }),
            (400, "invalid_branch"),
        ),
        (
            json!({ "repository": repository, "settings": { "location": "mars" } }),
            (400, "unknown_location"),
        ),
        (
            json!({ "repository": repository, "owner": "x" }),
            (400, "invalid_json"),
        ),
    ] {
        let (status, code) = error(create(body.clone()).await.unwrap()).await;
        assert_eq!((status, code.as_str()), want, "{body}");
    }
    let empty: Value = get_json(&user, &p.app("/api/projects")).await;
    assert_eq!(empty["projects"], json!([]));

    // Pick a repository and a branch.
    let resp = create(json!({
        "repository": repository,
        "default_branch": "develop",
        "settings": { "vm_size": "medium", "agent": "claude-code" },
    }))
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "app");
    assert_eq!(created["repo_full_name"], "j06-octo/app");
    assert_eq!(created["default_branch"], "develop");
    assert_eq!(created["status"], "active");
    assert_eq!(created["settings"]["vm_size"], "medium");
    // The same repository twice is a conflict naming the existing project.
    let (status, code) = error(create(json!({ "repository": repository })).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (409, "project_exists"));

    // Rename and settings; an invalid change leaves everything as it was.
    let patch = |body: Value| {
        user.patch(p.app(&format!("/api/projects/{id}")))
            .json(&body)
            .send()
    };
    let resp = patch(json!({
        "name": "My App",
        "default_branch": "feature/x",
        "settings": { "location": "hel1", "vm_size": null },
    }))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let renamed = project(&user, &p, &id).await;
    assert_eq!(renamed["name"], "My App");
    assert_eq!(renamed["default_branch"], "feature/x");
    assert_eq!(renamed["settings"]["location"], "hel1");
    assert_eq!(renamed["settings"]["vm_size"], Value::Null);
    assert_eq!(renamed["settings"]["agent"], "claude-code");
    for (body, want) in [
        (json!({ "name": "" }), "invalid_name"),
        (json!({ "default_branch": "gone" }), "branch_not_found"),
        (
            json!({ "settings": { "agent": "cursor" } }),
            "unknown_agent",
        ),
        (
            json!({ "settings": { "provider": "aws" } }),
            "unknown_provider",
        ),
    ] {
        let (status, code) = error(patch(body.clone()).await.unwrap()).await;
        assert_eq!((status, code.as_str()), (400, want), "{body}");
    }
    assert_eq!(project(&user, &p, &id).await, renamed);

    // Webhooks: a rename on GitHub reaches the project…
    let gh = reqwest::Client::new();
    let resp = gh
        .post(format!(
            "{}/_devgithub/repos/{login}/app/rename",
            p.devgithub_url
        ))
        .json(&json!({ "name": "app-renamed" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    eventually("the rename webhook", Duration::from_secs(20), || async {
        let current = project(&user, &p, &id).await;
        Ok((current["repo_full_name"] == "j06-octo/app-renamed").then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(project(&user, &p, &id).await["name"], "My App");

    // …and so does a deleted repository.
    let other_project: Value =
        create(json!({ "repository": format!("{installation}:{other_id}") }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let other_project = other_project["id"].as_str().unwrap().to_owned();
    assert_eq!(
        project(&user, &p, &other_project).await["default_branch"],
        "trunk"
    );
    let resp = gh
        .delete(format!(
            "{}/_devgithub/repos/{login}/other",
            p.devgithub_url
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    eventually(
        "the repository-deleted webhook",
        Duration::from_secs(20),
        || async {
            let current = project(&user, &p, &other_project).await;
            Ok((current["status"] == "repository_missing").then_some(()))
        },
    )
    .await
    .unwrap();

    // A delivery without a valid signature is refused and changes nothing.
    let forged = json!({
        "action": "renamed",
        "repository": { "id": app_id, "full_name": "evil/app", "html_url": "http://evil.test" },
        "installation": { "id": installation.parse::<u64>().unwrap() },
    });
    for signature in [
        None,
        Some("sha256=00"),
        Some(&*format!("sha256={}", "ab".repeat(32))),
    ] {
        let mut req = p
            .client()
            .post(p.app("/api/github/webhook"))
            .header("x-github-event", "repository")
            .json(&forged);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        let (status, code) = error(req.send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "webhook_signature_invalid"));
    }
    assert_eq!(
        project(&user, &p, &id).await["repo_full_name"],
        "j06-octo/app-renamed"
    );

    // Delete cascades; the project is gone for good.
    let resp = user
        .delete(p.app(&format!("/api/projects/{other_project}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = user
        .get(p.app(&format!("/api/projects/{other_project}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Uninstalling the app on GitHub marks what it reached.
    let resp = gh
        .delete(format!(
            "{}/_devgithub/installations/{installation}",
            p.devgithub_url
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    eventually(
        "the installation-deleted webhook",
        Duration::from_secs(20),
        || async {
            let current = project(&user, &p, &id).await;
            Ok((current["status"] == "installation_missing").then_some(()))
        },
    )
    .await
    .unwrap();
    let gone: Value = get_json(&user, &p.app("/api/github/installations")).await;
    assert_eq!(gone["installations"], json!([]));
    let resp = user
        .get(p.app(&format!(
            "/api/github/installations/{installation}/repositories"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
