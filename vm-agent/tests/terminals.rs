//! Workspace terminals end to end: real shells on PTYs, driven over real
//! WebSockets.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::browser::{
    APP_ORIGIN, BrowserHarness, OTHER_WORKSPACE, Screen, Socket, WORKSPACE, control, read_until,
    refused_status, type_in,
};
use common::provision::{self, Source};
use common::{FakeControlPlane, NODE_ID, wait_until, write_token};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(15);

struct Term<'a> {
    h: &'a BrowserHarness,
    id: String,
}

impl Term<'_> {
    fn path(&self) -> String {
        format!("/workspaces/{WORKSPACE}/terminals/{}", self.id)
    }

    fn ws_path(&self) -> String {
        format!("{}/ws", self.path())
    }

    async fn attach(&self) -> Socket {
        self.h
            .websocket(&self.ws_path(), &[("authorization", &bearer(self.h))])
            .await
            .unwrap()
    }
}

fn bearer(h: &BrowserHarness) -> String {
    format!("Bearer {}", h.management())
}

async fn create(h: &BrowserHarness, body: Value) -> (StatusCode, Value) {
    h.create_terminal(WORKSPACE, ("authorization", &bearer(h)), body)
        .await
}

async fn new_terminal(h: &BrowserHarness) -> Term<'_> {
    let (status, body) = create(h, json!({ "cols": 80, "rows": 24 })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Term {
        h,
        id: body["id"].as_str().unwrap().to_owned(),
    }
}

async fn list(h: &BrowserHarness) -> Vec<Value> {
    let (status, _, body) = h
        .get(
            &format!("/workspaces/{WORKSPACE}/terminals"),
            &[("authorization", &bearer(h))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["terminals"].as_array().unwrap().clone()
}

async fn wait_for(socket: &mut Socket, screen: &mut Screen, needle: &str) {
    let found = read_until(socket, screen, PATIENCE, |s| s.text().contains(needle)).await;
    assert!(
        found,
        "no {needle:?} in {:?} (close: {:?})",
        screen.text(),
        screen.close
    );
}

async fn wait_for_close(socket: &mut Socket, screen: &mut Screen) -> (u16, String) {
    let closed = read_until(socket, screen, PATIENCE, |s| s.close.is_some()).await;
    assert!(closed, "no close frame after {:?}", screen.text());
    screen.close.clone().unwrap()
}

#[tokio::test]
async fn a_shell_runs_in_the_workspace_and_its_scrollback_is_replayed_on_reattach() {
    let h = BrowserHarness::start(|_| {}).await;
    let dir = h.workspace(WORKSPACE).await;
    std::fs::write(dir.join("marker.txt"), "").unwrap();
    let before = common::now_ms();
    let (status, body) = create(&h, json!({ "cols": 80, "rows": 24 })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26);
    assert!(body["created_at"].as_i64().unwrap() >= before);
    let term = Term { h: &h, id };

    let mut socket = term.attach().await;
    let mut screen = Screen::default();
    // The typed line echoes as `hello-$((6*7))`; only the shell says 42.
    type_in(&mut socket, "echo hello-$((6*7)); ls\n").await;
    wait_for(&mut socket, &mut screen, "hello-42").await;
    wait_for(&mut socket, &mut screen, "marker.txt").await;
    drop(socket);

    let listed = list(&h).await;
    assert_eq!(listed.len(), 1);
    let view = &listed[0];
    assert_eq!(view["id"], term.id.as_str());
    assert_eq!(view["alive"], true);
    assert_eq!(
        (view["cols"].as_u64(), view["rows"].as_u64()),
        (Some(80), Some(24))
    );
    assert!(view["last_activity_at"].as_i64() >= view["created_at"].as_i64());
    assert!(view.get("exit_status").is_none());

    // A new client first gets what was said before it came.
    let mut socket = term.attach().await;
    let mut replay = Screen::default();
    wait_for(&mut socket, &mut replay, "hello-42").await;
}

#[tokio::test]
async fn the_shell_keeps_running_with_no_client_attached() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;
    let mut socket = term.attach().await;
    type_in(&mut socket, "sleep 1; echo later-$((40+2))\n").await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut socket = term.attach().await;
    wait_for(&mut socket, &mut Screen::default(), "later-42").await;
}

#[tokio::test]
async fn resizing_changes_what_the_shell_sees() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;
    let mut socket = term.attach().await;
    let mut screen = Screen::default();
    type_in(&mut socket, "stty size\n").await;
    wait_for(&mut socket, &mut screen, "24 80").await;

    control(
        &mut socket,
        &json!({ "type": "resize", "cols": 101, "rows": 33 }),
    )
    .await;
    type_in(&mut socket, "stty size\n").await;
    wait_for(&mut socket, &mut screen, "33 101").await;
    let view = &list(&h).await[0];
    assert_eq!(
        (view["cols"].as_u64(), view["rows"].as_u64()),
        (Some(101), Some(33))
    );

    // A size out of bounds closes the socket; the terminal stays.
    control(
        &mut socket,
        &json!({ "type": "resize", "cols": 0, "rows": 33 }),
    )
    .await;
    assert_eq!(
        wait_for_close(&mut socket, &mut screen).await,
        (1008, "invalid_size".to_owned())
    );
    let mut socket = term.attach().await;
    let mut screen = Screen::default();
    control(&mut socket, &json!({ "type": "paste", "data": "x" })).await;
    assert_eq!(
        wait_for_close(&mut socket, &mut screen).await,
        (1003, "invalid control message".to_owned())
    );
    assert_eq!(list(&h).await[0]["alive"], true);
}

