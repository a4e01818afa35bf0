//! Git smart HTTP with the real `git` binary against a running devgithub:
//! clone, fetch and push at `clone_url`, GitHub's answers for missing, bad
//! and insufficient credentials, branches the REST API reports after a
//! push, and `push` webhooks.
//!
//! Credentials reach git through a credential helper script, an
//! `http.extraHeader`, or (in one test only, since it ends up in
//! `.git/config`) the URL's userinfo. git runs with no system or global
//! config of the machine and never prompts.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{APP_SLUG, Options, Receiver, TestHub};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ZERO: &str = "0000000000000000000000000000000000000000";

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
            "[user]\n\tname = Test Pusher\n\temail = pusher@example.com\n\
             [init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        Git { home }
    }

    async fn run(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .current_dir(cwd)
            .args(args)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().await.unwrap()
    }

    /// Runs git, which must succeed; returns trimmed stdout.
    async fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        self.ok_with(cwd, args, &[]).await
    }

    async fn ok_with(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(cwd, args, env).await;
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Runs git, which must fail; returns stderr.
    async fn fails(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "git {args:?} succeeded: {stderr}");
        stderr
    }
}

/// `-c http.extraHeader=…` carrying `token` as Basic auth, the way
/// actions/checkout hands a token to git.
fn auth_header(token: &str) -> String {
    let basic = STANDARD.encode(format!("x-access-token:{token}"));
    format!("http.extraHeader=Authorization: Basic {basic}")
}

/// Seeds `octocat/{name}` (private) and returns its clone URL.
async fn private_repo(hub: &TestHub, name: &str) -> String {
    let repo = hub.create_repo("octocat", name, true).await;
    repo["clone_url"].as_str().unwrap().to_owned()
}

