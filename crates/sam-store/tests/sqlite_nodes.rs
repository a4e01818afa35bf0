//! The repositories' SQL against real SQLite with the repository's real D1 migrations.

// Test helpers panic on setup failures: that is the test failing.
#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use sam_domain::node::NodeStatus;
use sam_store::{NodeRecord, NodeRepository, ProviderServerUpdate, StoreError, UserRepository};

use sam_store::sqlite::Sqlite;

fn node(id: &str, user: &str, now: i64) -> NodeRecord {
    NodeRecord {
        id: id.to_owned(),
        user_id: user.to_owned(),
        name: "dev-1".to_owned(),
        provider: "hetzner".to_owned(),
        size: "small".to_owned(),
        location: "fsn1".to_owned(),
        server_type: "cx23".to_owned(),
        status: "creating".to_owned(),
        status_changed_at: now,
        error_message: None,
        provider_server_id: None,
        ip_address: None,
        created_at: now,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        last_metrics: None,
        deleted_at: None,
    }
}

#[test]
fn node_lifecycle_round_trip_on_sqlite() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        let alice = users.upsert_by_login("U1", "alice", 1).await.unwrap();
        let again = users.upsert_by_login("U2", "alice", 2).await.unwrap();
        assert_eq!(alice, again, "upsert keeps the first id");
        users.upsert_by_login("U3", "bob", 3).await.unwrap();

        let nodes = NodeRepository::new(&db);
        assert!(
            nodes
                .insert_within_quota(&node("N1", "U1", 10), 5)
                .await
                .unwrap()
        );
        assert!(
            nodes.get_owned("U3", "N1").await.unwrap().is_none(),
            "bob cannot see alice's node"
        );
        assert!(
            nodes
                .record_provider_server(
                    "N1",
                    &ProviderServerUpdate {
                        server_id: "42".into(),
                        ip_address: Some("127.1.0.2".into()),
                        location: "fsn1".into(),
                    }
                )
                .await
                .unwrap()
        );
        assert!(
            !nodes.record_heartbeat("N1", "v", "{}", 11).await.unwrap(),
            "no heartbeat before ready"
        );
        assert!(nodes.mark_ready("N1", "0.1.0", 12).await.unwrap());
        assert!(
            nodes
                .record_heartbeat("N1", "0.1.0", r#"{"load_avg_1m":0.5}"#, 13)
                .await
                .unwrap()
        );
        let got = nodes.get_owned("U1", "N1").await.unwrap().unwrap();
        assert_eq!(got.status(), NodeStatus::Running);
        assert_eq!(got.last_heartbeat_at, Some(13));
        assert_eq!(got.provider_server_id.as_deref(), Some("42"));

        // Compare-and-set: only one of two racing transitions wins.
        assert!(
            nodes
                .transition("N1", NodeStatus::Running, NodeStatus::Deleting, 14, None)
                .await
                .unwrap()
        );
        assert!(
            !nodes
                .transition("N1", NodeStatus::Running, NodeStatus::Deleting, 14, None)
                .await
                .unwrap()
        );
        assert!(
            !nodes.mark_ready("N1", "0.1.0", 15).await.unwrap(),
            "a late ready cannot resurrect a deleting node"
        );
        assert!(
            nodes
                .transition("N1", NodeStatus::Deleting, NodeStatus::Deleted, 16, None)
                .await
                .unwrap()
        );
        let gone = nodes.get("N1").await.unwrap().unwrap();
        assert_eq!(gone.deleted_at, Some(16));
        // Deleted nodes do not count against the quota.
        assert!(
            nodes
                .insert_within_quota(&node("N2", "U1", 17), 1)
                .await
                .unwrap()
        );
    });
}

#[test]
fn quota_is_enforced_in_one_statement_and_errors_recorded() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        UserRepository::new(&db)
            .upsert_by_login("U1", "alice", 1)
            .await
            .unwrap();
        let nodes = NodeRepository::new(&db);
        assert!(
            nodes
                .insert_within_quota(&node("OLD", "U1", 100), 2)
                .await
                .unwrap()
        );
        assert!(
            nodes
                .insert_within_quota(&node("NEW", "U1", 900), 2)
                .await
                .unwrap()
        );
        assert!(
            !nodes
                .insert_within_quota(&node("MORE", "U1", 950), 2)
                .await
                .unwrap()
        );
        assert!(nodes.get("MORE").await.unwrap().is_none());
        assert!(
            nodes
                .transition(
                    "OLD",
                    NodeStatus::Creating,
                    NodeStatus::Error,
                    600,
                    Some("boot deadline passed")
                )
                .await
                .unwrap()
        );
        let old = nodes.get("OLD").await.unwrap().unwrap();
        assert_eq!(old.error_message.as_deref(), Some("boot deadline passed"));
        assert_eq!(nodes.list_owned("U1").await.unwrap().len(), 2);
        nodes.note_error("NEW", "provider said no").await.unwrap();
        let new = nodes.get("NEW").await.unwrap().unwrap();
        assert_eq!(new.error_message.as_deref(), Some("provider said no"));
        assert_eq!(new.status, "creating");
    });
}

#[test]
fn status_check_constraint_rejects_unknown_status() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        UserRepository::new(&db)
            .upsert_by_login("U1", "alice", 1)
            .await
            .unwrap();
        let mut bad = node("N", "U1", 1);
        bad.status = "exploded".into();
        assert!(matches!(
            NodeRepository::new(&db).insert_within_quota(&bad, 5).await,
            Err(StoreError::Database(_))
        ));
    });
}
