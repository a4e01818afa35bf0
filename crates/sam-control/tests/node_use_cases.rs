//! Node use cases on real SQLite (the repository's migrations), with the
//! cloud provider and the boot log faked at the edge.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use futures::executor::block_on;
use sam_auth::{Audience, SigningKey, Verifier};
use sam_control::RetryRuntime;
use sam_control::retry::CreateRetryPolicy;
use sam_control::sweep::{
    SweepReport, SweepSettings, clean_up_failed_nodes, destroy_orphans, expire_old_nodes,
    fail_overdue_boots, fail_silent_nodes,
};
use sam_control::{
    BootLog, ControlError, NodeSettings, ServerProvider, create_node, delete_node,
    record_heartbeat, record_ready,
};
use sam_domain::node::{BootPhase, NodeStatus};
use sam_providers::{CreateServer, DeleteOutcome, ProviderError, ProviderErrorKind, Server};
use sam_store::sqlite::Sqlite;
use sam_store::{NodeRepository, UserRepository};
use sam_wire::{CreateNodeRequest, HeartbeatRequest, NodeMetrics};

const NOW: i64 = 1_800_000_000_000;
const CP: &str = "http://api.localhost:8787";

/// A cloud that records calls and fails on demand.
#[derive(Default)]
struct FakeCloud<'a> {
    created: RefCell<Vec<CreateServer>>,
    deleted: RefCell<Vec<String>>,
    fail_create: Option<ProviderError>,
    /// Failures for the next create calls, in order; `(error, true)` fails
    /// after creating the server anyway (a 5xx after the work was done).
    scripted_create_failures: RefCell<Vec<(ProviderError, bool)>>,
    fail_delete: RefCell<Option<ProviderError>>,
    /// While a server is being created, delete its node in this database
    /// (a user's DELETE racing the create).
    delete_node_during_create: Option<&'a Sqlite>,
}

fn server_id(index: usize) -> String {
    format!("{}", 4242 + index)
}

impl ServerProvider for FakeCloud<'_> {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        if let Some(e) = &self.fail_create {
            return Err(e.clone());
        }
        let scripted = {
            let mut failures = self.scripted_create_failures.borrow_mut();
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        if let Some((error, after_effect)) = scripted {
            if after_effect {
                self.created.borrow_mut().push(req.clone());
            }
            return Err(error);
        }
        if let Some(db) = self.delete_node_during_create {
            let nodes = NodeRepository::new(db);
            let id = &req.labels["sam-node"];
            assert!(
                nodes
                    .transition(id, NodeStatus::Creating, NodeStatus::Deleting, NOW, None)
                    .await
                    .unwrap()
            );
            assert!(
                nodes
                    .transition(id, NodeStatus::Deleting, NodeStatus::Deleted, NOW, None)
                    .await
                    .unwrap()
            );
        }
        let mut created = self.created.borrow_mut();
        created.push(req.clone());
        Ok(Server {
            id: server_id(created.len() - 1),
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

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        let deleted = self.deleted.borrow();
        Ok(self
            .created
            .borrow()
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                !deleted.contains(&server_id(*i))
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .map(|(i, s)| Server {
                id: server_id(i),
                name: s.name.clone(),
                status: "running".into(),
                ipv4: None,
                labels: s.labels.clone(),
                created: String::new(),
            })
            .collect())
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
        deployment: "test-deploy".into(),
        create_retry: CreateRetryPolicy::default(),
    }
}

/// Records the pauses retries ask for instead of waiting.
#[derive(Default)]
struct NoWait(RefCell<Vec<u64>>);

impl RetryRuntime for NoWait {
    async fn pause(&self, ms: u64) {
        self.0.borrow_mut().push(ms);
    }

    fn jitter(&self) -> f64 {
        0.5
    }
}

#[test]
fn rate_limits_are_retried_honouring_retry_after() {
    let (db, key) = setup();
    let mut limited = provider_error(ProviderErrorKind::RateLimited, "rate_limit_exceeded");
    limited.retry_after_secs = Some(2);
    let cloud = FakeCloud {
        scripted_create_failures: RefCell::new(vec![
            (limited.clone(), false),
            (
                provider_error(ProviderErrorKind::Transient, "unavailable"),
                false,
            ),
        ]),
        ..FakeCloud::default()
    };
    let log = RecordedBootLog::default();
    let pauses = NoWait::default();
    block_on(async {
        let node = create_node(
            &db,
            &cloud,
            &pauses,
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
        assert_eq!(cloud.created.borrow().len(), 1);
        let waited = pauses.0.borrow().clone();
        assert_eq!(waited.len(), 2);
        assert!(waited[0] >= 2_000, "Retry-After is a floor: {waited:?}");
        let retries = log
            .0
            .borrow()
            .iter()
            .filter(|(_, phase)| *phase == BootPhase::ProviderRetrying)
            .count();
        assert_eq!(retries, 2);
    });
}

#[test]
fn a_location_out_of_capacity_falls_back_to_the_next() {
    let (db, key) = setup();
    let cloud = FakeCloud {
        scripted_create_failures: RefCell::new(vec![(
            provider_error(ProviderErrorKind::Capacity, "resource_unavailable"),
            false,
        )]),
        ..FakeCloud::default()
    };
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        let placed = cloud.created.borrow()[0].location.clone();
        assert_ne!(placed, "fsn1");
        assert_eq!(node.location, placed);
        let stored = NodeRepository::new(&db)
            .get(&node.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.location, placed);
    });
}

