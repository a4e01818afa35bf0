//! The node repository's SQL against real SQLite with the repository's real
//! D1 migrations: the lifecycle record round trip, compare-and-set writes,
//! the listing queries, the quota, the status constraint and the 0005
//! migration of legacy rows.

// Test helpers panic on setup failures: that is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use futures::executor::block_on;
use sam_domain::lifecycle::{Event, LifecycleConfig, LifecycleStatus, NodeState, apply, deadline};
use sam_store::sqlite::Sqlite;
use sam_store::{NodeRecord, NodeRepository, SqlDatabase, StoreError, UserRepository};

const CFG: LifecycleConfig = LifecycleConfig {
    boot_timeout_ms: 900_000,
    warm_timeout_ms: 300_000,
    max_lifetime_ms: 86_400_000,
    heartbeat_stale_ms: 180_000,
    destroy_backoff_base_ms: 1_000,
    destroy_backoff_max_ms: 300_000,
};

/// A node record carrying `state` (and its deadline under [`CFG`]).
fn record(id: &str, user: &str, state: &NodeState) -> NodeRecord {
    let mut n = NodeRecord {
        id: id.to_owned(),
        user_id: user.to_owned(),
        name: format!("dev-{id}"),
        provider: "hetzner".to_owned(),
        size: "small".to_owned(),
        location: "fsn1".to_owned(),
        server_type: "cx23".to_owned(),
        status: String::new(),
        version: 0,
        status_since: 0,
        deadline_at: None,
        claimed_by: None,
        project_id: None,
        warm_timeout_ms: None,
        error_message: None,
        destroy_attempts: 0,
        last_destroy_at: None,
        destroy_error: None,
        provider_server_id: None,
        ip_address: None,
        created_at: state.created_at,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        last_metrics: None,
        removed_at: None,
    };
    n.set_state(state, deadline(state, &CFG));
    n
}

fn step(state: &NodeState, event: &Event, now: i64) -> NodeState {
    apply(state, event, now, &CFG).unwrap()
}

fn created(id: &str) -> Event {
    Event::ServerCreated {
        server_id: id.to_owned(),
    }
}

fn claim(id: &str) -> Event {
    Event::Claim {
        claim_id: id.to_owned(),
    }
}

fn released(id: &str) -> Event {
    Event::Released {
        claim_id: id.to_owned(),
    }
}

/// A node in `status`, reached through real transitions from a creation
/// at `t0`: held by `user:U1` until released at `t0 + 30`.
fn state_at(status: LifecycleStatus, t0: i64) -> NodeState {
    let provisioning = NodeState::new(t0, Some("user:U1".into()));
    let booting = step(&provisioning, &created("42"), t0 + 10);
    let ready = step(&booting, &Event::AgentReady, t0 + 20);
    let warm = step(&ready, &released("user:U1"), t0 + 30);
    let destroying = step(&warm, &Event::DestroyRequested, t0 + 40);
    match status {
        LifecycleStatus::Provisioning => provisioning,
        LifecycleStatus::Booting => booting,
        LifecycleStatus::Ready => ready,
        LifecycleStatus::Warm => warm,
        LifecycleStatus::Destroying => destroying,
        LifecycleStatus::Destroyed => step(&destroying, &Event::ServerGone, t0 + 50),
        LifecycleStatus::Error => step(
            &booting,
            &Event::BootDeadlinePassed,
            t0 + CFG.boot_timeout_ms,
        ),
    }
}

fn setup() -> Sqlite {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        users.upsert_by_login("U1", "alice", 1).await.unwrap();
        users.upsert_by_login("U2", "bob", 1).await.unwrap();
    });
    db
}

async fn insert(db: &Sqlite, n: &NodeRecord) {
    assert!(
        NodeRepository::new(db)
            .insert_within_quota(n, 100)
            .await
            .unwrap(),
        "{} was not inserted",
        n.id
    );
}

fn ids(nodes: &[NodeRecord]) -> Vec<&str> {
    nodes.iter().map(|n| n.id.as_str()).collect()
}