#[tokio::test]
async fn every_client_sees_the_output_and_the_exit_status() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;
    let mut first = term.attach().await;
    let mut second = term.attach().await;
    let (mut one, mut two) = (Screen::default(), Screen::default());

    type_in(&mut second, "echo both-$((1+1))\n").await;
    wait_for(&mut first, &mut one, "both-2").await;
    wait_for(&mut second, &mut two, "both-2").await;

    type_in(&mut first, "exit\n").await;
    let exited = (1000, "exited 0".to_owned());
    assert_eq!(wait_for_close(&mut first, &mut one).await, exited);
    assert_eq!(wait_for_close(&mut second, &mut two).await, exited);

    // Listed as dead until deleted; attaching replays, then closes.
    let view = &list(&h).await[0];
    assert_eq!(view["alive"], false);
    assert_eq!(view["exit_status"], "0");
    let mut late = term.attach().await;
    let mut three = Screen::default();
    assert_eq!(wait_for_close(&mut late, &mut three).await, exited);
    assert!(three.text().contains("both-2"));

    // Another status reads as such.
    let term = new_terminal(&h).await;
    let mut socket = term.attach().await;
    type_in(&mut socket, "exit 3\n").await;
    assert_eq!(
        wait_for_close(&mut socket, &mut Screen::default()).await,
        (1000, "exited 3".to_owned())
    );
}

#[tokio::test]
async fn deleting_a_terminal_kills_its_processes_and_closes_its_sockets() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;
    let mut socket = term.attach().await;
    let mut screen = Screen::default();
    // A job in a process group of its own (job control) that ignores
    // hang-ups: only the kill that follows the shell's hang-up takes it.
    type_in(
        &mut socket,
        "(trap '' HUP; exec sleep 300) & echo pids-$$-$!-e''nd\n",
    )
    .await;
    wait_for(&mut socket, &mut screen, "-end").await;
    let text = screen.text();
    let pids: Vec<u32> = text
        .rsplit("pids-")
        .next()
        .unwrap()
        .split('-')
        .take(2)
        .map(|p| p.parse().unwrap())
        .collect();
    for pid in &pids {
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    let resp = h
        .http
        .delete(h.url(&term.path()))
        .header("authorization", bearer(&h))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        wait_for_close(&mut socket, &mut screen).await,
        (1000, "terminal closed".to_owned())
    );
    assert!(list(&h).await.is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || pids.iter().all(|pid| gone(*pid))).await,
        "still running: {pids:?}"
    );

    let resp = h
        .http
        .delete(h.url(&term.path()))
        .header("authorization", bearer(&h))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let refused = h
        .websocket(&term.ws_path(), &[("authorization", &bearer(&h))])
        .await;
    assert_eq!(refused_status(refused), StatusCode::NOT_FOUND);
}

