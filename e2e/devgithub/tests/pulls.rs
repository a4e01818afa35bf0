//! Pull requests against a running devgithub, with branches pushed by the
//! real `git`: opening (as the app's bot and as a user), GitHub's 422s,
//! listing with filters, reading, closing and reopening, the HTML page,
//! the admin listing, `pull_request` webhooks, access rules and
//! persistence across a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{APP_SLUG, Options, Receiver, TestHub, decode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// git with a private HOME and global config, no prompts.
struct Git {
    home: PathBuf,
}

impl Git {
    fn new(dir: &Path) -> Self {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Test Pusher\n\temail = pusher@example.com\n",
        )
        .unwrap();
        Git { home }
    }

    /// Runs git, which must succeed; returns trimmed stdout.
    async fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = tokio::process::Command::new("git")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .current_dir(cwd)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

/// `http.extraHeader` carrying `token` as Basic auth.
fn auth_header(token: &str) -> String {
    let basic = STANDARD.encode(format!("x-access-token:{token}"));
    format!("http.extraHeader=Authorization: Basic {basic}")
}

async fn mint(hub: &TestHub, installation: &Value, body: Value) -> String {
    let (status, minted) = hub
        .installation_token(installation["id"].as_u64().unwrap(), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

async fn send(
    hub: &TestHub,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = hub.client.request(method, hub.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    decode(request.send().await.unwrap()).await
}

async fn open(hub: &TestHub, token: &str, body: Value) -> (StatusCode, Value) {
    send(
        hub,
        Method::POST,
        "/repos/octocat/hello/pulls",
        Some(token),
        Some(body),
    )
    .await
}

/// Commits `file` on `branch` in the clone at `work` and pushes it.
async fn push_change(git: &Git, work: &Path, token: &str, branch: &str, file: &str) -> String {
    std::fs::write(work.join(file), format!("{file} on {branch}\n")).unwrap();
    git.ok(work, &["add", file]).await;
    git.ok(work, &["commit", "--quiet", "-m", &format!("Add {file}")])
        .await;
    git.ok(
        work,
        &[
            "-c",
            &auth_header(token),
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ],
    )
    .await;
    git.ok(work, &["rev-parse", "HEAD"]).await
}

fn numbers(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["number"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn pull_requests_join_pushed_branches_like_github() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let state_dir = dir.path().join("state");
    let hub = TestHub::start_with(
        &state_dir,
        Options {
            webhook_url: Some(receiver.url.clone()),
            ..Options::default()
        },
    )
    .await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", Some("octocat@example.com"))
        .await;
    let repo = hub.create_repo("octocat", "hello", true).await;
    let installation = hub.install("octocat", &["hello"]).await;
    let token = mint(&hub, &installation, json!({})).await;
    let user = hub.user_token("octocat", "repo").await;

    // A branch with one commit main does not have.
    let url = repo["clone_url"].as_str().unwrap();
    git.ok(
        dir.path(),
        &["-c", &auth_header(&token), "clone", "--quiet", url, "work"],
    )
    .await;
    let work = dir.path().join("work");
    git.ok(&work, &["checkout", "--quiet", "-b", "feature/x"])
        .await;
    let head_sha = push_change(&git, &work, &token, "feature/x", "change.txt").await;

    // Opened with the installation token: the bot is the author.
    let response = hub
        .client
        .post(hub.url("/repos/octocat/hello/pulls"))
        .bearer_auth(&token)
        .json(
            &json!({"title": "Add a change", "head": "feature/x", "base": "main",
                      "body": "Why: <because>"}),
        )
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, pr) = decode(response).await;
    assert_eq!(status, StatusCode::CREATED, "{pr}");
    assert_eq!(location, hub.url("/repos/octocat/hello/pulls/1"));
    assert_eq!(pr["number"], 1);
    assert!(pr["id"].as_u64().unwrap() > 0);
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["title"], "Add a change");
    assert_eq!(pr["body"], "Why: <because>");
    assert_eq!(pr["html_url"], hub.url("/octocat/hello/pull/1"));
    assert_eq!(pr["url"], hub.url("/repos/octocat/hello/pulls/1"));
    assert_eq!(pr["head"]["ref"], "feature/x");
    assert_eq!(pr["head"]["sha"], head_sha.as_str());
    assert_eq!(pr["head"]["label"], "octocat:feature/x");
    assert_eq!(pr["head"]["repo"]["full_name"], "octocat/hello");
    assert_eq!(pr["base"]["ref"], "main");
    assert_eq!(pr["base"]["label"], "octocat:main");
    assert_eq!(pr["user"]["login"], format!("{APP_SLUG}[bot]"));
    assert_eq!(pr["user"]["type"], "Bot");
    assert_eq!(pr["draft"], false);
    assert_eq!(pr["merged"], false);
    assert_eq!(pr["commits"], 1);
    assert_eq!(pr["changed_files"], 1);
    assert_eq!(pr["additions"], 1);
    assert!(pr["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(pr["created_at"], pr["updated_at"]);

    // GitHub's 422s.
    let (status, body) = open(
        &hub,
        &token,
        json!({"title": "Again", "head": "octocat:feature/x", "base": "main"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["message"], "Validation Failed");
    assert_eq!(
        body["errors"],
        json!([{"resource": "PullRequest", "code": "custom",
                "message": "A pull request already exists for octocat:feature/x."}])
    );
    let (status, body) = open(
        &hub,
        &token,
        json!({"title": "t", "head": "nope", "base": "main"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"],
        json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
    );
    let (status, body) = open(
        &hub,
        &token,
        json!({"title": "t", "head": "feature/x", "base": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "base");
    // A fork's branch: forks are not emulated, so it does not exist.
    let (status, body) = open(
        &hub,
        &token,
        json!({"title": "t", "head": "someone:feature/x", "base": "main"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "head");
    for (head, base) in [("develop", "main"), ("main", "main")] {
        let (status, body) = open(
            &hub,
            &token,
            json!({"title": "t", "head": head, "base": base}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["errors"][0]["message"],
            format!("No commits between {base} and {head}")
        );
        assert_eq!(body["errors"][0]["code"], "custom");
    }
    let (status, body) = open(
        &hub,
        &token,
        json!({"head": "feature/x", "base": "develop"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"],
        json!([{"resource": "PullRequest", "field": "title", "code": "missing_field"}])
    );
    let (status, _) = open(&hub, &token, json!({"title": 7})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Opened with the user's token, as a draft: the user is the author.
    let (status, second) = open(
        &hub,
        &user,
        json!({"title": "Into develop", "head": "feature/x", "base": "develop", "draft": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["number"], 2);
    assert_eq!(second["user"]["login"], "octocat");
    assert_eq!(second["draft"], true);

    // Listing: open ones, newest first; filters; one by number.
    let (status, list) = hub.get_as("/repos/octocat/hello/pulls", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers(&list), [2, 1]);
    assert!(
        list[0].get("commits").is_none(),
        "lists use the short shape"
    );
    let (_, list) = hub
        .get_as(
            "/repos/octocat/hello/pulls?head=octocat:feature/x&base=main",
            &token,
        )
        .await;
    assert_eq!(numbers(&list), [1]);
    let (_, list) = hub
        .get_as("/repos/octocat/hello/pulls?head=someone:feature/x", &token)
        .await;
    assert_eq!(numbers(&list), Vec::<u64>::new());
    let (_, list) = hub
        .get_as("/repos/octocat/hello/pulls?state=closed", &user)
        .await;
    assert_eq!(numbers(&list), Vec::<u64>::new());
    let (_, list) = hub
        .get_as("/repos/octocat/hello/pulls?direction=asc&per_page=1", &user)
        .await;
    assert_eq!(numbers(&list), [1]);
    let (status, one) = hub.get_as("/repos/octocat/hello/pulls/1", &user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["title"], "Add a change");
    assert_eq!(one["commits"], 1);
    for missing in [
        "/repos/octocat/hello/pulls/99",
        "/repos/octocat/hello/pulls/x",
    ] {
        let (status, body) = hub.get_as(missing, &user).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(body["message"], "Not Found");
    }

    // Closing frees the branches for a new pull request; reopening the
    // old one then clashes.
    let (status, closed) = send(
        &hub,
        Method::PATCH,
        "/repos/octocat/hello/pulls/1",
        Some(&token),
        Some(json!({"state": "closed"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert!(closed["closed_at"].is_string());
    let (_, list) = hub
        .get_as("/repos/octocat/hello/pulls?state=closed", &user)
        .await;
    assert_eq!(numbers(&list), [1]);
    let (_, list) = hub
        .get_as("/repos/octocat/hello/pulls?state=all", &user)
        .await;
    assert_eq!(numbers(&list), [2, 1]);
    let (status, third) = open(
        &hub,
        &token,
        json!({"title": "Take two", "head": "feature/x", "base": "main"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    assert_eq!(third["number"], 3);
    let (status, body) = send(
        &hub,
        Method::PATCH,
        "/repos/octocat/hello/pulls/1",
        Some(&token),
        Some(json!({"state": "open"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"][0]["message"],
        "A pull request already exists for octocat:feature/x."
    );

    // Open pull requests follow pushes to their head branch.
    let newer = push_change(&git, &work, &token, "feature/x", "more.txt").await;
    let (_, three) = hub.get_as("/repos/octocat/hello/pulls/3", &token).await;
    assert_eq!(three["head"]["sha"], newer.as_str());
    assert_eq!(three["commits"], 2);
    assert_eq!(three["changed_files"], 2);
    let (_, one) = hub.get_as("/repos/octocat/hello/pulls/1", &token).await;
    assert_eq!(one["head"]["sha"], head_sha.as_str(), "closed ones do not");

    // The HTML page.
    let page = hub
        .client
        .get(hub.url("/octocat/hello/pull/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for needle in [
        "Take two #3",
        "feature/x",
        "main",
        "change.txt",
        "more.txt",
        "2 commits",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
    let page = hub
        .client
        .get(hub.url("/octocat/hello/pull/1"))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Why: &lt;because&gt;"));
    let page = hub
        .client
        .get(hub.url("/octocat/hello/pull/99"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    // The admin listing.
    let (status, all) = hub
        .admin(
            Method::GET,
            "/_devgithub/pulls?repo=octocat/hello&state=open",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers(&all), [2, 3]);
    assert_eq!(all[0]["repository"], "octocat/hello");

    // `pull_request` webhooks: opened ×3, closed, and who sent them.
    let pr_events = common::wait_until(
        std::time::Duration::from_secs(10),
        "pull_request deliveries",
        || async {
            let events: Vec<Value> = hub
                .deliveries()
                .await
                .into_iter()
                .filter(|d| d["event"] == "pull_request")
                .collect();
            (events.len() >= 4 && events.iter().all(|d| d["status"] == "delivered"))
                .then_some(events)
        },
    )
    .await;
    let actions: Vec<(&str, u64, &str)> = pr_events
        .iter()
        .map(|d| {
            (
                d["action"].as_str().unwrap(),
                d["payload"]["number"].as_u64().unwrap(),
                d["payload"]["sender"]["login"].as_str().unwrap(),
            )
        })
        .collect();
    let bot = format!("{APP_SLUG}[bot]");
    assert_eq!(
        actions,
        [
            ("opened", 1, bot.as_str()),
            ("opened", 2, "octocat"),
            ("closed", 1, bot.as_str()),
            ("opened", 3, bot.as_str()),
        ]
    );
    assert_eq!(
        pr_events[0]["payload"]["pull_request"]["head"]["ref"],
        "feature/x"
    );
    assert_eq!(
        pr_events[0]["payload"]["installation"]["id"],
        installation["id"]
    );

    // Persisted: a restarted devgithub still has them, numbering goes on.
    hub.stop();
    let hub = TestHub::start(&state_dir).await;
    let (status, list) = hub
        .get_as("/repos/octocat/hello/pulls?state=all", &user)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers(&list), [3, 2, 1]);
    let (status, four) = open(
        &hub,
        &user,
        json!({"title": "Four", "head": "feature/x", "base": "develop"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "#2 is still open");
    assert_eq!(
        four["errors"][0]["message"],
        "A pull request already exists for octocat:feature/x."
    );
}

#[tokio::test]
async fn pull_requests_follow_repository_access_rules() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&dir.path().join("state")).await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", None).await;
    let repo = hub.create_repo("octocat", "hello", true).await;
    hub.create_repo("octocat", "other", true).await;
    hub.create_repo("octocat", "open", false).await;
    let installation = hub.install("octocat", &["hello", "other", "open"]).await;
    let token = mint(&hub, &installation, json!({})).await;
    let url = repo["clone_url"].as_str().unwrap();
    git.ok(
        dir.path(),
        &["-c", &auth_header(&token), "clone", "--quiet", url, "work"],
    )
    .await;
    let work = dir.path().join("work");
    push_change(&git, &work, &token, "topic", "a.txt").await;
    let create = json!({"title": "t", "head": "topic", "base": "main"});

    // Nobody: 401 to open, 404 to read a private repository.
    let (status, body) = send(
        &hub,
        Method::POST,
        "/repos/octocat/hello/pulls",
        None,
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Requires authentication");
    let (status, _) = send(&hub, Method::GET, "/repos/octocat/hello/pulls", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = send(&hub, Method::GET, "/repos/octocat/open/pulls", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));

    // A user who cannot see the repository, and a token narrowed away
    // from it: 404 as if it did not exist.
    hub.create_user("stranger", None).await;
    let stranger = hub.user_token("stranger", "repo").await;
    let narrowed = mint(&hub, &installation, json!({"repositories": ["other"]})).await;
    for who in [&stranger, &narrowed] {
        let (status, _) = open(&hub, who, create.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = hub.get_as("/repos/octocat/hello/pulls", who).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = hub.get_as("/repos/octocat/hello/pulls/1", who).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = open(
        &hub,
        &token,
        json!({"title": "t", "head": "a", "base": "b"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(
        &hub,
        Method::POST,
        "/repos/octocat/nope/pulls",
        Some(&token),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // `pull_requests: read` may list but not open; none may do neither.
    let reader = mint(
        &hub,
        &installation,
        json!({"permissions": {"pull_requests": "read", "contents": "read"}}),
    )
    .await;
    let (status, body) = open(&hub, &reader, create.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Resource not accessible by integration");
    let (status, _) = hub.get_as("/repos/octocat/hello/pulls", &reader).await;
    assert_eq!(status, StatusCode::OK);
    let blind = mint(
        &hub,
        &installation,
        json!({"permissions": {"contents": "read"}}),
    )
    .await;
    let (status, _) = hub.get_as("/repos/octocat/hello/pulls", &blind).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The full token opens it; endpoints beyond these are a clear 501.
    let (status, pr) = open(&hub, &token, create.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{pr}");
    let (status, _) = hub
        .get_as("/repos/octocat/hello/pulls/1/files", &token)
        .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    // Numbers are per repository.
    let (_, list) = hub.get_as("/repos/octocat/other/pulls", &token).await;
    assert_eq!(list, json!([]));
}
