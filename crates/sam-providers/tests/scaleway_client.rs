//! The Scaleway client against a tiny local HTTP server that replays canned,
//! Scaleway-shaped responses and records what it was sent: request shapes
//! (paths, headers, bodies, the three-step create), the delete strategy per
//! server state, error classification (including 429 with `Retry-After`)
//! and secret hygiene. The same client against devcloud's Scaleway API is
//! covered in `e2e/devcloud/tests/scaleway.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Canned, Log, ReqwestHttp, canned, closed_port_url, log, with_header};
use sam_providers::{
    DeleteOutcome, HttpRequest, Method, PowerAction, ProviderErrorKind, ScalewayClient,
    ScalewayCreateServer,
};
use serde_json::{Value, json};

const SECRET: &str = "3f2c1b9e-0d4a-4c7b-9a61-2b8e5f0c7d13";
const PROJECT: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SERVER_ID: &str = "11111111-2222-4333-8444-555555555555";
const VOLUME_ID: &str = "11111111-2222-4333-8444-666666666666";

/// Starts a server that answers with `responses` in order; returns a client
/// pointed at it and the log of requests it received.
async fn start(responses: Vec<Canned>) -> (ScalewayClient<ReqwestHttp>, Log) {
    let (base, recorded) = common::start(responses).await;
    let client = ScalewayClient::new(ReqwestHttp::new(), base, SECRET, PROJECT);
    (client, recorded)
}

fn server_json(state: &str) -> Value {
    json!({
        "id": SERVER_ID,
        "name": "sam-node-1",
        "state": state,
        "tags": ["sam", "sam-node=01J0"],
        "zone": "fr-par-1",
        "commercial_type": "DEV1-S",
        "project": PROJECT,
        "organization": PROJECT,
        "creation_date": "2026-01-01T00:00:00.000000+00:00",
        "public_ip": null,
        "public_ips": [{"id": "x", "address": "51.15.1.2", "family": "inet", "dynamic": true}],
        "volumes": {"0": {"id": VOLUME_ID, "volume_type": "l_ssd", "size": 20_000_000_000_u64}},
    })
}

fn scw_error(kind: &str, message: &str) -> Value {
    json!({ "type": kind, "message": message })
}

fn task(description: &str) -> Value {
    json!({"task": {"id": "t", "description": description, "status": "pending"}})
}

fn create_request() -> ScalewayCreateServer {
    ScalewayCreateServer {
        name: "sam-node-1".into(),
        commercial_type: "DEV1-S".into(),
        zone: "fr-par-1".into(),
        image: "ubuntu_noble".into(),
        tags: vec!["sam".into(), "sam-node=01J0".into()],
        user_data: "#cloud-config\nruncmd: [[true]]\n".into(),
    }
}

// ---- Token validation ----

#[tokio::test]
async fn validate_token_is_a_project_scoped_read() {
    let (client, recorded) = start(vec![canned(200, json!({"servers": []}))]).await;
    client.validate_token().await.unwrap();
    let sent = log(&recorded);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].path, "/instance/v1/zones/fr-par-1/servers");
    assert_eq!(sent[0].query, format!("project={PROJECT}&per_page=1"));
    assert_eq!(sent[0].header("x-auth-token"), Some(SECRET));
}

#[tokio::test]
async fn bad_key_and_foreign_project_are_auth_errors() {
    let (client, _) = start(vec![
        canned(
            401,
            json!({"type": "denied_authentication", "method": "api_key",
                   "reason": "not_found", "message": "authentication is denied"}),
        ),
        canned(
            403,
            json!({"type": "permissions_denied", "message": "insufficient permissions",
                   "details": [{"resource": "instance_server", "action": "read"}]}),
        ),
    ])
    .await;
    let err = client.validate_token().await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert_eq!(err.status, Some(401));
    assert_eq!(err.code, "denied_authentication");
    assert!(!err.is_retryable());

    let err = client.validate_token().await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert_eq!(err.status, Some(403));
    assert_eq!(err.code, "permissions_denied");
    assert!(err.message.contains("instance_server"), "{}", err.message);
}

// ---- Create ----