/// Whether process `pid` is gone (or a zombie).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z')
    })
}

/// The pid of the shell behind `socket`, as it says itself.
async fn shell_pid(socket: &mut Socket) -> u32 {
    let mut screen = Screen::default();
    // The echoed command line reads `-e''nd`; only the shell says `-end`.
    type_in(socket, "echo shell-$$-e''nd\n").await;
    wait_for(socket, &mut screen, "-end").await;
    let text = screen.text();
    let said = text.rsplit("shell-").next().unwrap();
    said.split('-').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn stopping_or_deleting_a_workspace_ends_its_terminals_and_deleting_it_its_cookies() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let cookie = h.cookie(WORKSPACE).await;
    let workspace = format!("/workspaces/{WORKSPACE}");
    let closed = (1000, "terminal closed".to_owned());

    // Stopped: every socket closes, the shell is gone, and so is the
    // terminal; no new one starts.
    let term = new_terminal(&h).await;
    let mut by_bearer = term.attach().await;
    let mut by_cookie = h
        .websocket(&term.ws_path(), &[("cookie", &cookie)])
        .await
        .unwrap();
    let pid = shell_pid(&mut by_bearer).await;
    let (status, body) = h
        .manage(reqwest::Method::POST, &format!("{workspace}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workspace"]["status"], "stopped");
    for socket in [&mut by_bearer, &mut by_cookie] {
        assert_eq!(wait_for_close(socket, &mut Screen::default()).await, closed);
    }
    assert!(wait_until(PATIENCE, || gone(pid)).await, "{pid} still runs");
    assert!(list(&h).await.is_empty());
    let (status, body) = create(&h, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("workspace_not_running"))
    );
    // A stopped workspace keeps its cookie sessions (its files stay
    // readable).
    let (status, _, body) = h
        .get(&format!("{workspace}/files"), &[("cookie", &cookie)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Running again, it takes terminals; a rebuild (which stops its
    // processes) ends them too.
    let (status, body) = h
        .manage(reqwest::Method::POST, &format!("{workspace}/restart"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let term = new_terminal(&h).await;
    let mut socket = term.attach().await;
    let (status, body) = h
        .manage(reqwest::Method::POST, &format!("{workspace}/rebuild"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        wait_for_close(&mut socket, &mut Screen::default()).await,
        closed
    );

    // Deleted: its terminals end, and its cookie opens nothing any more.
    let term = new_terminal(&h).await;
    let mut socket = h
        .websocket(&term.ws_path(), &[("cookie", &cookie)])
        .await
        .unwrap();
    let pid = shell_pid(&mut socket).await;
    let (status, body) = h.manage(reqwest::Method::DELETE, &workspace, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        wait_for_close(&mut socket, &mut Screen::default()).await,
        closed
    );
    assert!(wait_until(PATIENCE, || gone(pid)).await, "{pid} still runs");
    let (status, _, body) = h
        .get(&format!("{workspace}/terminals"), &[("cookie", &cookie)])
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_invalid"))
    );
    assert_eq!(
        refused_status(h.websocket(&term.ws_path(), &[("cookie", &cookie)]).await),
        StatusCode::UNAUTHORIZED
    );
    // To the control plane, the workspace is simply gone.
    assert!(list(&h).await.is_empty());
    let (status, body) = create(&h, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn limits_sizes_and_missing_workspaces_are_refused() {
    let h = BrowserHarness::start(|_| {}).await;
    let (status, body) = create(&h, json!({ "cols": 80, "rows": 24 })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    h.workspace(WORKSPACE).await;
    for size in [
        json!({ "cols": 0, "rows": 24 }),
        json!({ "cols": 80, "rows": 0 }),
        json!({ "cols": 1001, "rows": 24 }),
        json!({ "cols": 80, "rows": 70000 }),
    ] {
        let (status, body) = create(&h, size.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_size")),
            "{size}"
        );
    }
    let (status, body) = create(&h, json!({ "cols": "wide" })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );

    // The default size, then up to ten.
    let (status, _) = create(&h, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(list(&h).await[0]["cols"], 80);
    let mut ids = Vec::new();
    for _ in 1..10 {
        ids.push(new_terminal(&h).await.id);
    }
    let (status, body) = create(&h, json!({ "cols": 1000, "rows": 1 })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_terminals"))
    );
    assert_eq!(list(&h).await.len(), 10);
    let ids: HashSet<String> = ids.into_iter().collect();
    assert_eq!(ids.len(), 9);

    // Deleting one makes room.
    let one = ids.iter().next().unwrap();
    let resp = h
        .http
        .delete(h.url(&format!(
            "/workspaces/{WORKSPACE}/terminals/{}",
            one.to_lowercase()
        )))
        .header("authorization", bearer(&h))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, _) = create(&h, json!({ "cols": 1000, "rows": 1 })).await;
    assert_eq!(status, StatusCode::CREATED);

    // The limit is per workspace.
    h.workspace(OTHER_WORKSPACE).await;
    let (status, _) = h
        .create_terminal(OTHER_WORKSPACE, ("authorization", &bearer(&h)), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn websockets_open_with_a_ticket_once_or_the_workspace_cookie_only() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;

    // A ticket, directly on the upgrade; not twice.
    let ticket = h.ticket(WORKSPACE);
    let with_ticket = format!("{}?token={ticket}", term.ws_path());
    let mut socket = h.websocket(&with_ticket, &[]).await.unwrap();
    type_in(&mut socket, "echo ticket-$((2+2))\n").await;
    wait_for(&mut socket, &mut Screen::default(), "ticket-4").await;
    assert_eq!(
        refused_status(h.websocket(&with_ticket, &[]).await),
        StatusCode::UNAUTHORIZED
    );

    // A ticket for another workspace.
    let other_ticket = format!("{}?token={}", term.ws_path(), h.ticket(OTHER_WORKSPACE));
    assert_eq!(
        refused_status(h.websocket(&other_ticket, &[]).await),
        StatusCode::FORBIDDEN
    );

    // The workspace's own cookie, from the app or the workspace's host.
    let cookie = h.cookie(WORKSPACE).await;
    let own_host = format!("http://ws-{}.localhost:8787", WORKSPACE.to_lowercase());
    for origin in [APP_ORIGIN, own_host.as_str()] {
        let mut socket = h
            .websocket(&term.ws_path(), &[("cookie", &cookie), ("origin", origin)])
            .await
            .unwrap();
        wait_for(&mut socket, &mut Screen::default(), "ticket-4").await;
    }
    // Not from a forwarded port's page.
    let port_host = format!(
        "http://ws-{}--3000.localhost:8787",
        WORKSPACE.to_lowercase()
    );
    assert_eq!(
        refused_status(
            h.websocket(
                &term.ws_path(),
                &[("cookie", &cookie), ("origin", &port_host)]
            )
            .await
        ),
        StatusCode::FORBIDDEN
    );

    // Another workspace's cookie opens nothing here.
    let other_cookie = h.cookie(OTHER_WORKSPACE).await;
    assert_eq!(
        refused_status(
            h.websocket(&term.ws_path(), &[("cookie", &other_cookie)])
                .await
        ),
        StatusCode::FORBIDDEN
    );
    // Nor does nothing.
    assert_eq!(
        refused_status(h.websocket(&term.ws_path(), &[]).await),
        StatusCode::UNAUTHORIZED
    );

    // A terminal of another workspace is not found through this one.
    h.workspace(OTHER_WORKSPACE).await;
    let (_, body) = h
        .create_terminal(OTHER_WORKSPACE, ("authorization", &bearer(&h)), json!({}))
        .await;
    let foreign = format!(
        "/workspaces/{WORKSPACE}/terminals/{}/ws",
        body["id"].as_str().unwrap()
    );
    assert_eq!(
        refused_status(h.websocket(&foreign, &[("cookie", &cookie)]).await),
        StatusCode::NOT_FOUND
    );
    // And a plain GET on the socket's path is no upgrade.
    let (status, _, body) = h
        .get(&term.ws_path(), &[("authorization", &bearer(&h))])
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("websocket_required"))
    );
}

/// The `KEY=value` lines a shell printed for `env`.
fn env_keys(output: &str) -> HashSet<String> {
    output
        .split('\n')
        .map(|line| line.trim_end_matches('\r'))
        .map(|line| line.rsplit('\r').next().unwrap_or(line))
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.to_owned())
        .filter(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

/// What a terminal's shell may have in its environment: the workspace
/// runtime's own variables (the host runtime's `PATH`, `HOME`, `LANG`,
/// `TERM`, `SHELL`, and `SAM_WORKSPACE_ID`/`SAM_WORKSPACE_DIR`, which name
/// the workspace and its checkout: nothing secret), the few it passes on
/// from the agent when set (`USER`, `LOGNAME`, `LC_ALL`, `TZ`; `PATH` and
/// `LANG` too), and what bash adds itself.
const SHELL_ENV: [&str; 15] = [
    "PATH",
    "HOME",
    "LANG",
    "TERM",
    "SHELL",
    "SAM_WORKSPACE_ID",
    "SAM_WORKSPACE_DIR",
    "USER",
    "LOGNAME",
    "LC_ALL",
    "TZ",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
];

/// The workspace variables of [`SHELL_ENV`]: the only `SAM_` ones allowed.
const WORKSPACE_ENV: [&str; 2] = ["SAM_WORKSPACE_ID", "SAM_WORKSPACE_DIR"];

async fn shell_env(socket: &mut Socket) -> (HashSet<String>, String) {
    let mut screen = Screen::default();
    type_in(socket, "env; echo env-$((3*3))-done\n").await;
    wait_for(socket, &mut screen, "env-9-done").await;
    let text = screen.text();
    (env_keys(&text), text)
}

#[tokio::test]
async fn the_shell_environment_is_built_from_scratch() {
    let h = BrowserHarness::start(|_| {}).await;
    let dir = h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;
    let mut socket = term.attach().await;
    let (keys, text) = shell_env(&mut socket).await;
    for key in ["PATH", "HOME", "LANG", "TERM", "SHELL"]
        .into_iter()
        .chain(WORKSPACE_ENV)
    {
        assert!(keys.contains(key), "{key} missing: {text}");
    }
    let unexpected: Vec<&String> = keys
        .iter()
        .filter(|k| !SHELL_ENV.contains(&k.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?} in {text}");
    assert!(text.contains("TERM=xterm-256color"), "{text}");
    assert!(text.contains(&format!("HOME={}", h.root.path().join("home").display())));
    assert!(text.contains(&format!("PWD={}", dir.display())), "{text}");
    assert!(
        text.contains(&format!("SAM_WORKSPACE_ID={WORKSPACE}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("SAM_WORKSPACE_DIR={}", dir.display())),
        "{text}"
    );
}

/// The real binary, started with the agent's `SAM_*` settings (and a
/// made-up secret) in its environment, plus whatever cargo put there: its
/// shells see none of it.
#[tokio::test]
async fn the_agents_own_environment_never_reaches_a_shell() {
    let cp = FakeControlPlane::start().await;
    let key = sam_auth::SigningKey::from_seed([9; 32]);
    cp.serve_keys(&[&key]);
    let source = Source::start(&cp).await;
    let root = tempfile::tempdir().unwrap();
    write_token(root.path(), "callback-token-s3cr3t");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_vm-agent"))
        .env("SAM_NODE_ID", NODE_ID)
        .env("SAM_CONTROL_PLANE_URL", cp.url())
        .env("SAM_FS_ROOT", root.path())
        .env("SAM_BIND_HOST", "127.0.0.1")
        .env("SAM_VM_AGENT_PORT", port.to_string())
        .env("SAM_APP_ORIGIN", APP_ORIGIN)
        .env("SAM_LEAK_PROBE", "must-not-leak")
        .env("HOME", root.path())
        .env("SHELL", "/bin/bash")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the agent did not come up");

    let bearer = format!(
        "Bearer {}",
        cp.token(&key, sam_auth::Audience::NodeManagement, NODE_ID)
    );
    // The workspace, created for real (the binary is its own credential
    // helper).
    let create = source.create_body(&cp, &key, WORKSPACE);
    let resp = http
        .post(format!("{base}/workspaces"))
        .header("authorization", &bearer)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    provision::until_running(async || {
        http.get(format!("{base}/workspaces/{WORKSPACE}"))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await;

    let resp = http
        .post(format!("{base}/workspaces/{WORKSPACE}/terminals"))
        .header("authorization", &bearer)
        .json(&json!({ "cols": 120, "rows": 40 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{port}/workspaces/{WORKSPACE}/terminals/{}/ws",
            created["id"].as_str().unwrap()
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let (keys, text) = shell_env(&mut socket).await;
    assert!(!text.contains("must-not-leak"), "{text}");
    assert!(!text.contains("callback-token"), "{text}");
    // Nor the workspace's secrets: its callback token, git tokens.
    let workspace_secrets = [
        create["callback_token"].as_str().unwrap().to_owned(),
        cp.state.git_token.lock().unwrap().clone().unwrap(),
    ];
    for secret in &workspace_secrets {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
    let leaked: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("SAM_") || k.starts_with("CARGO") || k.starts_with("RUST"))
        .filter(|k| !WORKSPACE_ENV.contains(&k.as_str()))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?} in {text}");
    let unexpected: Vec<&String> = keys
        .iter()
        .filter(|k| !SHELL_ENV.contains(&k.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?} in {text}");

    drop(socket);
    agent.kill().await.unwrap();
}

/// A client that stops reading while the shell writes more than the
/// scrollback holds is closed with 1011 once it reads again; the agent
/// never buffers more than the scrollback for it.
#[tokio::test]
async fn a_client_that_falls_too_far_behind_is_closed() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    let term = new_terminal(&h).await;

    // A small receive buffer, so the kernel does not absorb the backlog.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(h.addr).await.unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}{}",
            h.addr,
            term.ws_path()
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", bearer(&h).parse().unwrap());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut slow, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();

    // 16 MiB of output, then a marker; the slow client reads none of it.
    type_in(
        &mut slow,
        "head -c 16777216 /dev/zero | tr '\\0' x; echo; echo flood-$((5*5))-over\n",
    )
    .await;
    let mut over = false;
    for _ in 0..60 {
        let mut peek = term.attach().await;
        let mut screen = Screen::default();
        over = read_until(&mut peek, &mut screen, Duration::from_secs(1), |s| {
            s.text().contains("flood-25-over")
        })
        .await;
        if over {
            break;
        }
    }
    assert!(over, "the flood never ended");

    let mut screen = Screen::default();
    let closed = read_until(&mut slow, &mut screen, Duration::from_secs(30), |s| {
        s.close.is_some()
    })
    .await;
    assert!(closed, "no close after {} bytes", screen.output.len());
    assert_eq!(screen.close, Some((1011, "too slow".to_owned())));
    assert!(screen.output.len() < 16 * 1024 * 1024);
}
