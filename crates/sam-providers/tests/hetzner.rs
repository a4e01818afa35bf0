//! The Hetzner client against a tiny local HTTP server that replays canned,
//! Hetzner-shaped responses and records what it was sent. The client talks
//! through a reqwest-backed implementation of the HTTP port, so these tests
//! exercise real HTTP framing, headers and status codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{Canned, Log, ReqwestHttp, canned, closed_port_url, log, with_header};
use sam_providers::{
    CreateServer, DeleteOutcome, HetznerClient, HttpRequest, Method, PowerAction, ProviderError,
    ProviderErrorKind,
};
use serde_json::{Value, json};

const TOKEN: &str = "hc-test-token-9f8e7d";

/// Starts a server that answers with `responses` in order; returns a client
/// pointed at it and the log of requests it received.
async fn start(responses: Vec<Canned>) -> (HetznerClient<ReqwestHttp>, Log) {
    let (base, recorded) = common::start(responses).await;
    let client = HetznerClient::new(ReqwestHttp::new(), format!("{base}v1/"), TOKEN);
    (client, recorded)
}

fn hetzner_server(id: u64, name: &str, status: &str, ip: Option<&str>) -> Value {
    json!({
        "id": id,
        "name": name,
        "status": status,
        "created": "2026-03-01T10:00:00+00:00",
        "labels": {"sam/managed": "true"},
        "public_net": {
            "ipv4": ip.map(|ip| json!({"id": 1, "ip": ip, "blocked": false, "dns_ptr": "x"})),
            "ipv6": null,
        },
        "server_type": {"id": 1, "name": "cx23"},
        "datacenter": {"name": "fsn1-dc14", "location": {"name": "fsn1"}},
    })
}

fn hetzner_error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "details": {}}})
}

fn page_meta(page: u32, next: Option<u32>, last: u32) -> Value {
    json!({"pagination": {
        "page": page, "per_page": 50, "previous_page": null,
        "next_page": next, "last_page": last, "total_entries": 3,
    }})
}

fn sample_create() -> CreateServer {
    CreateServer {
        name: "sam-node-1".into(),
        server_type: "cx23".into(),
        location: "fsn1".into(),
        image: "ubuntu-24.04".into(),
        user_data: "#cloud-config\nruncmd: []\n".into(),
        labels: BTreeMap::from([
            ("sam/managed".to_owned(), "true".to_owned()),
            ("sam/node".to_owned(), "01JNODE".to_owned()),
        ]),
    }
}

// ---- Happy paths ----

#[tokio::test]
async fn create_sends_hetzner_shaped_body_with_bearer_token() {
    let (client, recorded) = start(vec![canned(
        201,
        json!({
            "server": hetzner_server(4711, "sam-node-1", "initializing", Some("203.0.113.7")),
            "action": {"id": 1, "command": "create_server", "status": "running"},
            "next_actions": [],
            "root_password": null,
        }),
    )])
    .await;

    let server = client.create_server(&sample_create()).await.unwrap();
    assert_eq!(server.id, "4711");
    assert_eq!(server.name, "sam-node-1");
    assert_eq!(server.status, "initializing");
    assert_eq!(server.ipv4.as_deref(), Some("203.0.113.7"));
    assert_eq!(server.created, "2026-03-01T10:00:00+00:00");
    assert_eq!(server.labels["sam/managed"], "true");

    let recorded = recorded.lock().unwrap();
    let req = &recorded[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/servers");
    assert_eq!(req.bearer(), TOKEN);
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(body["name"], "sam-node-1");
    assert_eq!(body["server_type"], "cx23");
    assert_eq!(body["location"], "fsn1");
    assert_eq!(body["image"], "ubuntu-24.04");
    assert_eq!(body["user_data"], "#cloud-config\nruncmd: []\n");
    assert_eq!(
        body["labels"],
        json!({"sam/managed": "true", "sam/node": "01JNODE"})
    );
    assert_eq!(body["start_after_create"], true);
}

#[tokio::test]
async fn get_returns_server_and_404_is_none() {
    let (client, recorded) = start(vec![
        canned(
            200,
            json!({"server": hetzner_server(42, "a", "running", Some("198.51.100.1"))}),
        ),
        canned(
            404,
            hetzner_error("not_found", "server with ID '43' not found"),
        ),
    ])
    .await;

    let found = client.get_server("42").await.unwrap().unwrap();
    assert_eq!(found.status, "running");
    assert_eq!(client.get_server("43").await.unwrap(), None);

    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded[0].path, "/v1/servers/42");
    assert_eq!(recorded[1].path, "/v1/servers/43");
    assert_eq!(recorded[0].method, "GET");
}

