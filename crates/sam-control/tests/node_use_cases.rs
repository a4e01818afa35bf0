//! Node use cases on real SQLite (the repository's migrations), with the
//! cloud provider and the boot log faked at the edge.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use futures::executor::block_on;
use sam_auth::{Audience, SigningKey, Verifier};
use sam_control::{
    BootLog, ControlError, NodeSettings, ServerProvider, create_node, delete_node,
    record_heartbeat, record_ready,
};
use sam_domain::node::BootPhase;
use sam_providers::{CreateServer, DeleteOutcome, ProviderError, ProviderErrorKind, Server};
use sam_store::sqlite::Sqlite;
use sam_store::{NodeRepository, UserRepository};
use sam_wire::{CreateNodeRequest, HeartbeatRequest, NodeMetrics};

const NOW: i64 = 1_800_000_000_000;
const CP: &str = "http://api.localhost:8787";

/// A cloud that records calls and fails on demand.
#[derive(Default)]
struct FakeCloud {
    created: RefCell<Vec<CreateServer>>,
    deleted: RefCell<Vec<String>>,
    fail_create: Option<ProviderError>,
    fail_delete: RefCell<Option<ProviderError>>,
}

impl ServerProvider for FakeCloud {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        if let Some(e) = &self.fail_create {
            return Err(e.clone());
        }
        self.created.borrow_mut().push(req.clone());
        Ok(Server {
            id: "4242".into(),
            name: req.name.clone(),
            status: "initializing".into(),
            ipv4: Some("127.1.0.9".into()),
            labels: req.labels.clone(),
            created: "2027-01-15T08:00:00Z".into(),
        })
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        if let Some(e) = self.fail_delete.borrow_mut().take() {
            return Err(e);
        }
        self.deleted.borrow_mut().push(id.to_owned());
        Ok(DeleteOutcome::Deleted)
    }
}

#[derive(Default)]
struct RecordedBootLog(RefCell<Vec<(String, BootPhase)>>);

impl BootLog for RecordedBootLog {
    async fn started(&self, node_id: &str, _created_at: i64, _deadline: i64) -> Result<(), String> {
        self.0
            .borrow_mut()
            .push((node_id.to_owned(), BootPhase::Requested));
        Ok(())
    }

    async fn record(
        &self,
        node_id: &str,
        _at: i64,
        phase: BootPhase,
        _detail: Option<&str>,
    ) -> Result<(), String> {
        self.0.borrow_mut().push((node_id.to_owned(), phase));
        Ok(())
    }
}

fn settings() -> NodeSettings {
    NodeSettings {
        control_plane_url: CP.into(),
        heartbeat_interval_secs: 60,
        vm_agent_port: 8443,
        boot_timeout_ms: 900_000,
        callback_token_ttl_secs: 3600,
        max_nodes_per_user: 2,
        heartbeat_stale_ms: 180_000,
        image: "ubuntu-24.04".into(),
    }
}

fn request() -> CreateNodeRequest {
    CreateNodeRequest {
        provider: "hetzner".into(),
        size: "medium".into(),
        location: None,
        name: None,
    }
}

fn provider_error(kind: ProviderErrorKind, code: &str) -> ProviderError {
    ProviderError {
        kind,
        status: Some(422),
        code: code.into(),
        message: "nope".into(),
        retry_after_secs: None,
    }
}

fn setup() -> (Sqlite, SigningKey) {
    let db = Sqlite::with_repo_migrations();
    block_on(UserRepository::new(&db).upsert_by_login("U1", "alice", NOW)).unwrap();
    (db, SigningKey::from_seed([3; 32]))
}