#[test]
fn a_node_row_round_trips_its_lifecycle_record() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        let ready = state_at(LifecycleStatus::Ready, 1_000);
        let mut n = record("N1", "U1", &ready);
        n.project_id = Some("P1".into());
        n.warm_timeout_ms = Some(60_000);
        insert(&db, &n).await;

        let got = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(got, n, "every column round-trips");
        assert_eq!(got.state(), ready, "the state machine's record round-trips");
        assert_eq!(got.status(), LifecycleStatus::Ready);
        assert_eq!(got.status, "ready");
        assert_eq!(got.version, 2);
        assert_eq!(got.claimed_by.as_deref(), Some("user:U1"));
        assert_eq!(got.provider_server_id.as_deref(), Some("42"));
        assert_eq!(got.deadline_at, Some(1_020 + CFG.heartbeat_stale_ms));

        // Facts beside the state machine.
        nodes
            .record_address("N1", Some("127.1.0.2"), "nbg1")
            .await
            .unwrap();
        nodes.record_address("N1", None, "hel1").await.unwrap();
        nodes.record_agent("N1", "1.0", 1_020).await.unwrap();
        nodes.record_agent("N1", "1.1", 5_000).await.unwrap();
        nodes
            .record_metrics("N1", "1.2", r#"{"load_avg_1m":0.5}"#)
            .await
            .unwrap();
        nodes.record_project("N1", Some("P2"), None).await.unwrap();
        nodes.mark_removed("N1", 7_000).await.unwrap();
        nodes.mark_removed("N1", 8_000).await.unwrap();
        let got = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(
            got.ip_address.as_deref(),
            Some("127.1.0.2"),
            "a missing address keeps the known one"
        );
        assert_eq!(got.location, "hel1");
        assert_eq!(got.agent_ready_at, Some(1_020), "the first registration");
        assert_eq!(got.agent_version.as_deref(), Some("1.2"));
        assert_eq!(got.last_metrics.as_deref(), Some(r#"{"load_avg_1m":0.5}"#));
        assert_eq!(got.project_id.as_deref(), Some("P2"));
        assert_eq!(got.warm_timeout_ms, None, "back to the platform default");
        assert_eq!(got.removed_at, Some(7_000), "the first removal");
        assert_eq!(
            (got.version, got.state()),
            (2, ready),
            "facts do not touch the lifecycle record"
        );

        // An unknown status read from elsewhere shows as `error`.
        let odd = NodeRecord {
            status: "running".into(),
            ..got
        };
        assert_eq!(odd.status(), LifecycleStatus::Error);
    });
}

#[test]
fn save_state_writes_only_over_the_version_it_was_computed_from() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        let provisioning = NodeState::new(100, Some("user:U1".into()));
        insert(&db, &record("N1", "U1", &provisioning)).await;

        let booting = step(&provisioning, &created("42"), 110);
        assert_eq!(booting.version, 1);
        let due = deadline(&booting, &CFG);
        assert!(nodes.save_state("N1", 0, &booting, due).await.unwrap());
        let got = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(got.state(), booting);
        assert_eq!(got.deadline_at, Some(100 + CFG.boot_timeout_ms));

        // A writer that loaded version 0 is too late: nothing is written.
        let stale = step(&provisioning, &Event::DestroyRequested, 120);
        assert!(!nodes.save_state("N1", 0, &stale, None).await.unwrap());
        let got = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(got.state(), booting, "a stale version wrote something");
        assert_eq!(got.deadline_at, due);

        // Two claims computed from the same warm state: only the first lands.
        let ready = step(&booting, &Event::AgentReady, 130);
        assert!(
            nodes
                .save_state("N1", 1, &ready, deadline(&ready, &CFG))
                .await
                .unwrap()
        );
        let warm = step(&ready, &released("user:U1"), 140);
        assert!(
            nodes
                .save_state("N1", 2, &warm, deadline(&warm, &CFG))
                .await
                .unwrap()
        );
        let loaded = nodes.get("N1").await.unwrap().unwrap().state();
        let a = step(&loaded, &claim("task:a"), 150);
        let b = step(&loaded, &claim("task:b"), 150);
        assert_eq!((a.version, b.version), (4, 4));
        assert!(
            nodes
                .save_state("N1", loaded.version, &a, deadline(&a, &CFG))
                .await
                .unwrap()
        );
        assert!(
            !nodes
                .save_state("N1", loaded.version, &b, deadline(&b, &CFG))
                .await
                .unwrap()
        );
        let got = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(got.claimed_by.as_deref(), Some("task:a"));
        assert_eq!((got.status(), got.version), (LifecycleStatus::Ready, 4));
        // The loser reloads and applies again: refused.
        let err = apply(&got.state(), &claim("task:b"), 150, &CFG).unwrap_err();
        assert_eq!(err.code(), "node_not_claimable");

        // Destroyed: the deadline is cleared.
        let destroying = step(&got.state(), &Event::DestroyRequested, 160);
        let destroyed = step(&destroying, &Event::ServerGone, 170);
        assert!(
            nodes
                .save_state("N1", 4, &destroying, deadline(&destroying, &CFG))
                .await
                .unwrap()
        );
        assert!(nodes.save_state("N1", 5, &destroyed, None).await.unwrap());
        let got = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(
            (got.status.as_str(), got.version, got.deadline_at),
            ("destroyed", 6, None)
        );
        assert_eq!(got.destroy_attempts, 1);
        assert_eq!(got.last_destroy_at, Some(160));

        assert!(
            !nodes.save_state("NOPE", 0, &booting, due).await.unwrap(),
            "a missing node is not written"
        );
    });
}