#[tokio::test]
async fn non_numeric_id_never_reaches_the_network() {
    let (client, recorded) = start(vec![]).await;
    let err = client.get_server("1/../../locations").await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidConfig);
    let err = client.delete_server("abc").await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidConfig);
    assert!(recorded.lock().unwrap().is_empty());
}

#[tokio::test]
async fn delete_is_idempotent() {
    let (client, recorded) = start(vec![
        canned(
            200,
            json!({"action": {"id": 9, "command": "delete_server", "status": "running"}}),
        ),
        canned(404, hetzner_error("not_found", "server not found")),
    ])
    .await;

    assert_eq!(
        client.delete_server("42").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        client.delete_server("42").await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded[0].method, "DELETE");
    assert_eq!(recorded[0].path, "/v1/servers/42");
}

#[tokio::test]
async fn list_follows_pagination_and_sends_label_selector() {
    let (client, recorded) = start(vec![
        canned(
            200,
            json!({
                "servers": [
                    hetzner_server(1, "a", "running", Some("192.0.2.1")),
                    hetzner_server(2, "b", "off", None),
                ],
                "meta": page_meta(1, Some(2), 2),
            }),
        ),
        canned(
            200,
            json!({
                "servers": [hetzner_server(3, "c", "starting", None)],
                "meta": page_meta(2, None, 2),
            }),
        ),
    ])
    .await;

    let selector = BTreeMap::from([
        ("sam/managed".to_owned(), "true".to_owned()),
        ("sam/tenant".to_owned(), "t1".to_owned()),
    ]);
    let servers = client.list_servers(&selector).await.unwrap();
    let ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);

    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].path, "/v1/servers");
    assert_eq!(
        recorded[0].query,
        "label_selector=sam%2Fmanaged%3Dtrue%2Csam%2Ftenant%3Dt1&page=1&per_page=50"
    );
    assert!(recorded[1].query.contains("page=2"), "{:?}", recorded[1]);
}

#[tokio::test]
async fn list_stops_when_next_page_does_not_advance() {
    let (client, recorded) = start(vec![canned(
        200,
        json!({"servers": [hetzner_server(1, "a", "running", None)], "meta": page_meta(1, Some(1), 1)}),
    )])
    .await;
    let servers = client.list_servers(&BTreeMap::new()).await.unwrap();
    assert_eq!(servers.len(), 1);
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].query, "page=1&per_page=50");
}

