//! Rendered pages (snapshots), HTML escaping and static asset lookup.

#![allow(clippy::unwrap_used)]

use sam_web::{
    AgentCredentialRow, BootEventRow, CloudCredentialRow, InstallationOption, ProjectCard,
    ProjectDetail, ProjectWorkspaces, RepositoryOption, SettingsOptions, TokenRow, UserRow, Viewer,
    WorkspaceContext, asset_names, asset_version, render_admin_users_page, render_dashboard_page,
    render_error_page, render_new_project_page, render_node_page, render_nodes_page,
    render_project_page, render_settings_page, render_workspace_page, static_asset, workspace_csp,
};
use sam_wire::{NodeMetrics, NodeView, WorkspaceBootLogEntry, WorkspaceView};

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
        status_since: NOW_MS - 600_000,
        deadline_at: None,
        warm_until: None,
        claimed_by: None,
        project_id: None,
        health: "unknown".into(),
        error_message: None,
        provider_server_id: None,
        ip_address: None,
        created_at: NOW_MS - 600_000,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        metrics: None,
        destroy_attempts: 0,
        destroy_error: None,
        removed_at: None,
    }
}

/// The signed-in user's own hold on a node.
const USER_HOLD: &str = "user:01JUSER0000000000000000AA";

fn three_nodes() -> Vec<NodeView> {
    let running = NodeView {
        health: "healthy".into(),
        ip_address: Some("203.0.113.7".into()),
        provider_server_id: Some("4711".into()),
        agent_ready_at: Some(NOW_MS - 500_000),
        agent_version: Some("0.1.0".into()),
        last_heartbeat_at: Some(NOW_MS - 12_000),
        claimed_by: Some(USER_HOLD.into()),
        deadline_at: Some(NOW_MS + 168_000),
        size: "medium".into(),
        server_type: "cx33".into(),
        location: "hel1".into(),
        ..node("01JNODERUNNING0000000000AA", "dev-box", "ready")
    };
    let creating = NodeView {
        created_at: NOW_MS - 20_000,
        deadline_at: Some(NOW_MS + 880_000),
        claimed_by: Some(USER_HOLD.into()),
        ..node("01JNODECREATING000000000BB", "fresh-node", "booting")
    };
    let error = NodeView {
        error_message: Some("hetzner: no capacity for cx23 in fsn1 (placement_error)".into()),
        deadline_at: Some(NOW_MS),
        ..node("01JNODEERROR000000000000CC", "broken-node", "error")
    };
    vec![running, creating, error]
}

const ADMIN: Viewer<'static> = Viewer {
    login: "octocat",
    is_admin: true,
};
const USER: Viewer<'static> = Viewer {
    login: "monalisa",
    is_admin: false,
};

/// A project page without workspaces or nodes.
const NO_WORKSPACES: ProjectWorkspaces<'static> = ProjectWorkspaces {
    workspaces: &[],
    nodes: &[],
};

/// The asset hash changes with every CSS or JS edit; keep it out of snapshots.
fn stable(html: &str) -> String {
    html.replace(asset_version(), "[asset-version]")
}

