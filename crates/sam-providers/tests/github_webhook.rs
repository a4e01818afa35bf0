//! Webhook payloads shaped like GitHub's deliveries to a GitHub App.

#![allow(clippy::unwrap_used)]

use sam_providers::github_app::Account;
use sam_providers::github_webhook::{
    InstallationAction, InstallationRepositoriesAction, RepositoryAction, WebhookRepository,
};
use sam_providers::{WebhookError, WebhookEvent};
use serde_json::{Value, json};

fn user(id: u64, login: &str, type_: &str) -> Value {
    json!({
        "login": login,
        "id": id,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "type": type_,
        "user_view_type": "public",
        "site_admin": false,
    })
}

fn installation(id: u64) -> Value {
    json!({
        "id": id,
        "client_id": "Iv23liAbCdEf",
        "account": user(9001, "acme", "Organization"),
        "repository_selection": "selected",
        "access_tokens_url": format!("https://api.github.com/app/installations/{id}/access_tokens"),
        "repositories_url": "https://api.github.com/installation/repositories",
        "html_url": format!("https://github.com/organizations/acme/settings/installations/{id}"),
        "app_id": 123_456,
        "app_slug": "sam-dev",
        "target_id": 9001,
        "target_type": "Organization",
        "permissions": {"contents": "read", "metadata": "read", "pull_requests": "write"},
        "events": ["push", "pull_request"],
        "created_at": "2026-01-01T10:00:00.000Z",
        "updated_at": "2026-01-01T10:00:01.000Z",
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null,
    })
}

fn parse(event: &str, body: &Value) -> Result<WebhookEvent, WebhookError> {
    WebhookEvent::parse(event, body.to_string().as_bytes())
}

fn octocat() -> Account {
    Account {
        id: 583_231,
        login: "octocat".into(),
        type_: "User".into(),
    }
}

#[test]
fn installation_created_with_selected_repositories() {
    let body = json!({
        "action": "created",
        "installation": installation(4242),
        "repositories": [
            {"id": 77, "node_id": "R_1", "name": "widgets", "full_name": "acme/widgets", "private": true},
            {"id": 78, "node_id": "R_2", "name": "gadgets", "full_name": "acme/gadgets", "private": false},
        ],
        "requester": null,
        "sender": user(583_231, "octocat", "User"),
    });
    let WebhookEvent::Installation(e) = parse("installation", &body).unwrap() else {
        panic!("not an installation event");
    };
    assert_eq!(e.action, InstallationAction::Created);
    assert_eq!(e.installation_id, 4242);
    assert_eq!(
        e.account,
        Account {
            id: 9001,
            login: "acme".into(),
            type_: "Organization".into(),
        }
    );
    assert_eq!(e.sender, octocat());
    assert_eq!(
        e.repositories,
        [
            WebhookRepository {
                id: 77,
                full_name: "acme/widgets".into()
            },
            WebhookRepository {
                id: 78,
                full_name: "acme/gadgets".into()
            },
        ]
    );
}

#[test]
fn installation_lifecycle_actions() {
    for (text, action) in [
        ("deleted", InstallationAction::Deleted),
        ("suspend", InstallationAction::Suspend),
        ("unsuspend", InstallationAction::Unsuspend),
        (
            "new_permissions_accepted",
            InstallationAction::NewPermissionsAccepted,
        ),
        (
            "something_new",
            InstallationAction::Other("something_new".into()),
        ),
    ] {
        let mut inst = installation(4242);
        if text == "suspend" {
            inst["suspended_at"] = json!("2026-02-01T00:00:00Z");
            inst["suspended_by"] = user(583_231, "octocat", "User");
        }
        // `deleted` and the others carry no `repositories` list.
        let body = json!({
            "action": text,
            "installation": inst,
            "sender": user(583_231, "octocat", "User"),
        });
        let event = parse("installation", &body).unwrap();
        assert_eq!(event.installation_id(), Some(4242));
        let WebhookEvent::Installation(e) = event else {
            panic!("not an installation event");
        };
        assert_eq!(e.action, action);
        assert_eq!(e.action.as_str(), text);
        assert!(e.repositories.is_empty());
    }
}

