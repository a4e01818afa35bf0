//! Port forwarding end to end: a dev server started in a workspace's
//! terminal is detected by the vm-agent and reached at
//! `ws-<id>--<port>.sam.localhost` through the Worker, after a port ticket is
//! traded for the port's cookie (or by anyone, while the workspace's
//! public-ports switch is on); HTTP both ways and WebSocket.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use sam_e2e::workspace_host::{WorkspaceHost, browser_client, read_until, type_into, upgrade};
use sam_e2e::{Platform, eventually};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::workspaces::{running_workspace, workspace_setup};

/// The host name of the workspace's forwarded `port`.
fn port_host(id: &str, port: u16) -> String {
    format!("ws-{}--{port}.sam.localhost", id.to_ascii_lowercase())
}

async fn port_ticket(
    p: &Platform,
    app: &reqwest::Client,
    id: &str,
    port: u16,
) -> reqwest::Response {
    app.post(p.app(&format!("/api/workspaces/{id}/port-ticket")))
        .json(&json!({ "port": port }))
        .send()
        .await
        .unwrap()
}

async fn listed_ports(host: &WorkspaceHost) -> Vec<u64> {
    let body: Value = host
        .client
        .get(host.url("/ports"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn j13_port_forward_dev_server() {
    let p = Platform::from_env();
    let s = workspace_setup(&p, "j13-owner").await;
    let ws = running_workspace(&p, &s, "j13").await;
    let host = WorkspaceHost::open(&p, &s.client, &ws.id).await.unwrap();

    // A dev server started in the workspace's terminal.
    let server = std::env::var("SAM_E2E_PORT_ECHO").expect("SAM_E2E_PORT_ECHO names the test app");
    let tid = host.new_terminal().await.unwrap();
    let mut term = host.attach(&tid).await.unwrap();
    type_into(&mut term, &format!("'{server}' 0\r"))
        .await
        .unwrap();
    let out = read_until(&mut term, "listening on ", Duration::from_secs(15))
        .await
        .unwrap();
    let out = read_until_line_end(&mut term, out).await;
    let port: u16 = out
        .rsplit("listening on ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no port in {out:?}"));

    // The vm-agent finds it among the workspace's listening ports.
    eventually(
        "the port to be detected",
        Duration::from_secs(10),
        || async {
            Ok(listed_ports(&host)
                .await
                .contains(&u64::from(port))
                .then_some(()))
        },
    )
    .await
    .unwrap();

    let name = port_host(&ws.id, port);
    let base = format!("http://{name}:{}", p.port);
    let browser = browser_client(&p, &[&name]);

    // Private by default: nothing without the port's cookie.
    let resp = browser.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // A port ticket from the API, opened like a link: 303 to the app's
    // root without the ticket, setting the port's cookie.
    let resp = port_ticket(&p, &s.client, &ws.id, port).await;
    assert_eq!(resp.status(), 200);
    let ticket: Value = resp.json().await.unwrap();
    let url = ticket["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{base}/?port_token=")), "{url}");
    let resp = browser.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(!location.contains("port_token"), "{location}");
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with(&format!("sam_port_{port}=")) && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let replay = browser_client(&p, &[&name]).get(&url).send().await.unwrap();
    assert_eq!(replay.status(), 401, "a port ticket is single use");

    // Forwarded: path and query as sent, the app's own cookie kept, ours
    // and the ticket never reach it, Host is the app's own.
    // A stale ticket left in the URL is taken off by a redirect first.
    let with_ours = format!("theme=dark; {cookie}; {}", host.cookie);
    let resp = browser
        .get(format!("{base}/hello/world?x=1&port_token=stale"))
        .header("cookie", &with_ours)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "./world?x=1");
    let resp = browser
        .get(format!("{base}/hello/world?x=1"))
        .header("cookie", &with_ours)
        .header("x-sam-port-access", "from-the-browser")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = resp.text().await.unwrap();
    assert!(seen.starts_with("GET /hello/world?x=1"), "{seen}");
    assert!(seen.contains(&format!("host: localhost:{port}")), "{seen}");
    assert!(seen.contains("theme=dark"), "{seen}");
    for secret in ["sam_port_", "sam_ws", "port_token", "x-sam-port-access"] {
        assert!(!seen.contains(secret), "{secret} reached the app: {seen}");
    }
    // A request body streams there and back.
    let body: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let resp = browser
        .post(format!("{base}/upload"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice());

    // WebSocket, with the port's cookie.
    let mut socket = upgrade(
        p.port,
        &format!("ws://{name}:{}/ws", p.port),
        &[("cookie", &cookie)],
    )
    .await
    .unwrap();
    socket.send(Message::Text("ping-j13".into())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::Text("ping-j13".into()));
    drop(socket);

    // The port's cookie opens that port only; the page it serves cannot
    // use the workspace's own cookie (another origin).
    let other = port_host(&ws.id, port + 1);
    let (_, value) = cookie.split_once('=').unwrap();
    let resp = browser_client(&p, &[&other])
        .get(format!("http://{other}:{}/", p.port))
        .header("cookie", format!("sam_port_{}={value}", port + 1))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("token_scope_mismatch")),
        "{body}"
    );
    // Nor is a forwarded app ever served from the workspace's own host.
    let resp = host
        .client
        .get(host.url(&format!("/ports/{port}/hello")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = host
        .client
        .get(host.url("/terminals"))
        .header("origin", format!("http://{name}:{}", p.port))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Public: anyone with the URL, no cookie; private again: 401.
    let public = |on: bool| {
        s.client
            .post(p.app(&format!("/api/workspaces/{}/ports", ws.id)))
            .json(&json!({ "ports_public": on }))
            .send()
    };
    assert_eq!(public(true).await.unwrap().status(), 200);
    let anyone = browser_client(&p, &[&name]);
    let resp = anyone.get(format!("{base}/open")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = resp.text().await.unwrap();
    assert!(!seen.contains("x-sam-port-access"), "{seen}");
    // A browser cannot vouch for itself with the proxy's header, not even
    // with a well-signed one: the Worker drops it.
    assert_eq!(public(false).await.unwrap().status(), 200);
    let node: sam_wire::NodeView =
        sam_e2e::get_json(&s.client, &p.app(&format!("/api/nodes/{}", s.node_id))).await;
    let forged_token = p.signing_key().unwrap().issue(
        &p.issuer(),
        &sam_auth::Grant {
            port: Some(port),
            ..sam_auth::Grant::workspace(sam_auth::Audience::PublicPort, &node.id, &ws.id, 60)
        },
        sam_e2e::now_ms(),
    );
    let forged = anyone
        .get(format!("{base}/open"))
        .header("x-sam-port-access", &forged_token)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["code"], "token_missing", "{body}");

    // Another user gets no ticket.
    let stranger = p.signed_in("j13-stranger").await.unwrap();
    let resp = stranger
        .post(p.api(&format!("/api/workspaces/{}/port-ticket", ws.id)))
        .json(&json!({ "port": port }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The server stops: the port is no longer listed nor forwarded.
    term.send(Message::Binary(vec![3].into())).await.unwrap();
    eventually("the port to be gone", Duration::from_secs(10), || async {
        Ok((!listed_ports(&host).await.contains(&u64::from(port))).then_some(()))
    })
    .await
    .unwrap();
    let resp = browser.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "port_not_listening", "{body}");
}

/// Reads on until the output after "listening on" has a line end.
async fn read_until_line_end(term: &mut sam_e2e::NodeEventSocket, mut out: String) -> String {
    while !out
        .rsplit("listening on ")
        .next()
        .is_some_and(|rest| rest.contains('\n'))
    {
        out.push_str(
            &read_until(term, "\n", Duration::from_secs(5))
                .await
                .unwrap(),
        );
    }
    out
}