#[test]
fn nodes_page_empty() {
    let html = render_nodes_page(Some(&USER), &[], NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("No nodes yet"));
    assert!(html.contains("POST /api/nodes"));
    assert!(!html.contains("data-node-id"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn nodes_page_with_three_nodes() {
    let html = render_nodes_page(Some(&ADMIN), &three_nodes(), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains(r#"data-node-id="01JNODERUNNING0000000000AA" data-status="ready""#));
    assert!(html.contains(r#"data-status="booting""#));
    assert!(html.contains(r#"data-status="error""#));
    assert!(html.contains("badge status-ready"));
    assert!(html.contains("badge status-booting"));
    assert!(html.contains("12 s ago"));
    assert!(html.contains("no capacity for cx23"));
    assert!(html.contains("status-error"));
    // Held nodes say so; what happens next reads as on the node's page.
    assert!(html.contains(r#"<span class="tag tag-held" data-holder>held by you</span>"#));
    assert!(html.contains("next check in 2 min"));
    assert!(html.contains("boot deadline in 14 min"));
    assert!(html.contains("its server is deleted next"));
    assert!(!html.contains(USER_HOLD), "the raw claim id stays internal");
    assert!(!html.contains("No nodes yet"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn nodes_page_marks_warm_held_and_removed_nodes() {
    let warm = NodeView {
        // The next heartbeat check comes first; the warm timeout is what it shows.
        deadline_at: Some(NOW_MS + 180_000),
        warm_until: Some(NOW_MS + 1_800_000),
        ..node("01JNODEWARM0000000000000DD", "warm-node", "warm")
    };
    let task = NodeView {
        claimed_by: Some("task-42".into()),
        ..node("01JNODETASK0000000000000EE", "task-node", "ready")
    };
    let going = NodeView {
        removed_at: Some(NOW_MS - 5_000),
        deadline_at: Some(NOW_MS + 8_000),
        destroy_attempts: 2,
        ..node("01JNODEGOING000000000000FF", "going-node", "destroying")
    };
    let html = render_nodes_page(Some(&USER), &[warm, task, going], NOW_MS, "v").unwrap();
    assert!(html.contains("badge status-warm"), "{html}");
    assert!(html.contains(r#"<span class="tag tag-free">free for reuse</span>"#));
    assert!(html.contains("warm until 10:30 UTC (destroyed if not claimed)"));
    assert!(html.contains("held by task-42"));
    assert!(html.contains("badge status-destroying"));
    assert!(html.contains("being removed"));
    assert!(html.contains("next delete attempt in 8 s"));
    // Exactly one row is warm and free, one held, one being removed.
    assert_eq!(html.matches("tag-free").count(), 1);
    assert_eq!(html.matches("data-holder").count(), 1);
    assert_eq!(html.matches("tag-removing").count(), 1);
}

#[test]
fn nodes_page_status_and_health_classes_cover_the_lifecycle() {
    for (status, class) in [
        ("provisioning", "status-provisioning"),
        ("booting", "status-booting"),
        ("ready", "status-ready"),
        ("warm", "status-warm"),
        ("destroying", "status-destroying"),
        ("destroyed", "status-destroyed"),
        ("error", "status-error"),
        ("running", "status-unknown"),
    ] {
        let html = render_nodes_page(None, &[node("01JN", "n", status)], NOW_MS, "v").unwrap();
        assert!(html.contains(&format!("badge {class}")), "{status}");
    }
    for (health, class) in [
        ("healthy", "health-healthy"),
        ("stale", "health-stale"),
        ("unhealthy", "health-unhealthy"),
        ("unknown", "health-unknown"),
        ("weird", "health-unknown"),
    ] {
        let n = NodeView {
            health: health.into(),
            ..node("01JN", "n", "ready")
        };
        let html = render_nodes_page(None, &[n], NOW_MS, "v").unwrap();
        assert!(html.contains(&format!("health {class}")), "{health}");
    }
    // Every class the pages can produce has a style.
    let css = std::str::from_utf8(static_asset("app.css").unwrap().body).unwrap();
    for class in [
        "status-provisioning",
        "status-booting",
        "status-ready",
        "status-warm",
        "status-destroying",
        "status-destroyed",
        "status-error",
        "health-healthy",
        "health-stale",
        "health-unhealthy",
    ] {
        assert!(css.contains(&format!(".{class}")), "{class} has no CSS");
    }
}

#[test]
fn layout_basics_are_present() {
    let html = render_nodes_page(Some(&USER), &[], NOW_MS, "9.9.9").unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(html.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(html.contains(&format!("/static/app.css?v={}", asset_version())));
    assert!(html.contains(&format!(
        r#"<script src="/static/forms.js?v={}" defer></script>"#,
        asset_version()
    )));
    assert!(html.contains("9.9.9"));
    for landmark in ["<header", "<nav", "<main", "<footer"] {
        assert!(html.contains(landmark), "{landmark}");
    }
}

#[test]
fn user_strings_are_escaped() {
    let evil = NodeView {
        error_message: Some(r#"<img src=x onerror="alert(1)">"#.into()),
        claimed_by: Some("<b>task</b>".into()),
        ..node(r#"id"><script>"#, "<script>alert(1)</script>", "error")
    };
    let html = render_nodes_page(None, &[evil], NOW_MS, "<b>v</b>").unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(html.contains("held by &#60;b&#62;task&#60;/b&#62;"));
    // The attribute cannot be broken out of either.
    assert!(html.contains(r#"data-node-id="id&#34;&#62;&#60;script&#62;""#));
}

#[test]
fn unknown_status_gets_a_neutral_class() {
    let odd = node("01JODD", "odd", "sparkling\" onclick=\"x");
    let html = render_nodes_page(None, &[odd], NOW_MS, "v").unwrap();
    assert!(html.contains("badge status-unknown"));
    assert!(!html.contains("onclick=\"x"));
}

// ---------------------------------------------------------------------------
// One node's page

fn boot_event(at: i64, phase: &str, detail: Option<&str>) -> BootEventRow {
    BootEventRow {
        at,
        phase: phase.into(),
        detail: detail.map(Into::into),
    }
}

fn running_node() -> (NodeView, Vec<BootEventRow>) {
    let created = NOW_MS - 600_000;
    let node = NodeView {
        health: "healthy".into(),
        ip_address: Some("203.0.113.7".into()),
        provider_server_id: Some("4711".into()),
        agent_ready_at: Some(created + 42_130),
        agent_version: Some("0.1.0".into()),
        last_heartbeat_at: Some(NOW_MS - 12_000),
        claimed_by: Some(USER_HOLD.into()),
        status_since: created + 42_130,
        // Three minutes after the last heartbeat.
        deadline_at: Some(NOW_MS + 168_000),
        metrics: Some(NodeMetrics {
            load_avg_1m: 0.42,
            load_avg_5m: 0.3,
            load_avg_15m: 0.125,
            memory_total_kib: 3_932_160,
            memory_available_kib: 2_621_440,
            disk_total_bytes: 40_961_572_864,
            disk_available_bytes: 28_672_000_000,
            uptime_secs: 558,
        }),
        ..node("01JNODERUNNING0000000000AA", "dev-box", "ready")
    };
    let events = vec![
        boot_event(created, "requested", None),
        boot_event(
            created + 420,
            "provider_retrying",
            Some("rate limited by hetzner; retrying in 0.3 s"),
        ),
        boot_event(created + 800, "provider_created", Some("server 4711")),
        boot_event(created + 42_130, "agent_ready", Some("agent 0.1.0")),
    ];
    (node, events)
}

/// The opening tag of the element with `id`, e.g. `<form id="x" … hidden>`.
fn tag_with_id<'h>(html: &'h str, id: &str) -> Option<&'h str> {
    let at = html.find(&format!(r#"id="{id}""#))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    Some(&html[start..=end])
}

/// The element is in the page and not hidden.
fn shown(html: &str, id: &str) -> bool {
    tag_with_id(html, id).is_some_and(|tag| !tag.contains(" hidden"))
}

/// The element is in the page, hidden (for the live script to show).
fn hidden(html: &str, id: &str) -> bool {
    tag_with_id(html, id).is_some_and(|tag| tag.contains(" hidden"))
}

#[test]
fn node_page_running_with_metrics_and_phases() {
    let (node, events) = running_node();
    let html = render_node_page(&USER, &node, Some(&events), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("<title>dev-box · SAM</title>"));
    assert!(html.contains(r#"data-status="ready""#));
    assert!(html.contains("badge status-ready"));
    assert!(html.contains("health health-healthy"));
    for (at, phase) in [
        (0, "requested"),
        (420, "provider_retrying"),
        (800, "provider_created"),
        (42_130, "agent_ready"),
    ] {
        let at = node.created_at + at;
        assert!(
            html.contains(&format!(r#"data-phase="{phase}" data-at="{at}""#)),
            "{phase}"
        );
    }
    assert!(html.contains("+0.0 s"));
    assert!(html.contains("+0.8 s"));
    assert!(html.contains("+42.1 s"));
    assert!(html.contains("12 s ago"));
    // 3.75 GiB total, 1.25 GiB used.
    assert!(html.contains("1.3 GiB</span> of 3.8 GiB"), "{html}");
    assert!(html.contains("(33 %)"));
    assert!(html.contains("38.1 GiB"));
    assert!(html.contains("9 min 18 s"));
    assert!(html.contains("0.42"));
    // Held by the user, who may release it; what happens next, in words.
    assert!(html.contains(r#"<dd id="node-holder">you</dd>"#));
    assert!(!html.contains(USER_HOLD));
    assert!(html.contains(r#"data-deadline-at="1772359368000""#));
    assert!(html.contains(">next check in 2 min</time>"), "{html}");
    assert!(shown(&html, "release-node-form"));
    assert!(shown(&html, "stop-node-form"));
    assert!(shown(&html, "delete-node-form"));
    assert!(html.contains(
        r#"action="/api/nodes/01JNODERUNNING0000000000AA/release" data-node-action="release""#
    ));
    assert!(html.contains(
        r#"action="/api/nodes/01JNODERUNNING0000000000AA/stop" data-node-action="stop" data-confirm="Stop node dev-box?"#
    ));
    assert!(html.contains(r#"data-api="DELETE" action="/api/nodes/01JNODERUNNING0000000000AA""#));
    assert!(html.contains(r#"data-redirect="/nodes""#));
    // The agent log can be streamed.
    assert!(shown(&html, "agent-log"));
    assert!(html.contains(">Show agent log</button>"));
    assert!(hidden(&html, "node-error"));
    assert!(hidden(&html, "node-destroy"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn node_page_is_updated_live_not_reloaded() {
    let (node, events) = running_node();
    let html = render_node_page(&USER, &node, Some(&events), NOW_MS, "v").unwrap();
    // No timed reload with JavaScript; a plain one without it.
    assert!(!html.contains("sam-refresh"));
    assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="10"></noscript>"#));
    // The script, from our origin like forms.js, and the hooks it reads.
    assert!(html.contains(&format!(
        r#"<script src="/static/node-live.js?v={}" defer></script>"#,
        asset_version()
    )));
    assert_eq!(html.matches("<script").count(), 2);
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains(" style="));
    assert!(!html.contains("javascript:"));
    for hook in [
        r#"id="node-head""#,
        r#"data-live-node="/api/nodes/01JNODERUNNING0000000000AA""#,
        r#"data-live-events="/api/nodes/01JNODERUNNING0000000000AA/events/ws""#,
        r#"data-live-logs="/api/nodes/01JNODERUNNING0000000000AA/logs/stream""#,
        r#"data-created-at="1772358600000""#,
        r#"data-rendered-at="1772359200000""#,
        r#"id="node-status""#,
        r#"id="node-health""#,
        r#"id="node-deadline""#,
        r#"id="node-holder""#,
        r#"id="node-live-state""#,
        r#"id="node-timeline""#,
        r#"id="node-metrics-body""#,
        r#"id="node-heartbeat""#,
        r#"id="agent-log-start""#,
        r#"id="agent-log-stop""#,
        r#"id="agent-log-lines""#,
    ] {
        assert!(html.contains(hook), "{hook}");
    }
    // Every element the script looks up by id is on the page.
    let js = std::str::from_utf8(static_asset("node-live.js").unwrap().body).unwrap();
    for id in js
        .split(['"', '\''])
        .filter(|s| s.starts_with("node-") || s.starts_with("agent-log-") || *s == "agent-log")
        .filter(|s| s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .filter(|s| !s.ends_with('-'))
    {
        assert!(
            html.contains(&format!(r#"id="{id}""#)),
            "node-live.js uses #{id}"
        );
    }
    // The live actions are the script's, not forms.js's; every action form
    // has a place for its error.
    assert!(!html.contains(r#"data-api="POST""#));
    let forms = html.matches("<form class=\"action-form\"").count();
    assert_eq!(forms, 3);
    assert_eq!(html.matches(r#"role="alert""#).count(), forms);
}

#[test]
fn node_page_offers_the_actions_of_each_status() {
    // (status, held by the user, removed) → [release, stop, delete, agent log]
    // shown.
    let cases = [
        (("provisioning", true, false), [false, true, true, false]),
        (("booting", true, false), [false, true, true, false]),
        (("ready", true, false), [true, true, true, true]),
        // Held by a task: only the task may release it.
        (("ready", false, false), [false, true, true, true]),
        (("warm", false, false), [false, true, true, true]),
        (("destroying", false, false), [false, false, true, false]),
        (("destroying", false, true), [false, false, true, false]),
        (("error", false, false), [false, true, true, false]),
        (("destroyed", false, false), [false, false, true, false]),
        (("destroyed", false, true), [false, false, false, false]),
    ];
    for ((status, held_by_user, removed), [release, stop, delete, agent_log]) in cases {
        let n = NodeView {
            claimed_by: if held_by_user {
                Some(USER_HOLD.into())
            } else if status == "ready" {
                Some("task-7".into())
            } else {
                None
            },
            removed_at: removed.then_some(NOW_MS - 1_000),
            ..node("01JNODEX", "x", status)
        };
        let html = render_node_page(&USER, &n, Some(&[]), NOW_MS, "v").unwrap();
        let what = format!("{status} held={held_by_user} removed={removed}");
        assert_eq!(
            shown(&html, "release-node-form"),
            release,
            "release: {what}"
        );
        assert_eq!(shown(&html, "stop-node-form"), stop, "stop: {what}");
        assert_eq!(shown(&html, "delete-node-form"), delete, "delete: {what}");
        assert_eq!(shown(&html, "agent-log"), agent_log, "agent log: {what}");
        let live = status != "destroyed";
        assert_eq!(html.contains("node-live.js"), live, "script: {what}");
        assert_eq!(html.contains("data-live-events="), live, "hooks: {what}");
        if live {
            // Forms that may come to apply are there for the script to show.
            assert!(tag_with_id(&html, "release-node-form").is_some(), "{what}");
            assert!(tag_with_id(&html, "stop-node-form").is_some(), "{what}");
            assert!(tag_with_id(&html, "agent-log").is_some(), "{what}");
        } else {
            // Nothing comes back: no hidden forms, no live parts.
            assert!(tag_with_id(&html, "release-node-form").is_none(), "{what}");
            assert!(tag_with_id(&html, "stop-node-form").is_none(), "{what}");
            assert!(tag_with_id(&html, "agent-log").is_none(), "{what}");
            assert!(!html.contains("http-equiv=\"refresh\""), "{what}");
        }
        assert_eq!(
            tag_with_id(&html, "node-actions").is_some(),
            release || stop || delete,
            "actions panel: {what}"
        );
    }
}

#[test]
fn node_page_says_what_the_deadline_means() {
    let cases: [(&str, Option<i64>, Option<&str>); 13] = [
        (
            "provisioning",
            Some(240_000),
            Some("boot deadline in 4 min"),
        ),
        ("booting", Some(8_000), Some("boot deadline in 8 s")),
        ("booting", Some(400), Some("boot deadline in 1 s")),
        ("booting", Some(-5_000), Some("boot deadline passed")),
        ("ready", Some(119_000), Some("next check in 119 s")),
        ("ready", Some(0), Some("next check due now")),
        // 10:00 now; 12:30 UTC is 2.5 h ahead.
        (
            "warm",
            Some(9_000_000),
            Some("warm until 12:30 UTC (destroyed if not claimed)"),
        ),
        (
            "destroying",
            Some(8_000),
            Some("next delete attempt in 8 s"),
        ),
        ("destroying", Some(-1), Some("next delete attempt due now")),
        (
            "destroying",
            Some(3 * 3_600_000),
            Some("next delete attempt in 3 h"),
        ),
        ("error", Some(0), Some("its server is deleted next")),
        ("destroyed", Some(1_000), None),
        ("ready", None, None),
    ];
    for (status, left, want) in cases {
        let n = NodeView {
            deadline_at: left.map(|l| NOW_MS + l),
            ..node("01JNODEX", "x", status)
        };
        let html = render_node_page(&USER, &n, Some(&[]), NOW_MS, "v").unwrap();
        match want {
            Some(text) => {
                assert!(shown(&html, "node-deadline"), "{status} {left:?}");
                assert!(
                    html.contains(&format!(">{text}</time>")),
                    "{status} {left:?}: {html}"
                );
            }
            None => assert!(hidden(&html, "node-deadline"), "{status} {left:?}"),
        }
    }
    // The live script has the same phrases.
    let js = std::str::from_utf8(static_asset("node-live.js").unwrap().body).unwrap();
    for phrase in [
        "\"boot deadline in \"",
        "\"boot deadline passed\"",
        "\"next check in \"",
        "\"next check due now\"",
        "\"warm until \"",
        "\" (destroyed if not claimed)\"",
        "\"next delete attempt in \"",
        "\"next delete attempt due now\"",
        "\"its server is deleted next\"",
    ] {
        assert!(js.contains(phrase), "node-live.js lacks {phrase}");
    }
}

#[test]
fn node_page_names_the_holder() {
    let task = NodeView {
        claimed_by: Some("task-42".into()),
        ..node("01JNODEX", "x", "ready")
    };
    let html = render_node_page(&USER, &task, Some(&[]), NOW_MS, "v").unwrap();
    assert!(html.contains(r#"<dd id="node-holder">task-42</dd>"#));
    let free = node("01JNODEX", "x", "warm");
    let html = render_node_page(&USER, &free, Some(&[]), NOW_MS, "v").unwrap();
    assert!(html.contains(r#"<dd id="node-holder"><span class="muted">nobody</span></dd>"#));
    assert!(html.contains("badge status-warm"));
}

#[test]
fn node_page_destroying_shows_the_failed_delete() {
    let n = NodeView {
        destroy_attempts: 3,
        destroy_error: Some("hetzner: 503 service unavailable <retry>".into()),
        deadline_at: Some(NOW_MS + 8_000),
        removed_at: Some(NOW_MS - 30_000),
        ..node("01JNODEGOING000000000000FF", "going-node", "destroying")
    };
    let html = render_node_page(&USER, &n, Some(&[]), NOW_MS, "v").unwrap();
    assert!(shown(&html, "node-destroy"));
    assert!(html.contains(r#"<span class="metric" id="node-destroy-attempts">3</span>"#));
    assert!(shown(&html, "node-destroy-error-line"));
    assert!(html.contains("hetzner: 503 service unavailable &#60;retry&#62;"));
    assert!(html.contains(">next delete attempt in 8 s</time>"));
    assert!(html.contains("<dt>Removed</dt>"));
    // A delete without an error yet shows the attempts only.
    let calm = NodeView {
        destroy_error: None,
        ..n
    };
    let html = render_node_page(&USER, &calm, Some(&[]), NOW_MS, "v").unwrap();
    assert!(shown(&html, "node-destroy"));
    assert!(hidden(&html, "node-destroy-error-line"));
    // Other statuses keep the box hidden, even with an old error.
    let ready = NodeView {
        destroy_error: Some("old".into()),
        ..node("01JNODEX", "x", "ready")
    };
    let html = render_node_page(&USER, &ready, Some(&[]), NOW_MS, "v").unwrap();
    assert!(hidden(&html, "node-destroy"));
}

#[test]
fn node_page_in_error() {
    let created = NOW_MS - 600_000;
    let node = NodeView {
        error_message: Some("the agent did not register within 300 s".into()),
        provider_server_id: Some("4712".into()),
        deadline_at: Some(NOW_MS),
        ..node("01JNODEERROR000000000000CC", "broken-node", "error")
    };
    let events = vec![
        boot_event(created, "requested", None),
        boot_event(created + 1_200, "provider_created", None),
        boot_event(
            created + 300_000,
            "boot_deadline_passed",
            Some("the agent did not register within 300 s"),
        ),
    ];
    let html = render_node_page(&ADMIN, &node, Some(&events), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("badge status-error"));
    assert!(shown(&html, "node-error"));
    assert!(html.contains(r#"<p id="node-error-message">the agent did not register"#));
    assert!(html.contains("timeline-item phase-error"));
    assert!(html.contains("+5 min 0 s"));
    assert!(html.contains("No metrics: the node is not running."));
    assert!(html.contains("its server is deleted next"));
    assert!(html.contains("node-live.js"));
    assert!(shown(&html, "delete-node-form"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn node_page_destroyed_and_removed() {
    let (running, mut events) = running_node();
    let removed_at = NOW_MS - 60_000;
    events.push(boot_event(removed_at - 900, "destroy_requested", None));
    events.push(boot_event(removed_at, "destroyed", None));
    let node = NodeView {
        status: "destroyed".into(),
        health: "unknown".into(),
        claimed_by: None,
        deadline_at: None,
        removed_at: Some(removed_at),
        ..running
    };
    let html = render_node_page(&USER, &node, Some(&events), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("badge status-destroyed"));
    // Nothing changes any more: no refresh, no live script, no actions, no
    // stale metrics.
    assert!(!html.contains("http-equiv=\"refresh\"") && !html.contains("sam-refresh"));
    assert!(!html.contains("node-live.js"));
    assert!(!html.contains("data-live-"));
    assert!(!html.contains("node-actions"));
    assert!(!html.contains("delete-node-form"));
    assert!(!html.contains("<noscript>"));
    assert!(!html.contains("<meter"));
    assert!(!html.contains("agent-log"));
    assert!(hidden(&html, "node-deadline"));
    assert!(html.contains("No metrics: the node is not running."));
    assert!(html.contains(r#"data-phase="destroyed""#));
    assert!(html.contains(">Destroyed</span>"));
    assert!(html.contains(">Delete requested</span>"));
    assert!(html.contains("<dt>Removed</dt>"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn node_page_stopped_can_still_be_deleted() {
    let n = node("01JNODESTOPPED0000000000GG", "stopped", "destroyed");
    let html = render_node_page(&USER, &n, Some(&[]), NOW_MS, "v").unwrap();
    assert!(shown(&html, "delete-node-form"));
    assert!(!html.contains("release-node-form"));
    assert!(!html.contains("stop-node-form"));
    assert!(!html.contains("node-live.js"));
    assert!(!html.contains("<dt>Removed</dt>"));
}

#[test]
fn node_page_without_boot_log_or_metrics() {
    let fresh = NodeView {
        created_at: NOW_MS - 3_000,
        ..node("01JNODECREATING000000000BB", "fresh-node", "booting")
    };
    let html = render_node_page(&USER, &fresh, None, NOW_MS, "v").unwrap();
    assert!(html.contains(r#"id="boot-log-unavailable""#));
    assert!(html.contains("it appears here once the live connection is up"));
    // The (empty) timeline is there for the live script to fill.
    assert!(hidden(&html, "node-timeline"));
    assert!(html.contains("No metrics yet"));
    assert!(html.contains("not yet"));
    assert!(html.contains("never"));
    let html = render_node_page(&USER, &fresh, Some(&[]), NOW_MS, "v").unwrap();
    assert!(html.contains("Nothing recorded yet."));
    assert!(hidden(&html, "node-timeline"));
    assert!(!html.contains("boot-log-unavailable"));
}

#[test]
fn every_lifecycle_phase_has_a_label_here_and_in_the_live_script() {
    let js = std::str::from_utf8(static_asset("node-live.js").unwrap().body).unwrap();
    for phase in [
        "requested",
        "provider_retrying",
        "provider_created",
        "provider_failed",
        "agent_ready",
        "claimed",
        "released",
        "boot_deadline_passed",
        "heartbeat_stale",
        "warm_timeout_passed",
        "max_lifetime_passed",
        "destroy_requested",
        "destroy_failed",
        "destroyed",
    ] {
        let n = node("01JNODEX", "x", "ready");
        let events = [boot_event(NOW_MS, phase, None)];
        let html = render_node_page(&USER, &n, Some(&events), NOW_MS, "v").unwrap();
        assert!(!html.contains("phase-unknown"), "{phase} has no label");
        let label = html
            .split(r#"<span class="timeline-label">"#)
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap();
        assert!(
            js.contains(&format!(r#"{phase}: ["{label}", "#)),
            "node-live.js labels {phase} differently from the page ({label})"
        );
    }
}

#[test]
fn node_page_escapes_user_strings() {
    let evil = NodeView {
        error_message: Some(r#"<img src=x onerror="alert(1)">"#.into()),
        ip_address: Some("<i>ip</i>".into()),
        agent_version: Some("\"><script>v</script>".into()),
        claimed_by: Some("<u>task</u>".into()),
        destroy_error: Some("<em>boom</em>".into()),
        ..node(r#"id"><script>/x"#, "<script>alert(1)</script>", "error")
    };
    let events = vec![boot_event(
        NOW_MS,
        "<b onclick=x>phase</b>",
        Some("<script>detail</script>"),
    )];
    let html = render_node_page(&USER, &evil, Some(&events), NOW_MS, "v").unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<i>"), "{html}");
    assert!(!html.contains("<u>"), "{html}");
    assert!(!html.contains("<em>"), "{html}");
    assert!(!html.contains("<b "), "{html}");
    assert!(html.contains("<title>&#60;script&#62;alert(1)&#60;/script&#62; · SAM</title>"));
    assert!(html.contains(r#"data-node-id="id&#34;&#62;&#60;script&#62;/x""#));
    // The id in every URL is percent-encoded: it stays one path segment.
    for url in [
        r#"action="/api/nodes/id%22%3E%3Cscript%3E%2Fx""#,
        r#"action="/api/nodes/id%22%3E%3Cscript%3E%2Fx/stop""#,
        r#"data-live-events="/api/nodes/id%22%3E%3Cscript%3E%2Fx/events/ws""#,
        r#"data-live-logs="/api/nodes/id%22%3E%3Cscript%3E%2Fx/logs/stream""#,
    ] {
        assert!(html.contains(url), "{url}: {html}");
    }
    // An unknown phase keeps a neutral class and its text, escaped; so does
    // the log line's detail.
    assert!(html.contains("timeline-item phase-unknown"));
    assert!(html.contains("&#60;b onclick=x&#62;phase&#60;/b&#62;"));
    assert!(html.contains("&#60;script&#62;detail&#60;/script&#62;"));
    assert!(html.contains("&#60;u&#62;task&#60;/u&#62;"));
    // The confirm questions carry the name escaped inside their attribute.
    assert!(html.contains(
        r#"data-confirm="Delete node &#60;script&#62;alert(1)&#60;/script&#62;? Its server is destroyed.""#
    ));
    assert!(html.contains(
        r#"data-confirm="Stop node &#60;script&#62;alert(1)&#60;/script&#62;? Its server is deleted; the node's record stays.""#
    ));
}

#[test]
fn node_live_js_is_served_and_writes_text_only() {
    let js = static_asset("/static/node-live.js").unwrap();
    assert_eq!(js.content_type, "application/javascript; charset=utf-8");
    assert_eq!(static_asset("node-live.js"), Some(js.clone()));
    let text = std::str::from_utf8(js.body).unwrap();
    // Log lines and server strings only ever become text.
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "setTimeout(\"",
        "DOMParser",
    ] {
        assert!(!text.contains(sink), "node-live.js uses {sink}");
    }
    assert!(text.contains("textContent"));
    // Same origin, cookie auth, the right protocols and the line cap.
    assert!(text.contains("credentials: \"same-origin\""));
    assert!(text.contains("\"wss:\" : \"ws:\""));
    assert!(text.contains("new EventSource("));
    assert!(text.contains("\"content-type\": \"application/json\""));
    assert!(text.contains("var MAX_LOG_LINES = 500;"));
    // The layout loads it nowhere else.
    let list = render_nodes_page(Some(&USER), &[], NOW_MS, "v").unwrap();
    assert!(!list.contains("node-live.js"));
}

#[test]
fn node_names_on_the_list_link_to_their_pages() {
    let html = render_nodes_page(Some(&USER), &three_nodes(), NOW_MS, "v").unwrap();
    assert!(
        html.contains(
            r#"<a class="node-name" href="/nodes/01JNODERUNNING0000000000AA">dev-box</a>"#
        )
    );
}

#[test]
fn error_page() {
    let html = render_error_page(404, "not_found", "No node <here>", "0.1.0-test").unwrap();
    assert!(html.contains("Error 404"));
    assert!(html.contains("not_found"));
    assert!(html.contains("No node &#60;here&#62;"));
    assert!(!html.contains("http-equiv=\"refresh\"") && !html.contains("sam-refresh"));
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

// ---------------------------------------------------------------------------
// Signed-in pages

fn options() -> SettingsOptions {
    SettingsOptions {
        vm_sizes: vec!["small".into(), "medium".into(), "large".into()],
        providers: vec!["hetzner".into(), "scaleway".into()],
        locations: vec!["fsn1".into(), "nbg1".into(), "hel1".into()],
        agents: vec!["claude-code".into(), "codex".into()],
    }
}

fn projects() -> Vec<ProjectCard> {
    vec![
        ProjectCard {
            id: "01JPROJECTACTIVE0000000000".into(),
            name: "Website".into(),
            repo_full_name: "octocat/website".into(),
            default_branch: "main".into(),
            status: "active".into(),
            updated_at: NOW_MS - 300_000,
        },
        ProjectCard {
            id: "01JPROJECTMISSING000000000".into(),
            name: "Old API".into(),
            repo_full_name: "octo-org/old-api".into(),
            default_branch: "develop".into(),
            status: "repository_missing".into(),
            updated_at: NOW_MS - 3 * 86_400_000,
        },
        ProjectCard {
            id: "01JPROJECTODD000000000000".into(),
            name: "Odd".into(),
            repo_full_name: "octocat/odd".into(),
            default_branch: "main".into(),
            status: "sparkling".into(),
            updated_at: NOW_MS - 30_000,
        },
    ]
}

fn installations() -> Vec<InstallationOption> {
    vec![
        InstallationOption {
            id: "4242".into(),
            account_login: "octocat".into(),
            repositories: vec![
                RepositoryOption {
                    id: 1001,
                    full_name: "octocat/website".into(),
                    default_branch: "main".into(),
                    private: false,
                },
                RepositoryOption {
                    id: 1002,
                    full_name: "octocat/secret-sauce".into(),
                    default_branch: "trunk".into(),
                    private: true,
                },
            ],
        },
        InstallationOption {
            id: "4343".into(),
            account_login: "octo-org".into(),
            repositories: vec![],
        },
    ]
}

fn project() -> ProjectDetail {
    ProjectDetail {
        id: "01JPROJECTACTIVE0000000000".into(),
        name: "Website".into(),
        repo_full_name: "octocat/website".into(),
        repo_html_url: "https://github.com/octocat/website".into(),
        default_branch: "main".into(),
        status: "active".into(),
        vm_size: Some("medium".into()),
        provider: None,
        location: Some("hel1".into()),
        agent: Some("claude-code".into()),
        warm_node_timeout_secs: Some(900),
        created_at: NOW_MS - 7 * 86_400_000,
        updated_at: NOW_MS - 600_000,
    }
}

fn agent_keys() -> Vec<AgentCredentialRow> {
    vec![AgentCredentialRow {
        agent: "claude-code".into(),
        kind: "oauth_token".into(),
        masked: "sk-ant-…9f3a".into(),
        updated_at: NOW_MS - 7_200_000,
    }]
}

fn cloud_credentials() -> Vec<CloudCredentialRow> {
    vec![CloudCredentialRow {
        provider: "hetzner".into(),
        masked: "…x7Qz".into(),
        updated_at: NOW_MS - 86_400_000 * 2,
    }]
}

fn tokens() -> Vec<TokenRow> {
    vec![
        TokenRow {
            id: "01JTOKENACTIVE00000000000A".into(),
            name: "laptop cli".into(),
            created_at: NOW_MS - 10 * 86_400_000,
            expires_at: Some(NOW_MS + 20 * 86_400_000),
            last_used_at: Some(NOW_MS - 90_000),
            revoked_at: None,
        },
        TokenRow {
            id: "01JTOKENEXPIRED0000000000B".into(),
            name: "old ci".into(),
            created_at: NOW_MS - 100 * 86_400_000,
            expires_at: Some(NOW_MS - 86_400_000),
            last_used_at: None,
            revoked_at: None,
        },
        TokenRow {
            id: "01JTOKENREVOKED0000000000C".into(),
            name: "leaked".into(),
            created_at: NOW_MS - 5 * 86_400_000,
            expires_at: None,
            last_used_at: None,
            revoked_at: Some(NOW_MS - 3_600_000),
        },
    ]
}

fn users() -> Vec<UserRow> {
    let user = |id: &str, login: &str, role: &str, status: &str| UserRow {
        id: id.into(),
        login: login.into(),
        name: None,
        role: role.into(),
        status: status.into(),
        created_at: NOW_MS - 86_400_000,
    };
    vec![
        UserRow {
            name: Some("The Octocat".into()),
            ..user(
                "01JUSEROCTOCAT00000000000A",
                "octocat",
                "superadmin",
                "active",
            )
        },
        user("01JUSERPENDING00000000000B", "newbie", "user", "pending"),
        user("01JUSERACTIVE000000000000C", "worker", "user", "active"),
        user("01JUSERSUSPENDED000000000D", "troll", "user", "suspended"),
        user("01JUSERADMIN0000000000000E", "boss", "superadmin", "active"),
        user("01JUSERADMIN0000000000000F", "helper", "admin", "active"),
    ]
}

#[test]
fn dashboard_empty() {
    let html = render_dashboard_page(&USER, &[], NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("No projects yet"));
    assert!(html.contains(r#"href="/projects/new""#));
    assert!(!html.contains("data-project-id"));
    assert!(html.contains(r#"<a href="/" aria-current="page">Projects</a>"#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn dashboard_with_projects() {
    let html = render_dashboard_page(&USER, &projects(), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains(r#"data-project-id="01JPROJECTACTIVE0000000000""#));
    assert!(html.contains(r#"href="/projects/01JPROJECTACTIVE0000000000""#));
    assert!(html.contains("badge status-active"));
    assert!(html.contains("badge status-repo-missing"));
    assert!(html.contains("repository missing"));
    assert!(html.contains("badge status-unknown"));
    assert!(html.contains("5 min ago"));
    assert!(html.contains("3 d ago"));
    assert!(!html.contains("No projects yet"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn new_project_without_installations() {
    let html = render_new_project_page(&USER, "/github/install", &[], "0.1.0-test").unwrap();
    assert!(html.contains(r#"href="/github/install""#));
    assert!(html.contains("No installations yet"));
    assert!(!html.contains("create-project-form"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn new_project_with_installations() {
    let html =
        render_new_project_page(&USER, "/github/install", &installations(), "0.1.0-test").unwrap();
    assert!(html.contains(
        r#"id="create-project-form" method="post" data-api="POST" action="/api/projects" data-redirect="/projects/{id}""#
    ));
    assert!(html.contains(r#"<optgroup label="octocat""#));
    assert!(html.contains(
        r#"<option value="4242:1001" data-default-branch="main">octocat/website</option>"#
    ));
    assert!(html.contains("octocat/secret-sauce (private)"));
    assert!(html.contains(r#"name="default_branch""#));
    assert!(html.contains(r#"placeholder="repository default""#));
    assert!(html.contains(r#"name="name""#));
    // The installation without repositories says so.
    assert!(html.contains("no repositories shared with the app"));
    assert!(html.contains(r#"role="alert""#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn new_project_with_only_empty_installations_has_no_form() {
    let empty = vec![InstallationOption {
        id: "1".into(),
        account_login: "solo".into(),
        repositories: vec![],
    }];
    let html = render_new_project_page(&USER, "/github/install", &empty, "v").unwrap();
    assert!(html.contains("no repositories shared with the app"));
    assert!(!html.contains("create-project-form"));
}

#[test]
fn project_page_without_overrides() {
    let bare = ProjectDetail {
        vm_size: None,
        location: None,
        agent: None,
        warm_node_timeout_secs: None,
        ..project()
    };
    let html = render_project_page(
        &USER,
        &bare,
        &options(),
        &[],
        &NO_WORKSPACES,
        "0.1.0-test",
        NOW_MS,
    )
    .unwrap();
    assert!(html.contains("No project-specific keys"));
    assert!(!html.contains(" selected>"));
    // No warm timeout of its own: the field is empty, the default its placeholder.
    assert!(html.contains(r#"placeholder="1800" data-type="number" data-empty="null""#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn project_page_with_overrides() {
    let html = render_project_page(
        &USER,
        &project(),
        &options(),
        &agent_keys(),
        &NO_WORKSPACES,
        "0.1.0-test",
        NOW_MS,
    )
    .unwrap();
    let id = "01JPROJECTACTIVE0000000000";
    assert!(html.contains(&format!(r#"data-project-id="{id}""#)));
    assert!(html.contains(r#"href="https://github.com/octocat/website""#));
    assert!(html.contains(&format!(
        r#"id="project-settings-form" method="post" data-api="PATCH" action="/api/projects/{id}""#
    )));
    for field in [
        "name",
        "default_branch",
        "settings.vm_size",
        "settings.provider",
        "settings.location",
        "settings.agent",
        "settings.warm_node_timeout_secs",
    ] {
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    assert!(html.contains(r#"<option value="medium" selected>medium</option>"#));
    assert!(html.contains(r#"<option value="hel1" selected>hel1</option>"#));
    assert!(html.contains(r#"<option value="claude-code" selected>claude-code</option>"#));
    assert!(html.contains(r#"<option value="">platform default</option>"#));
    // The warm node timeout: labelled, a whole number of seconds in range,
    // the stored value filled in, empty sent as null (the platform default).
    assert!(
        html.contains(r#"<label for="settings-warm-timeout">Warm node timeout (seconds)</label>"#)
    );
    assert!(html.contains(
        r#"<input id="settings-warm-timeout" name="settings.warm_node_timeout_secs" type="number" min="10" max="86400" step="1" inputmode="numeric" placeholder="1800" value="900" data-type="number" data-empty="null" aria-describedby="settings-warm-timeout-hint">"#
    ));
    assert!(html.contains(r#"id="settings-warm-timeout-hint""#));
    assert!(html.contains("empty for the platform default (1800)"));
    assert!(html.contains(&format!(
        r#"data-api="DELETE" action="/api/projects/{id}/agent-credentials/claude-code" data-confirm="#
    )));
    assert!(html.contains(&format!(
        r#"id="project-agent-key-form" method="post" data-api="PUT" data-action-template="/api/projects/{id}/agent-credentials/{{agent}}""#
    )));
    assert!(html.contains(r#"name="secret" type="password" autocomplete="off""#));
    assert!(html.contains(&format!(
        r#"id="delete-project-form" method="post" data-api="DELETE" action="/api/projects/{id}" data-confirm="#
    )));
    assert!(html.contains(r#"data-redirect="/""#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn project_page_does_not_link_unsafe_urls() {
    let odd = ProjectDetail {
        repo_html_url: "javascript:alert(1)".into(),
        ..project()
    };
    let html =
        render_project_page(&USER, &odd, &options(), &[], &NO_WORKSPACES, "v", NOW_MS).unwrap();
    assert!(!html.contains("javascript:"), "{html}");
    assert!(!html.contains(r#"id="repo-link""#));
}

#[test]
fn settings_page_empty() {
    let html =
        render_settings_page(&USER, &[], &[], &[], &options(), "0.1.0-test", NOW_MS).unwrap();
    assert!(html.contains("No cloud credentials yet"));
    assert!(html.contains("No agent keys yet"));
    assert!(html.contains("No tokens yet"));
    assert!(html.contains(r#"<a href="/settings" aria-current="page">Settings</a>"#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn settings_page_populated() {
    let html = render_settings_page(
        &USER,
        &cloud_credentials(),
        &agent_keys(),
        &tokens(),
        &options(),
        "0.1.0-test",
        NOW_MS,
    )
    .unwrap();
    // Cloud credentials.
    assert!(html.contains(r#"data-api="DELETE" action="/api/credentials/cloud/hetzner""#));
    assert!(html.contains(
        r#"id="hetzner-form" method="post" data-api="PUT" action="/api/credentials/cloud/hetzner""#
    ));
    assert!(html.contains(r#"name="token" type="password""#));
    assert!(html.contains(
        r#"id="scaleway-form" method="post" data-api="PUT" action="/api/credentials/cloud/scaleway""#
    ));
    assert!(html.contains(r#"name="secret_key" type="password""#));
    assert!(html.contains(r#"name="project_id""#));
    // Agent keys.
    assert!(html.contains(r#"data-api="DELETE" action="/api/credentials/agents/claude-code""#));
    assert!(html.contains(
        r#"id="agent-key-form" method="post" data-api="PUT" data-action-template="/api/credentials/agents/{agent}""#
    ));
    // Tokens: create with a one-time reveal; revoke only the live ones.
    assert!(html.contains(
        r#"id="create-token-form" method="post" data-api="POST" action="/api/auth/tokens" data-reveal="token-reveal""#
    ));
    assert!(html.contains(r#"name="expires_in_days" type="number""#));
    assert!(html.contains(r#"data-type="number""#));
    assert!(html.contains(r#"id="token-reveal""#));
    assert!(html.contains("shown only this once"));
    assert!(html.contains(r#"action="/api/auth/tokens/01JTOKENACTIVE00000000000A""#));
    assert!(html.contains(r#"action="/api/auth/tokens/01JTOKENEXPIRED0000000000B""#));
    assert!(!html.contains(r#"action="/api/auth/tokens/01JTOKENREVOKED0000000000C""#));
    assert!(html.contains(r#"data-state="expired""#));
    assert!(html.contains(r#"data-state="revoked""#));
    assert!(html.contains("90 s ago"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn admin_users_empty() {
    let html = render_admin_users_page(&ADMIN, &[], "0.1.0-test", NOW_MS).unwrap();
    assert!(html.contains("No accounts"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn admin_users_populated() {
    let html = render_admin_users_page(&ADMIN, &users(), "0.1.0-test", NOW_MS).unwrap();
    let action = |id: &str, verb: &str| format!(r#"action="/api/admin/users/{id}/{verb}""#);
    assert!(html.contains(&action("01JUSERPENDING00000000000B", "approve")));
    assert!(html.contains(&action("01JUSERACTIVE000000000000C", "suspend")));
    assert!(html.contains(&action("01JUSERSUSPENDED000000000D", "reactivate")));
    assert!(html.contains(&action("01JUSERADMIN0000000000000F", "suspend")));
    // No suspend for a superadmin, and nothing on the viewer's own account.
    assert!(!html.contains("01JUSERADMIN0000000000000E/"));
    assert!(!html.contains("01JUSEROCTOCAT00000000000A/"));
    assert!(html.contains("(you)"));
    assert!(html.contains("badge status-pending"));
    assert!(html.contains("badge status-suspended"));
    assert!(html.contains("1 waiting for approval"));
    assert!(html.contains(r#"<a href="/admin/users" aria-current="page">Admin</a>"#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn signed_in_header_shows_login_and_sign_out() {
    let html = render_dashboard_page(&USER, &[], NOW_MS, "v").unwrap();
    assert!(html.contains(r#"data-viewer-login="monalisa">monalisa</span>"#));
    assert!(html.contains(r#"<form method="post" action="/logout""#));
    for link in [r#"href="/""#, r#"href="/nodes""#, r#"href="/settings""#] {
        assert!(html.contains(link), "{link}");
    }
}

#[test]
fn admin_link_only_for_admins() {
    let user = render_dashboard_page(&USER, &[], NOW_MS, "v").unwrap();
    assert!(!user.contains("/admin/users"), "{user}");
    let admin = render_dashboard_page(&ADMIN, &[], NOW_MS, "v").unwrap();
    assert!(admin.contains(r#"<a href="/admin/users">Admin</a>"#));
    let nodes_user = render_nodes_page(Some(&USER), &[], NOW_MS, "v").unwrap();
    assert!(!nodes_user.contains("/admin/users"));
    let nodes_admin = render_nodes_page(Some(&ADMIN), &[], NOW_MS, "v").unwrap();
    assert!(nodes_admin.contains(r#"<a href="/admin/users">Admin</a>"#));
}

#[test]
fn signed_out_pages_have_no_navigation() {
    for html in [
        sam_web::render_login_page(true, true, "v").unwrap(),
        sam_web::render_pending_page("someone", "v").unwrap(),
        render_error_page(500, "internal_error", "oops", "v").unwrap(),
        render_nodes_page(None, &[], NOW_MS, "v").unwrap(),
    ] {
        assert!(!html.contains("<nav"), "{html}");
        assert!(!html.contains(r#"href="/settings""#), "{html}");
        assert!(!html.contains("data-viewer-login"), "{html}");
    }
}

/// An ` on…=` attribute (inline event handler) anywhere in the markup.
fn has_inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(at, _)| {
        let rest = &html[at + 3..];
        let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        letters > 0 && rest.as_bytes().get(letters) == Some(&b'=')
    })
}

#[test]
fn hostile_strings_are_escaped_on_every_new_page() {
    const EVIL: &str = r#"<script>alert("x")</script>"#;
    let viewer = Viewer {
        login: EVIL,
        is_admin: true,
    };
    let evil = || EVIL.to_owned();
    let card = ProjectCard {
        id: evil(),
        name: evil(),
        repo_full_name: evil(),
        default_branch: evil(),
        status: evil(),
        updated_at: NOW_MS,
    };
    let installation = InstallationOption {
        id: evil(),
        account_login: evil(),
        repositories: vec![RepositoryOption {
            id: 1,
            full_name: evil(),
            default_branch: evil(),
            private: true,
        }],
    };
    let detail = ProjectDetail {
        id: evil(),
        name: evil(),
        repo_full_name: evil(),
        repo_html_url: format!("https://x/{EVIL}"),
        default_branch: evil(),
        status: evil(),
        vm_size: Some(evil()),
        provider: Some(evil()),
        location: Some(evil()),
        agent: Some(evil()),
        warm_node_timeout_secs: Some(u64::MAX),
        created_at: NOW_MS,
        updated_at: NOW_MS,
    };
    let opts = SettingsOptions {
        vm_sizes: vec![evil()],
        providers: vec![evil()],
        locations: vec![evil()],
        agents: vec![evil()],
    };
    let key = AgentCredentialRow {
        agent: evil(),
        kind: evil(),
        masked: evil(),
        updated_at: NOW_MS,
    };
    let cloud = CloudCredentialRow {
        provider: evil(),
        masked: evil(),
        updated_at: NOW_MS,
    };
    let token = TokenRow {
        id: evil(),
        name: evil(),
        created_at: NOW_MS,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    let user = UserRow {
        id: evil(),
        login: evil(),
        name: Some(evil()),
        role: evil(),
        status: "pending".into(),
        created_at: NOW_MS,
    };
    let pages = [
        render_dashboard_page(&viewer, &[card], NOW_MS, EVIL).unwrap(),
        render_new_project_page(&viewer, EVIL, &[installation], EVIL).unwrap(),
        render_project_page(
            &viewer,
            &detail,
            &opts,
            std::slice::from_ref(&key),
            &NO_WORKSPACES,
            EVIL,
            NOW_MS,
        )
        .unwrap(),
        render_settings_page(&viewer, &[cloud], &[key], &[token], &opts, EVIL, NOW_MS).unwrap(),
        render_admin_users_page(&USER, &[user], EVIL, NOW_MS).unwrap(),
        render_nodes_page(Some(&viewer), &[], NOW_MS, EVIL).unwrap(),
    ];
    for html in pages {
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains(r#"alert("x")"#), "{html}");
        assert!(html.contains("&#60;script&#62;"), "{html}");
        // The only <script> element is the shim, loaded from our origin.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(!has_inline_handler(&html), "{html}");
    }
}

#[test]
fn ids_in_urls_are_percent_encoded() {
    let detail = ProjectDetail {
        id: "../../admin".into(),
        ..project()
    };
    let html = render_project_page(
        &USER,
        &detail,
        &options(),
        &agent_keys(),
        &NO_WORKSPACES,
        "v",
        NOW_MS,
    )
    .unwrap();
    assert!(
        html.contains(r#"action="/api/projects/..%2F..%2Fadmin""#),
        "{html}"
    );
    assert!(html.contains(
        r#"data-action-template="/api/projects/..%2F..%2Fadmin/agent-credentials/{agent}""#
    ));
}

#[test]
fn no_inline_scripts_or_handlers_anywhere() {
    let pages = [
        render_dashboard_page(&ADMIN, &projects(), NOW_MS, "v").unwrap(),
        render_new_project_page(&ADMIN, "/github/install", &installations(), "v").unwrap(),
        render_project_page(
            &ADMIN,
            &project(),
            &options(),
            &agent_keys(),
            &NO_WORKSPACES,
            "v",
            NOW_MS,
        )
        .unwrap(),
        render_settings_page(
            &ADMIN,
            &cloud_credentials(),
            &agent_keys(),
            &tokens(),
            &options(),
            "v",
            NOW_MS,
        )
        .unwrap(),
        render_admin_users_page(&ADMIN, &users(), "v", NOW_MS).unwrap(),
    ];
    for html in pages {
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script src="/static/forms.js?v="#));
        assert!(!html.contains("javascript:"));
        assert!(!has_inline_handler(&html), "{html}");
        assert!(!html.contains(" style="));
        // Every API form has a place for its error message.
        let forms = html.matches("data-api=").count();
        let alerts = html.matches(r#"role="alert""#).count();
        assert_eq!(forms, alerts, "{html}");
    }
}

#[test]
fn forms_js_is_served_as_javascript() {
    let js = static_asset("/static/forms.js").unwrap();
    assert_eq!(js.content_type, "application/javascript; charset=utf-8");
    let text = std::str::from_utf8(js.body).unwrap();
    assert!(text.contains("data-api"));
    assert!(text.contains("credentials: \"same-origin\""));
    assert_eq!(static_asset("forms.js"), Some(js));
}

// ---- workspaces ----

const PROJECT_ID: &str = "01JPROJECTACTIVE0000000000";
const WS_ID: &str = "01JWORKSPACE00000000000001";
const WS_URL: &str = "http://ws-01jworkspace00000000000001.localhost:8787";

fn workspace(status: &str) -> WorkspaceView {
    let created = NOW_MS - 300_000;
    WorkspaceView {
        id: WS_ID.into(),
        project_id: PROJECT_ID.into(),
        node_id: "01JNODERUNNING0000000000AA".into(),
        name: "feature-login".into(),
        branch: "feature/login".into(),
        runtime: "host".into(),
        status: status.into(),
        status_since: created + 9_400,
        error_message: None,
        ports_public: false,
        created_at: created,
        ready_at: (status == "running").then_some(created + 9_400),
        url: WS_URL.into(),
    }
}

fn step(at: i64, step: &str, status: &str, detail: Option<&str>) -> WorkspaceBootLogEntry {
    WorkspaceBootLogEntry {
        at,
        step: step.into(),
        status: status.into(),
        detail: detail.map(Into::into),
    }
}

fn creation_log(created: i64) -> Vec<WorkspaceBootLogEntry> {
    vec![
        step(created + 200, "clone", "started", None),
        step(created + 3_100, "clone", "done", None),
        step(
            created + 3_300,
            "branch",
            "done",
            Some("created feature/login from main"),
        ),
        step(created + 3_400, "git_identity", "done", None),
        step(created + 9_300, "runtime_start", "done", Some("host")),
    ]
}

fn context(events: Option<&[WorkspaceBootLogEntry]>) -> WorkspaceContext<'_> {
    WorkspaceContext {
        project_name: Some("Website"),
        node_name: Some("dev-box"),
        events,
    }
}

#[test]
fn workspace_page_running() {
    let ws = workspace("running");
    let log = creation_log(ws.created_at);
    let html =
        render_workspace_page(&USER, &ws, &context(Some(&log)), NOW_MS, "0.1.0-test").unwrap();
    // The script's hooks: where the workspace is and how to get a ticket.
    assert!(html.contains(&format!(
        r#"id="workspace-head" data-workspace-id="{WS_ID}" data-status="running" data-api-url="/api/workspaces/{WS_ID}" data-ticket-url="/api/workspaces/{WS_ID}/terminal-ticket" data-port-ticket-url="/api/workspaces/{WS_ID}/port-ticket" data-ports-url="/api/workspaces/{WS_ID}/ports" data-workspace-url="{WS_URL}">"#
    )));
    // The tabs and the stable hooks of the browser tests.
    for id in ["tab-terminals", "tab-files", "tab-changes", "tab-ports"] {
        assert!(shown(&html, id), "{id}");
    }
    assert!(html.contains(r##"<a class="tab" id="tab-files" href="#panel-files">Files</a>"##));
    assert!(html.contains(r##"<a class="tab" id="tab-ports" href="#panel-ports">Ports</a>"##));
    for panel in [
        "panel-terminals",
        "panel-files",
        "panel-changes",
        "panel-ports",
    ] {
        assert!(
            html.contains(&format!(
                r#"id="{panel}" aria-labelledby="tab-{}""#,
                &panel[6..]
            )),
            "{panel}"
        );
    }
    assert!(
        html.contains(r#"<div class="terminal-host" id="terminal" data-testid="terminal"></div>"#)
    );
    assert!(html.contains(
        r#"id="terminal-state" data-testid="terminal-state" data-state="idle" role="status">not connected</span>"#
    ));
    // Ports: the list the script fills, its empty state, and the switch
    // (private here; enabled by the script).
    assert!(html.contains(
        r#"<ul class="ports-list" id="ports-list" aria-label="Listening ports" hidden></ul>"#
    ));
    assert!(html.contains(
        r#"id="ports-empty" hidden>Nothing in this workspace listens on a port yet. Start a dev server in a terminal.</p>"#
    ));
    assert!(html.contains(
        r#"<input type="checkbox" id="ports-public" aria-describedby="ports-public-help" disabled>"#
    ));
    assert!(html.contains(r#"<label for="ports-public">Public ports</label>"#));
    assert!(html.contains("anyone with a port's URL can open it without signing in"));
    assert!(html.contains(r#"<dd id="workspace-ports-public">private</dd>"#));
    assert!(html.contains(
        "Terminals, files, changes and ports are loaded from the workspace and need JavaScript."
    ));
    // xterm.js from our own origin, before the script that uses it.
    let css = html.find("/static/vendor/xterm.css?v=").unwrap();
    let xterm = html
        .find(r#"<script src="/static/vendor/xterm.js?v="#)
        .unwrap();
    let fit = html
        .find(r#"<script src="/static/vendor/addon-fit.js?v="#)
        .unwrap();
    let script = html
        .find(r#"<script src="/static/workspace.js?v="#)
        .unwrap();
    assert!(css < html.find("</head>").unwrap());
    assert!(xterm < fit && fit < script);
    assert_eq!(html.matches("<script").count(), 4);
    assert_eq!(html.matches(" defer></script>").count(), 4);
    // Name, branch, status, project and node.
    assert!(html.contains("<h1>feature-login</h1>"));
    assert!(html.contains(r#"<code id="workspace-branch">feature/login</code>"#));
    assert!(
        html.contains(r#"<span class="badge status-running" id="workspace-status">running</span>"#)
    );
    assert!(html.contains(&format!(
        r#"<a href="/projects/{PROJECT_ID}" id="workspace-project-link">Website</a>"#
    )));
    assert!(html.contains(
        r#"<a href="/nodes/01JNODERUNNING0000000000AA" id="workspace-node-link">node dev-box</a>"#
    ));
    assert!(html.contains("+9.4 s</time> <span class=\"muted\">after creation"));
    // The creation log.
    assert_eq!(html.matches(r#"<li class="timeline-item "#).count(), 5);
    assert!(html.contains(
        r#"<li class="timeline-item phase-neutral" data-step="clone" data-step-status="started">"#
    ));
    assert!(html.contains(r#"<span class="timeline-label">Git identity</span>"#));
    assert!(html.contains("created feature/login from main"));
    // Actions for a running workspace; nothing refreshes a settled page.
    assert!(html.contains(&format!(r#"action="/api/workspaces/{WS_ID}/stop""#)));
    assert!(html.contains(&format!(r#"action="/api/workspaces/{WS_ID}/restart""#)));
    assert!(html.contains(&format!(
        r#"data-api="DELETE" action="/api/workspaces/{WS_ID}""#
    )));
    assert!(html.contains(&format!(r#"data-redirect="/projects/{PROJECT_ID}""#)));
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(!html.contains("workspace-live-state"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn workspace_page_shows_public_ports() {
    let ws = WorkspaceView {
        ports_public: true,
        ..workspace("running")
    };
    let html = render_workspace_page(&USER, &ws, &context(Some(&[])), NOW_MS, "v").unwrap();
    assert!(html.contains(
        r#"<input type="checkbox" id="ports-public" aria-describedby="ports-public-help" checked disabled>"#
    ));
    assert!(html.contains(r#"<dd id="workspace-ports-public">public</dd>"#));
    // Stopped: still the setting, but no tabs or switch.
    let stopped = WorkspaceView {
        ports_public: true,
        ..workspace("stopped")
    };
    let html = render_workspace_page(&USER, &stopped, &context(Some(&[])), NOW_MS, "v").unwrap();
    assert!(html.contains(r#"<dd id="workspace-ports-public">public</dd>"#));
    for hook in ["id=\"ports-public\"", "tab-ports", "data-port-ticket-url"] {
        assert!(!html.contains(hook), "{hook}");
    }
}

#[test]
fn workspace_page_creating() {
    let ws = workspace("creating");
    let log = &creation_log(ws.created_at)[..2];
    let html =
        render_workspace_page(&USER, &ws, &context(Some(log)), NOW_MS, "0.1.0-test").unwrap();
    assert!(
        html.contains(
            r#"<span class="badge status-creating" id="workspace-status">creating</span>"#
        )
    );
    assert!(html.contains("The workspace is creating; this page updates when that is done."));
    // No tabs, terminal or xterm.js until it runs; the script follows the
    // status, a refresh does without it.
    for hook in [
        "tab-terminals",
        "data-testid=\"terminal\"",
        "vendor/xterm",
        "data-ticket-url",
        "data-workspace-url",
    ] {
        assert!(!html.contains(hook), "{hook}");
    }
    assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(html.contains(r#"<script src="/static/workspace.js?v="#));
    assert!(html.contains(r#"id="workspace-live-state" role="status""#));
    assert!(html.contains("<span class=\"muted\">not yet</span>"));
    // Only delete applies while it is being created.
    assert!(!html.contains("/stop\""));
    assert!(!html.contains("/restart\""));
    assert!(html.contains(r#"id="delete-workspace-form""#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn workspace_page_in_error() {
    let ws = WorkspaceView {
        error_message: Some("clone failed: repository not found".into()),
        ..workspace("error")
    };
    let log = vec![
        step(ws.created_at + 200, "clone", "started", None),
        step(
            ws.created_at + 1_800,
            "clone",
            "failed",
            Some("remote: Repository not found."),
        ),
    ];
    let html =
        render_workspace_page(&USER, &ws, &context(Some(&log)), NOW_MS, "0.1.0-test").unwrap();
    assert!(
        html.contains(r#"<span class="badge status-error" id="workspace-status">error</span>"#)
    );
    assert!(
        html.contains(r#"<p id="workspace-error-message">clone failed: repository not found</p>"#)
    );
    assert!(html.contains(
        r#"<li class="timeline-item phase-error" data-step="clone" data-step-status="failed">"#
    ));
    assert!(html.contains("remote: Repository not found."));
    for hook in [
        "tab-terminals",
        "vendor/xterm",
        "http-equiv=\"refresh\"",
        "/stop\"",
        "/restart\"",
    ] {
        assert!(!html.contains(hook), "{hook}");
    }
    assert!(html.contains(r#"id="delete-workspace-form""#));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn workspace_page_deleted_has_no_address_or_actions() {
    let ws = WorkspaceView {
        // An error message belongs to the error state only.
        error_message: Some("old failure".into()),
        ..workspace("deleted")
    };
    let html = render_workspace_page(&USER, &ws, &context(Some(&[])), NOW_MS, "v").unwrap();
    assert!(
        html.contains(r#"<span class="badge status-deleted" id="workspace-status">deleted</span>"#)
    );
    assert!(!html.contains(WS_URL));
    assert!(!html.contains("workspace-actions"));
    assert!(!html.contains("old failure"));
    assert!(!html.contains("workspace.js"));
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(r#"id="workspace-log-empty">Nothing reported yet."#));
}

#[test]
fn workspace_page_stopped_can_restart() {
    let html = render_workspace_page(
        &USER,
        &workspace("stopped"),
        &context(Some(&[])),
        NOW_MS,
        "v",
    )
    .unwrap();
    assert!(html.contains("badge status-stopped"));
    assert!(html.contains(&format!(r#"action="/api/workspaces/{WS_ID}/restart""#)));
    assert!(!html.contains("/stop\""));
    assert!(!html.contains("tab-terminals"));
    assert!(!html.contains("http-equiv=\"refresh\""));
}

#[test]
fn workspace_page_without_log_or_names() {
    let ws = workspace("running");
    let html =
        render_workspace_page(&USER, &ws, &WorkspaceContext::default(), NOW_MS, "v").unwrap();
    assert!(html.contains("The creation log could not be loaded"));
    assert!(html.contains(&format!("<code>{PROJECT_ID}</code>")));
    assert!(html.contains("<code>01JNODERUNNING0000000000AA</code>"));
    assert!(html.contains(r#"id="workspace-node-link">Node</a>"#));
}

#[test]
fn workspace_page_escapes_user_strings_and_refuses_odd_urls() {
    const EVIL: &str = r#"<script>alert("x")</script>"#;
    let ws = WorkspaceView {
        name: EVIL.into(),
        branch: EVIL.into(),
        runtime: EVIL.into(),
        error_message: Some(EVIL.into()),
        url: format!("http://x\"><img src=x>{EVIL}"),
        project_id: "../../admin".into(),
        ..workspace("running")
    };
    let log = vec![step(ws.created_at, EVIL, EVIL, Some(EVIL))];
    let evil_context = WorkspaceContext {
        project_name: Some(EVIL),
        node_name: Some(EVIL),
        events: Some(&log),
    };
    let html = render_workspace_page(&USER, &ws, &evil_context, NOW_MS, EVIL).unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains(r#"alert("x")"#));
    assert!(!has_inline_handler(&html), "{html}");
    assert!(html.contains("&#60;script&#62;"));
    assert!(html.contains(r#"href="/projects/..%2F..%2Fadmin""#));
    // A URL that is not a plain origin is never handed to the script.
    assert!(!html.contains("data-workspace-url"));
    assert!(shown(&html, "workspace-unreachable"));
    let error = WorkspaceView {
        error_message: Some(EVIL.into()),
        ..workspace("error")
    };
    let html = render_workspace_page(&USER, &error, &evil_context, NOW_MS, "v").unwrap();
    assert!(html.contains(r#"<p id="workspace-error-message">&#60;script&#62;"#));
}

#[test]
fn workspace_page_loads_scripts_only_from_this_origin() {
    let ws = workspace("running");
    let html = render_workspace_page(&USER, &ws, &context(None), NOW_MS, "v").unwrap();
    assert!(!html.contains("javascript:"));
    assert!(!html.contains(" style="));
    assert!(!has_inline_handler(&html));
    for (at, _) in html.match_indices("<script") {
        assert!(
            html[at..].starts_with("<script src=\"/static/"),
            "{}",
            &html[at..at + 60]
        );
    }
    // Every API form has a place for its error message.
    assert_eq!(
        html.matches("data-api=").count(),
        html.matches(r#"<p class="form-error" role="alert" hidden></p>"#)
            .count()
    );
}

#[test]
fn workspace_csp_allows_the_workspace_origin_only() {
    assert_eq!(
        workspace_csp(WS_URL),
        format!(
            "default-src 'self'; style-src 'self'; img-src 'self' data: {WS_URL}; connect-src 'self' {WS_URL} ws://ws-01jworkspace00000000000001.localhost:8787; form-action 'self'; frame-ancestors 'none'"
        )
    );
    let csp = workspace_csp("https://ws-01abc.example.com");
    assert!(
        csp.contains("connect-src 'self' https://ws-01abc.example.com wss://ws-01abc.example.com;")
    );
    assert!(csp.contains("img-src 'self' data: https://ws-01abc.example.com;"));
    assert!(!csp.contains("ws://"));
    assert_eq!(
        workspace_csp("http://*.example.com"),
        "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'"
    );
}

#[test]
fn workspace_js_is_served_and_writes_text_only() {
    let js = static_asset("/static/workspace.js").unwrap();
    assert_eq!(js.content_type, "application/javascript; charset=utf-8");
    assert_eq!(static_asset("workspace.js"), Some(js.clone()));
    let text = std::str::from_utf8(js.body).unwrap();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "setTimeout(\"",
        "DOMParser",
    ] {
        assert!(!text.contains(sink), "workspace.js uses {sink}");
    }
    assert!(text.contains("textContent"));
    // The browser flow of docs/workspaces.md.
    for piece in [
        "credentials: \"include\"",
        "credentials: \"same-origin\"",
        "\"/session?token=\" + encodeURIComponent(ticket)",
        "response.status === 401 && attempt === 0",
        "workspaceJson(\"/terminals\")",
        "\"/terminals/\" + encodeURIComponent(id) + \"/ws?token=\"",
        "binaryType = \"arraybuffer\"",
        "term.write(new Uint8Array(event.data))",
        "encoder.encode(data)",
        "JSON.stringify({ type: \"resize\", cols: s.cols, rows: s.rows })",
        "/^exited\\b/",
        "method: \"DELETE\"",
        "withPath(\"/files\", path)",
        "withPath(\"/files/content\", path)",
        "withPath(\"/files/raw\", path)",
        "withPath(\"/files/download\", path)",
        "workspaceJson(\"/git/status\")",
        "withPath(\"/git/diff\", path)",
        "\"connected\"",
        "workspaceJson(\"/ports\")",
        "PORTS_POLL_MS = 5000",
        "\"visibilitychange\"",
        "appJson(portTicketUrl, { port: port })",
        "appJson(portsUrl, { ports_public: wanted })",
        "window.open(\"about:blank\", \"_blank\")",
        "win.opener = null",
        "win.location.replace(url)",
        "link.rel = \"noopener noreferrer\"",
        "\"--\" + port",
    ] {
        assert!(text.contains(piece), "workspace.js lacks {piece}");
    }
    // Every element the script looks up is on the running page (or, for
    // the status follower, on the page of a workspace being created).
    let ws = workspace("running");
    let html = render_workspace_page(&USER, &ws, &context(Some(&[])), NOW_MS, "v").unwrap()
        + &render_workspace_page(&USER, &workspace("creating"), &context(None), NOW_MS, "v")
            .unwrap();
    let mut rest = text;
    let mut ids = 0;
    while let Some(at) = rest.find("$(\"") {
        rest = &rest[at + 3..];
        let id = &rest[..rest.find('"').unwrap()];
        assert!(html.contains(&format!(r#"id="{id}""#)), "no element #{id}");
        ids += 1;
    }
    assert!(ids > 20, "{ids}");
    // The other pages do not load it.
    let list = render_nodes_page(Some(&USER), &[], NOW_MS, "v").unwrap();
    assert!(!list.contains("workspace.js"));
}

#[test]
fn vendored_xterm_is_in_the_asset_table_with_its_licence() {
    let names: Vec<&str> = asset_names().collect();
    for name in [
        "vendor/xterm.js",
        "vendor/xterm.css",
        "vendor/addon-fit.js",
        "workspace.js",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    let xterm = static_asset("/static/vendor/xterm.js").unwrap();
    assert_eq!(xterm.content_type, "application/javascript; charset=utf-8");
    let text = std::str::from_utf8(xterm.body).unwrap();
    assert!(
        text.starts_with("/*! @xterm/xterm 6.0.0\n\nCopyright (c) 2017-2019, The xterm.js authors")
    );
    assert!(text.contains("Permission is hereby granted, free of charge"));
    assert!(text.contains(".Terminal=") && text.contains("xterm-rows"));
    assert!(!text.contains("sourceMappingURL"));
    let fit = static_asset("vendor/addon-fit.js").unwrap();
    let text = std::str::from_utf8(fit.body).unwrap();
    assert!(
        text.starts_with("/*! @xterm/addon-fit 0.11.0\n\nCopyright (c) 2019, The xterm.js authors")
    );
    assert!(text.contains("FitAddon"));
    assert!(!text.contains("sourceMappingURL"));
    let css = static_asset("vendor/xterm.css").unwrap();
    assert_eq!(css.content_type, "text/css; charset=utf-8");
    let text = std::str::from_utf8(css.body).unwrap();
    assert!(text.starts_with("/**\n * Copyright (c) 2014 The xterm.js authors."));
    assert!(text.contains(".xterm"));
    for path in [
        "vendor/",
        "vendor",
        "vendor/xterm.js.map",
        "/static/vendor/../app.css",
        "xterm.js",
    ] {
        assert!(static_asset(path).is_none(), "{path}");
    }
}

fn ready_and_warm_nodes() -> Vec<NodeView> {
    let mut nodes = three_nodes();
    nodes.push(NodeView {
        status: "warm".into(),
        ..node("01JNODEWARM0000000000000DD", "warm-one", "warm")
    });
    nodes.push(NodeView {
        removed_at: Some(NOW_MS),
        ..node("01JNODEREMOVED00000000000EE", "going", "ready")
    });
    nodes
}

#[test]
fn project_page_with_workspaces() {
    let other_project = WorkspaceView {
        id: "01JWORKSPACE00000000000002".into(),
        project_id: "01JPROJECTOTHER00000000000".into(),
        name: "elsewhere".into(),
        ..workspace("running")
    };
    let deleted = WorkspaceView {
        id: "01JWORKSPACE00000000000003".into(),
        name: "gone".into(),
        ..workspace("deleted")
    };
    let creating = WorkspaceView {
        id: "01JWORKSPACE00000000000004".into(),
        name: "main".into(),
        branch: "main".into(),
        node_id: "01JNODEUNKNOWN000000000000".into(),
        ..workspace("creating")
    };
    let workspaces = vec![workspace("running"), other_project, deleted, creating];
    let nodes = ready_and_warm_nodes();
    let html = render_project_page(
        &USER,
        &project(),
        &options(),
        &[],
        &ProjectWorkspaces {
            workspaces: &workspaces,
            nodes: &nodes,
        },
        "0.1.0-test",
        NOW_MS,
    )
    .unwrap();
    // This project's workspaces that are not deleted, linked.
    assert!(html.contains(&format!(
        r#"<a class="node-name" href="/workspaces/{WS_ID}">feature-login</a>"#
    )));
    assert!(html.contains(r#"href="/workspaces/01JWORKSPACE00000000000004">main</a>"#));
    assert!(!html.contains("elsewhere"));
    assert!(!html.contains(">gone<"));
    assert!(html.contains(r#"<td data-label="Node">dev-box</td>"#));
    assert!(html.contains("<code>01JNODEUNKNOWN000000000000</code>"));
    assert!(html.contains(r#"<span class="badge status-creating">creating</span>"#));
    // The form: JSON to the API, then to the new workspace's page.
    assert!(html.contains(
        r#"<form class="stack-form" id="create-workspace-form" method="post" data-api="POST" action="/api/workspaces" data-redirect="/workspaces/{id}""#
    ));
    assert!(html.contains(&format!(
        r#"<input type="hidden" name="project_id" value="{PROJECT_ID}">"#
    )));
    for field in ["node_id", "runtime", "branch", "name"] {
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    // Ready nodes only (not the booting, failed, warm or removed ones).
    assert!(html.contains(
        r#"<option value="01JNODERUNNING0000000000AA">dev-box (hetzner medium, hel1)</option>"#
    ));
    for other in ["fresh-node", "broken-node", "warm-one", "going"] {
        assert!(!html.contains(&format!(">{other} (")), "{other}");
    }
    assert!(html.contains(r#"<option value="host" selected>host</option>"#));
    assert!(html.contains(r#"<option value="devcontainer">devcontainer</option>"#));
    assert!(html.contains(r#"placeholder="main""#));
    assert!(!html.contains("no-ready-nodes"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn project_page_without_ready_nodes_explains_why() {
    let nodes: Vec<NodeView> = ready_and_warm_nodes()
        .into_iter()
        .filter(|n| n.status != "ready")
        .collect();
    let html = render_project_page(
        &USER,
        &project(),
        &options(),
        &[],
        &ProjectWorkspaces {
            workspaces: &[],
            nodes: &nodes,
        },
        "v",
        NOW_MS,
    )
    .unwrap();
    assert!(html.contains(r#"id="no-workspaces">No workspaces yet."#));
    assert!(!html.contains("create-workspace-form"));
    assert!(html.contains("(1 warm: claim one with <code>POST /api/nodes/claim</code> first)"));
    let none = render_project_page(
        &USER,
        &project(),
        &options(),
        &[],
        &NO_WORKSPACES,
        "v",
        NOW_MS,
    )
    .unwrap();
    assert!(none.contains(r#"id="no-ready-nodes""#));
    assert!(!none.contains("warm:"));
}