#[test]
fn create_boot_heartbeat_delete() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create_node(
            &db,
            &cloud,
            &log,
            &key,
            &settings(),
            "U1",
            &request(),
            NOW,
            7,
        )
        .await
        .unwrap();
        assert_eq!(node.status, "creating");
        assert_eq!(node.provider_server_id.as_deref(), Some("4242"));

        // What reached the provider: our labels, and user-data whose only secret
        // is a callback token scoped to this node.
        let created = cloud.created.borrow()[0].clone();
        assert_eq!(created.server_type, "cx33");
        assert_eq!(created.labels["sam-node"], node.id);
        assert_eq!(created.labels["sam-managed"], "true");
        let token_line = created
            .user_data
            .lines()
            .skip_while(|l| !l.contains("/etc/sam/callback-token"))
            .find(|l| l.contains("eyJ"))
            .unwrap();
        let token = token_line
            .split_whitespace()
            .last()
            .unwrap()
            .trim_matches('\'');
        let claims = Verifier::for_key(CP, &key)
            .verify(token, Audience::NodeCallback, NOW)
            .unwrap();
        assert_eq!(claims.node, node.id);

        let beat = HeartbeatRequest {
            agent_version: "1.0".into(),
            metrics: NodeMetrics::default(),
        };
        let early = record_heartbeat(&db, &node.id, &beat, NOW + 1)
            .await
            .unwrap_err();
        assert_eq!(early.code(), "node_not_running");
        record_ready(&db, &log, &node.id, "1.0", NOW + 2)
            .await
            .unwrap();
        record_heartbeat(&db, &node.id, &beat, NOW + 3)
            .await
            .unwrap();

        let deleted = delete_node(&db, &cloud, &log, "U1", &node.id, NOW + 4)
            .await
            .unwrap();
        assert_eq!(deleted.status, "deleted");
        assert_eq!(*cloud.deleted.borrow(), ["4242"]);
        // Idempotent: a second delete neither fails nor calls the provider.
        delete_node(&db, &cloud, &log, "U1", &node.id, NOW + 5)
            .await
            .unwrap();
        assert_eq!(cloud.deleted.borrow().len(), 1);
        // A late agent cannot bring it back.
        let late = record_ready(&db, &log, &node.id, "1.0", NOW + 6)
            .await
            .unwrap_err();
        assert_eq!(late.code(), "node_deleted");

        let phases: Vec<BootPhase> = log.0.borrow().iter().map(|(_, p)| *p).collect();
        assert_eq!(
            phases,
            [
                BootPhase::Requested,
                BootPhase::ProviderCreated,
                BootPhase::AgentReady,
                BootPhase::DeleteRequested,
                BootPhase::Deleted
            ]
        );
    });
}

#[test]
fn provider_refusal_leaves_error_with_reason() {
    let (db, key) = setup();
    let cloud = FakeCloud {
        fail_create: Some(provider_error(
            ProviderErrorKind::InvalidConfig,
            "invalid_input",
        )),
        ..FakeCloud::default()
    };
    let log = RecordedBootLog::default();
    block_on(async {
        let err = create_node(
            &db,
            &cloud,
            &log,
            &key,
            &settings(),
            "U1",
            &request(),
            NOW,
            7,
        )
        .await
        .unwrap_err();
        assert_eq!((err.status(), err.code()), (502, "provider_create_failed"));
        let ControlError::ProviderCreate { node_id, .. } = err else {
            panic!()
        };
        let node = NodeRepository::new(&db)
            .get(&node_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(node.status, "error");
        assert!(node.error_message.unwrap().contains("invalid_input"));
    });
}

#[test]
fn failed_provider_delete_stays_deleting_and_retry_finishes() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create_node(
            &db,
            &cloud,
            &log,
            &key,
            &settings(),
            "U1",
            &request(),
            NOW,
            7,
        )
        .await
        .unwrap();
        *cloud.fail_delete.borrow_mut() =
            Some(provider_error(ProviderErrorKind::Transient, "http_503"));
        let err = delete_node(&db, &cloud, &log, "U1", &node.id, NOW + 1)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "provider_delete_failed");
        let stuck = NodeRepository::new(&db)
            .get(&node.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stuck.status, "deleting");
        let done = delete_node(&db, &cloud, &log, "U1", &node.id, NOW + 2)
            .await
            .unwrap();
        assert_eq!(done.status, "deleted");
    });
}

#[test]
fn quota_and_ownership_are_enforced() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        for i in 0..2 {
            create_node(
                &db,
                &cloud,
                &log,
                &key,
                &settings(),
                "U1",
                &request(),
                NOW + i,
                7,
            )
            .await
            .unwrap();
        }
        let err = create_node(
            &db,
            &cloud,
            &log,
            &key,
            &settings(),
            "U1",
            &request(),
            NOW + 5,
            7,
        )
        .await
        .unwrap_err();
        assert_eq!((err.status(), err.code()), (429, "node_quota_exceeded"));
        let node = NodeRepository::new(&db)
            .list_owned("U1")
            .await
            .unwrap()
            .remove(0);
        UserRepository::new(&db)
            .upsert_by_login("U2", "mallory", NOW)
            .await
            .unwrap();
        let err = delete_node(&db, &cloud, &log, "U2", &node.id, NOW + 6)
            .await
            .unwrap_err();
        assert_eq!((err.status(), err.code()), (404, "not_found"));
    });
}