#[test]
fn installation_repositories_added_and_removed() {
    let body = json!({
        "action": "added",
        "installation": installation(4242),
        "repository_selection": "selected",
        "repositories_added": [
            {"id": 79, "node_id": "R_3", "name": "new-thing", "full_name": "acme/new-thing", "private": true},
        ],
        "repositories_removed": [],
        "requester": null,
        "sender": user(583_231, "octocat", "User"),
    });
    let WebhookEvent::InstallationRepositories(e) =
        parse("installation_repositories", &body).unwrap()
    else {
        panic!("wrong event");
    };
    assert_eq!(e.action, InstallationRepositoriesAction::Added);
    assert_eq!(e.installation_id, 4242);
    assert_eq!(e.account.login, "acme");
    assert_eq!(e.repository_selection, "selected");
    assert_eq!(
        e.repositories_added,
        [WebhookRepository {
            id: 79,
            full_name: "acme/new-thing".into()
        }]
    );
    assert!(e.repositories_removed.is_empty());
    assert_eq!(e.sender, octocat());

    let body = json!({
        "action": "removed",
        "installation": installation(4242),
        "repository_selection": "selected",
        "repositories_added": [],
        "repositories_removed": [
            {"id": 77, "node_id": "R_1", "name": "widgets", "full_name": "acme/widgets", "private": true},
            {"id": 78, "node_id": "R_2", "name": "gadgets", "full_name": "acme/gadgets", "private": false},
        ],
        "requester": null,
        "sender": user(583_231, "octocat", "User"),
    });
    let WebhookEvent::InstallationRepositories(e) =
        parse("installation_repositories", &body).unwrap()
    else {
        panic!("wrong event");
    };
    assert_eq!(e.action, InstallationRepositoriesAction::Removed);
    assert_eq!(
        e.repositories_removed
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [77, 78]
    );
}

fn repository(id: u64, full_name: &str, private: bool) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap();
    json!({
        "id": id,
        "node_id": "R_kgDOAAAAAQ",
        "name": name,
        "full_name": full_name,
        "private": private,
        "owner": user(9001, owner, "Organization"),
        "html_url": format!("https://github.com/{full_name}"),
        "description": "Widgets, mostly",
        "fork": false,
        "url": format!("https://api.github.com/repos/{full_name}"),
        "created_at": "2025-06-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "pushed_at": "2026-01-01T00:00:00Z",
        "clone_url": format!("https://github.com/{full_name}.git"),
        "default_branch": "trunk",
        "archived": false,
        "visibility": if private { "private" } else { "public" },
    })
}