#[tokio::test]
async fn catalogue_calls_parse_server_types_and_locations() {
    let (client, recorded) = start(vec![
        canned(
            200,
            json!({
                "server_types": [
                    {"id": 104, "name": "cx23", "description": "CX23", "cores": 2,
                     "memory": 4.0, "disk": 40, "architecture": "x86",
                     "cpu_type": "shared", "deprecation": null, "prices": []},
                    {"id": 45, "name": "cax11", "description": "CAX11", "cores": 2,
                     "memory": 4.0, "disk": 40, "architecture": "arm",
                     "deprecated": true, "prices": []},
                ],
                "meta": page_meta(1, None, 1),
            }),
        ),
        canned(
            200,
            json!({
                "locations": [
                    {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1",
                     "country": "DE", "city": "Falkenstein", "latitude": 50.47,
                     "longitude": 12.37, "network_zone": "eu-central"},
                ],
                "meta": page_meta(1, None, 1),
            }),
        ),
        canned(200, json!({"servers": [], "meta": page_meta(1, None, 1)})),
    ])
    .await;

    let types = client.server_types().await.unwrap();
    assert_eq!(types.len(), 2);
    assert_eq!(types[0].name, "cx23");
    assert_eq!(types[0].cores, 2);
    assert!((types[0].memory_gb - 4.0).abs() < f64::EPSILON);
    assert!(!types[0].deprecated);
    assert!(types[1].deprecated);
    assert_eq!(types[1].architecture, "arm");

    let locations = client.locations().await.unwrap();
    assert_eq!(locations[0].name, "fsn1");
    assert_eq!(locations[0].network_zone, "eu-central");

    client.validate_token().await.unwrap();

    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded[0].path, "/v1/server_types");
    assert_eq!(recorded[1].path, "/v1/locations");
    assert_eq!(recorded[2].path, "/v1/servers");
    assert_eq!(recorded[2].query, "per_page=1");
}

#[tokio::test]
async fn garbage_success_body_is_an_invalid_response() {
    let (client, _) = start(vec![canned(200, json!({"unexpected": true}))]).await;
    let err = client.get_server("1").await.unwrap_err();
    assert_eq!(err.code, "invalid_response");
    assert_eq!(err.kind, ProviderErrorKind::Unknown);
}

// ---- Power ----

/// A power action as Hetzner (and devcloud) answers it: 201 with the action.
fn power_action(id: u64, command: &str, status: &str) -> Canned {
    let finished = (status == "success").then_some("2026-03-01T10:00:01+00:00");
    canned(
        201,
        json!({"action": {
            "id": id, "command": command, "status": status,
            "progress": if status == "success" { 100 } else { 0 },
            "started": "2026-03-01T10:00:00+00:00", "finished": finished,
            "resources": [{"id": 4711, "type": "server"}], "error": null,
        }}),
    )
}

fn server_with_status(status: &str) -> Canned {
    canned(
        200,
        json!({"server": hetzner_server(4711, "sam-node-1", status, Some("203.0.113.7"))}),
    )
}

/// Polls `get_server` until the server reports `want`, as a caller would
/// (the canned server answers each poll with the next scripted status).
async fn poll_until(client: &HetznerClient<ReqwestHttp>, id: &str, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..5 {
        let status = client.get_server(id).await.unwrap().unwrap().status;
        seen.push(status.clone());
        if status == want {
            return seen;
        }
    }
    panic!("server {id} never reached {want}: {seen:?}");
}

#[tokio::test]
async fn power_off_then_on_round_trip() {
    let (client, recorded) = start(vec![
        canned(
            201,
            json!({
                "server": hetzner_server(4711, "sam-node-1", "initializing", Some("203.0.113.7")),
                "action": {"id": 1, "command": "create_server", "status": "running"},
                "next_actions": [{"id": 2, "command": "start_server", "status": "running"}],
                "root_password": null,
            }),
        ),
        power_action(3, "stop_server", "running"),
        server_with_status("stopping"),
        server_with_status("off"),
        power_action(4, "start_server", "running"),
        server_with_status("starting"),
        server_with_status("running"),
    ])
    .await;

    let server = client.create_server(&sample_create()).await.unwrap();
    let action = client.power_off(&server.id).await.unwrap();
    assert_eq!(
        action,
        PowerAction {
            id: "3".into(),
            command: "stop_server".into(),
            status: "running".into(),
        }
    );
    assert_eq!(
        poll_until(&client, &server.id, "off").await,
        ["stopping", "off"]
    );

    let action = client.power_on(&server.id).await.unwrap();
    assert_eq!(
        (action.id.as_str(), action.command.as_str()),
        ("4", "start_server")
    );
    assert_eq!(
        poll_until(&client, &server.id, "running").await,
        ["starting", "running"]
    );

    let sent = log(&recorded);
    let calls: Vec<(&str, &str)> = sent
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/v1/servers"),
            ("POST", "/v1/servers/4711/actions/poweroff"),
            ("GET", "/v1/servers/4711"),
            ("GET", "/v1/servers/4711"),
            ("POST", "/v1/servers/4711/actions/poweron"),
            ("GET", "/v1/servers/4711"),
            ("GET", "/v1/servers/4711"),
        ]
    );
    for power in [&sent[1], &sent[4]] {
        assert_eq!(power.bearer(), TOKEN);
        // Hetzner's power actions take no body.
        assert!(power.body.is_empty(), "{power:?}");
        assert_eq!(power.header("content-type"), None);
    }
}

