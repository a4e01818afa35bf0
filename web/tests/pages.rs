//! Rendered pages (snapshots), HTML escaping and static asset lookup.

#![allow(clippy::unwrap_used)]

use sam_web::{
    AgentCredentialRow, BootEventRow, CloudCredentialRow, InstallationOption, ProjectCard,
    ProjectDetail, RepositoryOption, SettingsOptions, TokenRow, UserRow, Viewer, asset_version,
    render_admin_users_page, render_dashboard_page, render_error_page, render_new_project_page,
    render_node_page, render_nodes_page, render_project_page, render_settings_page, static_asset,
};
use sam_wire::{NodeMetrics, NodeView};

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

const ADMIN: Viewer<'static> = Viewer {
    login: "octocat",
    is_admin: true,
};
const USER: Viewer<'static> = Viewer {
    login: "monalisa",
    is_admin: false,
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
        ..node(r#"id"><script>"#, "<script>alert(1)</script>", "error")
    };
    let html = render_nodes_page(None, &[evil], NOW_MS, "<b>v</b>").unwrap();
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
        ..node("01JNODERUNNING0000000000AA", "dev-box", "running")
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

#[test]
fn node_page_running_with_metrics_and_phases() {
    let (node, events) = running_node();
    let html = render_node_page(&USER, &node, Some(&events), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("<title>dev-box · SAM</title>"));
    assert!(html.contains(r#"<meta name="sam-refresh" content="5">"#));
    assert!(html.contains(r#"data-status="running""#));
    assert!(html.contains("badge status-running"));
    assert!(html.contains("health health-healthy"));
    for phase in [
        "requested",
        "provider_retrying",
        "provider_created",
        "agent_ready",
    ] {
        assert!(
            html.contains(&format!(r#"data-phase="{phase}""#)),
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
    assert!(html.contains(r#"data-api="DELETE" action="/api/nodes/01JNODERUNNING0000000000AA""#));
    assert!(html.contains(r#"data-redirect="/nodes""#));
    assert!(!html.contains("node-error-box"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn node_page_in_error() {
    let created = NOW_MS - 600_000;
    let node = NodeView {
        error_message: Some("the agent did not register within 300 s".into()),
        provider_server_id: Some("4712".into()),
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
    assert!(html.contains(r#"id="node-error""#));
    assert!(html.contains("timeline-item phase-error"));
    assert!(html.contains("+5 min 0 s"));
    assert!(html.contains("No metrics: the node is not running."));
    assert!(html.contains(r#"<meta name="sam-refresh" content="5">"#));
    assert!(html.contains("delete-node-form"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn node_page_deleted() {
    let (running, mut events) = running_node();
    let deleted_at = NOW_MS - 60_000;
    events.push(boot_event(deleted_at - 900, "delete_requested", None));
    events.push(boot_event(deleted_at, "deleted", None));
    let node = NodeView {
        status: "deleted".into(),
        health: "unknown".into(),
        deleted_at: Some(deleted_at),
        ..running
    };
    let html = render_node_page(&USER, &node, Some(&events), NOW_MS, "0.1.0-test").unwrap();
    assert!(html.contains("badge status-deleted"));
    // Nothing changes any more: no refresh, no delete button, no stale metrics.
    assert!(!html.contains("http-equiv=\"refresh\"") && !html.contains("sam-refresh"));
    assert!(!html.contains("delete-node-form"));
    assert!(!html.contains("<noscript>"));
    assert!(!html.contains("<meter"));
    assert!(html.contains("No metrics: the node is not running."));
    assert!(html.contains(r#"data-phase="deleted""#));
    assert!(html.contains("<dt>Deleted</dt>"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn node_page_without_boot_log_or_metrics() {
    let fresh = NodeView {
        created_at: NOW_MS - 3_000,
        ..node("01JNODECREATING000000000BB", "fresh-node", "creating")
    };
    let html = render_node_page(&USER, &fresh, None, NOW_MS, "v").unwrap();
    assert!(html.contains(r#"id="boot-log-unavailable""#));
    assert!(html.contains("No metrics yet"));
    assert!(html.contains("not yet"));
    assert!(html.contains("never"));
    let html = render_node_page(&USER, &fresh, Some(&[]), NOW_MS, "v").unwrap();
    assert!(html.contains("Nothing recorded yet."));
}

#[test]
fn node_page_escapes_user_strings() {
    let evil = NodeView {
        error_message: Some(r#"<img src=x onerror="alert(1)">"#.into()),
        ip_address: Some("<i>ip</i>".into()),
        agent_version: Some("\"><script>v</script>".into()),
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
    assert!(!html.contains("<b "), "{html}");
    assert!(html.contains("<title>&#60;script&#62;alert(1)&#60;/script&#62; · SAM</title>"));
    assert!(html.contains(r#"data-node-id="id&#34;&#62;&#60;script&#62;/x""#));
    // The id in the delete URL is percent-encoded: it stays one path segment.
    assert!(
        html.contains(r#"action="/api/nodes/id%22%3E%3Cscript%3E%2Fx""#),
        "{html}"
    );
    // An unknown phase keeps a neutral class and its text, escaped.
    assert!(html.contains("timeline-item phase-unknown"));
    assert!(html.contains("&#60;b onclick=x&#62;phase&#60;/b&#62;"));
    // The confirm question carries the name escaped inside its attribute.
    assert!(html.contains(
        r#"data-confirm="Delete node &#60;script&#62;alert(1)&#60;/script&#62;? Its server is destroyed.""#
    ));
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
        ..project()
    };
    let html = render_project_page(&USER, &bare, &options(), &[], "0.1.0-test", NOW_MS).unwrap();
    assert!(html.contains("No project-specific keys"));
    assert!(!html.contains(" selected>"));
    insta::assert_snapshot!(stable(&html));
}

#[test]
fn project_page_with_overrides() {
    let html = render_project_page(
        &USER,
        &project(),
        &options(),
        &agent_keys(),
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
    ] {
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    assert!(html.contains(r#"<option value="medium" selected>medium</option>"#));
    assert!(html.contains(r#"<option value="hel1" selected>hel1</option>"#));
    assert!(html.contains(r#"<option value="claude-code" selected>claude-code</option>"#));
    assert!(html.contains(r#"<option value="">platform default</option>"#));
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
    let html = render_project_page(&USER, &odd, &options(), &[], "v", NOW_MS).unwrap();
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
    let html = render_project_page(&USER, &detail, &options(), &agent_keys(), "v", NOW_MS).unwrap();
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
        render_project_page(&ADMIN, &project(), &options(), &agent_keys(), "v", NOW_MS).unwrap(),
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
