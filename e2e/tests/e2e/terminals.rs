//! Browser terminals through the Worker's `ws-<id>` proxy: a terminal
//! ticket traded for the vm-agent's cookie on the workspace's own host,
//! then PTY sessions over WebSocket that outlive their sockets and replay
//! their scrollback on reattach.

use std::time::Duration;

use sam_e2e::Platform;
use sam_e2e::workspace_host::{WorkspaceHost, read_until, type_into, upgrade};
use serde_json::Value;

use crate::workspaces::{running_workspace, workspace_setup};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn j12_terminal_reattach_scrollback() {
    let p = Platform::from_env();
    let s = workspace_setup(&p, "j12-owner").await;
    let ws = running_workspace(&p, &s, "j12").await;
    let host = WorkspaceHost::open(&p, &s.client, &ws.id).await.unwrap();

    // The workspace host's root is the workspace's page in the app.
    let resp = host.client.get(host.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        p.app(&format!("/workspaces/{}", ws.id))
    );

    // Type into a terminal through the proxy and see the shell's answer.
    // (Arithmetic, so the echoed command line never contains the answer.)
    let tid = host.new_terminal().await.unwrap();
    let mut socket = host.attach(&tid).await.unwrap();
    type_into(&mut socket, "export J12=kept; echo hello-$((6*7))\r")
        .await
        .unwrap();
    read_until(&mut socket, "hello-42", WAIT).await.unwrap();
    // Something that writes while nobody is attached.
    type_into(&mut socket, "(sleep 2; echo while-away-$((2+3))) &\r")
        .await
        .unwrap();
    drop(socket);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Reattach: the scrollback replays what was written before and while
    // detached, and it is the same shell (its variable is still set).
    let mut again = host.attach(&tid).await.unwrap();
    let replay = read_until(&mut again, "while-away-5", WAIT).await.unwrap();
    assert!(replay.contains("hello-42"), "{replay}");
    type_into(&mut again, "echo \"$J12\"-$((1+1))\r")
        .await
        .unwrap();
    read_until(&mut again, "kept-2", WAIT).await.unwrap();

    // Several terminals, each with its own shell and scrollback.
    let second = host.new_terminal().await.unwrap();
    assert_ne!(second, tid);
    let list: Value = host
        .client
        .get(host.url("/terminals"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["terminals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&tid.as_str()) && ids.contains(&second.as_str()),
        "{list}"
    );
    let mut other = host.attach(&second).await.unwrap();
    let seen = read_until_after(&mut other, "echo second-$((3*3))\r", "second-9").await;
    assert!(!seen.contains("hello-42"), "{seen}");
    drop(other);
    let resp = host
        .client
        .delete(host.url(&format!("/terminals/{second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let gone = host.attach(&second).await.unwrap_err().to_string();
    assert!(gone.contains("HTTP 404"), "{gone}");

    // No cookie, or a page of another origin: no terminal.
    let url = format!("ws://{}/terminals/{tid}/ws", host.host);
    let origin = p.app("");
    let refused = upgrade(p.port, &url, &[("origin", origin.as_str())])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("HTTP 401"), "{refused}");
    let foreign = format!("http://evil.sam.localhost:{}", p.port);
    let refused = upgrade(
        p.port,
        &url,
        &[
            ("cookie", host.cookie.as_str()),
            ("origin", foreign.as_str()),
        ],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("HTTP 403"), "{refused}");

    // The first terminal is still there, untouched by all of this.
    read_until_after(&mut again, "echo still-$((4+4))\r", "still-8").await;
}

/// Types `input` and reads until `needle` appears.
async fn read_until_after(
    socket: &mut sam_e2e::NodeEventSocket,
    input: &str,
    needle: &str,
) -> String {
    type_into(socket, input).await.unwrap();
    read_until(socket, needle, WAIT).await.unwrap()
}