#[test]
fn a_create_that_failed_after_creating_is_adopted_not_repeated() {
    let (db, key) = setup();
    let cloud = FakeCloud {
        scripted_create_failures: RefCell::new(vec![(
            provider_error(ProviderErrorKind::Transient, "server_error"),
            true,
        )]),
        ..FakeCloud::default()
    };
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        assert_eq!(
            cloud.created.borrow().len(),
            1,
            "a second server was created"
        );
        assert_eq!(node.provider_server_id, Some(server_id(0)));
    });
}

fn sweep_settings() -> SweepSettings {
    SweepSettings {
        deployment: "test-deploy".into(),
        boot_timeout_ms: settings().boot_timeout_ms,
        heartbeat_stale_ms: settings().heartbeat_stale_ms,
        orphan_grace_ms: 60_000,
        max_lifetime_ms: 24 * 3_600_000,
        error_retention_ms: 3_600_000,
    }
}

/// A server some earlier run left behind, labelled for `deployment` and `node`.
fn stray_server(cloud: &FakeCloud<'_>, deployment: &str, node: &str) -> String {
    let mut created = cloud.created.borrow_mut();
    let template = created[0].clone();
    created.push(CreateServer {
        name: format!("stray-{node}"),
        labels: BTreeMap::from([
            ("sam-managed".to_owned(), "true".to_owned()),
            ("sam-node".to_owned(), node.to_owned()),
            ("sam-deployment".to_owned(), deployment.to_owned()),
        ]),
        ..template
    });
    server_id(created.len() - 1)
}

#[test]
fn sweep_destroys_only_this_deployments_orphans() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        let live = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        let gone = create(&db, &cloud, &log, &key, NOW + 1).await.unwrap();
        // A node deleted in D1 whose server delete never reached the provider.
        let nodes = NodeRepository::new(&db);
        assert!(
            nodes
                .transition(
                    &gone.id,
                    NodeStatus::Creating,
                    NodeStatus::Deleting,
                    NOW,
                    None
                )
                .await
                .unwrap()
        );
        assert!(
            nodes
                .transition(
                    &gone.id,
                    NodeStatus::Deleting,
                    NodeStatus::Deleted,
                    NOW,
                    None
                )
                .await
                .unwrap()
        );
        let unknown = stray_server(&cloud, "test-deploy", "01UNKNOWNNODE000000000000");
        let foreign = stray_server(&cloud, "staging", "01UNKNOWNNODE000000000000");

        let mut report = SweepReport::default();
        destroy_orphans(&db, &cloud, &sweep_settings(), NOW + 120_000, &mut report)
            .await
            .unwrap();
        let deleted = cloud.deleted.borrow().clone();
        assert!(
            deleted.contains(&gone.provider_server_id.clone().unwrap()),
            "{deleted:?}"
        );
        assert!(deleted.contains(&unknown), "{deleted:?}");
        assert!(
            !deleted.contains(&foreign),
            "another deployment's server was touched"
        );
        assert!(!deleted.contains(&live.provider_server_id.clone().unwrap()));
        assert_eq!(
            (report.servers_seen, report.orphans_destroyed),
            (3, 2),
            "{report:?}"
        );

        // A second sweep finds nothing more to do.
        let mut again = SweepReport::default();
        destroy_orphans(&db, &cloud, &sweep_settings(), NOW + 180_000, &mut again)
            .await
            .unwrap();
        assert_eq!(again.orphans_destroyed, 0);

        // A provider that fails is reported, not fatal.
        *cloud.fail_delete.borrow_mut() =
            Some(provider_error(ProviderErrorKind::Transient, "unavailable"));
        stray_server(&cloud, "test-deploy", "01UNKNOWNNODE000000000001");
        let mut failing = SweepReport::default();
        destroy_orphans(&db, &cloud, &sweep_settings(), NOW + 240_000, &mut failing)
            .await
            .unwrap();
        assert_eq!(failing.failures.len(), 1, "{failing:?}");
    });
}

