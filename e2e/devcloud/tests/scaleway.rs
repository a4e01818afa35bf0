//! The Scaleway Instance API subset, driven by SAM's real client
//! (`sam_providers::ScalewayClient`) over HTTP: authentication and project
//! scoping, the create → boot → list → delete journey with a real agent
//! process, the stopped-server delete path with its volume, error shapes,
//! isolation from the Hetzner API, persistence, and the CLI flags.
//!
//! A 429 with `Retry-After` is covered against a canned server in
//! `crates/sam-providers/tests/scaleway_client.rs` (devcloud injects no
//! faults).

// Helpers outside #[test] fns panic on purpose: the panic is the report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{TOKEN, agent_user_data, alive, decode, file_server, read_pid, serve, wait_until};
use reqwest::StatusCode;
use sam_devcloud::{Config, DevCloud, ScalewayCredential};
use sam_providers::{
    DeleteOutcome, HttpClient, HttpRequest, HttpResponse, Method, ProviderErrorKind,
    ScalewayClient, ScalewayCreateServer, ScalewayServer, TransportError,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const SECRET: &str = "6c0f9a57-2d3e-4b8a-9f1c-0e7d5a4b3c21";
const PROJECT: &str = "b1e2d3c4-a5f6-4789-8abc-def012345678";
const OTHER_PROJECT: &str = "00000000-1111-4222-8333-444444444444";
const WRONG_SECRET: &str = "ffffffff-ffff-4fff-bfff-ffffffffffff";

// ---- The HTTP port, implemented with reqwest ----

struct ReqwestHttp(reqwest::Client);

impl HttpClient for ReqwestHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut builder = self.0.request(method, &req.url);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| TransportError::new(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::new(e.to_string()))?
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

// ---- Harness ----

struct Cloud {
    devcloud: DevCloud,
    base: String,
    http: reqwest::Client,
    state_dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Cloud {
    async fn start(state_dir: &Path, scaleway: bool) -> Self {
        let devcloud = DevCloud::start(Config {
            state_dir: state_dir.to_path_buf(),
            tokens: vec![TOKEN.into()],
            boot_delay: Duration::from_millis(10),
            scaleway: scaleway.then(|| ScalewayCredential {
                secret_key: SECRET.into(),
                project_id: PROJECT.into(),
            }),
        })
        .await
        .unwrap();
        let (port, server) = serve(devcloud.router()).await;
        Cloud {
            devcloud,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            state_dir: state_dir.to_path_buf(),
            server,
        }
    }

    async fn stop(self) {
        self.devcloud.shutdown().await;
        self.server.abort();
    }

    fn client_with(&self, secret: &str, project: &str) -> ScalewayClient<ReqwestHttp> {
        ScalewayClient::new(ReqwestHttp(self.http.clone()), &self.base, secret, project)
    }

    fn client(&self) -> ScalewayClient<ReqwestHttp> {
        self.client_with(SECRET, PROJECT)
    }

    /// A raw Scaleway call with the right key.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/instance/v1{path}", self.base))
            .header("x-auth-token", SECRET);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        (status, body)
    }

    async fn wait_state(&self, zone: &str, id: &str, want: &str) -> ScalewayServer {
        let client = self.client();
        wait_until(
            Duration::from_secs(20),
            &format!("server {id} {want}"),
            || async {
                let server = client.get_server(zone, id).await.unwrap().unwrap();
                (server.state == want).then_some(server)
            },
        )
        .await
    }

    /// The machine directory: devcloud's UUIDs end in the internal id.
    fn root(&self, uuid: &str) -> PathBuf {
        let id = u64::from_str_radix(&uuid[24..], 16).unwrap();
        self.state_dir
            .join("servers")
            .join(id.to_string())
            .join("root")
    }
}

fn create_request(name: &str, tags: &[&str], user_data: &str) -> ScalewayCreateServer {
    ScalewayCreateServer {
        name: name.into(),
        commercial_type: "DEV1-S".into(),
        zone: "fr-par-2".into(),
        image: "ubuntu_noble".into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        user_data: user_data.into(),
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

async fn agent_pid(root: &Path) -> i32 {
    let pid_file = root.join("var/lib/sam/agent.pid");
    wait_until(Duration::from_secs(20), "agent pid", || async {
        read_pid(&pid_file).filter(|p| alive(*p))
    })
    .await
}

// ---- Authentication ----

#[tokio::test]
async fn validate_accepts_the_key_and_refuses_bad_key_or_foreign_project() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;

    cloud.client().validate_token().await.unwrap();

    let err = cloud
        .client_with(WRONG_SECRET, PROJECT)
        .validate_token()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert_eq!(err.status, Some(401));
    assert_eq!(err.code, "denied_authentication");

    let err = cloud
        .client_with(SECRET, OTHER_PROJECT)
        .validate_token()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert_eq!(err.status, Some(403));
    assert_eq!(err.code, "permissions_denied");

    // Neither the Hetzner token opens Scaleway routes, nor the Scaleway key
    // Hetzner's.
    let url = format!("{}/instance/v1/zones/fr-par-1/servers", cloud.base);
    let (status, body) = decode(
        cloud
            .http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], "denied_authentication");
    let hetzner = cloud
        .http
        .get(format!("{}/v1/servers", cloud.base))
        .header("x-auth-token", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(decode(hetzner).await.1["error"]["code"], "unauthorized");
    cloud.stop().await;
}

#[tokio::test]
async fn without_a_configured_key_every_scaleway_route_is_401() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), false).await;
    let err = cloud.client().validate_token().await.unwrap_err();
    assert_eq!((err.kind, err.status), (ProviderErrorKind::Auth, Some(401)));
    for path in ["/zones/fr-par-1/servers", "/nothing/here"] {
        let response = cloud
            .http
            .get(format!("{}/instance/v1{path}", cloud.base))
            .header("x-auth-token", "")
            .send()
            .await
            .unwrap();
        let (status, body) = decode(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["type"], "denied_authentication");
    }
    cloud.stop().await;
}