#[tokio::test]
async fn create_posts_then_sets_user_data_then_powers_on() {
    let (client, recorded) = start(vec![
        canned(201, json!({"server": server_json("stopped")})),
        canned(204, Value::Null),
        canned(202, task("server_poweron")),
    ])
    .await;
    let server = client.create_server(&create_request()).await.unwrap();
    assert_eq!(server.id, SERVER_ID);
    assert_eq!(server.state, "starting");
    assert_eq!(server.public_ip.as_deref(), Some("51.15.1.2"));
    assert_eq!(server.tags, ["sam", "sam-node=01J0"]);
    assert_eq!(server.zone, "fr-par-1");

    let sent = log(&recorded);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("POST", "/instance/v1/zones/fr-par-1/servers")
    );
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    assert_eq!(
        sent[0].json(),
        json!({
            "name": "sam-node-1",
            "commercial_type": "DEV1-S",
            "image": "ubuntu_noble",
            "project": PROJECT,
            "tags": ["sam", "sam-node=01J0"],
            "dynamic_ip_required": true,
        })
    );
    assert_eq!(sent[1].method, "PATCH");
    assert_eq!(
        sent[1].path,
        format!("/instance/v1/zones/fr-par-1/servers/{SERVER_ID}/user_data/cloud-init")
    );
    assert_eq!(sent[1].header("content-type"), Some("text/plain"));
    assert_eq!(sent[1].body, "#cloud-config\nruncmd: [[true]]\n");
    assert_eq!(sent[2].method, "POST");
    assert_eq!(
        sent[2].path,
        format!("/instance/v1/zones/fr-par-1/servers/{SERVER_ID}/action")
    );
    assert_eq!(sent[2].json(), json!({"action": "poweron"}));
    assert!(
        sent.iter()
            .all(|r| r.header("x-auth-token") == Some(SECRET))
    );
}

#[tokio::test]
async fn failed_power_on_deletes_the_stopped_server_and_its_volume() {
    let (client, recorded) = start(vec![
        canned(201, json!({"server": server_json("stopped")})),
        canned(204, Value::Null),
        canned(409, scw_error("out_of_stock", "no more DEV1-S in fr-par-1")),
        canned(204, Value::Null),
        canned(204, Value::Null),
    ])
    .await;
    let err = client.create_server(&create_request()).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Capacity);
    assert_eq!(err.code, "out_of_stock");
    assert!(err.is_retryable());
    assert!(err.message.contains(SERVER_ID), "{}", err.message);
    assert!(err.message.contains("no more DEV1-S"), "{}", err.message);

    let sent = log(&recorded);
    let cleanup: Vec<(&str, &str)> = sent[3..]
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        cleanup,
        [
            (
                "DELETE",
                format!("/instance/v1/zones/fr-par-1/servers/{SERVER_ID}").as_str()
            ),
            (
                "DELETE",
                format!("/instance/v1/zones/fr-par-1/volumes/{VOLUME_ID}").as_str()
            ),
        ]
    );
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let (client, recorded) = start(Vec::new()).await;
    let mut req = create_request();
    req.tags.push("a,b".into());
    let err = client.create_server(&req).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::InvalidConfig, "invalid_tag")
    );

    let mut req = create_request();
    req.zone = "fr-par-1/../../x".into();
    let err = client.create_server(&req).await.unwrap_err();
    assert_eq!(err.code, "invalid_zone");

    for id in ["42", "../servers", ""] {
        let err = client.get_server("fr-par-1", id).await.unwrap_err();
        assert_eq!(err.code, "invalid_server_id", "{id}");
        let err = client.delete_server("fr-par-1", id).await.unwrap_err();
        assert_eq!(err.code, "invalid_server_id", "{id}");
    }
    assert!(log(&recorded).is_empty());
}

// ---- Get and list ----

#[tokio::test]
async fn get_maps_404_to_none() {
    let (client, recorded) = start(vec![
        canned(200, json!({"server": server_json("running")})),
        canned(
            404,
            json!({"type": "not_found", "resource": "instance_server",
                   "resource_id": SERVER_ID, "message": "resource is not found"}),
        ),
    ])
    .await;
    let server = client
        .get_server("fr-par-1", SERVER_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.state, "running");
    assert_eq!(server.commercial_type, "DEV1-S");
    assert_eq!(server.project, PROJECT);
    assert!(
        client
            .get_server("fr-par-1", SERVER_ID)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        log(&recorded)[0].path,
        format!("/instance/v1/zones/fr-par-1/servers/{SERVER_ID}")
    );
}

#[tokio::test]
async fn list_filters_by_project_and_tags_and_follows_pages() {
    let page = |n: usize| -> Vec<Value> { (0..n).map(|_| server_json("running")).collect() };
    let (client, recorded) = start(vec![
        with_header(
            canned(200, json!({ "servers": page(100) })),
            "x-total-count",
            "150",
        ),
        with_header(
            canned(200, json!({ "servers": page(50) })),
            "x-total-count",
            "150",
        ),
    ])
    .await;
    let tags = vec!["sam".to_owned(), "sam-node=01J0".to_owned()];
    let servers = client.list_servers("nl-ams-1", &tags).await.unwrap();
    assert_eq!(servers.len(), 150);
    let sent = log(&recorded);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].path, "/instance/v1/zones/nl-ams-1/servers");
    assert_eq!(
        sent[0].query,
        format!("project={PROJECT}&tags=sam,sam-node%3D01J0&page=1&per_page=100")
    );
    assert!(sent[1].query.ends_with("&page=2&per_page=100"));
}

