//! Project, installation and agent-credential queries on real SQLite with
//! the repository's migrations (foreign keys enforced, as on D1).

#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use sam_store::sqlite::Sqlite;
use sam_store::{
    AgentCredentialRecord, AgentCredentialRepository, InstallationLink, InstallationRepository,
    ProjectInsertError, ProjectRecord, ProjectRepository, ProjectUpdate, UserRepository,
};

fn project(id: &str, user: &str, repository_id: i64) -> ProjectRecord {
    ProjectRecord {
        id: id.into(),
        user_id: user.into(),
        name: format!("project {id}"),
        installation_id: "7".into(),
        repository_id,
        repo_full_name: "octo/app".into(),
        repo_html_url: "http://gh.test/octo/app".into(),
        default_branch: "main".into(),
        status: "active".into(),
        vm_size: None,
        provider: None,
        location: None,
        agent: None,
        warm_node_timeout_ms: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn credential(id: &str, user: &str, project: Option<&str>, kind: &str) -> AgentCredentialRecord {
    AgentCredentialRecord {
        id: id.into(),
        user_id: user.into(),
        project_id: project.map(str::to_owned),
        agent: "claude-code".into(),
        kind: kind.into(),
        secret_envelope: format!("v1.k.{id}"),
        masked: "sk-…abcd".into(),
        created_at: 1,
        updated_at: 1,
    }
}

fn users(db: &Sqlite) {
    block_on(async {
        let users = UserRepository::new(db);
        users.upsert_by_login("U1", "alice", 1).await.unwrap();
        users.upsert_by_login("U2", "bob", 1).await.unwrap();
    });
}

#[test]
fn projects_are_per_user_and_unique_per_repository() {
    let db = Sqlite::with_repo_migrations();
    users(&db);
    block_on(async {
        let repo = ProjectRepository::new(&db);
        repo.insert(&project("P1", "U1", 42)).await.unwrap();
        // The same user cannot link the same repository twice…
        let again = repo.insert(&project("P2", "U1", 42)).await.unwrap_err();
        assert_eq!(
            again,
            ProjectInsertError::Duplicate {
                existing_id: "P1".into()
            }
        );
        // …but another user can.
        repo.insert(&project("P3", "U2", 42)).await.unwrap();
        assert!(repo.get_owned("U2", "P1").await.unwrap().is_none());
        assert_eq!(repo.list("U1").await.unwrap().len(), 1);

        let update = ProjectUpdate {
            name: Some("Renamed".into()),
            vm_size: Some(Some("large".into())),
            agent: Some(Some("opencode".into())),
            ..ProjectUpdate::default()
        };
        assert!(!repo.update("U2", "P1", &update, 5).await.unwrap());
        assert!(repo.update("U1", "P1", &update, 5).await.unwrap());
        let p = repo.get_owned("U1", "P1").await.unwrap().unwrap();
        assert_eq!(
            (p.name.as_str(), p.vm_size.as_deref(), p.agent.as_deref()),
            ("Renamed", Some("large"), Some("opencode"))
        );
        // Clearing a setting goes back to the platform default.
        let clear = ProjectUpdate {
            vm_size: Some(None),
            ..ProjectUpdate::default()
        };
        repo.update("U1", "P1", &clear, 6).await.unwrap();
        let p = repo.get_owned("U1", "P1").await.unwrap().unwrap();
        assert_eq!((p.vm_size, p.name.as_str()), (None, "Renamed"));
    });
}

#[test]
fn warm_node_timeouts_are_stored_kept_set_and_cleared() {
    let db = Sqlite::with_repo_migrations();
    users(&db);
    block_on(async {
        let repo = ProjectRepository::new(&db);
        // Inserted with a timeout, read back as written.
        repo.insert(&ProjectRecord {
            warm_node_timeout_ms: Some(600_000),
            ..project("P1", "U1", 42)
        })
        .await
        .unwrap();
        // Inserted without: the platform default (NULL).
        repo.insert(&project("P2", "U1", 43)).await.unwrap();
        let timeout = |id: &'static str| {
            let repo = &repo;
            async move {
                repo.get_owned("U1", id)
                    .await
                    .unwrap()
                    .unwrap()
                    .warm_node_timeout_ms
            }
        };
        assert_eq!(timeout("P1").await, Some(600_000));
        assert_eq!(timeout("P2").await, None);
        assert_eq!(
            repo.list("U1")
                .await
                .unwrap()
                .iter()
                .map(|p| (p.id.as_str(), p.warm_node_timeout_ms))
                .collect::<Vec<_>>(),
            [("P2", None), ("P1", Some(600_000))]
        );

        // An update that does not mention it keeps it…
        let rename = ProjectUpdate {
            name: Some("Renamed".into()),
            ..ProjectUpdate::default()
        };
        assert!(repo.update("U1", "P1", &rename, 5).await.unwrap());
        assert_eq!(timeout("P1").await, Some(600_000));
        // …a value sets it…
        let set = ProjectUpdate {
            warm_node_timeout_ms: Some(Some(90_000)),
            ..ProjectUpdate::default()
        };
        assert!(repo.update("U1", "P2", &set, 6).await.unwrap());
        assert_eq!(timeout("P2").await, Some(90_000));
        // …and `Some(None)` clears it, leaving the other settings alone.
        let clear = ProjectUpdate {
            warm_node_timeout_ms: Some(None),
            ..ProjectUpdate::default()
        };
        assert!(repo.update("U1", "P1", &clear, 7).await.unwrap());
        let p = repo.get_owned("U1", "P1").await.unwrap().unwrap();
        assert_eq!(
            (p.warm_node_timeout_ms, p.name.as_str(), p.updated_at),
            (None, "Renamed", 7)
        );
        // Another user's project is not touched.
        assert!(!repo.update("U2", "P2", &clear, 8).await.unwrap());
        assert_eq!(timeout("P2").await, Some(90_000));
    });
}

#[test]
fn webhook_sync_renames_and_marks_projects() {
    let db = Sqlite::with_repo_migrations();
    users(&db);
    block_on(async {
        let repo = ProjectRepository::new(&db);
        repo.insert(&project("P1", "U1", 42)).await.unwrap();
        repo.insert(&project("P2", "U2", 42)).await.unwrap();
        assert_eq!(
            repo.rename_repository(42, "octo/renamed", "http://gh.test/octo/renamed", 9)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            repo.set_status_by_repository(42, "repository_missing", 10)
                .await
                .unwrap(),
            2
        );
        // Marking twice changes nothing.
        assert_eq!(
            repo.set_status_by_repository(42, "repository_missing", 11)
                .await
                .unwrap(),
            0
        );
        assert_eq!(repo.restore_repository("7", 42, 12).await.unwrap(), 2);
        assert_eq!(
            repo.set_status_by_installation("7", "installation_missing", 13)
                .await
                .unwrap(),
            2
        );
        let p = repo.get_owned("U1", "P1").await.unwrap().unwrap();
        assert_eq!(
            (p.repo_full_name.as_str(), p.status.as_str()),
            ("octo/renamed", "installation_missing")
        );
        // An unknown status is refused by the schema.
        assert!(repo.set_status_by_repository(42, "gone", 14).await.is_err());
    });
}

#[test]
fn installations_link_per_user_and_can_be_removed_and_restored() {
    let db = Sqlite::with_repo_migrations();
    users(&db);
    block_on(async {
        let links = InstallationRepository::new(&db);
        let link = |user: &str| InstallationLink {
            installation_id: "7".into(),
            user_id: user.into(),
            account_login: "octo".into(),
            account_type: "Organization".into(),
            removed_at: None,
            created_at: 1,
            updated_at: 1,
        };
        links.link(&link("U1")).await.unwrap();
        links.link(&link("U1")).await.unwrap();
        links.link(&link("U2")).await.unwrap();
        assert_eq!(links.list_for_user("U1").await.unwrap().len(), 1);
        assert_eq!(links.mark_removed("7", 5).await.unwrap(), 2);
        assert!(links.get_for_user("U1", "7").await.unwrap().is_none());
        assert_eq!(links.mark_restored("7", 6).await.unwrap(), 2);
        assert!(links.get_for_user("U2", "7").await.unwrap().is_some());
        assert!(links.get_for_user("U2", "8").await.unwrap().is_none());
    });
}

#[test]
fn agent_credentials_have_one_kind_per_scope_and_die_with_their_project() {
    let db = Sqlite::with_repo_migrations();
    users(&db);
    block_on(async {
        ProjectRepository::new(&db)
            .insert(&project("P1", "U1", 42))
            .await
            .unwrap();
        let creds = AgentCredentialRepository::new(&db);
        creds
            .put(&credential("C1", "U1", None, "api_key"))
            .await
            .unwrap();
        // Storing another kind for the same scope replaces the first.
        creds
            .put(&credential("C2", "U1", None, "oauth_token"))
            .await
            .unwrap();
        let user_level = creds.list("U1", None).await.unwrap();
        assert_eq!(user_level.len(), 1);
        assert_eq!(
            (user_level[0].id.as_str(), user_level[0].kind.as_str()),
            ("C1", "oauth_token")
        );
        creds
            .put(&credential("C3", "U1", Some("P1"), "api_key"))
            .await
            .unwrap();
        assert_eq!(creds.list("U1", Some("P1")).await.unwrap().len(), 1);
        assert!(
            creds
                .get("U1", None, "claude-code")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            creds
                .get("U2", None, "claude-code")
                .await
                .unwrap()
                .is_none()
        );

        // An unknown agent or kind is refused by the schema.
        let mut bad = credential("C4", "U1", None, "api_key");
        bad.agent = "cursor".into();
        assert!(creds.put(&bad).await.is_err());

        // Deleting the project deletes its override, not the user's key.
        assert!(
            ProjectRepository::new(&db)
                .delete("U1", "P1")
                .await
                .unwrap()
        );
        assert!(creds.list("U1", Some("P1")).await.unwrap().is_empty());
        assert_eq!(creds.list("U1", None).await.unwrap().len(), 1);
        assert!(creds.delete("U1", None, "claude-code").await.unwrap());
        assert!(!creds.delete("U1", None, "claude-code").await.unwrap());
    });
}
