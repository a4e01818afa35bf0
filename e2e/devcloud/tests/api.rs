//! The Hetzner-compatible HTTP surface: auth, shapes, validation, label
//! selectors, pagination, actions, power state and persistence.

// Helpers outside #[test] fns panic on purpose: the panic is the report.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::{TOKEN, TestCloud, decode};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn plain_server(name: &str, labels: Value) -> Value {
    let mut body = json!({
        "name": name,
        "server_type": "cx23",
        "image": "ubuntu-24.04",
        "location": "fsn1",
        "user_data": "",
        "start_after_create": true,
    });
    body["labels"] = labels;
    body
}

#[tokio::test]
async fn missing_or_wrong_token_is_hetzner_unauthorized() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let url = format!("{}/v1/servers", cloud.base);

    let (status, body) = decode(cloud.client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": {"code": "unauthorized", "message": "unable to authenticate", "details": {}}})
    );

    let wrong = cloud
        .client
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(decode(wrong).await.1["error"]["code"], "unauthorized");

    let basic = cloud
        .client
        .get(&url)
        .basic_auth("u", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    // Unknown routes are not revealed to unauthenticated callers either.
    let unknown = cloud
        .client
        .get(format!("{}/v1/nothing", cloud.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    for token in [TOKEN, "second-token"] {
        let ok = cloud
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
    cloud.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_bad_json_use_the_error_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;

    let (status, body) = cloud.get("/v1/floating_ips").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["details"], json!({}));

    let (status, body) = cloud
        .call(reqwest::Method::PATCH, "/v1/servers", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let raw = cloud
        .client
        .post(format!("{}/v1/servers", cloud.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = decode(raw).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "json_error");

    let (status, body) = cloud.post("/v1/servers", json!({"name": 5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_input");

    let (status, body) = cloud.get("/v1/servers/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    cloud.stop().await;
}

#[tokio::test]
async fn create_get_list_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 50).await;

    let created = cloud
        .create(plain_server(
            "node-a",
            json!({"sam.dev/role": "node", "env": "test"}),
        ))
        .await;
    let server = &created["server"];
    let id = server["id"].as_u64().expect("integer id");
    assert_eq!(server["name"], "node-a");
    assert_eq!(server["status"], "initializing");
    assert!(chrono_like(server["created"].as_str().unwrap()));
    let ip: Ipv4Addr = server["public_net"]["ipv4"]["ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ip.is_loopback() && ip != Ipv4Addr::LOCALHOST, "{ip}");
    assert_eq!(server["public_net"]["ipv4"]["blocked"], false);
    assert!(server["public_net"]["ipv4"]["dns_ptr"].is_string());
    assert!(
        server["public_net"]["ipv6"]["ip"]
            .as_str()
            .unwrap()
            .ends_with("/64")
    );
    assert_eq!(server["server_type"]["name"], "cx23");
    assert_eq!(server["server_type"]["cores"], 2);
    assert_eq!(server["server_type"]["memory"], 4.0);
    assert_eq!(server["server_type"]["disk"], 40);
    assert_eq!(server["server_type"]["architecture"], "x86");
    assert_eq!(server["datacenter"]["location"]["name"], "fsn1");
    assert_eq!(server["location"]["name"], "fsn1");
    assert_eq!(server["image"]["name"], "ubuntu-24.04");
    assert_eq!(
        server["labels"],
        json!({"sam.dev/role": "node", "env": "test"})
    );
    assert_eq!(server["private_net"], json!([]));
    assert_eq!(
        server["protection"],
        json!({"delete": false, "rebuild": false})
    );
    assert_eq!(created["root_password"], Value::Null);

    let action = &created["action"];
    assert_eq!(action["command"], "create_server");
    assert_eq!(action["status"], "running");
    assert_eq!(action["progress"], 0);
    assert_eq!(action["finished"], Value::Null);
    assert_eq!(action["error"], Value::Null);
    assert_eq!(action["resources"], json!([{"id": id, "type": "server"}]));
    let next = created["next_actions"].as_array().unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["command"], "start_server");

    // Boot (empty user-data) completes both actions and reaches running.
    let running = cloud.wait_status(id, "running").await;
    assert_eq!(
        running["public_net"]["ipv4"]["ip"],
        server["public_net"]["ipv4"]["ip"]
    );
    let done = cloud.wait_action(action["id"].as_u64().unwrap()).await;
    assert_eq!(done["progress"], 100);
    assert!(done["finished"].is_string());
    cloud.wait_action(next[0]["id"].as_u64().unwrap()).await;
    let (status, body) = cloud
        .get(&format!("/v1/servers/{id}/actions/{}", next[0]["id"]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"]["command"], "start_server");
    let (status, _) = cloud
        .get(&format!("/v1/servers/{}/actions/{}", id + 1, next[0]["id"]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, list) = cloud.get("/v1/servers?name=node-a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["servers"].as_array().unwrap().len(), 1);
    assert_eq!(list["servers"][0]["id"], id);
    assert_eq!(list["meta"]["pagination"]["total_entries"], 1);

    let (status, body) = cloud.delete(&format!("/v1/servers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"]["command"], "delete_server");
    assert_eq!(body["action"]["resources"][0]["id"], id);
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;

    let (status, body) = cloud.get(&format!("/v1/servers/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = cloud.delete(&format!("/v1/servers/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = cloud.get("/v1/servers").await;
    assert_eq!(list["servers"], json!([]));

    // The name is free again, and the new server gets a new id and address.
    let again = cloud.create(plain_server("node-a", json!({}))).await;
    assert_eq!(again["server"]["id"], id + 1);
    assert_ne!(
        again["server"]["public_net"]["ipv4"]["ip"],
        server["public_net"]["ipv4"]["ip"]
    );
    cloud.stop().await;
}

fn chrono_like(ts: &str) -> bool {
    // 2016-01-30T23:55:00+00:00
    ts.len() == 25 && ts.as_bytes()[10] == b'T' && ts.ends_with("+00:00")
}

#[tokio::test]
async fn label_selectors_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    cloud
        .create(plain_server("a", json!({"role": "node", "env": "prod"})))
        .await;
    cloud
        .create(plain_server("b", json!({"role": "node", "env": "dev"})))
        .await;
    cloud.create(plain_server("c", json!({"role": "db"}))).await;

    let names = |body: &Value| -> Vec<String> {
        body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases = [
        ("role=node", vec!["a", "b"]),
        ("role==node,env=prod", vec!["a"]),
        ("role!=node", vec!["c"]),
        ("env", vec!["a", "b"]),
        ("!env", vec!["c"]),
        ("env!=prod", vec!["b", "c"]),
        ("env in (dev,prod),role=node", vec!["b", "a"]),
        ("env notin (prod)", vec!["b", "c"]),
        ("role=none", vec![]),
    ];
    for (selector, want) in cases {
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        let url = format!("/v1/servers?label_selector={}", urlencode(selector));
        let (status, body) = cloud.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{selector}: {body}");
        assert_eq!(names(&body), want, "{selector}");
    }

    let (status, body) = cloud.get("/v1/servers?label_selector=env%20in%20(a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_input");

    let (_, page1) = cloud.get("/v1/servers?per_page=2").await;
    assert_eq!(names(&page1), ["a", "b"]);
    assert_eq!(
        page1["meta"]["pagination"],
        json!({"page": 1, "per_page": 2, "previous_page": null, "next_page": 2, "last_page": 2, "total_entries": 3})
    );
    let (_, page2) = cloud.get("/v1/servers?per_page=2&page=2").await;
    assert_eq!(names(&page2), ["c"]);
    assert_eq!(page2["meta"]["pagination"]["previous_page"], 1);
    assert_eq!(page2["meta"]["pagination"]["next_page"], Value::Null);

    let (_, sorted) = cloud.get("/v1/servers?sort=name:desc").await;
    assert_eq!(names(&sorted), ["c", "b", "a"]);
    let (_, by_status) = cloud.get("/v1/servers?status=off").await;
    assert_eq!(names(&by_status), Vec::<String>::new());
    cloud.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn expect_invalid(cloud: &TestCloud, body: Value, field: &str) -> Value {
    let (status, response) = cloud.post("/v1/servers", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(response["error"]["code"], "invalid_input");
    let fields = response["error"]["details"]["fields"].as_array().unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["name"] == field && !f["messages"].as_array().unwrap().is_empty()),
        "expected field {field}: {response}"
    );
    response
}

#[tokio::test]
async fn validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;

    let mut body = plain_server("x", json!({}));
    body["server_type"] = json!("cx99");
    let response = expect_invalid(&cloud, body, "server_type").await;
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server_type")
    );

    let mut body = plain_server("x", json!({}));
    body["location"] = json!("mars1");
    expect_invalid(&cloud, body, "location").await;

    let mut body = plain_server("x", json!({}));
    body["user_data"] = json!("#".repeat(32 * 1024 + 1));
    expect_invalid(&cloud, body, "user_data").await;
    let mut body = plain_server("x-max", json!({}));
    body["user_data"] = json!("#".repeat(32 * 1024));
    cloud.create(body).await;

    expect_invalid(&cloud, plain_server("bad_name!", json!({})), "name").await;
    expect_invalid(&cloud, plain_server("y", json!({"bad key": "v"})), "labels").await;
    expect_invalid(&cloud, plain_server("y", json!({"k": "-v"})), "labels").await;
    expect_invalid(
        &cloud,
        plain_server("y", json!({"hetzner.cloud/x": "v"})),
        "labels",
    )
    .await;
    expect_invalid(
        &cloud,
        json!({"server_type": "cx23", "image": "ubuntu-24.04"}),
        "name",
    )
    .await;
    let mut body = plain_server("y", json!({}));
    body["image"] = json!("windows-11");
    expect_invalid(&cloud, body, "image").await;

    // Nothing invalid was created.
    let (_, list) = cloud.get("/v1/servers").await;
    assert_eq!(list["servers"].as_array().unwrap().len(), 1);

    cloud.create(plain_server("dup", json!({}))).await;
    let (status, body) = cloud
        .post("/v1/servers", plain_server("dup", json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "uniqueness_error");
    assert_eq!(
        body["error"]["details"]["fields"],
        json!([{"name": "name"}])
    );

    // Types and datacenters may be given by ID too.
    let mut body = plain_server("by-id", json!({}));
    body["server_type"] = json!(45);
    body["location"] = Value::Null;
    body["datacenter"] = json!("hel1-dc2");
    let created = cloud.create(body).await;
    assert_eq!(created["server"]["server_type"]["name"], "cax11");
    assert_eq!(created["server"]["server_type"]["architecture"], "arm");
    assert_eq!(created["server"]["image"]["architecture"], "arm");
    assert_eq!(created["server"]["datacenter"]["name"], "hel1-dc2");
    cloud.stop().await;
}

#[tokio::test]
async fn catalogue_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let (status, body) = cloud.get("/v1/server_types").await;
    assert_eq!(status, StatusCode::OK);
    let types = body["server_types"].as_array().unwrap();
    for name in ["cx23", "cx33", "cx43", "cax11", "cax21"] {
        let t = types
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(t["cores"].as_u64().unwrap() >= 2);
        assert!(t["memory"].as_f64().unwrap() >= 4.0);
        assert!(
            t["prices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["location"] == "fsn1")
        );
    }
    let cx33 = types.iter().find(|t| t["name"] == "cx33").unwrap();
    let (_, one) = cloud.get(&format!("/v1/server_types/{}", cx33["id"])).await;
    assert_eq!(one["server_type"]["name"], "cx33");

    let (_, body) = cloud.get("/v1/locations").await;
    let names: Vec<&str> = body["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fsn1", "nbg1", "hel1", "ash", "hil"]);
    let (_, one) = cloud.get("/v1/locations?name=ash").await;
    assert_eq!(one["locations"][0]["network_zone"], "us-east");
    let (_, dcs) = cloud.get("/v1/datacenters").await;
    assert_eq!(dcs["datacenters"].as_array().unwrap().len(), 5);
    cloud.stop().await;
}

#[tokio::test]
async fn power_actions_move_status() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let mut body = plain_server("p", json!({}));
    body["start_after_create"] = json!(false);
    let created = cloud.create(body).await;
    assert_eq!(created["next_actions"], json!([]));
    let id = created["server"]["id"].as_u64().unwrap();
    cloud.wait_status(id, "off").await;

    let (status, body) = cloud
        .post(&format!("/v1/servers/{id}/actions/poweron"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["action"]["command"], "start_server");
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    assert_eq!(cloud.server(id).await["status"], "running");

    let (status, body) = cloud
        .post(&format!("/v1/servers/{id}/actions/poweroff"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["action"]["command"], "stop_server");
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    assert_eq!(cloud.server(id).await["status"], "off");

    let (status, body) = cloud
        .post(&format!("/v1/servers/{id}/actions/explode"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (_, actions) = cloud.get(&format!("/v1/servers/{id}/actions")).await;
    let commands: Vec<&str> = actions["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["create_server", "start_server", "stop_server"]);
    cloud.stop().await;
}

#[tokio::test]
async fn state_survives_restart_and_ids_continue() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = TestCloud::start(dir.path(), 10).await;
    let first = cloud.create(plain_server("keep", json!({"k": "v"}))).await;
    let id = first["server"]["id"].as_u64().unwrap();
    cloud.wait_status(id, "running").await;
    let mut off = plain_server("stays-off", json!({}));
    off["start_after_create"] = json!(false);
    let off_id = cloud.create(off).await["server"]["id"].as_u64().unwrap();
    cloud.wait_status(off_id, "off").await;
    cloud.stop().await;

    let cloud = TestCloud::start(dir.path(), 10).await;
    let server = cloud.server(id).await;
    assert_eq!(server["name"], "keep");
    assert_eq!(server["labels"], json!({"k": "v"}));
    assert_eq!(server["created"], first["server"]["created"]);
    assert_eq!(server["public_net"], first["server"]["public_net"]);
    assert_eq!(cloud.server(off_id).await["status"], "off");
    let next = cloud.create(plain_server("new", json!({}))).await;
    assert_eq!(next["server"]["id"], off_id + 1);
    assert_ne!(
        next["server"]["public_net"]["ipv4"]["ip"],
        server["public_net"]["ipv4"]["ip"]
    );
    let (status, _) = cloud
        .post("/v1/servers", plain_server("keep", json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    cloud.stop().await;
}
