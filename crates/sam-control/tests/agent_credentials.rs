//! Agent credentials over real SQLite and the real vault: storage, scopes,
//! resolution order, cross-user isolation and key rotation.

#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use sam_control::ControlError;
use sam_control::agent_credentials::{
    NewAgentCredential, PlatformAgentCredentials, effective_agent_credentials,
    list_agent_credentials, resolve_agent_credential, rotate_agent_credentials,
    store_agent_credential,
};
use sam_domain::agents::CredentialSource;
use sam_store::sqlite::Sqlite;
use sam_store::{ProjectRecord, ProjectRepository, UserRepository};
use sam_vault::CredentialKeys;

fn ring(spec: &[(&str, u8)]) -> CredentialKeys {
    let parts: Vec<String> = spec
        .iter()
        .map(|(kid, byte)| CredentialKeys::generate_spec(kid, &[*byte; 32]).unwrap())
        .collect();
    CredentialKeys::parse(&parts.join(",")).unwrap()
}

fn setup() -> Sqlite {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        users.upsert_by_login("U1", "alice", 1).await.unwrap();
        users.upsert_by_login("U2", "bob", 1).await.unwrap();
        ProjectRepository::new(&db)
            .insert(&ProjectRecord {
                id: "P1".into(),
                user_id: "U1".into(),
                name: "app".into(),
                installation_id: "7".into(),
                repository_id: 42,
                repo_full_name: "alice/app".into(),
                repo_html_url: "http://gh.test/alice/app".into(),
                warm_node_timeout_ms: None,
                default_branch: "main".into(),
                status: "active".into(),
                vm_size: None,
                provider: None,
                location: None,
                agent: None,
                created_at: 1,
                updated_at: 1,
            })
            .await
            .unwrap();
    });
    db
}

fn new<'a>(project: Option<&'a str>, kind: &'a str, secret: &'a str) -> NewAgentCredential<'a> {
    NewAgentCredential {
        user_id: "U1",
        project_id: project,
        agent: "claude-code",
        kind,
        secret,
    }
}

const USER_KEY: &str = "sk-ant-user-000000000001";
const PROJECT_KEY: &str = "sk-ant-project-0000000002";
const PLATFORM_KEY: &str = "sk-ant-platform-000000003";

#[test]
fn resolution_goes_project_then_user_then_platform() {
    let db = setup();
    let keys = ring(&[("k1", 1)]);
    let platform = PlatformAgentCredentials::parse(&format!(
        r#"{{"claude-code": {{"kind": "api_key", "secret": "{PLATFORM_KEY}"}}}}"#
    ))
    .unwrap();
    assert!(!format!("{platform:?}").contains(PLATFORM_KEY));
    block_on(async {
        let resolve =
            |project| resolve_agent_credential(&db, &keys, &platform, "U1", project, "claude-code");
        let r = resolve(Some("P1")).await.unwrap();
        assert_eq!(r.source, CredentialSource::Platform);
        assert_eq!(r.secret.expose_str().unwrap(), PLATFORM_KEY);

        let view =
            store_agent_credential(&db, &keys, new(None, "api_key", USER_KEY), 2, "C1", [1; 12])
                .await
                .unwrap();
        assert_eq!((view.scope, view.masked.as_str()), ("user", "••••0001"));
        let r = resolve(Some("P1")).await.unwrap();
        assert_eq!(
            (r.source, r.secret.expose_str().unwrap()),
            (CredentialSource::User, USER_KEY)
        );

        store_agent_credential(
            &db,
            &keys,
            new(Some("P1"), "oauth_token", PROJECT_KEY),
            3,
            "C2",
            [2; 12],
        )
        .await
        .unwrap();
        let r = resolve(Some("P1")).await.unwrap();
        assert_eq!(
            (r.source, r.kind.as_str(), r.secret.expose_str().unwrap()),
            (CredentialSource::Project, "oauth_token", PROJECT_KEY)
        );
        // Outside the project the user's own key applies.
        assert_eq!(resolve(None).await.unwrap().source, CredentialSource::User);

        let effective = effective_agent_credentials(&db, &platform, "U1", "P1")
            .await
            .unwrap();
        let claude = effective.iter().find(|e| e.agent == "claude-code").unwrap();
        assert_eq!(claude.source, Some(CredentialSource::Project));
        let codex = effective
            .iter()
            .find(|e| e.agent == "openai-codex")
            .unwrap();
        assert_eq!(codex.source, None);

        // No credential anywhere: a clear error naming the agent.
        let missing = resolve_agent_credential(&db, &keys, &platform, "U1", None, "opencode")
            .await
            .unwrap_err();
        assert_eq!(missing.code(), "agent_credential_missing");
    });
}

#[test]
fn another_users_project_is_not_found_and_bad_input_is_refused() {
    let db = setup();
    let keys = ring(&[("k1", 1)]);
    block_on(async {
        let mut as_bob = new(Some("P1"), "api_key", USER_KEY);
        as_bob.user_id = "U2";
        let err = store_agent_credential(&db, &keys, as_bob, 2, "C1", [1; 12])
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::NotFound));
        assert!(matches!(
            list_agent_credentials(&db, "U2", Some("P1"))
                .await
                .unwrap_err(),
            ControlError::NotFound
        ));
        let mut unknown = new(None, "api_key", USER_KEY);
        unknown.agent = "cursor";
        let err = store_agent_credential(&db, &keys, unknown, 2, "C1", [1; 12])
            .await
            .unwrap_err();
        assert_eq!((err.status(), err.code()), (400, "unknown_agent"));
        // Nothing was written by the refused requests.
        assert!(
            list_agent_credentials(&db, "U1", None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            list_agent_credentials(&db, "U1", Some("P1"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            PlatformAgentCredentials::parse(r#"{"cursor": {"kind": "api_key", "secret": "x"}}"#)
                .is_err()
        );
        let err = PlatformAgentCredentials::parse(
            r#"{"opencode": {"kind": "api_key", "secret": "has space"}}"#,
        )
        .unwrap_err();
        assert!(!err.contains("has space"), "{err}");
    });
}

#[test]
fn rotation_reseals_every_agent_credential_and_they_still_open() {
    let db = setup();
    let old = ring(&[("k1", 1)]);
    block_on(async {
        store_agent_credential(&db, &old, new(None, "api_key", USER_KEY), 2, "C1", [1; 12])
            .await
            .unwrap();
        store_agent_credential(
            &db,
            &old,
            new(Some("P1"), "api_key", PROJECT_KEY),
            2,
            "C2",
            [2; 12],
        )
        .await
        .unwrap();
        let both = ring(&[("k2", 2), ("k1", 1)]);
        let mut n = 0u8;
        let moved = rotate_agent_credentials(&db, &both, || {
            n += 1;
            [n; 12]
        })
        .await
        .unwrap();
        assert_eq!(moved, 2);
        // A second sweep has nothing left to do.
        assert_eq!(
            rotate_agent_credentials(&db, &both, || [9; 12])
                .await
                .unwrap(),
            0
        );
        // The new key alone opens both.
        let new_only = ring(&[("k2", 2)]);
        let none = PlatformAgentCredentials::default();
        for (project, secret) in [(None, USER_KEY), (Some("P1"), PROJECT_KEY)] {
            let r = resolve_agent_credential(&db, &new_only, &none, "U1", project, "claude-code")
                .await
                .unwrap();
            assert_eq!(r.secret.expose_str().unwrap(), secret);
        }
        // The old key alone no longer does.
        let err = resolve_agent_credential(&db, &old, &none, "U1", None, "claude-code")
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Vault(_)));
    });
}
