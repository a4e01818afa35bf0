//! The recorder between a client and an in-process upstream: what passes
//! through unchanged, what is recorded, and the proxy's own answers.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{Setup, client};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HOST, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

#[tokio::test]
async fn methods_pass_through_with_status_query_headers_and_body() {
    let s = Setup::new().await;
    let c = client();
    for (method, status) in [
        (reqwest::Method::GET, StatusCode::OK),
        (reqwest::Method::POST, StatusCode::CREATED),
        (reqwest::Method::PUT, StatusCode::OK),
        (reqwest::Method::DELETE, StatusCode::OK),
        (reqwest::Method::PATCH, StatusCode::OK),
    ] {
        let response = c
            .request(method.clone(), s.url("/api/things/1?x=1&y=%20z"))
            .header(HOST, "api.localhost:8787")
            .header("cookie", "sam_session=abc; other=1")
            .header("origin", "http://app.localhost:8787")
            .body(format!("body of {method}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method}");
        assert_eq!(response.headers()["x-upstream"], "echo");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(
            echo,
            json!({
                "method": method.as_str(),
                "path": "/api/things/1",
                "query": "x=1&y=%20z",
                "host": "api.localhost:8787",
                "cookie": "sam_session=abc; other=1",
                "origin": "http://app.localhost:8787",
                "accept_encoding": null,
                "connection": null,
                "x_private": null,
                "body": format!("body of {method}"),
            }),
            "{method}"
        );
    }

    let records = s.records();
    assert_eq!(records.len(), 5);
    let post = &records[1];
    assert_eq!(post["method"], "POST");
    assert_eq!(post["path"], "/api/things/1");
    assert_eq!(post["query"], "x=1&y=%20z");
    assert_eq!(post["status"], 201);
    assert_eq!(post["content_type"], "application/json");
    let body: Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["body"], "body of POST");
    // The set of fields, not their order (serde_json keeps insertion order
    // when another crate in the build turns on `preserve_order`).
    let mut keys: Vec<&String> = post.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "body",
            "complete",
            "content_type",
            "kind",
            "method",
            "path",
            "query",
            "status"
        ]
    );
    assert_eq!(post["complete"], true);
    assert_eq!(post["kind"], "response");
}

#[tokio::test]
async fn the_clients_host_reaches_the_upstream_not_the_upstreams_address() {
    let s = Setup::new().await;
    let echo: Value = client()
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recorder_host = s.base.strip_prefix("http://").unwrap();
    assert_eq!(echo["host"], recorder_host);
    assert_eq!(echo["query"], Value::Null);
    assert_eq!(s.records()[0]["query"], Value::Null);
}

#[tokio::test]
async fn both_set_cookie_headers_arrive() {
    let s = Setup::new().await;
    let response = client().get(s.url("/cookies")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookies: Vec<_> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure"]);
    assert_eq!(response.text().await.unwrap(), "two cookies");
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let s = Setup::new().await;
    let response = client().get(s.url("/redirect")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()[LOCATION], "/echo?from=redirect");
    assert_eq!(response.text().await.unwrap(), "see elsewhere");
    let records = s.records();
    assert_eq!(records.len(), 1, "only the redirect itself: {records:?}");
    assert_eq!(records[0]["status"], 302);
    assert_eq!(records[0]["body"], "see elsewhere");
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let s = Setup::new().await;
    let c = client();
    let echo: Value = c
        .get(s.url("/echo"))
        .header("connection", "x-private")
        .header("x-private", "for the next hop only")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["x_private"], Value::Null);

    let response = c.get(s.url("/hops")).send().await.unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-end-to-end"], "kept");
    assert!(!headers.contains_key("keep-alive"), "{headers:?}");
    assert!(!headers.contains_key("proxy-authenticate"), "{headers:?}");
}

#[tokio::test]
async fn head_requests_do_not_hang() {
    let s = Setup::new().await;
    let response = client().head(s.url("/echo")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().len(), 0);
    assert_eq!(s.records()[0]["method"], "HEAD");
}