#[test]
fn sweep_fails_overdue_boots_and_expires_old_nodes() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        let s = sweep_settings();
        let mut early = SweepReport::default();
        fail_overdue_boots(&db, &log, &s, NOW + s.boot_timeout_ms - 1, &mut early)
            .await
            .unwrap();
        assert_eq!(early.boots_failed, 0);
        let mut late = SweepReport::default();
        fail_overdue_boots(&db, &log, &s, NOW + s.boot_timeout_ms + 1, &mut late)
            .await
            .unwrap();
        assert_eq!(late.boots_failed, 1);
        let stored = NodeRepository::new(&db)
            .get(&node.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, "error");

        // A failed node is kept for the user to see, then deleted with its server.
        let mut kept = SweepReport::default();
        clean_up_failed_nodes(
            &db,
            &cloud,
            &log,
            "U1",
            &s,
            NOW + s.boot_timeout_ms + 2,
            &mut kept,
        )
        .await
        .unwrap();
        assert_eq!(kept.nodes_cleaned_up, 0);
        let failed_later = NOW + s.boot_timeout_ms + 1 + s.error_retention_ms + 1;
        let mut cleaned = SweepReport::default();
        clean_up_failed_nodes(&db, &cloud, &log, "U1", &s, failed_later, &mut cleaned)
            .await
            .unwrap();
        assert_eq!(cleaned.nodes_cleaned_up, 1, "{cleaned:?}");
        let stored = NodeRepository::new(&db)
            .get(&node.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, "deleted");
        let born = NOW + 10;
        let node = create(&db, &cloud, &log, &key, born).await.unwrap();

        // Past the maximum lifetime the node is deleted with its server.
        let mut expiry = SweepReport::default();
        expire_old_nodes(
            &db,
            &cloud,
            &log,
            "U1",
            &s,
            born + s.max_lifetime_ms - 1,
            &mut expiry,
        )
        .await
        .unwrap();
        assert_eq!(expiry.nodes_expired, 0);
        expire_old_nodes(
            &db,
            &cloud,
            &log,
            "U1",
            &s,
            born + s.max_lifetime_ms + 1,
            &mut expiry,
        )
        .await
        .unwrap();
        assert_eq!(expiry.nodes_expired, 1);
        let stored = NodeRepository::new(&db)
            .get(&node.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, "deleted");
        assert!(
            cloud
                .deleted
                .borrow()
                .contains(&node.provider_server_id.unwrap())
        );
    });
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

/// `create_node` for user U1 with the standard settings and request.
async fn create(
    db: &Sqlite,
    cloud: &FakeCloud<'_>,
    log: &RecordedBootLog,
    key: &SigningKey,
    now: i64,
) -> Result<sam_store::NodeRecord, ControlError> {
    create_node(
        db,
        cloud,
        &NoWait::default(),
        log,
        key,
        &settings(),
        "U1",
        &request(),
        now,
        7,
    )
    .await
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
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        assert_eq!(node.status, "creating");
        assert_eq!(node.provider_server_id, Some(server_id(0)));

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
        assert_eq!(claims.expires_at_ms, NOW + 3_600_000);

        let beat = HeartbeatRequest {
            agent_version: "1.0".into(),
            metrics: NodeMetrics::default(),
        };
        let early = record_heartbeat(&db, &key, &settings(), &claims, &beat, NOW + 1)
            .await
            .unwrap_err();
        assert_eq!(early.code(), "node_not_running");
        record_ready(&db, &log, &node.id, "1.0", NOW + 2)
            .await
            .unwrap();
        // A young token is kept; one past half its lifetime is renewed.
        let kept = record_heartbeat(&db, &key, &settings(), &claims, &beat, NOW + 3).await;
        assert_eq!(kept.unwrap(), None);
        let later = NOW + 1_900_000;
        let fresh = record_heartbeat(&db, &key, &settings(), &claims, &beat, later)
            .await
            .unwrap()
            .unwrap();
        let renewed = Verifier::for_key(CP, &key)
            .verify(&fresh, Audience::NodeCallback, later)
            .unwrap();
        assert_eq!(renewed.node, node.id);
        assert_eq!(renewed.expires_at_ms, later + 3_600_000);

        let deleted = delete_node(&db, &cloud, &log, "U1", &node.id, NOW + 4)
            .await
            .unwrap();
        assert_eq!(deleted.status, "deleted");
        assert_eq!(*cloud.deleted.borrow(), [server_id(0)]);
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
        let err = create(&db, &cloud, &log, &key, NOW).await.unwrap_err();
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
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
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
            create(&db, &cloud, &log, &key, NOW + i).await.unwrap();
        }
        let err = create(&db, &cloud, &log, &key, NOW + 5).await.unwrap_err();
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