// ---- The server journey, with a real boot ----

#[tokio::test]
async fn create_boots_the_agent_then_list_and_delete_idempotently() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.client();
    let user_data = agent_user_data(&format!("http://127.0.0.1:{files_port}/agent"));

    let created = client
        .create_server(&create_request(
            "sam-node-1",
            &["sam", "sam-node=01J0"],
            &user_data,
        ))
        .await
        .unwrap();
    assert_eq!(created.state, "starting");
    assert_eq!(created.zone, "fr-par-2");
    assert_eq!(created.commercial_type, "DEV1-S");
    assert_eq!(created.project, PROJECT);
    assert_eq!(created.tags, ["sam", "sam-node=01J0"]);
    let ip = created.public_ip.clone().unwrap();
    assert!(ip.starts_with("127."), "{ip}");
    let groups: Vec<usize> = created.id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{}", created.id);

    // The user data reached the metadata store, and the machine boots it.
    let (status, stored) = cloud
        .call(
            reqwest::Method::GET,
            &format!("/zones/fr-par-2/servers/{}/user_data", created.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored, json!({"user_data": ["cloud-init"]}));
    let running = cloud.wait_state("fr-par-2", &created.id, "running").await;
    assert_eq!(running.public_ip.as_deref(), Some(ip.as_str()));
    let root = cloud.root(&created.id);
    let pid = agent_pid(&root).await;
    let env = std::fs::read_to_string(root.join("var/lib/sam/env")).unwrap();
    assert!(env.contains(&format!("SAM_BIND_HOST={ip}")), "{env}");

    // Listing: by every tag, by one, by a tag nobody has, in another zone.
    let found = client
        .list_servers("fr-par-2", &tags(&["sam-node=01J0", "sam"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created.id);
    assert_eq!(found[0].state, "running");
    assert_eq!(
        client
            .list_servers("fr-par-2", &tags(&["sam"]))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        client
            .list_servers("fr-par-2", &tags(&["sam-node=other"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .list_servers("fr-par-1", &[])
            .await
            .unwrap()
            .is_empty()
    );
    // Zones are separate namespaces.
    assert!(
        client
            .get_server("fr-par-1", &created.id)
            .await
            .unwrap()
            .is_none()
    );

    // Running → terminate: gone at once, the agent shortly after.
    assert_eq!(
        client.delete_server("fr-par-2", &created.id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(
        client
            .get_server("fr-par-2", &created.id)
            .await
            .unwrap()
            .is_none()
    );
    wait_until(Duration::from_secs(10), "agent to exit", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    assert_eq!(
        client.delete_server("fr-par-2", &created.id).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert!(
        client
            .list_servers("fr-par-2", &[])
            .await
            .unwrap()
            .is_empty()
    );
    // The root volume went with the server.
    let (status, _) = cloud
        .call(
            reqwest::Method::GET,
            &format!("/zones/fr-par-2/volumes/{}", volume_of(&created.id)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cloud.stop().await;
}

/// devcloud's root volume UUID for a server UUID (same internal id).
fn volume_of(server: &str) -> String {
    format!("5ca1e002{}", &server[8..])
}

#[tokio::test]
async fn a_stopped_server_is_deleted_with_its_volume() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    // Created but never powered on, as when `create_server` fails halfway.
    let (status, body) = cloud
        .call(
            reqwest::Method::POST,
            "/zones/nl-ams-1/servers",
            Some(json!({
                "name": "half-made",
                "commercial_type": "GP1-XS",
                "image": "ubuntu_noble",
                "project": PROJECT,
                "tags": ["sam-node=01J1"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let server = &body["server"];
    assert_eq!(server["state"], "stopped");
    assert_eq!(server["allowed_actions"], json!(["poweron"]));
    assert_eq!(server["volumes"]["0"]["volume_type"], "l_ssd");
    let id = server["id"].as_str().unwrap().to_owned();
    let volume = server["volumes"]["0"]["id"].as_str().unwrap().to_owned();

    // The raw API's own rules: terminate needs a running server, a volume
    // in use cannot be deleted.
    let (status, body) = cloud
        .call(
            reqwest::Method::POST,
            &format!("/zones/nl-ams-1/servers/{id}/action"),
            Some(json!({"action": "terminate"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"type": "invalid_request_error", "message": "server should be running"})
    );
    let (status, _) = cloud
        .call(
            reqwest::Method::DELETE,
            &format!("/zones/nl-ams-1/volumes/{volume}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let client = cloud.client();
    let found = client
        .list_servers("nl-ams-1", &tags(&["sam-node=01J1"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]
            .public_ip
            .as_deref()
            .map(|ip| ip.starts_with("127.")),
        Some(true)
    );
    assert_eq!(
        client.delete_server("nl-ams-1", &id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    let (status, body) = cloud
        .call(
            reqwest::Method::GET,
            &format!("/zones/nl-ams-1/volumes/{volume}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "volume leaked: {body}");
    assert_eq!(
        client.delete_server("nl-ams-1", &id).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    cloud.stop().await;
}

#[tokio::test]
async fn delete_leaves_the_volume_when_called_raw() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let (_, body) = cloud
        .call(
            reqwest::Method::POST,
            "/zones/pl-waw-1/servers",
            Some(json!({"name": "raw", "commercial_type": "DEV1-M", "image": "debian_bookworm"})),
        )
        .await;
    let id = body["server"]["id"].as_str().unwrap().to_owned();
    let volume = body["server"]["volumes"]["0"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = cloud
        .call(
            reqwest::Method::DELETE,
            &format!("/zones/pl-waw-1/servers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = cloud
        .call(
            reqwest::Method::GET,
            &format!("/zones/pl-waw-1/volumes/{volume}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["volume"]["state"], "available");
    assert_eq!(body["volume"]["server"], Value::Null);
    let (status, _) = cloud
        .call(
            reqwest::Method::DELETE,
            &format!("/zones/pl-waw-1/volumes/{volume}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    cloud.stop().await;
}

// ---- Power state rules and their classification ----

#[tokio::test]
async fn servers_between_states_are_transient_and_running_ones_refuse_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.client();
    let created = client
        .create_server(&create_request("power", &["p"], "#cloud-config\n"))
        .await
        .unwrap();
    let id = created.id;
    cloud.wait_state("fr-par-2", &id, "running").await;

    // Raw DELETE on a running server: Scaleway's precondition error.
    let (status, body) = cloud
        .call(
            reqwest::Method::DELETE,
            &format!("/zones/fr-par-2/servers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "server should be stopped");

    // Power off, then delete through the client (stopped path).
    let (status, body) = cloud
        .call(
            reqwest::Method::POST,
            &format!("/zones/fr-par-2/servers/{id}/action"),
            Some(json!({"action": "poweroff"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["task"]["description"], "server_poweroff");
    cloud.wait_state("fr-par-2", &id, "stopped").await;
    assert_eq!(
        client.delete_server("fr-par-2", &id).await.unwrap(),
        DeleteOutcome::Deleted
    );

    // A server that is starting cannot be deleted yet: retryable.
    let slow_dir = tempfile::tempdir().unwrap();
    let slow = DevCloud::start(Config {
        state_dir: slow_dir.path().to_path_buf(),
        tokens: vec![TOKEN.into()],
        boot_delay: Duration::from_secs(30),
        scaleway: Some(ScalewayCredential {
            secret_key: SECRET.into(),
            project_id: PROJECT.into(),
        }),
    })
    .await
    .unwrap();
    let (port, task) = serve(slow.router()).await;
    let slow_client = ScalewayClient::new(
        ReqwestHttp(reqwest::Client::new()),
        format!("http://127.0.0.1:{port}"),
        SECRET,
        PROJECT,
    );
    let starting = slow_client
        .create_server(&create_request("slow", &[], ""))
        .await
        .unwrap();
    let err = slow_client
        .delete_server("fr-par-2", &starting.id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::Transient, "server_busy")
    );
    assert!(err.is_retryable());
    slow.shutdown().await;
    task.abort();
    cloud.stop().await;
}

#[tokio::test]
async fn errors_come_in_scaleway_shape_and_classify() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.client();

    let mut bad = create_request("bad", &[], "");
    bad.commercial_type = "NOPE-XL".into();
    let err = client.create_server(&bad).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (ProviderErrorKind::InvalidConfig, Some(400))
    );
    assert_eq!(err.code, "invalid_arguments");
    assert!(
        err.message
            .contains("commercial_type: unknown commercial type 'NOPE-XL'"),
        "{}",
        err.message
    );

    let mut bad = create_request("bad", &[], "");
    bad.zone = "fr-par-3".into();
    let err = client.create_server(&bad).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidConfig);
    assert!(err.message.contains("zone"), "{}", err.message);

    let mut bad = create_request("bad", &[], "");
    bad.image = "windows_3_11".into();
    let err = client.create_server(&bad).await.unwrap_err();
    assert!(err.message.contains("image"), "{}", err.message);

    let foreign = cloud.client_with(SECRET, OTHER_PROJECT);
    let err = foreign
        .create_server(&create_request("x", &[], ""))
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.status), (ProviderErrorKind::Auth, Some(403)));

    // Nothing was created by any of those.
    assert!(
        client
            .list_servers("fr-par-2", &[])
            .await
            .unwrap()
            .is_empty()
    );

    let (status, body) = cloud
        .call(reqwest::Method::GET, "/zones/fr-par-1/nothing", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "not_found");
    let (status, body) = cloud
        .call(
            reqwest::Method::PATCH,
            "/zones/fr-par-1/servers/5ca1e001-0000-4000-8000-000000000001/user_data/cloud-init",
            Some(json!({"not": "text"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "invalid_arguments");
    let (status, body) = cloud
        .call(
            reqwest::Method::GET,
            "/zones/fr-par-1/products/servers",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["servers"]["DEV1-S"]["ncpus"], 2);
    cloud.stop().await;
}

// ---- Isolation from the Hetzner API, persistence ----

#[tokio::test]
async fn hetzner_and_scaleway_servers_do_not_see_each_other_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.client();
    let scw = client
        .create_server(&create_request("same-name", &["keep"], "#cloud-config\n"))
        .await
        .unwrap();
    let hetzner = cloud
        .http
        .post(format!("{}/v1/servers", cloud.base))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "same-name",
            "server_type": "cx23",
            "image": "ubuntu-24.04",
            "location": "fsn1",
        }))
        .send()
        .await
        .unwrap();
    let (status, body) = decode(hetzner).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hetzner_id = body["server"]["id"].as_u64().unwrap();

    let listed = cloud
        .http
        .get(format!("{}/v1/servers", cloud.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let ids: Vec<u64> = decode(listed).await.1["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [hetzner_id]);
    let scw_internal = u64::from_str_radix(&scw.id[24..], 16).unwrap();
    let hidden = cloud
        .http
        .get(format!("{}/v1/servers/{scw_internal}", cloud.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let listed = client.list_servers("fr-par-2", &[]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, scw.id);

    cloud.wait_state("fr-par-2", &scw.id, "running").await;
    cloud.stop().await;

    let cloud = Cloud::start(dir.path(), true).await;
    let again = cloud
        .client()
        .get_server("fr-par-2", &scw.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.tags, ["keep"]);
    assert_eq!(again.public_ip, scw.public_ip);
    cloud.wait_state("fr-par-2", &scw.id, "running").await;
    assert_eq!(
        cloud
            .client()
            .delete_server("fr-par-2", &scw.id)
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    cloud.stop().await;
}

// ---- The binary's flags ----

#[tokio::test]
async fn cli_flags_configure_the_scaleway_credential() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_devcloud"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t1",
            "--boot-delay-ms",
            "10",
        ])
        .args([
            "--scaleway-secret-key",
            SECRET,
            "--scaleway-project-id",
            PROJECT,
        ])
        .arg("--state-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("announcement in time")
        .unwrap()
        .expect("a line");
    let base = line
        .strip_prefix("devcloud listening on ")
        .unwrap()
        .to_owned();
    let client = |secret: &str| {
        ScalewayClient::new(ReqwestHttp(reqwest::Client::new()), &base, secret, PROJECT)
    };
    client(SECRET).validate_token().await.unwrap();
    let err = client(WRONG_SECRET).validate_token().await.unwrap_err();
    assert_eq!(err.status, Some(401));
    child.kill().await.unwrap();

    // One flag without the other is a usage error.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_devcloud"))
        .args(["--token", "t1", "--scaleway-secret-key", SECRET])
        .arg("--state-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
