//! The Scaleway Instance API subset, driven by SAM's real client
//! (`sam_providers::ScalewayClient`) over HTTP: authentication and project
//! scoping, the create → boot → list → delete journey with a real agent
//! process, the stopped-server delete path with its volume, error shapes,
//! isolation from the Hetzner API, persistence, and the CLI flags.
//!
//! Rate limits and 5xx answers are injected in `tests/faults.rs`.

// Helpers outside #[test] fns panic on purpose: the panic is the report.
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    ReqwestHttp, TOKEN, TestCloud, agent_user_data, alive, decode, devcloud_exit_status,
    file_server, read_pid, send_json, spawn_devcloud, wait_until,
};
use reqwest::{Method, StatusCode};
use sam_devcloud::{Config, FaultConfig, ScalewayCredential};
use sam_providers::{
    DeleteOutcome, ProviderErrorKind, ScalewayClient, ScalewayCreateServer, ScalewayServer,
};
use serde_json::{Value, json};

const SECRET: &str = "6c0f9a57-2d3e-4b8a-9f1c-0e7d5a4b3c21";
const PROJECT: &str = "b1e2d3c4-a5f6-4789-8abc-def012345678";
const OTHER_PROJECT: &str = "00000000-1111-4222-8333-444444444444";
const WRONG_SECRET: &str = "ffffffff-ffff-4fff-bfff-ffffffffffff";

// ---- Harness ----

/// An in-process devcloud (its Hetzner-side calls come from [`TestCloud`])
/// plus the Scaleway-side calls these tests make.
struct Cloud(TestCloud);

impl Deref for Cloud {
    type Target = TestCloud;

    fn deref(&self) -> &TestCloud {
        &self.0
    }
}

impl Cloud {
    /// Boots quickly; `scaleway` says whether the Scaleway key is configured.
    async fn start(state_dir: &Path, scaleway: bool) -> Self {
        Self::start_with(state_dir, scaleway, Duration::from_millis(10)).await
    }

    async fn start_with(state_dir: &Path, scaleway: bool, boot_delay: Duration) -> Self {
        Cloud(
            TestCloud::start_with(Config {
                state_dir: state_dir.to_path_buf(),
                tokens: vec![TOKEN.into()],
                boot_delay,
                scaleway: scaleway.then(|| ScalewayCredential {
                    secret_key: SECRET.into(),
                    project_id: PROJECT.into(),
                }),
                faults: FaultConfig::default(),
                image_env: Vec::new(),
            })
            .await,
        )
    }

    async fn stop(self) {
        self.0.stop().await;
    }

    fn scaleway_with(&self, secret: &str, project: &str) -> ScalewayClient<ReqwestHttp> {
        ScalewayClient::new(
            ReqwestHttp(self.client.clone()),
            &self.base,
            secret,
            project,
        )
    }

    /// SAM's Scaleway client with the right key and project.
    fn scaleway(&self) -> ScalewayClient<ReqwestHttp> {
        self.scaleway_with(SECRET, PROJECT)
    }

    /// A raw Instance API call with the right key.
    async fn instance(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = self
            .request(method, &format!("/instance/v1{path}"))
            .header("x-auth-token", SECRET);
        let response = send_json(request, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        (status, body)
    }

    async fn instance_get(&self, path: &str) -> (StatusCode, Value) {
        self.instance(Method::GET, path, None).await
    }

    async fn instance_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.instance(Method::POST, path, Some(body)).await
    }

    async fn instance_delete(&self, path: &str) -> (StatusCode, Value) {
        self.instance(Method::DELETE, path, None).await
    }