#[tokio::test]
async fn power_action_on_a_server_already_there_is_no_error() {
    // Hetzner (and devcloud) answer with an action that already succeeded.
    let (client, _) = start(vec![
        power_action(8, "start_server", "success"),
        power_action(9, "stop_server", "success"),
    ])
    .await;
    let action = client.power_on("4711").await.unwrap();
    assert_eq!(
        (action.command.as_str(), action.status.as_str()),
        ("start_server", "success")
    );
    let action = client.power_off("4711").await.unwrap();
    assert_eq!(
        (action.command.as_str(), action.status.as_str()),
        ("stop_server", "success")
    );
}

#[tokio::test]
async fn power_on_while_powering_off_is_locked_and_transient() {
    let (client, _) = start(vec![canned(
        423,
        hetzner_error("locked", "server is locked by a running stop action"),
    )])
    .await;
    let err = client.power_on("4711").await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Transient);
    assert_eq!(err.status, Some(423));
    assert_eq!(err.code, "locked");
    assert!(err.message.contains("stop action"), "{}", err.message);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn power_actions_on_an_unknown_server_are_not_found() {
    let (client, recorded) = start(vec![
        canned(
            404,
            hetzner_error("not_found", "server with ID '99' not found"),
        ),
        canned(
            404,
            hetzner_error("not_found", "server with ID '99' not found"),
        ),
    ])
    .await;
    for err in [
        client.power_off("99").await.unwrap_err(),
        client.power_on("99").await.unwrap_err(),
    ] {
        assert_eq!(err.kind, ProviderErrorKind::NotFound);
        assert_eq!(err.status, Some(404));
        assert_eq!(err.code, "not_found");
        assert!(!err.is_retryable());
    }
    // An id that is not a Hetzner id never reaches the network.
    for bad in ["", "abc", "1/../../locations"] {
        let err = client.power_off(bad).await.unwrap_err();
        assert_eq!(err.code, "invalid_server_id", "{bad}");
        let err = client.power_on(bad).await.unwrap_err();
        assert_eq!(err.code, "invalid_server_id", "{bad}");
    }
    assert_eq!(log(&recorded).len(), 2);
}

