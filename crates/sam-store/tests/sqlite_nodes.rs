//! The repositories' SQL against real SQLite with the repository's real D1 migrations.

// Test helpers panic on setup failures: that is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use futures::executor::block_on;
use sam_domain::node::NodeStatus;
use sam_store::{
    NodeRecord, NodeRepository, ProviderServerUpdate, Row, SqlDatabase, SqlValue, StoreError,
    UserRepository,
};

/// SQLite behind the same port the Worker implements with D1.
struct Sqlite(rusqlite::Connection);

impl Sqlite {
    fn with_migrations() -> Self {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        for f in files {
            conn.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        Self(conn)
    }
}

fn bind(params: &[SqlValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => rusqlite::types::Value::Null,
            SqlValue::Integer(i) => rusqlite::types::Value::Integer(*i),
            SqlValue::Real(r) => rusqlite::types::Value::Real(*r),
            SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect()
}

impl SqlDatabase for Sqlite {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        self.0
            .execute(sql, rusqlite::params_from_iter(bind(params)))
            .map(|n| n as u64)
            .map_err(|e| StoreError::Database(e.to_string()))
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .0
            .prepare(sql)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let names: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bind(params)), |r| {
                let mut row = Row::new();
                for (i, name) in names.iter().enumerate() {
                    let v = match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null | rusqlite::types::ValueRef::Blob(_) => {
                            serde_json::Value::Null
                        }
                        rusqlite::types::ValueRef::Integer(n) => n.into(),
                        rusqlite::types::ValueRef::Real(x) => x.into(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned().into()
                        }
                    };
                    row.insert(name.clone(), v);
                }
                Ok(row)
            })
            .map_err(|e| StoreError::Database(e.to_string()))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| StoreError::Database(e.to_string()))
    }
}

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
    let db = Sqlite::with_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        let alice = users.upsert_by_login("U1", "alice", 1).await.unwrap();
        let again = users.upsert_by_login("U2", "alice", 2).await.unwrap();
        assert_eq!(alice, again, "upsert keeps the first id");
        users.upsert_by_login("U3", "bob", 3).await.unwrap();

        let nodes = NodeRepository::new(&db);
        nodes.insert(&node("N1", "U1", 10)).await.unwrap();
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
                        ip_address: Some("127.1.0.2".into())
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
        assert_eq!(nodes.count_live("U1").await.unwrap(), 0);
    });
}

#[test]
fn stuck_creating_nodes_are_listed_and_errors_recorded() {
    let db = Sqlite::with_migrations();
    block_on(async {
        UserRepository::new(&db)
            .upsert_by_login("U1", "alice", 1)
            .await
            .unwrap();
        let nodes = NodeRepository::new(&db);
        nodes.insert(&node("OLD", "U1", 100)).await.unwrap();
        nodes.insert(&node("NEW", "U1", 900)).await.unwrap();
        let stuck = nodes.list_creating_before(500).await.unwrap();
        assert_eq!(
            stuck.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["OLD"]
        );
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
        assert_eq!(nodes.count_live("U1").await.unwrap(), 2);
    });
}

#[test]
fn status_check_constraint_rejects_unknown_status() {
    let db = Sqlite::with_migrations();
    block_on(async {
        UserRepository::new(&db)
            .upsert_by_login("U1", "alice", 1)
            .await
            .unwrap();
        let mut bad = node("N", "U1", 1);
        bad.status = "exploded".into();
        assert!(matches!(
            NodeRepository::new(&db).insert(&bad).await,
            Err(StoreError::Database(_))
        ));
    });
}