    async fn wait_state(&self, zone: &str, id: &str, want: &str) -> ScalewayServer {
        let client = self.scaleway();
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

    /// The machine's root directory.
    fn root(&self, uuid: &str) -> PathBuf {
        self.server_dir(internal_id(uuid)).join("root")
    }
}

/// devcloud's internal server id: its Scaleway UUIDs end in it.
fn internal_id(uuid: &str) -> u64 {
    u64::from_str_radix(&uuid[24..], 16).unwrap()
}

/// devcloud's root volume UUID for a server UUID (same internal id).
fn volume_of(server: &str) -> String {
    format!("5ca1e002{}", &server[8..])
}

fn create_request(name: &str, tags: &[&str], user_data: &str) -> ScalewayCreateServer {
    ScalewayCreateServer {
        name: name.into(),
        commercial_type: "DEV1-S".into(),
        zone: "fr-par-2".into(),
        image: "ubuntu_noble".into(),
        tags: owned(tags),
        user_data: user_data.into(),
    }
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

/// Creates a server through SAM's client; it starts booting at once.
async fn create(
    client: &ScalewayClient<ReqwestHttp>,
    name: &str,
    tags: &[&str],
    user_data: &str,
) -> ScalewayServer {
    client
        .create_server(&create_request(name, tags, user_data))
        .await
        .unwrap()
}

/// The servers in `zone` that carry every one of `tags`.
async fn list(
    client: &ScalewayClient<ReqwestHttp>,
    zone: &str,
    tags: &[&str],
) -> Vec<ScalewayServer> {
    client.list_servers(zone, &owned(tags)).await.unwrap()
}

async fn is_gone(client: &ScalewayClient<ReqwestHttp>, zone: &str, id: &str) -> bool {
    client.get_server(zone, id).await.unwrap().is_none()
}

async fn delete(client: &ScalewayClient<ReqwestHttp>, zone: &str, id: &str) -> DeleteOutcome {
    client.delete_server(zone, id).await.unwrap()
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

    cloud.scaleway().validate_token().await.unwrap();

    let err = cloud
        .scaleway_with(WRONG_SECRET, PROJECT)
        .validate_token()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert_eq!(err.status, Some(401));
    assert_eq!(err.code, "denied_authentication");

    let err = cloud
        .scaleway_with(SECRET, OTHER_PROJECT)
        .validate_token()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert_eq!(err.status, Some(403));
    assert_eq!(err.code, "permissions_denied");

    // Neither the Hetzner token opens Scaleway routes, nor the Scaleway key
    // Hetzner's.
    let (status, body) = cloud.get("/instance/v1/zones/fr-par-1/servers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], "denied_authentication");
    let hetzner = cloud
        .request(Method::GET, "/v1/servers")
        .header("x-auth-token", SECRET);
    let (_, body) = decode(send_json(hetzner, None).await).await;
    assert_eq!(body["error"]["code"], "unauthorized");
    cloud.stop().await;
}

#[tokio::test]
async fn without_a_configured_key_every_scaleway_route_is_401() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), false).await;
    let err = cloud.scaleway().validate_token().await.unwrap_err();
    assert_eq!((err.kind, err.status), (ProviderErrorKind::Auth, Some(401)));
    for path in ["/zones/fr-par-1/servers", "/nothing/here"] {
        let request = cloud
            .request(Method::GET, &format!("/instance/v1{path}"))
            .header("x-auth-token", "");
        let (status, body) = decode(send_json(request, None).await).await;
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
    let client = cloud.scaleway();
    let user_data = agent_user_data(&format!("http://127.0.0.1:{files_port}/agent"));

    let created = create(&client, "sam-node-1", &["sam", "sam-node=01J0"], &user_data).await;
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
        .instance_get(&format!("/zones/fr-par-2/servers/{}/user_data", created.id))
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
    let found = list(&client, "fr-par-2", &["sam-node=01J0", "sam"]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created.id);
    assert_eq!(found[0].state, "running");
    assert_eq!(list(&client, "fr-par-2", &["sam"]).await.len(), 1);
    assert!(
        list(&client, "fr-par-2", &["sam-node=other"])
            .await
            .is_empty()
    );
    assert!(list(&client, "fr-par-1", &[]).await.is_empty());
    // Zones are separate namespaces.
    assert!(is_gone(&client, "fr-par-1", &created.id).await);

    // Running → terminate: gone at once, the agent shortly after.
    assert_eq!(
        delete(&client, "fr-par-2", &created.id).await,
        DeleteOutcome::Deleted
    );
    assert!(is_gone(&client, "fr-par-2", &created.id).await);
    wait_until(Duration::from_secs(10), "agent to exit", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    assert_eq!(
        delete(&client, "fr-par-2", &created.id).await,
        DeleteOutcome::AlreadyGone
    );
    assert!(list(&client, "fr-par-2", &[]).await.is_empty());
    // The root volume went with the server.
    let (status, _) = cloud
        .instance_get(&format!(
            "/zones/fr-par-2/volumes/{}",
            volume_of(&created.id)
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cloud.stop().await;
}

#[tokio::test]
async fn a_stopped_server_is_deleted_with_its_volume() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    // Created but never powered on, as when `create_server` fails halfway.
    let (status, body) = cloud
        .instance_post(
            "/zones/nl-ams-1/servers",
            json!({
                "name": "half-made",
                "commercial_type": "GP1-XS",
                "image": "ubuntu_noble",
                "project": PROJECT,
                "tags": ["sam-node=01J1"],
            }),
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
        .instance_post(
            &format!("/zones/nl-ams-1/servers/{id}/action"),
            json!({"action": "terminate"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"type": "invalid_request_error", "message": "server should be running"})
    );
    let (status, _) = cloud
        .instance_delete(&format!("/zones/nl-ams-1/volumes/{volume}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let client = cloud.scaleway();
    let found = list(&client, "nl-ams-1", &["sam-node=01J1"]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]
            .public_ip
            .as_deref()
            .map(|ip| ip.starts_with("127.")),
        Some(true)
    );
    assert_eq!(
        delete(&client, "nl-ams-1", &id).await,
        DeleteOutcome::Deleted
    );
    let (status, body) = cloud
        .instance_get(&format!("/zones/nl-ams-1/volumes/{volume}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "volume leaked: {body}");
    assert_eq!(
        delete(&client, "nl-ams-1", &id).await,
        DeleteOutcome::AlreadyGone
    );
    cloud.stop().await;
}

#[tokio::test]
async fn delete_leaves_the_volume_when_called_raw() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let (_, body) = cloud
        .instance_post(
            "/zones/pl-waw-1/servers",
            json!({"name": "raw", "commercial_type": "DEV1-M", "image": "debian_bookworm"}),
        )
        .await;
    let id = body["server"]["id"].as_str().unwrap().to_owned();
    let volume = body["server"]["volumes"]["0"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = cloud
        .instance_delete(&format!("/zones/pl-waw-1/servers/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = cloud
        .instance_get(&format!("/zones/pl-waw-1/volumes/{volume}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["volume"]["state"], "available");
    assert_eq!(body["volume"]["server"], Value::Null);
    let (status, _) = cloud
        .instance_delete(&format!("/zones/pl-waw-1/volumes/{volume}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    cloud.stop().await;
}

// ---- Power state rules and their classification ----

#[tokio::test]
async fn servers_between_states_are_transient_and_running_ones_refuse_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.scaleway();
    let created = create(&client, "power", &["p"], "#cloud-config\n").await;
    let id = created.id;
    cloud.wait_state("fr-par-2", &id, "running").await;

    // Raw DELETE on a running server: Scaleway's precondition error.
    let (status, body) = cloud
        .instance_delete(&format!("/zones/fr-par-2/servers/{id}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "server should be stopped");

    // Power off, then delete through the client (stopped path).
    let (status, body) = cloud
        .instance_post(
            &format!("/zones/fr-par-2/servers/{id}/action"),
            json!({"action": "poweroff"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["task"]["description"], "server_poweroff");
    cloud.wait_state("fr-par-2", &id, "stopped").await;
    assert_eq!(
        delete(&client, "fr-par-2", &id).await,
        DeleteOutcome::Deleted
    );

    // A server that is starting cannot be deleted yet: retryable.
    let slow_dir = tempfile::tempdir().unwrap();
    let slow = Cloud::start_with(slow_dir.path(), true, Duration::from_secs(30)).await;
    let slow_client = slow.scaleway();
    let starting = create(&slow_client, "slow", &[], "").await;
    let err = slow_client
        .delete_server("fr-par-2", &starting.id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ProviderErrorKind::Transient, "server_busy")
    );
    assert!(err.is_retryable());
    slow.stop().await;
    cloud.stop().await;
}

#[tokio::test]
async fn errors_come_in_scaleway_shape_and_classify() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.scaleway();

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

    let foreign = cloud.scaleway_with(SECRET, OTHER_PROJECT);
    let err = foreign
        .create_server(&create_request("x", &[], ""))
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.status), (ProviderErrorKind::Auth, Some(403)));

    // Nothing was created by any of those.
    assert!(list(&client, "fr-par-2", &[]).await.is_empty());

    let (status, body) = cloud.instance_get("/zones/fr-par-1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "not_found");
    let (status, body) = cloud
        .instance(
            Method::PATCH,
            "/zones/fr-par-1/servers/5ca1e001-0000-4000-8000-000000000001/user_data/cloud-init",
            Some(json!({"not": "text"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "invalid_arguments");
    let (status, body) = cloud.instance_get("/zones/fr-par-1/products/servers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["servers"]["DEV1-S"]["ncpus"], 2);
    cloud.stop().await;
}

// ---- Isolation from the Hetzner API, persistence ----

#[tokio::test]
async fn hetzner_and_scaleway_servers_do_not_see_each_other_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.scaleway();
    let scw = create(&client, "same-name", &["keep"], "#cloud-config\n").await;
    let (status, body) = cloud
        .post(
            "/v1/servers",
            json!({
                "name": "same-name",
                "server_type": "cx23",
                "image": "ubuntu-24.04",
                "location": "fsn1",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hetzner_id = body["server"]["id"].as_u64().unwrap();

    let ids: Vec<u64> = cloud.get("/v1/servers").await.1["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [hetzner_id]);
    let (status, _) = cloud
        .get(&format!("/v1/servers/{}", internal_id(&scw.id)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = list(&client, "fr-par-2", &[]).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, scw.id);

    cloud.wait_state("fr-par-2", &scw.id, "running").await;
    cloud.stop().await;

    let cloud = Cloud::start(dir.path(), true).await;
    let client = cloud.scaleway();
    let again = client
        .get_server("fr-par-2", &scw.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.tags, ["keep"]);
    assert_eq!(again.public_ip, scw.public_ip);
    cloud.wait_state("fr-par-2", &scw.id, "running").await;
    assert_eq!(
        delete(&client, "fr-par-2", &scw.id).await,
        DeleteOutcome::Deleted
    );
    cloud.stop().await;
}

// ---- The binary's flags ----

#[tokio::test]
async fn cli_flags_configure_the_scaleway_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_devcloud(
        dir.path(),
        &[
            "--token",
            "t1",
            "--boot-delay-ms",
            "10",
            "--scaleway-secret-key",
            SECRET,
            "--scaleway-project-id",
            PROJECT,
        ],
    )
    .await;
    let client = |secret: &str| {
        ScalewayClient::new(ReqwestHttp(reqwest::Client::new()), &base, secret, PROJECT)
    };
    client(SECRET).validate_token().await.unwrap();
    let err = client(WRONG_SECRET).validate_token().await.unwrap_err();
    assert_eq!(err.status, Some(401));
    child.kill().await.unwrap();

    // One flag without the other is a usage error.
    let status = devcloud_exit_status(
        dir.path(),
        &["--token", "t1", "--scaleway-secret-key", SECRET],
    )
    .await;
    assert_eq!(status.code(), Some(2));
}