#[test]
fn repository_renamed_carries_new_and_previous_names() {
    let body = json!({
        "action": "renamed",
        "changes": {"repository": {"name": {"from": "widgets"}}},
        "repository": repository(77, "acme/sprockets", true),
        "organization": {"login": "acme", "id": 9001},
        "sender": user(583_231, "octocat", "User"),
        "installation": {"id": 4242, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg=="},
    });
    let event = parse("repository", &body).unwrap();
    assert_eq!(event.installation_id(), Some(4242));
    let WebhookEvent::Repository(e) = event else {
        panic!("wrong event");
    };
    assert_eq!(e.action, RepositoryAction::Renamed);
    assert_eq!(e.repository_id, 77);
    assert_eq!(e.full_name, "acme/sprockets");
    assert_eq!(e.previous_name.as_deref(), Some("widgets"));
    assert!(e.private);
    assert_eq!(
        e.html_url.as_deref(),
        Some("https://github.com/acme/sprockets")
    );
    assert_eq!(e.default_branch.as_deref(), Some("trunk"));
    assert_eq!(e.sender, Some(octocat()));
}

#[test]
fn repository_actions() {
    for (text, action, changes) in [
        ("deleted", RepositoryAction::Deleted, None),
        (
            "transferred",
            RepositoryAction::Transferred,
            Some(json!({"owner": {"from": {"organization": {"login": "old-org", "id": 1}}}})),
        ),
        ("privatized", RepositoryAction::Privatized, None),
        ("publicized", RepositoryAction::Publicized, None),
        (
            "edited",
            RepositoryAction::Edited,
            Some(json!({"default_branch": {"from": "main"}})),
        ),
        ("archived", RepositoryAction::Archived, None),
        ("unarchived", RepositoryAction::Unarchived, None),
        ("created", RepositoryAction::Created, None),
        ("moved", RepositoryAction::Other("moved".into()), None),
    ] {
        let mut body = json!({
            "action": text,
            "repository": repository(77, "acme/widgets", text == "privatized"),
            "sender": user(583_231, "octocat", "User"),
            "installation": {"id": 4242, "node_id": "x"},
        });
        if let Some(changes) = changes {
            body["changes"] = changes;
        }
        let WebhookEvent::Repository(e) = parse("repository", &body).unwrap() else {
            panic!("wrong event");
        };
        assert_eq!(e.action, action);
        assert_eq!(e.action.as_str(), text);
        assert_eq!(e.full_name, "acme/widgets");
        assert_eq!(e.private, text == "privatized");
        assert_eq!(e.installation_id, Some(4242));
        assert_eq!(e.previous_name, None);
    }
}

#[test]
fn repository_event_without_installation() {
    // Repository or organisation webhooks (not the app's) have no
    // `installation`.
    let body = json!({
        "action": "deleted",
        "repository": repository(77, "acme/widgets", false),
        "sender": user(583_231, "octocat", "User"),
    });
    let event = parse("repository", &body).unwrap();
    assert_eq!(event.installation_id(), None);
}

#[test]
fn ping_from_an_app_hook() {
    let body = json!({
        "zen": "Design for failure.",
        "hook_id": 555_000_111,
        "hook": {
            "type": "App",
            "id": 555_000_111,
            "name": "web",
            "active": true,
            "events": ["installation", "installation_repositories", "repository"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://api.example.test/api/github/webhook"},
            "updated_at": "2026-01-01T00:00:00Z",
            "created_at": "2026-01-01T00:00:00Z",
            "app_id": 123_456,
            "deliveries_url": "https://api.github.com/app/hook/deliveries",
        },
    });
    let event = parse("ping", &body).unwrap();
    assert_eq!(event.installation_id(), None);
    let WebhookEvent::Ping(p) = event else {
        panic!("wrong event");
    };
    assert_eq!(p.zen.as_deref(), Some("Design for failure."));
    assert_eq!(p.hook_id, Some(555_000_111));
    assert_eq!(p.app_id, Some(123_456));
}

#[test]
fn other_events_keep_their_name_and_action() {
    let body = json!({
        "action": "opened",
        "number": 1,
        "pull_request": {"id": 1},
        "repository": repository(77, "acme/widgets", false),
        "installation": {"id": 4242, "node_id": "x"},
        "sender": user(583_231, "octocat", "User"),
    });
    assert_eq!(
        parse("pull_request", &body).unwrap(),
        WebhookEvent::Other {
            event: "pull_request".into(),
            action: Some("opened".into()),
        }
    );
    // `push` has no action; an unknown event's body is not validated.
    assert_eq!(
        parse("push", &json!({"ref": "refs/heads/main"})).unwrap(),
        WebhookEvent::Other {
            event: "push".into(),
            action: None,
        }
    );
    assert_eq!(
        WebhookEvent::parse("check_run", b"not json").unwrap(),
        WebhookEvent::Other {
            event: "check_run".into(),
            action: None,
        }
    );
}

#[test]
fn malformed_known_events_are_errors_with_a_stable_code() {
    let cases: [(&str, &[u8]); 6] = [
        ("installation", b"not json"),
        ("installation", br#"{"action":"created"}"#),
        (
            "installation_repositories",
            br#"{"action":"added","installation":{"id":"x"}}"#,
        ),
        ("repository", br#"{"action":"renamed","repository":{}}"#),
        ("repository", b""),
        ("ping", b"[1,2"),
    ];
    for (event, body) in cases {
        let err = WebhookEvent::parse(event, body).unwrap_err();
        assert_eq!(err.code(), "webhook_payload_invalid");
        assert_eq!(err.event, event);
        assert!(err.to_string().contains(event), "{err}");
    }
}