#[tokio::test]
async fn list_stops_at_the_announced_total() {
    let servers: Vec<Value> = (0..100).map(|_| server_json("running")).collect();
    let (client, recorded) = start(vec![with_header(
        canned(200, json!({ "servers": servers })),
        "x-total-count",
        "100",
    )])
    .await;
    assert_eq!(
        client.list_servers("fr-par-2", &[]).await.unwrap().len(),
        100
    );
    let sent = log(&recorded);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].query,
        format!("project={PROJECT}&page=1&per_page=100")
    );
}

// ---- Delete ----

#[tokio::test]
async fn deleting_a_running_server_terminates_it() {
    let (client, recorded) = start(vec![
        canned(200, json!({"server": server_json("running")})),
        canned(202, task("server_terminate")),
    ])
    .await;
    assert_eq!(
        client.delete_server("fr-par-1", SERVER_ID).await.unwrap(),
        DeleteOutcome::Deleted
    );
    let sent = log(&recorded);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].method, "POST");
    assert!(sent[1].path.ends_with("/action"));
    assert_eq!(sent[1].json(), json!({"action": "terminate"}));
}

#[tokio::test]
async fn deleting_a_stopped_server_deletes_it_and_its_volumes() {
    let (client, recorded) = start(vec![
        canned(200, json!({"server": server_json("stopped")})),
        canned(204, Value::Null),
        // The volume went away on its own meanwhile: still a success.
        canned(404, scw_error("not_found", "resource is not found")),
    ])
    .await;
    assert_eq!(
        client.delete_server("fr-par-1", SERVER_ID).await.unwrap(),
        DeleteOutcome::Deleted
    );
    let sent: Vec<(String, String)> = log(&recorded)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(sent[1].0, "DELETE");
    assert!(sent[1].1.ends_with(&format!("/servers/{SERVER_ID}")));
    assert_eq!(sent[2].0, "DELETE");
    assert!(sent[2].1.ends_with(&format!("/volumes/{VOLUME_ID}")));
}

