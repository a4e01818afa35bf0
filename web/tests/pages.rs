//! Rendered pages (snapshots), HTML escaping and static asset lookup.

#![allow(clippy::unwrap_used)]

use sam_web::{asset_version, render_error_page, render_nodes_page, static_asset};
use sam_wire::NodeView;

/// 2026-03-01 10:00:00 UTC.
const NOW_MS: i64 = 1_772_359_200_000;

fn node(id: &str, name: &str, status: &str) -> NodeView {
    NodeView {
        id: id.into(),
        name: name.into(),
        provider: "hetzner".into(),
        size: "small".into(),
        location: "fsn1".into(),
        server_type: "cx23".into(),
        status: status.into(),
        health: "unknown".into(),
        error_message: None,
        provider_server_id: None,
        ip_address: None,
        created_at: NOW_MS - 600_000,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        metrics: None,
        deleted_at: None,
    }
}

fn three_nodes() -> Vec<NodeView> {
    let running = NodeView {
        health: "healthy".into(),
        ip_address: Some("203.0.113.7".into()),
        provider_server_id: Some("4711".into()),
        agent_ready_at: Some(NOW_MS - 500_000),
        agent_version: Some("0.1.0".into()),
        last_heartbeat_at: Some(NOW_MS - 12_000),
        size: "medium".into(),
        server_type: "cx33".into(),
        location: "hel1".into(),
        ..node("01JNODERUNNING0000000000AA", "dev-box", "running")
    };
    let creating = NodeView {
        created_at: NOW_MS - 20_000,
        ..node("01JNODECREATING000000000BB", "fresh-node", "creating")
    };
    let error = NodeView {
        error_message: Some("hetzner: no capacity for cx23 in fsn1 (placement_error)".into()),
        ..node("01JNODEERROR000000000000CC", "broken-node", "error")
    };
    vec![running, creating, error]
}

/// The stylesheet hash changes with every CSS edit; keep it out of snapshots.
fn stable(html: &str) -> String {
    html.replace(asset_version(), "[asset-version]")
}

#[test]
fn nodes_page_empty() {
    let html = render_nodes_page(&[], NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("No nodes yet"));
    assert!(html.contains("POST /api/nodes"));
    assert!(!html.contains("data-node-id"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn nodes_page_with_three_nodes() {
    let html = render_nodes_page(&three_nodes(), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains(r#"data-node-id="01JNODERUNNING0000000000AA" data-status="running""#));
    assert!(html.contains(r#"data-status="creating""#));
    assert!(html.contains(r#"data-status="error""#));
    assert!(html.contains("12 s ago"));
    assert!(html.contains("no capacity for cx23"));
    assert!(html.contains("status-error"));
    assert!(!html.contains("No nodes yet"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn layout_basics_are_present() {
    let html = render_nodes_page(&[], NOW_MS, "9.9.9").unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(html.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(html.contains(&format!("/static/app.css?v={}", asset_version())));
    assert!(html.contains("9.9.9"));
    for landmark in ["<header", "<nav", "<main", "<footer"] {
        assert!(html.contains(landmark), "{landmark}");
    }
}

#[test]
fn user_strings_are_escaped() {
    let evil = NodeView {
        error_message: Some(r#"<img src=x onerror="alert(1)">"#.into()),
        ..node(r#"id"><script>"#, "<script>alert(1)</script>", "error")
    };
    let html = render_nodes_page(&[evil], NOW_MS, "<b>v</b>").unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>v"), "{html}");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    // The attribute cannot be broken out of either.
    assert!(html.contains(r#"data-node-id="id&#34;&#62;&#60;script&#62;""#));
}

#[test]
fn unknown_status_gets_a_neutral_class() {
    let odd = node("01JODD", "odd", "sparkling\" onclick=\"x");
    let html = render_nodes_page(&[odd], NOW_MS, "v").unwrap();
    assert!(html.contains("badge status-unknown"));
    assert!(!html.contains("onclick=\"x"));
}

#[test]
fn error_page() {
    let html = render_error_page(404, "not_found", "No node <here>", "0.1.0-test").unwrap();
    assert!(html.contains("Error 404"));
    assert!(html.contains("not_found"));
    assert!(html.contains("No node &#60;here&#62;"));
    assert!(!html.contains("http-equiv=\"refresh\""));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn known_assets_are_served() {
    let css = static_asset("app.css").unwrap();
    assert_eq!(css.content_type, "text/css; charset=utf-8");
    assert!(
        std::str::from_utf8(css.body)
            .unwrap()
            .contains("prefers-color-scheme")
    );
    assert!(css.etag.starts_with('"') && css.etag.ends_with('"'));

    let icon = static_asset("/static/favicon.svg").unwrap();
    assert_eq!(icon.content_type, "image/svg+xml");
    assert!(icon.body.starts_with(b"<svg"));
    assert_ne!(icon.etag, css.etag);
}

#[test]
fn unknown_and_traversal_paths_are_refused() {
    for path in [
        "",
        "/",
        "nope.css",
        "../Cargo.toml",
        "/static/../Cargo.toml",
        "..%2FCargo.toml",
        "static/app.css",
        "app.css/",
        "APP.CSS",
        "./app.css",
        "/static//app.css",
        "app.css?v=1",
    ] {
        assert!(static_asset(path).is_none(), "{path}");
    }
}

#[test]
fn asset_version_is_short_hex() {
    let v = asset_version();
    assert_eq!(v.len(), 12);
    assert!(v.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn login_page_offers_the_dev_form_only_when_enabled() {
    let on = sam_web::render_login_page(true, true, "1.0").unwrap();
    assert!(on.contains(r#"href="/auth/github""#));
    assert!(on.contains(r#"<form method="post" action="/login""#));
    let off = sam_web::render_login_page(false, false, "1.0").unwrap();
    assert!(!off.contains("<form"));
}

#[test]
fn pending_page_names_the_account_escaped() {
    let page = sam_web::render_pending_page("<b>x</b>", "1.0").unwrap();
    assert!(page.contains("&#60;b&#62;x&#60;/b&#62;"), "{page}");
    assert!(!page.contains("<b>x"));
    assert!(page.contains("Waiting for approval"));
}