#[test]
fn list_due_returns_overdue_nodes_most_overdue_first() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        // Deadlines: the boot deadline counts from creation.
        let at = |t0: i64| t0 + CFG.boot_timeout_ms;
        for (id, t0) in [("LATE", 300), ("FIRST", 100), ("SECOND", 200)] {
            insert(
                &db,
                &record(id, "U1", &state_at(LifecycleStatus::Booting, t0)),
            )
            .await;
        }
        let destroyed = state_at(LifecycleStatus::Destroyed, 0);
        insert(&db, &record("DONE", "U2", &destroyed)).await;
        assert_eq!(nodes.get("DONE").await.unwrap().unwrap().deadline_at, None);

        assert!(nodes.list_due(at(100) - 1, 10).await.unwrap().is_empty());
        assert_eq!(ids(&nodes.list_due(at(100), 10).await.unwrap()), ["FIRST"]);
        assert_eq!(
            ids(&nodes.list_due(at(200), 10).await.unwrap()),
            ["FIRST", "SECOND"]
        );
        assert_eq!(
            ids(&nodes.list_due(i64::MAX, 10).await.unwrap()),
            ["FIRST", "SECOND", "LATE"],
            "a destroyed node is never due"
        );
        assert_eq!(
            ids(&nodes.list_due(i64::MAX, 2).await.unwrap()),
            ["FIRST", "SECOND"]
        );
    });
}

#[test]
fn list_warm_owned_lists_the_owners_warm_nodes_most_recently_warmed_first() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        // Warmed at t0 + 30.
        insert(
            &db,
            &record("W1", "U1", &state_at(LifecycleStatus::Warm, 0)),
        )
        .await;
        insert(
            &db,
            &record("W3", "U1", &state_at(LifecycleStatus::Warm, 500)),
        )
        .await;
        // Same warm time as W3: the larger id first.
        insert(
            &db,
            &record("W2", "U1", &state_at(LifecycleStatus::Warm, 500)),
        )
        .await;
        insert(
            &db,
            &record("W4", "U1", &state_at(LifecycleStatus::Warm, 200)),
        )
        .await;
        insert(
            &db,
            &record("R", "U1", &state_at(LifecycleStatus::Ready, 900)),
        )
        .await;
        insert(
            &db,
            &record("B", "U1", &state_at(LifecycleStatus::Booting, 900)),
        )
        .await;
        insert(
            &db,
            &record("D", "U1", &state_at(LifecycleStatus::Destroyed, 900)),
        )
        .await;
        insert(
            &db,
            &record("OTHER", "U2", &state_at(LifecycleStatus::Warm, 900)),
        )
        .await;

        assert_eq!(
            ids(&nodes.list_warm_owned("U1").await.unwrap()),
            ["W3", "W2", "W4", "W1"]
        );
        assert_eq!(ids(&nodes.list_warm_owned("U2").await.unwrap()), ["OTHER"]);
        assert!(nodes.list_warm_owned("U3").await.unwrap().is_empty());

        // Claimed: no longer warm, no longer listed.
        let w3 = nodes.get("W3").await.unwrap().unwrap().state();
        let taken = step(&w3, &claim("task:1"), 600);
        assert!(
            nodes
                .save_state("W3", w3.version, &taken, deadline(&taken, &CFG))
                .await
                .unwrap()
        );
        assert_eq!(
            ids(&nodes.list_warm_owned("U1").await.unwrap()),
            ["W2", "W4", "W1"]
        );
    });
}

