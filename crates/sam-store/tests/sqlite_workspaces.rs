//! The workspace repository's SQL against real SQLite with the real migrations.

#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use sam_domain::lifecycle::NodeState;
use sam_store::sqlite::Sqlite;
use sam_store::{
    NodeRecord, NodeRepository, UserRepository, WorkspaceEventRecord, WorkspaceInsertError,
    WorkspaceRecord, WorkspaceRepository,
};

fn node(id: &str, user: &str) -> NodeRecord {
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
        created_at: 1,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        last_metrics: None,
        removed_at: None,
    };
    n.set_state(&NodeState::new(1, None), Some(100));
    n
}

fn workspace(id: &str, user: &str, node: &str, name: &str) -> WorkspaceRecord {
    WorkspaceRecord {
        id: id.to_owned(),
        user_id: user.to_owned(),
        project_id: "P1".to_owned(),
        node_id: node.to_owned(),
        name: name.to_owned(),
        branch: "sam/feature".to_owned(),
        runtime: "host".to_owned(),
        status: "creating".to_owned(),
        status_since: 10,
        error_message: None,
        ports_public: 0,
        created_at: 10,
        ready_at: None,
        updated_at: 10,
    }
}

fn setup() -> Sqlite {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        users.upsert_by_login("U1", "alice", 1).await.unwrap();
        users.upsert_by_login("U2", "bob", 1).await.unwrap();
        let nodes = NodeRepository::new(&db);
        assert!(
            nodes
                .insert_within_quota(&node("N1", "U1"), 10)
                .await
                .unwrap()
        );
        assert!(
            nodes
                .insert_within_quota(&node("N2", "U1"), 10)
                .await
                .unwrap()
        );
    });
    db
}

#[test]
fn workspaces_round_trip_and_belong_to_their_owner() {
    let db = setup();
    block_on(async {
        let repo = WorkspaceRepository::new(&db);
        let w = workspace("W1", "U1", "N1", "main");
        repo.insert(&w).await.unwrap();
        assert_eq!(repo.get_owned("U1", "W1").await.unwrap(), Some(w.clone()));
        assert_eq!(repo.get_owned("U2", "W1").await.unwrap(), None);
        assert_eq!(repo.get("W1").await.unwrap(), Some(w.clone()));
        assert_eq!(
            repo.list_owned("U1").await.unwrap(),
            std::slice::from_ref(&w)
        );
        assert!(repo.list_owned("U2").await.unwrap().is_empty());
        assert_eq!(repo.list_on_node("N1").await.unwrap(), [w]);
        assert!(repo.list_on_node("N2").await.unwrap().is_empty());
    });
}

#[test]
fn names_are_unique_per_node_among_live_workspaces() {
    let db = setup();
    block_on(async {
        let repo = WorkspaceRepository::new(&db);
        repo.insert(&workspace("W1", "U1", "N1", "main"))
            .await
            .unwrap();
        assert_eq!(
            repo.insert(&workspace("W2", "U1", "N1", "main")).await,
            Err(WorkspaceInsertError::NameTaken)
        );
        // Another node may use the name; a deleted workspace frees it.
        repo.insert(&workspace("W3", "U1", "N2", "main"))
            .await
            .unwrap();
        assert!(
            repo.transition("W1", "creating", "deleted", None, 20)
                .await
                .unwrap()
        );
        repo.insert(&workspace("W4", "U1", "N1", "main"))
            .await
            .unwrap();
        assert!(
            repo.list_owned("U1")
                .await
                .unwrap()
                .iter()
                .all(|w| w.id != "W1")
        );
        // Renaming onto a taken name changes nothing.
        repo.insert(&workspace("W5", "U1", "N1", "other"))
            .await
            .unwrap();
        assert!(!repo.rename("U1", "W5", "main", 30).await.unwrap());
        assert!(repo.rename("U1", "W5", "renamed", 30).await.unwrap());
        assert!(!repo.rename("U2", "W5", "stolen", 30).await.unwrap());
        assert_eq!(repo.get("W5").await.unwrap().unwrap().name, "renamed");
        // A workspace must be on a real node.
        assert!(matches!(
            repo.insert(&workspace("W6", "U1", "NOPE", "x")).await,
            Err(WorkspaceInsertError::Store(_))
        ));
    });
}

#[test]
fn status_changes_are_compare_and_set() {
    let db = setup();
    block_on(async {
        let repo = WorkspaceRepository::new(&db);
        repo.insert(&workspace("W1", "U1", "N1", "main"))
            .await
            .unwrap();
        assert!(
            repo.transition("W1", "creating", "running", None, 50)
                .await
                .unwrap()
        );
        // A late second `ready` (still expecting creating) changes nothing.
        assert!(
            !repo
                .transition("W1", "creating", "running", None, 60)
                .await
                .unwrap()
        );
        let running = repo.get("W1").await.unwrap().unwrap();
        assert_eq!(
            (
                running.status.as_str(),
                running.status_since,
                running.ready_at
            ),
            ("running", 50, Some(50))
        );
        assert!(
            repo.transition("W1", "running", "error", Some("clone failed"), 70)
                .await
                .unwrap()
        );
        let failed = repo.get("W1").await.unwrap().unwrap();
        assert_eq!(failed.error_message.as_deref(), Some("clone failed"));
        assert_eq!(failed.ready_at, Some(50), "ready_at keeps the first time");
        // The status CHECK refuses what the domain does not know.
        assert!(
            repo.transition("W1", "error", "exploded", None, 80)
                .await
                .is_err()
        );
        assert!(repo.set_ports_public("U1", "W1", true, 90).await.unwrap());
        assert!(!repo.set_ports_public("U2", "W1", true, 90).await.unwrap());
        assert_eq!(repo.get("W1").await.unwrap().unwrap().ports_public, 1);
    });
}

#[test]
fn the_creation_log_keeps_its_order() {
    let db = setup();
    block_on(async {
        let repo = WorkspaceRepository::new(&db);
        repo.insert(&workspace("W1", "U1", "N1", "main"))
            .await
            .unwrap();
        let steps = [
            ("clone", "started", None),
            ("clone", "done", Some("3 files")),
            ("runtime_start", "failed", Some("no shell")),
        ];
        for (i, (step, status, detail)) in steps.iter().enumerate() {
            repo.append_event(
                "W1",
                &WorkspaceEventRecord {
                    at: 100 + i64::try_from(i).unwrap(),
                    step: (*step).to_owned(),
                    status: (*status).to_owned(),
                    detail: detail.map(str::to_owned),
                },
            )
            .await
            .unwrap();
        }
        let log = repo.events("W1").await.unwrap();
        let seen: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.step.as_str(), e.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("clone", "started"),
                ("clone", "done"),
                ("runtime_start", "failed")
            ]
        );
        assert!(repo.events("W2").await.unwrap().is_empty());
        let bad = WorkspaceEventRecord {
            at: 1,
            step: "clone".into(),
            status: "maybe".into(),
            detail: None,
        };
        assert!(repo.append_event("W1", &bad).await.is_err());
    });
}