#[tokio::test]
async fn large_responses_are_forwarded_whole_and_recorded_cut() {
    let s = Setup::new().await;
    let response = client().get(s.url("/big")).send().await.unwrap();
    assert_eq!(response.content_length(), Some(3 * 1024 * 1024));
    let body = response.text().await.unwrap();
    assert_eq!(body.len(), 3 * 1024 * 1024);
    let records = s.records();
    assert_eq!(
        records[0]["body"].as_str().unwrap().len(),
        sam_recorder::MAX_RECORDED_BODY
    );
    assert_eq!(records[0]["content_type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn concurrent_exchanges_make_one_whole_line_each() {
    let s = Setup::new().await;
    let c = client();
    let requests = (0..50).map(|i| {
        let c = c.clone();
        let url = s.url(&format!("/echo?i={i}"));
        async move {
            // Bodies large enough that interleaved writes would show.
            let body = format!("{i:02}").repeat(40_000);
            let response = c.post(url).body(body.clone()).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            let echo: Value = response.json().await.unwrap();
            assert_eq!(echo["body"], body);
        }
    });
    futures::future::join_all(requests).await;

    let records = s.records();
    assert_eq!(records.len(), 50);
    let mut seen = BTreeSet::new();
    for record in &records {
        let i: usize = record["query"]
            .as_str()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        let echo: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        assert_eq!(echo["body"], format!("{i:02}").repeat(40_000));
        assert_eq!(record["status"], 201);
        seen.insert(i);
    }
    assert_eq!(seen, (0..50).collect());
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_recorded_502() {
    // A port bound but never listening: connections to it are refused, and
    // (unlike a listener bound and dropped) no other test can take it over
    // meanwhile and leave the request hanging.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = reserved.local_addr().unwrap();
    let s = Setup::in_front_of(&format!("http://{closed}")).await;
    let response = client()
        .get(s.url("/api/health?deep=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(text.starts_with("recorder: upstream failed"), "{text}");

    let records = s.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], 502);
    assert_eq!(records[0]["path"], "/api/health");
    assert_eq!(records[0]["query"], "deep=1");
    assert_eq!(records[0]["body"], text);
}

#[tokio::test]
async fn request_bodies_over_16_mib_get_413_and_up_to_16_mib_pass() {
    let s = Setup::new().await;
    let c = client();
    let limit = 16 * 1024 * 1024;

    let response = c
        .post(s.url("/len"))
        .body(vec![b'x'; limit])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), limit.to_string());

    let response = c
        .post(s.url("/len"))
        .body(vec![b'x'; limit + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let records = s.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["status"], 413);
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_passes_through_and_is_recorded() {
    let s = Setup::new().await;
    // The echo upstream answers 200 to anything, upgrade requests included.
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client()
            .get(s.url("/ws"))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send(),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/ws");
    assert_eq!(echo["connection"], "upgrade");
    let records = s.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], 200);
    assert_eq!(records[0]["kind"], "response");
    let recorded: Value = serde_json::from_str(records[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(recorded, echo);
}

#[tokio::test]
async fn h2c_upgrades_get_501_without_hanging() {
    let s = Setup::new().await;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client()
            .get(s.url("/h2"))
            .header("connection", "Upgrade, HTTP2-Settings")
            .header("upgrade", "h2c")
            .header("http2-settings", "AAMAAABkAAQAAP__")
            .send(),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    assert_eq!(
        response.text().await.unwrap(),
        sam_recorder::UPGRADE_REFUSAL
    );
    let records = s.records();
    assert_eq!(records[0]["status"], 501);
    assert_eq!(records[0]["body"], sam_recorder::UPGRADE_REFUSAL);
}

#[tokio::test]
async fn records_append_to_an_existing_file() {
    let s = Setup::new().await;
    client().get(s.url("/one")).send().await.unwrap();
    // A second recorder on the same file, as after a restart.
    let upstream = common::serve(common::upstream_router()).await;
    let router = sam_recorder::router(sam_recorder::Config {
        upstream: format!("http://{upstream}"),
        record: s.record.clone(),
    })
    .unwrap();
    let again = common::serve(router).await;
    client()
        .get(format!("http://{again}/two"))
        .send()
        .await
        .unwrap();
    let paths: Vec<_> = s.records().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(paths, [json!("/one"), json!("/two")]);
}
