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