#[tokio::test]
async fn delete_is_idempotent_and_waits_out_transitions() {
    let (client, recorded) = start(vec![
        canned(404, scw_error("not_found", "resource is not found")),
        canned(200, json!({"server": server_json("starting")})),
        // Gone between the lookup and the action.
        canned(200, json!({"server": server_json("running")})),
        canned(404, scw_error("not_found", "resource is not found")),
    ])
    .await;
    assert_eq!(
        client.delete_server("fr-par-1", SERVER_ID).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    let err = client
        .delete_server("fr-par-1", SERVER_ID)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Transient);
    assert_eq!(err.code, "server_busy");
    assert!(err.is_retryable());
    assert_eq!(
        client.delete_server("fr-par-1", SERVER_ID).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(log(&recorded).len(), 4);
}

// ---- Power ----

/// A server action as Scaleway (and devcloud) answers it: 202 with a task.
fn action_task(task_id: &str, action: &str) -> Canned {
    canned(
        202,
        json!({"task": {
            "id": task_id,
            "description": format!("server_{action}"),
            "status": "pending",
            "href_from": format!("/servers/{SERVER_ID}/action"),
            "href_result": format!("/servers/{SERVER_ID}"),
            "progress": 0,
            "started_at": "2026-01-01T00:00:01+00:00",
            "terminated_at": null,
            "zone": "fr-par-1",
        }}),
    )
}

fn server_in(state: &str) -> Canned {
    canned(200, json!({"server": server_json(state)}))
}

/// Polls `get_server` until the server reports `want`, as a caller would
/// (the canned server answers each poll with the next scripted state).
async fn poll_until(client: &ScalewayClient<ReqwestHttp>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..5 {
        let state = client
            .get_server("fr-par-1", SERVER_ID)
            .await
            .unwrap()
            .unwrap()
            .state;
        seen.push(state.clone());
        if state == want {
            return seen;
        }
    }
    panic!("server never reached {want}: {seen:?}");
}

const TASK_OFF: &str = "5ca1e004-0000-4000-8000-00000000000a";
const TASK_ON: &str = "5ca1e004-0000-4000-8000-00000000000b";

#[tokio::test]
async fn power_off_then_on_round_trip() {
    let (client, recorded) = start(vec![
        canned(201, json!({"server": server_json("stopped")})),
        canned(204, Value::Null),
        action_task("5ca1e004-0000-4000-8000-000000000009", "poweron"),
        action_task(TASK_OFF, "poweroff"),
        server_in("stopping"),
        server_in("stopped"),
        action_task(TASK_ON, "poweron"),
        server_in("starting"),
        server_in("running"),
    ])
    .await;

    let server = client.create_server(&create_request()).await.unwrap();
    let action = client.power_off(&server.zone, &server.id).await.unwrap();
    assert_eq!(
        action,
        PowerAction {
            id: TASK_OFF.into(),
            command: "server_poweroff".into(),
            status: "pending".into(),
        }
    );
    assert_eq!(
        poll_until(&client, "stopped").await,
        ["stopping", "stopped"]
    );

    let action = client.power_on(&server.zone, &server.id).await.unwrap();
    assert_eq!(
        (action.id.as_str(), action.command.as_str()),
        (TASK_ON, "server_poweron")
    );
    assert_eq!(
        poll_until(&client, "running").await,
        ["starting", "running"]
    );

    let sent = log(&recorded);
    let action_path = format!("/instance/v1/zones/fr-par-1/servers/{SERVER_ID}/action");
    for (i, action) in [(3, "poweroff"), (6, "poweron")] {
        assert_eq!(sent[i].method, "POST");
        assert_eq!(sent[i].path, action_path);
        assert_eq!(sent[i].header("content-type"), Some("application/json"));
        assert_eq!(sent[i].header("x-auth-token"), Some(SECRET));
        assert_eq!(sent[i].json(), json!({ "action": action }));
    }
    assert_eq!(sent.len(), 9);
}

#[tokio::test]
async fn power_action_on_a_server_already_there_is_refused_as_invalid() {
    // Scaleway's (and devcloud's) answers for a running or starting server
    // powered on, and a stopped one powered off.
    let (client, _) = start(vec![
        canned(
            400,
            scw_error("invalid_request_error", "server should be stopped"),
        ),
        canned(
            400,
            scw_error("invalid_request_error", "server should be running"),
        ),
    ])
    .await;
    let err = client.power_on("fr-par-1", SERVER_ID).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status, err.code.as_str()),
        (
            ProviderErrorKind::InvalidConfig,
            Some(400),
            "invalid_request_error"
        )
    );
    assert_eq!(err.message, "server should be stopped");
    assert!(!err.is_retryable());

    let err = client.power_off("fr-par-1", SERVER_ID).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidConfig);
    assert_eq!(err.message, "server should be running");
}

