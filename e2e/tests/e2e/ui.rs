//! The nodes page in a real headless Chromium (Debian's chromium +
//! chromedriver), at phone and desktop widths.

use std::time::Duration;

use fantoccini::Locator;
use sam_e2e::{Platform, eventually};
use serde_json::json;

use crate::browser::{artifacts, browser, check_widths};

#[tokio::test]
async fn ui_nodes_page_in_chromium() {
    let p = Platform::from_env();
    let (c, _driver, _profile) = browser(&p).await;

    // Signed out: the app sends us to sign in.
    c.goto(&p.app("/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys("ui-user")
        .await
        .unwrap();
    c.find(Locator::Css("form.login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the dashboard", Duration::from_secs(10), || async {
        let path = c.current_url().await?.path().to_owned();
        Ok((path == "/").then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(c.title().await.unwrap(), "Projects · SAM");
    c.goto(&p.app("/nodes")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Nodes · SAM");
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("No nodes yet"), "{text}");

    // A node created through the API by the same user appears with its status.
    let api = p.signed_in_with_cloud("ui-user").await.unwrap();
    let node: sam_wire::NodeView = api
        .post(p.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "ui-node" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let selector = format!("[data-node-id='{}']", node.id);
    let status = eventually(
        "the node to show as running",
        Duration::from_secs(60),
        || async {
            c.refresh().await?;
            let row = c.find(Locator::Css(&selector)).await?;
            let status = row.attr("data-status").await?.unwrap_or_default();
            Ok((status == "running").then_some(status))
        },
    )
    .await
    .unwrap();
    assert_eq!(status, "running");
    let row_text = c
        .find(Locator::Css(&selector))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row_text.contains("ui-node"), "{row_text}");

    // Desktop and phone widths both fit; screenshots are kept for a person to look at.
    check_widths(&c, &artifacts(&p), "nodes").await;

    // Clean up the node so no server outlives the test.
    let resp = api
        .delete(p.api(&format!("/api/nodes/{}", node.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    c.close().await.unwrap();
}

/// How long a navigation or a form's round trip may take.
const WAIT: Duration = Duration::from_secs(30);

/// Waits until the browser is on the app host at `path`.
async fn wait_for_path(c: &fantoccini::Client, path: &str) {
    eventually(&format!("the browser to reach {path}"), WAIT, || async {
        Ok((c.current_url().await?.path() == path).then_some(()))
    })
    .await
    .unwrap();
}

/// Signs the browser in with the developer sign-in form.
async fn sign_in(c: &fantoccini::Client, p: &Platform, login: &str) {
    c.goto(&p.app("/login")).await.unwrap();
    let field = c.find(Locator::Id("login")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(login).await.unwrap();
    c.find(Locator::Css("form.login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(c, "/").await;
}

/// The phases on the node page's boot log, in order.
async fn phases(c: &fantoccini::Client) -> Result<Vec<String>, fantoccini::error::CmdError> {
    let mut out = Vec::new();
    for item in c
        .find_all(Locator::Css("#node-phases [data-phase]"))
        .await?
    {
        out.push(item.attr("data-phase").await?.unwrap_or_default());
    }
    Ok(out)
}

#[tokio::test]
async fn ui_node_page_in_chromium() {
    let p = Platform::from_env();
    let login = "ui-node-user";
    let (c, _driver, _profile) = browser(&p).await;
    sign_in(&c, &p, login).await;

    let api = p.signed_in_with_cloud(login).await.unwrap();
    let node: sam_wire::NodeView = api
        .post(p.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "ui-detail-node" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node_path = format!("/nodes/{}", node.id);

    // From the list, the node's name leads to its page.
    c.goto(&p.app("/nodes")).await.unwrap();
    let link = format!("a.node-name[href='{node_path}']");
    c.find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, &node_path).await;
    assert_eq!(c.title().await.unwrap(), "ui-detail-node · SAM");

    // It boots: running, with the boot log's phases and the agent's metrics.
    let seen = eventually(
        "the node page to show a running node with its phases and metrics",
        Duration::from_secs(60),
        || async {
            c.refresh().await?;
            let head = c.find(Locator::Css(".node-head")).await?;
            let status = head.attr("data-status").await?.unwrap_or_default();
            let phases = phases(&c).await?;
            let metrics = !c
                .find_all(Locator::Css("#node-metrics meter"))
                .await?
                .is_empty();
            let done = status == "running"
                && ["requested", "provider_created", "agent_ready"]
                    .iter()
                    .all(|want| phases.iter().any(|got| got == want))
                && metrics;
            Ok(done.then_some(phases))
        },
    )
    .await
    .unwrap();
    // In the order they happened.
    let at = |phase: &str| seen.iter().position(|p| p == phase).unwrap();
    assert!(at("requested") < at("provider_created"), "{seen:?}");
    assert!(at("provider_created") < at("agent_ready"), "{seen:?}");
    assert_eq!(
        c.find(Locator::Id("node-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "running"
    );
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "ui-detail-node",
        "hetzner",
        "Agent ready",
        "+0.0 s",
        "s ago",
        "Uptime",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }

    // Desktop and phone widths both fit; screenshots are kept for a person to look at.
    check_widths(&c, &artifacts(&p), "node").await;

    // Another user gets the same 404 as for an id that does not exist.
    let other = p.client();
    let resp = other
        .post(p.app("/api/auth/dev-login"))
        .json(&json!({ "login": "ui-node-other" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let page = |path: String| {
        let other = other.clone();
        let url = p.app(&path);
        async move {
            let resp = other.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, body) = page(node_path.clone()).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("there is no such node"), "{body}");
    assert!(!body.contains("ui-detail-node"), "{body}");
    let (status, unknown) = page("/nodes/01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()).await;
    assert_eq!((status, &unknown), (404, &body));
    // The browser's own malformed id is a 404 page too.
    c.goto(&p.app("/nodes/not-a-node")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Error 404 · SAM");

    // Delete with the page's button (its 5 s reload waits while the request
    // is in flight), confirm, and we are back on the list.
    c.goto(&p.app(&node_path)).await.unwrap();
    c.find(Locator::Css("#delete-node-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let question = eventually("the confirm dialog", WAIT, || async {
        Ok(c.get_alert_text().await.ok())
    })
    .await
    .unwrap();
    assert!(
        question.contains("Delete node ui-detail-node?"),
        "{question}"
    );
    c.accept_alert().await.unwrap();
    wait_for_path(&c, "/nodes").await;
    let row = format!("[data-node-id='{}']", node.id);
    eventually(
        "the node to show as deleted",
        Duration::from_secs(30),
        || async {
            c.refresh().await?;
            let rows = c.find_all(Locator::Css(&row)).await?;
            let Some(row) = rows.first() else {
                return Ok(Some(()));
            };
            let status = row.attr("data-status").await?.unwrap_or_default();
            Ok((status == "deleted").then_some(()))
        },
    )
    .await
    .unwrap();
    let gone: sam_wire::NodeView = api
        .get(p.api(&format!("/api/nodes/{}", node.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone.status, "deleted");

    // The deleted node's page stays, without a delete button or a refresh.
    c.goto(&p.app(&node_path)).await.unwrap();
    let head = c.find(Locator::Css(".node-head")).await.unwrap();
    assert_eq!(
        head.attr("data-status").await.unwrap().as_deref(),
        Some("deleted")
    );
    assert!(
        c.find_all(Locator::Css("#delete-node-form"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        c.find_all(Locator::Css(
            "meta[name=sam-refresh], meta[http-equiv=refresh]"
        ))
        .await
        .unwrap()
        .is_empty()
    );
    c.close().await.unwrap();
}