async fn mint(hub: &TestHub, installation: &Value, body: Value) -> String {
    let (status, minted) = hub
        .installation_token(installation["id"].as_u64().unwrap(), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn clone_with_an_installation_token_through_a_credential_helper() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&dir.path().join("state")).await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", None).await;
    let (status, repo) = hub
        .admin(
            Method::POST,
            "/_devgithub/repos",
            json!({"owner": "octocat", "name": "hello", "private": true,
                   "description": "Hello, git", "default_branch": "trunk"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{repo}");
    let url = repo["clone_url"].as_str().unwrap().to_owned();
    assert_eq!(url, hub.url("/octocat/hello.git"));
    let installation = hub.install("octocat", &["hello"]).await;
    let token = mint(&hub, &installation, json!({})).await;

    // A helper answers git's `get` after the 401 challenge.
    let helper = dir.path().join("helper.sh");
    std::fs::write(
        &helper,
        "#!/bin/sh\ntest \"$1\" = get || exit 0\necho username=x-access-token\necho \"password=$DEVGITHUB_TOKEN\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let helper_arg = format!("credential.helper={}", helper.display());
    let clone = |target: &'static str, protocol: &'static str| {
        let (git, url, helper_arg, token) = (&git, &url, &helper_arg, &token);
        let cwd = dir.path();
        async move {
            let protocol = format!("protocol.version={protocol}");
            git.ok_with(
                cwd,
                &[
                    "-c",
                    "credential.helper=",
                    "-c",
                    helper_arg,
                    "-c",
                    &protocol,
                    "clone",
                    "--quiet",
                    url,
                    target,
                ],
                &[("DEVGITHUB_TOKEN", token.as_str())],
            )
            .await;
            cwd.join(target)
        }
    };
    let work = clone("work", "2").await;

    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "# hello\n\nHello, git\n"
    );
    assert_eq!(git.ok(&work, &["branch", "--show-current"]).await, "trunk");
    assert_eq!(
        git.ok(&work, &["log", "--format=%an <%ae>|%s"]).await,
        "devgithub <devgithub@users.noreply.localhost>|Initial commit"
    );
    let head = git.ok(&work, &["rev-parse", "HEAD"]).await;
    let remotes = git
        .ok(
            &work,
            &[
                "for-each-ref",
                "--format=%(refname:short) %(objectname)",
                "refs/remotes/origin/",
            ],
        )
        .await;
    for branch in ["develop", "feature/example", "trunk"] {
        assert!(
            remotes.contains(&format!("origin/{branch} {head}")),
            "{remotes}"
        );
    }
    // The REST API reports the same commits.
    let (status, branches) = hub.get_as("/repos/octocat/hello/branches", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        branches
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["commit"]["sha"] == head.as_str()),
        "{branches}"
    );
    // The token did not end up in the clone's config.
    let config = std::fs::read_to_string(work.join(".git/config")).unwrap();
    assert!(!config.contains(&token));

    // Protocol v0 (with its gzip-compressed negotiation) works too.
    let v0 = clone("v0", "0").await;
    assert_eq!(git.ok(&v0, &["rev-parse", "HEAD"]).await, head);

    // A state directory without the bare repository (one from before git
    // was served) gets it back on first use, with the same commit.
    let id = repo["id"].as_u64().unwrap();
    std::fs::remove_dir_all(dir.path().join(format!("state/git/{id}.git"))).unwrap();
    let again = clone("again", "2").await;
    assert_eq!(git.ok(&again, &["rev-parse", "HEAD"]).await, head);

    // A renamed repository is still served under its old name, and under
    // the new one.
    let (status, _) = hub
        .admin(
            Method::POST,
            "/_devgithub/repos/octocat/hello/rename",
            json!({"name": "hello-renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let renamed = git
        .ok(
            dir.path(),
            &[
                "-c",
                &auth_header(&token),
                "ls-remote",
                &hub.url("/octocat/hello-renamed.git"),
                "trunk",
            ],
        )
        .await;
    assert!(renamed.starts_with(&head), "{renamed}");
    let old = git
        .ok(
            dir.path(),
            &["-c", &auth_header(&token), "ls-remote", &url, "trunk"],
        )
        .await;
    assert!(old.starts_with(&head), "{old}");

    // Deleting the repository deletes its bare repository.
    let (status, _) = hub
        .admin(
            Method::DELETE,
            "/_devgithub/repos/octocat/hello-renamed",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!dir.path().join(format!("state/git/{id}.git")).exists());
    hub.stop();
}

#[tokio::test]
async fn missing_or_bad_credentials_are_refused_with_a_basic_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&dir.path().join("state")).await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", None).await;
    let url = private_repo(&hub, "secret").await;
    let public = hub.create_repo("octocat", "open", false).await;
    let installation = hub.install("octocat", &["secret"]).await;

    // What git sees: 401 with GitHub's challenge, for private and unknown
    // repositories alike.
    for path in ["/octocat/secret.git", "/octocat/nope.git"] {
        let response = hub
            .client
            .get(hub.url(&format!("{path}/info/refs?service=git-upload-pack")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"GitHub\""
        );
    }
    let stderr = git
        .fails(
            dir.path(),
            &["-c", "credential.helper=", "clone", &url, "anon"],
        )
        .await;
    assert!(
        stderr.contains("could not read Username") || stderr.contains("Authentication failed"),
        "{stderr}"
    );

    // A bad token, even for a public repository.
    let bad = "ghs_000000000000000000000000000000000000";
    for target in [url.as_str(), public["clone_url"].as_str().unwrap()] {
        let stderr = git
            .fails(
                dir.path(),
                &[
                    "-c",
                    "credential.helper=",
                    "-c",
                    &auth_header(bad),
                    "clone",
                    target,
                    "bad",
                ],
            )
            .await;
        assert!(
            stderr.contains("Authentication failed") || stderr.contains("could not read Username"),
            "{stderr}"
        );
    }

    // Public repositories clone anonymously; pushing to them does not.
    let open = dir.path().join("open");
    git.ok(
        dir.path(),
        &[
            "-c",
            "credential.helper=",
            "clone",
            "--quiet",
            public["clone_url"].as_str().unwrap(),
            "open",
        ],
    )
    .await;
    git.ok(
        &open,
        &["commit", "--allow-empty", "--quiet", "-m", "anonymous"],
    )
    .await;
    let stderr = git
        .fails(
            &open,
            &["-c", "credential.helper=", "push", "origin", "HEAD:main"],
        )
        .await;
    assert!(
        stderr.contains("could not read Username") || stderr.contains("Authentication failed"),
        "{stderr}"
    );

    // A revoked token stops working.
    let token = mint(&hub, &installation, json!({})).await;
    git.ok(
        dir.path(),
        &[
            "-c",
            "credential.helper=",
            "-c",
            &auth_header(&token),
            "ls-remote",
            &url,
        ],
    )
    .await;
    let response = hub
        .client
        .delete(hub.url("/installation/token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let stderr = git
        .fails(
            dir.path(),
            &[
                "-c",
                "credential.helper=",
                "-c",
                &auth_header(&token),
                "ls-remote",
                &url,
            ],
        )
        .await;
    assert!(
        stderr.contains("Authentication failed") || stderr.contains("Username"),
        "{stderr}"
    );
    hub.stop();
}

#[tokio::test]
async fn tokens_that_cannot_see_a_repository_get_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&dir.path().join("state")).await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", None).await;
    hub.create_user("stranger", None).await;
    let alpha = private_repo(&hub, "alpha").await;
    let beta = private_repo(&hub, "beta").await;
    let installation = hub.install("octocat", &["alpha"]).await;
    let alpha_only = mint(&hub, &installation, json!({})).await;

    let stderr = git
        .fails(
            dir.path(),
            &[
                "-c",
                "credential.helper=",
                "-c",
                &auth_header(&alpha_only),
                "clone",
                &beta,
                "beta",
            ],
        )
        .await;
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(stderr.contains("Repository not found"), "{stderr}");
    let response = hub
        .client
        .get(hub.url("/octocat/beta.git/info/refs?service=git-upload-pack"))
        .basic_auth("x-access-token", Some(&alpha_only))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    git.ok(
        dir.path(),
        &[
            "-c",
            "credential.helper=",
            "-c",
            &auth_header(&alpha_only),
            "clone",
            "--quiet",
            &alpha,
            "alpha",
        ],
    )
    .await;

    // A token narrowed to one repository of an installation that has both.
    let (status, _) = hub
        .admin(
            Method::POST,
            &format!(
                "/_devgithub/installations/{}/repositories",
                installation["id"]
            ),
            json!({"add": ["beta"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let narrowed = mint(&hub, &installation, json!({"repositories": ["alpha"]})).await;
    let response = hub
        .client
        .post(hub.url("/octocat/beta.git/git-upload-pack"))
        .basic_auth("x-access-token", Some(&narrowed))
        .header("content-type", "application/x-git-upload-pack-request")
        .body("0000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Another user's OAuth token, and a repository that does not exist.
    let stranger = hub.user_token("stranger", "repo").await;
    let stderr = git
        .fails(
            dir.path(),
            &[
                "-c",
                "credential.helper=",
                "-c",
                &auth_header(&stranger),
                "ls-remote",
                &alpha,
            ],
        )
        .await;
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = git
        .fails(
            dir.path(),
            &[
                "-c",
                "credential.helper=",
                "-c",
                &auth_header(&alpha_only),
                "ls-remote",
                &hub.url("/octocat/nope.git"),
            ],
        )
        .await;
    assert!(stderr.contains("not found"), "{stderr}");
    hub.stop();
}

/// The `push` webhooks received so far, in order.
fn pushes(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .filter(|r| r.header("x-github-event") == "push")
        .map(|r| {
            assert!(r.signature_ok);
            r.json()
        })
        .collect()
}

async fn wait_for_pushes(receiver: &Receiver, n: usize) -> Vec<Value> {
    common::wait_until(
        std::time::Duration::from_secs(10),
        "push webhooks",
        || async {
            let got = pushes(receiver);
            (got.len() >= n).then_some(got)
        },
    )
    .await
}

#[tokio::test]
async fn pushes_update_branches_and_send_push_webhooks() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(
        &dir.path().join("state"),
        Options {
            webhook_url: Some(receiver.url.clone()),
            ..Options::default()
        },
    )
    .await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", Some("octocat@example.com"))
        .await;
    let url = private_repo(&hub, "app").await;
    let installation = hub.install("octocat", &["app"]).await;
    let token = mint(&hub, &installation, json!({})).await;
    let auth = auth_header(&token);
    git.ok(dir.path(), &["-c", &auth, "clone", "--quiet", &url, "work"])
        .await;
    let work = dir.path().join("work");
    let initial = git.ok(&work, &["rev-parse", "HEAD"]).await;

    // A new branch with one commit.
    std::fs::write(work.join("notes.txt"), "hello\n").unwrap();
    git.ok(&work, &["add", "notes.txt"]).await;
    git.ok(
        &work,
        &["commit", "--quiet", "-m", "Add notes\n\nWith a body."],
    )
    .await;
    let sha = git.ok(&work, &["rev-parse", "HEAD"]).await;
    git.ok(
        &work,
        &[
            "-c",
            &auth,
            "push",
            "--quiet",
            "origin",
            "HEAD:refs/heads/feature/git",
        ],
    )
    .await;

    let (status, branches) = hub.get_as("/repos/octocat/app/branches", &token).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<(String, String)> = branches
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_owned(),
                b["commit"]["sha"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("main".to_owned(), initial.clone()),
            ("develop".to_owned(), initial.clone()),
            ("feature/example".to_owned(), initial.clone()),
            ("feature/git".to_owned(), sha.clone()),
        ]
    );
    let (status, branch) = hub
        .get_as("/repos/octocat/app/branches/feature/git", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{branch}");
    assert_eq!(branch["commit"]["sha"], sha.as_str());

    let got = wait_for_pushes(&receiver, 1).await;
    let push = &got[0];
    assert_eq!(push["ref"], "refs/heads/feature/git");
    assert_eq!(push["before"], ZERO);
    assert_eq!(push["after"], sha.as_str());
    assert_eq!(push["created"], true);
    assert_eq!(push["deleted"], false);
    assert_eq!(push["forced"], false);
    assert!(push["base_ref"].is_null());
    assert_eq!(push["compare"], hub.url("/octocat/app/compare/feature/git"));
    assert_eq!(push["commits"].as_array().unwrap().len(), 1);
    let commit = &push["commits"][0];
    assert_eq!(commit["id"], sha.as_str());
    assert_eq!(commit["message"], "Add notes\n\nWith a body.");
    assert_eq!(commit["added"], json!(["notes.txt"]));
    assert_eq!(commit["author"]["name"], "Test Pusher");
    assert_eq!(commit["author"]["email"], "pusher@example.com");
    assert_eq!(
        commit["url"],
        hub.url(&format!("/octocat/app/commit/{sha}"))
    );
    assert_eq!(push["head_commit"]["id"], sha.as_str());
    assert_eq!(push["repository"]["full_name"], "octocat/app");
    assert!(push["repository"]["pushed_at"].is_i64());
    assert_eq!(push["installation"]["id"], installation["id"]);
    let bot = format!("{APP_SLUG}[bot]");
    assert_eq!(push["sender"]["login"], bot.as_str());
    assert_eq!(push["sender"]["type"], "Bot");
    assert_eq!(push["pusher"]["name"], bot.as_str());

    // The owner, with their OAuth token, fast-forwards main.
    let owner = hub.user_token("octocat", "repo").await;
    git.ok(
        &work,
        &[
            "-c",
            &auth_header(&owner),
            "push",
            "--quiet",
            "origin",
            "HEAD:main",
        ],
    )
    .await;
    let got = wait_for_pushes(&receiver, 2).await;
    let push = &got[1];
    assert_eq!(push["ref"], "refs/heads/main");
    assert_eq!(push["before"], initial.as_str());
    assert_eq!(push["after"], sha.as_str());
    assert_eq!(push["created"], false);
    assert_eq!(
        push["compare"],
        hub.url(&format!(
            "/octocat/app/compare/{}...{}",
            &initial[..12],
            &sha[..12]
        ))
    );
    // Already on another branch before the push: not listed again.
    assert_eq!(push["commits"], json!([]));
    assert_eq!(push["head_commit"]["id"], sha.as_str());
    assert_eq!(push["sender"]["login"], "octocat");
    assert_eq!(push["pusher"]["email"], "octocat@example.com");

    // Deleting the branch removes it; a forced push is flagged.
    git.ok(
        &work,
        &[
            "-c",
            &auth,
            "push",
            "--quiet",
            "origin",
            "--delete",
            "feature/git",
        ],
    )
    .await;
    git.ok(&work, &["commit", "--amend", "--quiet", "-m", "Rewritten"])
        .await;
    let rewritten = git.ok(&work, &["rev-parse", "HEAD"]).await;
    git.ok(
        &work,
        &[
            "-c",
            &auth,
            "push",
            "--quiet",
            "--force",
            "origin",
            "HEAD:main",
        ],
    )
    .await;
    let got = wait_for_pushes(&receiver, 4).await;
    assert_eq!(got[2]["ref"], "refs/heads/feature/git");
    assert_eq!(got[2]["deleted"], true);
    assert_eq!(got[2]["after"], ZERO);
    assert!(got[2]["head_commit"].is_null());
    assert_eq!(got[3]["forced"], true);
    assert_eq!(got[3]["after"], rewritten.as_str());
    let (_, branches) = hub.get_as("/repos/octocat/app/branches", &token).await;
    let names: Vec<&str> = branches
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "develop", "feature/example"]);
    assert_eq!(branches[0]["commit"]["sha"], rewritten.as_str());

    // A token with `contents: read` clones but cannot push.
    let read_only = mint(
        &hub,
        &installation,
        json!({"permissions": {"contents": "read"}}),
    )
    .await;
    let stderr = git
        .fails(
            &work,
            &[
                "-c",
                "credential.helper=",
                "-c",
                &auth_header(&read_only),
                "push",
                "origin",
                "HEAD:refs/heads/nope",
            ],
        )
        .await;
    assert!(
        stderr.contains(&format!("Permission to octocat/app.git denied to {bot}")),
        "{stderr}"
    );
    assert_eq!(pushes(&receiver).len(), 4);
    hub.stop();
}

#[tokio::test]
async fn fetch_sees_commits_pushed_by_another_clone() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&dir.path().join("state")).await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", None).await;
    let url = private_repo(&hub, "shared").await;
    let installation = hub.install("octocat", &["shared"]).await;
    let token = mint(&hub, &installation, json!({})).await;
    let owner = hub.user_token("octocat", "repo").await;

    // The owner pushes with an OAuth token; a bot clone fetches.
    let (mine, bots) = (dir.path().join("mine"), dir.path().join("bots"));
    git.ok(
        dir.path(),
        &["-c", &auth_header(&owner), "clone", "--quiet", &url, "mine"],
    )
    .await;
    git.ok(
        dir.path(),
        &["-c", &auth_header(&token), "clone", "--quiet", &url, "bots"],
    )
    .await;
    // Local history on the fetching side makes its negotiation (the
    // `have` lines) big enough for git to gzip the request.
    git.ok(&bots, &["switch", "--quiet", "-c", "local"]).await;
    // Dated later than everything else, so they are the first haves and
    // negotiation needs a second, larger round.
    for i in 0..60 {
        let date = format!("@{} +0000", common::now() + 3600 + i);
        git.ok_with(
            &bots,
            &[
                "commit",
                "--allow-empty",
                "--quiet",
                "-m",
                &format!("local {i}"),
            ],
            &[("GIT_COMMITTER_DATE", &date), ("GIT_AUTHOR_DATE", &date)],
        )
        .await;
    }
    // Past http.postBuffer (1 MiB), git streams the push chunked, with
    // no Content-Length.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    std::fs::write(mine.join("big.bin"), &big).unwrap();
    for i in 0..3 {
        std::fs::write(mine.join(format!("file-{i}.txt")), format!("{i}\n")).unwrap();
        git.ok(&mine, &["add", "."]).await;
        git.ok(&mine, &["commit", "--quiet", "-m", &format!("change {i}")])
            .await;
    }
    let pushed = git.ok(&mine, &["rev-parse", "HEAD"]).await;
    git.ok(
        &mine,
        &[
            "-c",
            &auth_header(&owner),
            "push",
            "--quiet",
            "origin",
            "main",
        ],
    )
    .await;

    let out = git
        .run(
            &bots,
            &[
                "-c",
                &auth_header(&token),
                "-c",
                "protocol.version=0",
                "fetch",
                "origin",
            ],
            &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
        )
        .await;
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{trace}");
    assert!(
        trace.contains("Content-Encoding: gzip"),
        "fetch request not gzipped: {trace}"
    );
    assert_eq!(git.ok(&bots, &["rev-parse", "origin/main"]).await, pushed);
    assert_eq!(
        git.ok(&bots, &["show", "origin/main:file-2.txt"]).await,
        "2"
    );
    git.ok(&bots, &["switch", "--quiet", "--detach", "origin/main"])
        .await;
    assert_eq!(std::fs::read(bots.join("big.bin")).unwrap(), big);
    // Protocol v2 fetches see further pushes as well.
    git.ok(
        &mine,
        &["commit", "--allow-empty", "--quiet", "-m", "one more"],
    )
    .await;
    let newer = git.ok(&mine, &["rev-parse", "HEAD"]).await;
    git.ok(
        &mine,
        &[
            "-c",
            &auth_header(&owner),
            "push",
            "--quiet",
            "origin",
            "main",
        ],
    )
    .await;
    git.ok(
        &bots,
        &["-c", &auth_header(&token), "fetch", "--quiet", "origin"],
    )
    .await;
    assert_eq!(git.ok(&bots, &["rev-parse", "origin/main"]).await, newer);
    hub.stop();
}

#[tokio::test]
async fn basic_auth_in_the_clone_url() {
    // The one test with a token in the URL: git keeps it in .git/config.
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(&dir.path().join("state")).await;
    let git = Git::new(dir.path());
    hub.create_user("octocat", None).await;
    let url = private_repo(&hub, "direct").await;
    let installation = hub.install("octocat", &["direct"]).await;
    let token = mint(&hub, &installation, json!({})).await;
    let with_token = url.replacen("http://", &format!("http://x-access-token:{token}@"), 1);
    git.ok(
        dir.path(),
        &[
            "-c",
            "credential.helper=",
            "clone",
            "--quiet",
            &with_token,
            "direct",
        ],
    )
    .await;
    let work = dir.path().join("direct");
    git.ok(
        &work,
        &["commit", "--allow-empty", "--quiet", "-m", "via URL"],
    )
    .await;
    git.ok(
        &work,
        &[
            "-c",
            "credential.helper=",
            "push",
            "--quiet",
            "origin",
            "main",
        ],
    )
    .await;
    let head = git.ok(&work, &["rev-parse", "HEAD"]).await;
    let (_, branch) = hub
        .get_as("/repos/octocat/direct/branches/main", &token)
        .await;
    assert_eq!(branch["commit"]["sha"], head.as_str());
    hub.stop();
}