#[tokio::test]
async fn power_action_mid_transition_is_transient() {
    let transient = || {
        canned(
            409,
            json!({"type": "transient_state", "resource": "instance_server",
                   "resource_id": SERVER_ID, "current_state": "stopping",
                   "message": "resource is in a transient state: stopping"}),
        )
    };
    let (client, _) = start(vec![transient(), transient()]).await;
    for err in [
        client.power_on("fr-par-1", SERVER_ID).await.unwrap_err(),
        client.power_off("fr-par-1", SERVER_ID).await.unwrap_err(),
    ] {
        assert_eq!(
            (err.kind, err.status, err.code.as_str()),
            (ProviderErrorKind::Transient, Some(409), "transient_state")
        );
        assert!(err.message.contains("stopping"), "{}", err.message);
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn power_actions_on_an_unknown_server_are_not_found() {
    let not_found = || {
        canned(
            404,
            json!({"type": "not_found", "resource": "instance_server",
                   "resource_id": SERVER_ID, "message": "resource is not found"}),
        )
    };
    let (client, recorded) = start(vec![not_found(), not_found()]).await;
    for err in [
        client.power_off("fr-par-1", SERVER_ID).await.unwrap_err(),
        client.power_on("fr-par-1", SERVER_ID).await.unwrap_err(),
    ] {
        assert_eq!(
            (err.kind, err.status, err.code.as_str()),
            (ProviderErrorKind::NotFound, Some(404), "not_found")
        );
        assert!(!err.is_retryable());
    }
    // Bad ids and zones never reach the network.
    for id in ["42", "../servers", ""] {
        let err = client.power_off("fr-par-1", id).await.unwrap_err();
        assert_eq!(err.code, "invalid_server_id", "{id}");
        let err = client.power_on("fr-par-1", id).await.unwrap_err();
        assert_eq!(err.code, "invalid_server_id", "{id}");
    }
    let err = client.power_on("fr-par-1/..", SERVER_ID).await.unwrap_err();
    assert_eq!(err.code, "invalid_zone");
    assert_eq!(log(&recorded).len(), 2);
}

#[tokio::test]
async fn power_action_errors_never_show_the_secret() {
    let (client, _) = start(vec![
        canned(
            409,
            // A hostile or buggy proxy echoing the credential back.
            scw_error(
                "transient_state",
                &format!("busy for X-Auth-Token {SECRET}"),
            ),
        ),
        canned(
            400,
            scw_error(
                "invalid_request_error",
                &format!("server should be stopped ({SECRET})"),
            ),
        ),
    ])
    .await;
    let errors = [
        client.power_off("fr-par-1", SERVER_ID).await.unwrap_err(),
        client.power_on("fr-par-1", SERVER_ID).await.unwrap_err(),
    ];
    assert_eq!(errors[0].kind, ProviderErrorKind::Transient);
    assert_eq!(errors[1].kind, ProviderErrorKind::InvalidConfig);
    for err in errors {
        for text in [format!("{err}"), format!("{err:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
    }
}

// ---- Error classification ----

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let (client, _) = start(vec![with_header(
        canned(429, scw_error("too_many_requests", "rate limit exceeded")),
        "retry-after",
        "17",
    )])
    .await;
    let err = client.get_server("fr-par-1", SERVER_ID).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(err.status, Some(429));
    assert_eq!(err.retry_after_secs, Some(17));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn scaleway_error_types_are_classified() {
    let (client, _) = start(vec![
        canned(
            403,
            json!({"type": "quotas_exceeded", "message": "quota(s) exceeded for this resource",
                   "details": [{"resource": "instances_dev1_s", "quota": 2, "current": 2}]}),
        ),
        canned(
            400,
            json!({"type": "invalid_arguments", "message": "invalid argument(s)",
                   "details": [{"argument_name": "commercial_type", "reason": "constraint",
                                "help_message": "unknown commercial type NOPE"}]}),
        ),
        canned(
            409,
            scw_error("transient_state", "resource is in a transient state"),
        ),
        // A proxy's HTML error page, no Scaleway body, no Retry-After.
        Canned {
            status: 502,
            headers: Vec::new(),
            body: "<html>bad gateway</html>".into(),
        },
        with_header(canned(503, Value::Null), "retry-after", "5"),
    ])
    .await;
    let create = create_request();

    let err = client.create_server(&create).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::Quota, "quotas_exceeded")
    );
    assert!(
        err.message.contains("instances_dev1_s: 2 of 2 used"),
        "{}",
        err.message
    );
    assert!(!err.is_retryable());

    let err = client.create_server(&create).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidConfig);
    assert!(
        err.message
            .contains("commercial_type: unknown commercial type NOPE")
    );

    let err = client.create_server(&create).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Transient);

    let err = client.create_server(&create).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::Transient, "http_502")
    );
    assert!(err.message.contains("bad gateway"));
    assert_eq!(err.retry_after_secs, None);

    let err = client.create_server(&create).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::Transient, "http_503")
    );
    assert_eq!(err.retry_after_secs, Some(5));
}

#[tokio::test]
async fn transport_failure_is_transient() {
    let client = ScalewayClient::new(ReqwestHttp::new(), closed_port_url(), SECRET, PROJECT);
    let err = client.validate_token().await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::Transient, "transport")
    );
    assert_eq!(err.status, None);
}

// ---- The secret never leaks ----

#[tokio::test]
async fn secret_is_not_shown_in_debug_or_errors() {
    let (client, _) = start(vec![
        canned(
            401,
            // A hostile or buggy proxy echoing the credential back.
            scw_error(
                "denied_authentication",
                &format!("X-Auth-Token {SECRET} is unknown"),
            ),
        ),
        canned(
            401,
            json!({"type": SECRET, "message": format!("{}{SECRET}", "x".repeat(495))}),
        ),
    ])
    .await;
    let shown = format!("{client:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains(PROJECT), "{shown}");

    let err = client.validate_token().await.unwrap_err();
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
    // Echoed as the type, and straddling the message clip.
    let err = client.validate_token().await.unwrap_err();
    assert!(!err.code.contains(&SECRET[..8]), "{}", err.code);
    assert!(!err.message.contains(&SECRET[..5]), "{}", err.message);

    let req = HttpRequest {
        method: Method::Patch,
        url: "http://x/instance/v1".into(),
        headers: vec![("X-Auth-Token".into(), SECRET.into())],
        body: None,
    };
    assert!(!format!("{req:?}").contains(SECRET));
}