#[test]
fn list_owned_hides_only_nodes_that_were_removed_and_are_destroyed() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        insert(
            &db,
            &record("KEPT", "U1", &state_at(LifecycleStatus::Destroyed, 100)),
        )
        .await;
        let mut removing = record(
            "REMOVING",
            "U1",
            &state_at(LifecycleStatus::Destroying, 200),
        );
        removing.removed_at = Some(250);
        insert(&db, &removing).await;
        let mut removed = record("REMOVED", "U1", &state_at(LifecycleStatus::Destroyed, 300));
        removed.removed_at = Some(350);
        insert(&db, &removed).await;
        insert(
            &db,
            &record("FAILED", "U1", &state_at(LifecycleStatus::Error, 400)),
        )
        .await;
        insert(
            &db,
            &record("NEWEST", "U1", &state_at(LifecycleStatus::Ready, 500)),
        )
        .await;
        insert(
            &db,
            &record("BOBS", "U2", &state_at(LifecycleStatus::Ready, 600)),
        )
        .await;

        assert_eq!(
            ids(&nodes.list_owned("U1").await.unwrap()),
            ["NEWEST", "FAILED", "REMOVING", "KEPT"],
            "newest first; removed and destroyed is hidden"
        );
        assert_eq!(ids(&nodes.list_owned("U2").await.unwrap()), ["BOBS"]);

        // A removed node disappears once its destroy completes.
        let state = nodes.get("REMOVING").await.unwrap().unwrap().state();
        let gone = step(&state, &Event::ServerGone, 260);
        assert!(
            nodes
                .save_state("REMOVING", state.version, &gone, None)
                .await
                .unwrap()
        );
        assert_eq!(
            ids(&nodes.list_owned("U1").await.unwrap()),
            ["NEWEST", "FAILED", "KEPT"]
        );
        // Still there for callbacks and the sweep.
        assert!(nodes.get("REMOVED").await.unwrap().is_some());
    });
}

#[test]
fn the_quota_counts_nodes_that_are_not_destroyed_and_ownership_is_checked() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        let fresh =
            |id: &str, t0: i64| record(id, "U1", &NodeState::new(t0, Some("user:U1".into())));
        assert!(nodes.insert_within_quota(&fresh("A", 1), 2).await.unwrap());
        let failed = record("B", "U1", &state_at(LifecycleStatus::Error, 2));
        assert!(nodes.insert_within_quota(&failed, 2).await.unwrap());
        assert!(
            !nodes.insert_within_quota(&fresh("C", 3), 2).await.unwrap(),
            "an error node still owns a server and counts"
        );
        assert!(
            nodes.get("C").await.unwrap().is_none(),
            "nothing was written"
        );
        // Another user's quota is their own.
        let bobs = record("BOB1", "U2", &NodeState::new(3, Some("user:U2".into())));
        assert!(nodes.insert_within_quota(&bobs, 1).await.unwrap());

        // Once destroyed, a node no longer counts.
        let a = nodes.get("A").await.unwrap().unwrap().state();
        let destroying = step(&a, &Event::DestroyRequested, 4);
        assert!(
            nodes
                .save_state("A", a.version, &destroying, deadline(&destroying, &CFG))
                .await
                .unwrap()
        );
        assert!(
            !nodes.insert_within_quota(&fresh("C", 5), 2).await.unwrap(),
            "a destroying node still counts"
        );
        let destroyed = step(&destroying, &Event::ServerGone, 6);
        assert!(
            nodes
                .save_state("A", destroying.version, &destroyed, None)
                .await
                .unwrap()
        );
        assert!(nodes.insert_within_quota(&fresh("C", 7), 2).await.unwrap());
        assert!(!nodes.insert_within_quota(&fresh("D", 8), 2).await.unwrap());

        assert!(nodes.get_owned("U1", "C").await.unwrap().is_some());
        assert!(
            nodes.get_owned("U2", "C").await.unwrap().is_none(),
            "bob cannot see alice's node"
        );
        assert!(nodes.get_owned("U1", "BOB1").await.unwrap().is_none());
    });
}

