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
        "the node to show as ready",
        Duration::from_secs(60),
        || async {
            c.refresh().await?;
            let row = c.find(Locator::Css(&selector)).await?;
            let status = row.attr("data-status").await?.unwrap_or_default();
            Ok((status == "ready").then_some(status))
        },
    )
    .await
    .unwrap();
    assert_eq!(status, "ready");
    // Created by the user, so held by them.
    let held = c
        .find(Locator::Css(&format!("{selector} [data-holder]")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(held, "held by you");
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

/// The phases on the node page's timeline, in order.
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

/// Runs `script` (which must `return` a boolean) in the page.
async fn js_true(
    c: &fantoccini::Client,
    script: &str,
) -> Result<bool, fantoccini::error::CmdError> {
    Ok(c.execute(script, vec![]).await?.as_bool().unwrap_or(false))
}

/// Marks the loaded document; [`still_marked`] tells whether it was
/// replaced since (a reload or a navigation).
async fn mark_document(c: &fantoccini::Client) {
    c.execute("window.__samMarker = 1;", vec![]).await.unwrap();
}

async fn still_marked(c: &fantoccini::Client) -> bool {
    js_true(c, "return window.__samMarker === 1;")
        .await
        .unwrap()
}

/// The node page's status badge text, and the status on its head.
async fn shown_status(
    c: &fantoccini::Client,
) -> Result<(String, String), fantoccini::error::CmdError> {
    let badge = c.find(Locator::Id("node-status")).await?.text().await?;
    let head = c
        .find(Locator::Css(".node-head"))
        .await?
        .attr("data-status")
        .await?
        .unwrap_or_default();
    Ok((badge, head))
}

/// Waits, without reloading, until the node page shows `status` (badge and
/// head agree).
async fn wait_for_status_in_place(c: &fantoccini::Client, status: &str, timeout: Duration) {
    eventually(
        &format!("the page to show {status} in place"),
        timeout,
        || async {
            let (badge, head) = shown_status(c).await?;
            Ok((badge == status && head == status).then_some(()))
        },
    )
    .await
    .unwrap();
}

/// Whether the element with `id` is on the page and not hidden.
async fn visible(c: &fantoccini::Client, id: &str) -> bool {
    js_true(
        c,
        &format!("const e = document.getElementById('{id}'); return !!e && !e.hidden;"),
    )
    .await
    .unwrap()
}

/// Clicks the submit button of `form_id`, checks the confirm question
/// and accepts it.
async fn submit_and_confirm(c: &fantoccini::Client, form_id: &str, question_contains: &str) {
    c.find(Locator::Css(&format!("#{form_id} button[type=submit]")))
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
    assert!(question.contains(question_contains), "{question}");
    c.accept_alert().await.unwrap();
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

    // Straight to the node's page, so it is (most likely) there before the
    // agent registers; from then on it is never reloaded.
    c.goto(&p.app(&node_path)).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "ui-detail-node · SAM");
    mark_document(&c).await;
    let booted_before_load = js_true(
        &c,
        "return !!document.querySelector('#node-timeline [data-phase=agent_ready]');",
    )
    .await
    .unwrap();
    // The live script loads and follows the node's log.
    assert!(
        !c.find_all(Locator::Css("script[src^='/static/node-live.js']"))
            .await
            .unwrap()
            .is_empty()
    );
    eventually("the live connection", WAIT, || async {
        let state = c
            .find(Locator::Css(".node-head"))
            .await?
            .attr("data-live-state")
            .await?
            .unwrap_or_default();
        Ok((state == "open").then_some(()))
    })
    .await
    .unwrap();

    // It boots: ready, with the log's phases and the agent's metrics, all
    // arriving in place.
    let seen = eventually(
        "the node page to show a ready node with its phases and metrics, without a reload",
        Duration::from_secs(60),
        || async {
            let (badge, head) = shown_status(&c).await?;
            let phases = phases(&c).await?;
            let metrics = !c
                .find_all(Locator::Css("#node-metrics meter"))
                .await?
                .is_empty();
            let done = badge == "ready"
                && head == "ready"
                && ["requested", "provider_created", "agent_ready"]
                    .iter()
                    .all(|want| phases.iter().any(|got| got == want))
                && metrics;
            Ok(done.then_some(phases))
        },
    )
    .await
    .unwrap();
    assert!(still_marked(&c).await, "the page was reloaded");
    if booted_before_load {
        // The agent beat the page; the live path is still checked below
        // (released, destroyed).
        println!("agent_ready was logged before the page loaded");
    } else {
        assert!(
            js_true(
                &c,
                "return !!document.querySelector('#node-timeline [data-phase=agent_ready][data-live]');"
            )
            .await
            .unwrap(),
            "agent_ready should have been added live"
        );
    }
    // In the order they happened, each once.
    let at = |phase: &str| seen.iter().position(|p| p == phase).unwrap();
    assert!(at("requested") < at("provider_created"), "{seen:?}");
    assert!(at("provider_created") < at("agent_ready"), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|p| *p == "agent_ready").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        c.find(Locator::Css("#node-status"))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("badge status-ready")
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
        "next check in",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert_eq!(
        c.find(Locator::Id("node-holder"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "you"
    );
    assert!(visible(&c, "release-node-form").await);
    assert!(visible(&c, "stop-node-form").await);
    assert!(visible(&c, "delete-node-form").await);

    // The vm-agent's own log streams into its panel.
    assert!(visible(&c, "agent-log").await);
    c.find(Locator::Id("agent-log-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let first_line = eventually("a vm-agent log line", WAIT, || async {
        let lines = c
            .find_all(Locator::Css("#agent-log-lines li.log-line:not(.log-gap)"))
            .await?;
        let Some(line) = lines.first() else {
            return Ok(None);
        };
        let text = line.text().await?;
        Ok((!text.is_empty()).then_some(text))
    })
    .await
    .unwrap();
    assert!(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
            .iter()
            .any(|level| first_line.starts_with(level)),
        "{first_line}"
    );
    assert!(
        js_true(
            &c,
            "return document.querySelectorAll('#agent-log-lines li').length <= 500;"
        )
        .await
        .unwrap()
    );
    c.find(Locator::Id("agent-log-stop"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(still_marked(&c).await, "the page was reloaded");

    // Desktop and phone widths both fit; screenshots are kept for a person
    // to look at. (This reloads the page.)
    let artifacts = artifacts(&p);
    check_widths(&c, &artifacts, "node").await;

    // Release: the user's hold ends and the node turns warm, in place.
    mark_document(&c).await;
    c.find(Locator::Css("#release-node-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_status_in_place(&c, "warm", WAIT).await;
    eventually("the released line on the timeline", WAIT, || async {
        Ok(js_true(
            &c,
            "return !!document.querySelector('#node-timeline [data-phase=released][data-live]');",
        )
        .await?
        .then_some(()))
    })
    .await
    .unwrap();
    assert!(still_marked(&c).await, "Release reloaded the page");
    assert!(!visible(&c, "release-node-form").await);
    assert!(visible(&c, "stop-node-form").await);
    assert!(
        visible(&c, "agent-log").await,
        "a warm node's agent still runs"
    );
    let deadline = c
        .find(Locator::Id("node-deadline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        deadline.contains("(destroyed if not claimed)"),
        "{deadline}"
    );
    let warm: sam_wire::NodeView = api
        .get(p.api(&format!("/api/nodes/{}", node.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((warm.status.as_str(), warm.claimed_by), ("warm", None));
    check_widths(&c, &artifacts, "node-warm").await;

    // Stop: the server is deleted, the record stays; the badge follows in
    // place.
    mark_document(&c).await;
    submit_and_confirm(&c, "stop-node-form", "Stop node ui-detail-node?").await;
    wait_for_status_in_place(&c, "destroyed", Duration::from_secs(60)).await;
    assert!(still_marked(&c).await, "Stop reloaded the page");
    assert_eq!(
        c.find(Locator::Css("#node-status"))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("badge status-destroyed")
    );
    eventually("the destroyed line on the timeline", WAIT, || async {
        Ok(phases(&c)
            .await?
            .iter()
            .any(|p| p == "destroyed")
            .then_some(()))
    })
    .await
    .unwrap();
    assert!(!visible(&c, "stop-node-form").await);
    assert!(!visible(&c, "release-node-form").await);
    assert!(!visible(&c, "agent-log").await);
    assert!(
        visible(&c, "delete-node-form").await,
        "a stopped node can still be deleted"
    );
    let stopped: sam_wire::NodeView = api
        .get(p.api(&format!("/api/nodes/{}", node.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stopped.status, "destroyed");
    assert_eq!(stopped.removed_at, None);
    check_widths(&c, &artifacts, "node-destroyed").await;

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

    // The stopped node is still listed; its name leads to its page.
    c.goto(&p.app("/nodes")).await.unwrap();
    let row = format!("[data-node-id='{}']", node.id);
    assert_eq!(
        c.find(Locator::Css(&row))
            .await
            .unwrap()
            .attr("data-status")
            .await
            .unwrap()
            .as_deref(),
        Some("destroyed")
    );
    let link = format!("a.node-name[href='{node_path}']");
    c.find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, &node_path).await;

    // Delete with the page's button, confirm, and we are back on the list,
    // which no longer shows it.
    submit_and_confirm(&c, "delete-node-form", "Delete node ui-detail-node?").await;
    wait_for_path(&c, "/nodes").await;
    eventually("the node to leave the list", WAIT, || async {
        c.refresh().await?;
        Ok(c.find_all(Locator::Css(&row))
            .await?
            .is_empty()
            .then_some(()))
    })
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
    assert_eq!(gone.status, "destroyed");
    assert!(gone.removed_at.is_some());

    // The removed node's page stays, with nothing left to do or follow.
    c.goto(&p.app(&node_path)).await.unwrap();
    let (badge, head) = shown_status(&c).await.unwrap();
    assert_eq!((badge.as_str(), head.as_str()), ("destroyed", "destroyed"));
    for gone in [
        "#node-actions",
        "#delete-node-form",
        "#agent-log",
        "script[src^='/static/node-live.js']",
        "meta[name=sam-refresh], meta[http-equiv=refresh]",
    ] {
        assert!(
            c.find_all(Locator::Css(gone)).await.unwrap().is_empty(),
            "{gone} on a removed node's page"
        );
    }
    c.close().await.unwrap();
}