#[tokio::test]
async fn power_action_errors_never_show_the_token() {
    let (client, _) = start(vec![
        canned(
            423,
            // A hostile or buggy proxy echoing the credential back.
            hetzner_error("locked", &format!("locked for Bearer {TOKEN}")),
        ),
        canned(
            404,
            hetzner_error("not_found", &format!("no server for {TOKEN}")),
        ),
    ])
    .await;
    let errors = [
        client.power_on("4711").await.unwrap_err(),
        client.power_off("4711").await.unwrap_err(),
    ];
    assert_eq!(errors[0].kind, ProviderErrorKind::Transient);
    assert_eq!(errors[1].kind, ProviderErrorKind::NotFound);
    for err in errors {
        for text in [format!("{err}"), format!("{err:?}")] {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
    }
}

// ---- Error classification ----

async fn create_error(response: Canned) -> ProviderError {
    let (client, _) = start(vec![response]).await;
    client.create_server(&sample_create()).await.unwrap_err()
}

#[tokio::test]
async fn errors_are_classified_from_status_and_code() {
    let cases = [
        (401, "unauthorized", ProviderErrorKind::Auth, false),
        (403, "forbidden", ProviderErrorKind::Auth, false),
        (
            403,
            "resource_limit_exceeded",
            ProviderErrorKind::Quota,
            false,
        ),
        (404, "not_found", ProviderErrorKind::NotFound, false),
        (
            409,
            "uniqueness_error",
            ProviderErrorKind::InvalidConfig,
            false,
        ),
        (412, "placement_error", ProviderErrorKind::Capacity, true),
        (
            412,
            "resource_unavailable",
            ProviderErrorKind::Capacity,
            true,
        ),
        (
            422,
            "invalid_input",
            ProviderErrorKind::InvalidConfig,
            false,
        ),
        (400, "json_error", ProviderErrorKind::InvalidConfig, false),
        (423, "locked", ProviderErrorKind::Transient, true),
        (500, "server_error", ProviderErrorKind::Transient, true),
        (504, "timeout", ProviderErrorKind::Transient, true),
        (418, "teapot", ProviderErrorKind::Unknown, false),
    ];
    for (status, code, kind, retryable) in cases {
        let err = create_error(canned(status, hetzner_error(code, "details here"))).await;
        assert_eq!(err.kind, kind, "{status} {code}");
        assert_eq!(err.status, Some(status));
        assert_eq!(err.code, code);
        assert_eq!(err.message, "details here");
        assert_eq!(err.is_retryable(), retryable, "{status} {code}");
        assert_eq!(err.retry_after_secs, None);
    }
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let err = create_error(with_header(
        canned(
            429,
            hetzner_error(
                "rate_limit_exceeded",
                "limit of 3600 requests per hour reached",
            ),
        ),
        "retry-after",
        "17",
    ))
    .await;
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(err.retry_after_secs, Some(17));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unavailable_without_hetzner_body_is_transient_with_retry_after() {
    let err = create_error(with_header(
        canned(503, json!("upstream overloaded")),
        "retry-after",
        "5",
    ))
    .await;
    assert_eq!(err.kind, ProviderErrorKind::Transient);
    assert_eq!(err.code, "http_503");
    assert_eq!(err.retry_after_secs, Some(5));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn transport_failure_is_transient() {
    // Nothing listens on the port.
    let client = HetznerClient::new(
        ReqwestHttp::new(),
        format!("{}/v1", closed_port_url()),
        TOKEN,
    );
    let err = client.get_server("1").await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Transient);
    assert_eq!(err.code, "transport");
    assert_eq!(err.status, None);
    assert!(err.is_retryable());
}

// ---- The token never leaks ----

#[tokio::test]
async fn token_straddling_the_message_clip_is_still_redacted() {
    // The echoed token starts just before the 500-character clip.
    let message = format!("{}{TOKEN} trailing", "x".repeat(495));
    let (client, _) = start(vec![canned(401, hetzner_error("unauthorized", &message))]).await;
    let err = client.validate_token().await.unwrap_err();
    let prefix = &TOKEN[..5];
    assert!(!err.message.contains(prefix), "{}", err.message);
}

#[tokio::test]
async fn token_is_not_shown_in_debug_or_errors() {
    let (client, _) = start(vec![canned(
        401,
        // A hostile or buggy proxy echoing the credential back.
        hetzner_error("unauthorized", &format!("token Bearer {TOKEN} is invalid")),
    )])
    .await;
    let shown = format!("{client:?}");
    assert!(!shown.contains(TOKEN), "{shown}");

    let err = client.validate_token().await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    let req = HttpRequest {
        method: Method::Get,
        url: "http://x/v1/servers".into(),
        headers: vec![("Authorization".into(), format!("Bearer {TOKEN}"))],
        body: None,
    };
    assert!(!format!("{req:?}").contains(TOKEN));
}