#[test]
fn the_status_check_constraint_refuses_unknown_statuses() {
    let db = setup();
    block_on(async {
        let nodes = NodeRepository::new(&db);
        let base = record("N", "U1", &NodeState::new(1, None));
        for (i, status) in LifecycleStatus::ALL.into_iter().enumerate() {
            let n = NodeRecord {
                id: format!("OK{i}"),
                status: status.as_str().to_owned(),
                ..base.clone()
            };
            insert(&db, &n).await;
            assert_eq!(nodes.get(&n.id).await.unwrap().unwrap().status(), status);
        }
        // The old statuses are gone too.
        for (i, status) in ["creating", "running", "deleting", "deleted", "exploded", ""]
            .into_iter()
            .enumerate()
        {
            let n = NodeRecord {
                id: format!("BAD{i}"),
                status: status.to_owned(),
                ..base.clone()
            };
            assert!(
                matches!(
                    nodes.insert_within_quota(&n, 100).await,
                    Err(StoreError::Database(_))
                ),
                "status {status:?} was accepted"
            );
            assert!(nodes.get(&n.id).await.unwrap().is_none());
        }
        let update = db
            .execute("UPDATE nodes SET status = 'running' WHERE id = 'OK0'", &[])
            .await;
        assert!(matches!(update, Err(StoreError::Database(_))), "{update:?}");
        assert_eq!(
            nodes.get("OK0").await.unwrap().unwrap().status,
            "provisioning"
        );
    });
}

// ---- the 0005 migration of legacy rows ----

/// The repository's migrations.
fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// A scratch copy of the migrations before 0005, plus `seed` run right
/// after 0004 (the file sorts between 0004 and 0005), plus 0005.
struct MigrationScratch(PathBuf);

impl MigrationScratch {
    fn new(name: &str, seed: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sam-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(migrations_dir()).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_owned();
            let wanted = path.extension().is_some_and(|e| e == "sql")
                && file.as_str() <= "0005_node_lifecycle.sql";
            if wanted {
                std::fs::copy(&path, dir.join(&file)).unwrap();
            }
        }
        assert!(
            dir.join("0005_node_lifecycle.sql").exists(),
            "the migration under test is missing"
        );
        std::fs::write(dir.join("0004_zz_legacy_rows.sql"), seed).unwrap();
        Self(dir)
    }
}

impl Drop for MigrationScratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Old-style rows of every old status, written by the pre-0005 schema.
const LEGACY_ROWS: &str = "
INSERT INTO users (id, login, created_at) VALUES ('U1', 'alice', 1), ('U2', 'bob', 1);
INSERT INTO nodes (id, user_id, name, provider, size, location, server_type, status,
    status_changed_at, error_message, provider_server_id, ip_address, created_at,
    agent_ready_at, agent_version, last_heartbeat_at, last_metrics, deleted_at)
VALUES
    ('L_NEW',  'U1', 'n1', 'hetzner', 'small', 'fsn1', 'cx23', 'creating', 110, NULL, NULL, NULL, 100, NULL, NULL, NULL, NULL, NULL),
    ('L_BOOT', 'U1', 'n2', 'hetzner', 'small', 'fsn1', 'cx23', 'creating', 210, NULL, '42', '127.1.0.2', 200, NULL, NULL, NULL, NULL, NULL),
    ('L_RUN',  'U2', 'n3', 'hetzner', 'medium', 'nbg1', 'cx33', 'running', 320, NULL, '43', '127.1.0.3', 300, 320, '1.0', 330, '{\"load_avg_1m\":0.5}', NULL),
    ('L_DEL',  'U1', 'n4', 'hetzner', 'small', 'fsn1', 'cx23', 'deleting', 440, 'http_503', '44', NULL, 400, 410, '1.0', 420, NULL, NULL),
    ('L_GONE', 'U1', 'n5', 'hetzner', 'small', 'fsn1', 'cx23', 'deleted', 550, NULL, '45', NULL, 500, 510, '1.0', 520, NULL, 550),
    ('L_ERR',  'U1', 'n6', 'hetzner', 'small', 'fsn1', 'cx23', 'error', 660, 'boot deadline passed', NULL, NULL, 600, NULL, NULL, NULL, NULL, NULL);
";

async fn load(db: &Sqlite, id: &str) -> NodeRecord {
    NodeRepository::new(db).get(id).await.unwrap().unwrap()
}

/// Applies the migrations up to 0004, writes [`LEGACY_ROWS`], then 0005.
fn migrated_legacy_db(name: &str) -> Sqlite {
    let scratch = MigrationScratch::new(name, LEGACY_ROWS);
    Sqlite::in_memory_with_migrations(&scratch.0).unwrap()
}