#[test]
fn a_server_created_for_a_node_deleted_meanwhile_is_deleted_at_once() {
    let (db, key) = setup();
    let cloud = FakeCloud {
        delete_node_during_create: Some(&db),
        ..FakeCloud::default()
    };
    let log = RecordedBootLog::default();
    block_on(async {
        let err = create(&db, &cloud, &log, &key, NOW).await.unwrap_err();
        assert_eq!(err.code(), "node_deleted");
        assert_eq!(
            *cloud.deleted.borrow(),
            [server_id(0)],
            "no orphaned server"
        );
    });
}

#[test]
fn delete_finds_servers_by_label_when_no_id_was_recorded() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        // As if the provider's reply had been lost: the server exists, its id is not recorded.
        db_forget_server(&db, &node.id).await;
        let deleted = delete_node(&db, &cloud, &log, "U1", &node.id, NOW + 1)
            .await
            .unwrap();
        assert_eq!(deleted.status, "deleted");
        assert_eq!(*cloud.deleted.borrow(), [server_id(0)]);
    });
}

/// Clears a node's recorded server id (a lost provider reply).
async fn db_forget_server(db: &Sqlite, id: &str) {
    use sam_store::SqlDatabase as _;
    db.execute(
        "UPDATE nodes SET provider_server_id = NULL WHERE id = ?",
        &[id.into()],
    )
    .await
    .unwrap();
}

#[test]
fn sweep_fails_running_nodes_whose_agent_went_silent() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    block_on(async {
        let node = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        let nodes = NodeRepository::new(&db);
        assert!(
            nodes
                .mark_ready(&node.id, "0.1.0", NOW + 1_000)
                .await
                .unwrap()
        );
        let s = sweep_settings();
        let mut fresh = SweepReport::default();
        fail_silent_nodes(&db, &s, NOW + 1_000 + s.heartbeat_stale_ms - 1, &mut fresh)
            .await
            .unwrap();
        assert_eq!(fresh.nodes_silent, 0);
        let mut silent = SweepReport::default();
        fail_silent_nodes(&db, &s, NOW + 1_000 + s.heartbeat_stale_ms + 1, &mut silent)
            .await
            .unwrap();
        assert_eq!(silent.nodes_silent, 1);
        let stored = nodes.get(&node.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "error");
        assert!(stored.error_message.unwrap().contains("heartbeats"));
    });
}

#[test]
fn a_whole_sweep_visits_each_account_once_and_each_owner_s_nodes() {
    let (db, key) = setup();
    let cloud = FakeCloud::default();
    let log = RecordedBootLog::default();
    let keys = sam_vault::CredentialKeys::parse(
        &sam_vault::CredentialKeys::generate_spec("k1", &[5; 32]).unwrap(),
    )
    .unwrap();
    block_on(async {
        UserRepository::new(&db)
            .upsert_by_login("U2", "bob", NOW)
            .await
            .unwrap();
        // Two users who gave the same cloud account.
        for (user, id) in [("U1", "C1"), ("U2", "C2")] {
            sam_control::credentials::store_cloud_credential(
                &db,
                &keys,
                user,
                "hetzner",
                "shared-token-0000",
                NOW,
                id,
                [1; 12],
            )
            .await
            .unwrap();
        }
        let failed = create(&db, &cloud, &log, &key, NOW).await.unwrap();
        // Failed nodes are cleaned up at once (no retention), as in the chaos test.
        let s = SweepSettings {
            error_retention_ms: 0,
            ..sweep_settings()
        };
        let orphan = stray_server(&cloud, "test-deploy", "01UNKNOWNNODE000000000002");
        let tokens = RefCell::new(Vec::new());
        // Past the boot deadline: the node fails and is cleaned up in the
        // same sweep; the orphan goes once.
        let now = NOW + s.boot_timeout_ms + 1;
        let report = sam_control::sweep::sweep(&db, &keys, &log, &s, now, |token| {
            tokens.borrow_mut().push(token);
            &cloud
        })
        .await
        .unwrap();
        assert_eq!(report.accounts_checked, 1, "{report:?}");
        assert_eq!(report.boots_failed, 1, "{report:?}");
        assert_eq!(report.orphans_destroyed, 1, "{report:?}");
        assert_eq!(report.nodes_cleaned_up, 1, "{report:?}");
        assert!(report.failures.is_empty(), "{report:?}");
        assert_eq!(*tokens.borrow(), ["shared-token-0000", "shared-token-0000"]);
        let deleted = cloud.deleted.borrow().clone();
        assert!(deleted.contains(&orphan));
        assert!(deleted.contains(&failed.provider_server_id.unwrap()));
        let stored = NodeRepository::new(&db)
            .get(&failed.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, "deleted");
    });
}