#[test]
fn migration_0005_maps_legacy_rows_onto_the_lifecycle() {
    let db = migrated_legacy_db("maps");
    block_on(async {
        let nodes = NodeRepository::new(&db);

        // (id, status, claimed_by, deadline_at)
        let expected: [(&str, &str, Option<&str>, Option<i64>); 6] = [
            ("L_NEW", "provisioning", Some("user:U1"), Some(110)),
            ("L_BOOT", "booting", Some("user:U1"), Some(210)),
            ("L_RUN", "ready", Some("user:U2"), Some(320)),
            ("L_DEL", "destroying", None, Some(440)),
            ("L_GONE", "destroyed", None, None),
            ("L_ERR", "error", None, Some(660)),
        ];
        for (id, status, claimed_by, deadline_at) in expected {
            let n = load(&db, id).await;
            assert_eq!(n.status, status, "{id}");
            assert_eq!(n.claimed_by.as_deref(), claimed_by, "{id}");
            assert_eq!(n.deadline_at, deadline_at, "{id}: due at once");
            assert_eq!(n.version, 1, "{id}");
            assert_eq!((n.project_id, n.warm_timeout_ms), (None, None), "{id}");
            assert_eq!(n.removed_at, None, "{id}: a deleted node stays listed");
        }

        // Everything else is carried over.
        let run = load(&db, "L_RUN").await;
        assert_eq!(run.status_since, 320);
        assert_eq!(run.created_at, 300);
        assert_eq!(run.provider_server_id.as_deref(), Some("43"));
        assert_eq!(run.ip_address.as_deref(), Some("127.1.0.3"));
        assert_eq!(
            (run.location.as_str(), run.server_type.as_str()),
            ("nbg1", "cx33")
        );
        assert_eq!(run.agent_ready_at, Some(320));
        assert_eq!(run.agent_version.as_deref(), Some("1.0"));
        assert_eq!(run.last_heartbeat_at, Some(330));
        assert_eq!(run.last_metrics.as_deref(), Some(r#"{"load_avg_1m":0.5}"#));
        assert_eq!(
            load(&db, "L_BOOT").await.provider_server_id.as_deref(),
            Some("42")
        );
        assert_eq!(load(&db, "L_NEW").await.provider_server_id, None);
        assert_eq!(
            load(&db, "L_ERR").await.error_message.as_deref(),
            Some("boot deadline passed")
        );
        assert_eq!(
            load(&db, "L_DEL").await.error_message.as_deref(),
            Some("http_503")
        );

        // A migrated running node is held by its owner: it can be released
        // by that claim (and only that one) into the warm pool.
        let ready = run.state();
        let err = apply(&ready, &released("user:U1"), 400, &CFG).unwrap_err();
        assert_eq!(err.code(), "claim_mismatch");
        let warm = apply(&ready, &released("user:U2"), 400, &CFG).unwrap();
        assert_eq!(warm.status, LifecycleStatus::Warm);

        // The quota counts migrated nodes that are not destroyed.
        assert_eq!(
            nodes.list_owned("U1").await.unwrap().len(),
            5,
            "all of alice's legacy nodes are listed"
        );
        let extra = record("NEW", "U1", &NodeState::new(1_000, Some("user:U1".into())));
        assert!(!nodes.insert_within_quota(&extra, 4).await.unwrap());
        assert!(nodes.insert_within_quota(&extra, 5).await.unwrap());

        // Migrations never drop data: the old rows are kept aside.
        let kept = db
            .query("SELECT COUNT(*) AS n FROM legacy_nodes_0001", &[])
            .await
            .unwrap();
        assert_eq!(kept[0]["n"], 6);
        // Projects gained their own warm timeout.
        db.query("SELECT warm_node_timeout_ms FROM projects", &[])
            .await
            .unwrap();
    });
}

/// Legacy nodes were all created by their users, and `create_node` now
/// holds such a node for `user:<id>` from the start. A legacy node still
/// booting at migration time must be held by its owner too; otherwise its
/// agent's registration makes it `warm`, and the warm timeout destroys a
/// node the user asked for.
#[test]
fn migration_0005_keeps_nodes_still_booting_held_by_their_owner() {
    let db = migrated_legacy_db("booting-held");
    block_on(async {
        let nodes = NodeRepository::new(&db);
        for id in ["L_NEW", "L_BOOT"] {
            let n = nodes.get(id).await.unwrap().unwrap();
            assert_eq!(
                n.claimed_by.as_deref(),
                Some("user:U1"),
                "{id} ({}) is not held by its owner",
                n.status
            );
            let registered = apply(&n.state(), &Event::AgentReady, 1_000, &CFG).unwrap();
            assert_eq!(registered.status, LifecycleStatus::Ready, "{id}");
        }
    });
}
