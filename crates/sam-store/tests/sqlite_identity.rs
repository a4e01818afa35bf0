//! Identity queries on real SQLite with the repository's migrations.

#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use sam_store::sqlite::Sqlite;
use sam_store::{GithubProfile, SessionRepository, UserRepository};

fn profile(id: &str, login: &str) -> GithubProfile {
    GithubProfile {
        github_id: id.into(),
        login: login.into(),
        name: Some(format!("{login} name")),
        email: Some(format!("{login}@example.test")),
        avatar_url: None,
    }
}

const FIRST: (&str, &str) = ("superadmin", "active");
const LATER: (&str, &str) = ("user", "pending");

#[test]
fn first_github_user_is_superadmin_and_profiles_refresh() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        // A local developer account does not count as the first real user.
        users.upsert_by_login("D1", "devuser", 1).await.unwrap();
        let alice = users
            .upsert_github("U1", &profile("101", "alice"), 2, FIRST, LATER)
            .await
            .unwrap();
        assert_eq!((alice.role.as_str(), alice.status.as_str()), FIRST);
        let bob = users
            .upsert_github("U2", &profile("102", "bob"), 3, FIRST, LATER)
            .await
            .unwrap();
        assert_eq!((bob.role.as_str(), bob.status.as_str()), LATER);
        // Signing in again keeps the id, role and status; refreshes the profile.
        let mut renamed = profile("102", "bobby");
        renamed.email = None;
        let again = users
            .upsert_github("U3", &renamed, 4, FIRST, LATER)
            .await
            .unwrap();
        assert_eq!(
            (
                again.id.as_str(),
                again.login.as_str(),
                again.status.as_str()
            ),
            ("U2", "bobby", "pending")
        );
        assert!(users.set_status("U2", "pending", "active").await.unwrap());
        assert!(
            !users.set_status("U2", "pending", "active").await.unwrap(),
            "compare-and-set"
        );
        assert_eq!(users.list().await.unwrap().len(), 3);
    });
}

#[test]
fn sessions_expire_revoke_and_match_any_key_hash() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        users
            .upsert_github("U1", &profile("101", "alice"), 1, FIRST, LATER)
            .await
            .unwrap();
        let sessions = SessionRepository::new(&db);
        sessions.create("k1.aaa", "U1", 10, 100).await.unwrap();
        // Looked up with the hashes of every key in the ring (rotation).
        let found = sessions
            .find_live(&["k2.zzz".into(), "k1.aaa".into()], 50)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.user.login, "alice");
        assert!(
            sessions
                .find_live(&["k1.aaa".into()], 100)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        sessions.revoke(&["k1.aaa".into()], 60).await.unwrap();
        assert!(
            sessions
                .find_live(&["k1.aaa".into()], 61)
                .await
                .unwrap()
                .is_none(),
            "revoked"
        );

        sessions.create("k1.bbb", "U1", 10, 100).await.unwrap();
        sessions.revoke_all("U1", 20).await.unwrap();
        assert!(
            sessions
                .find_live(&["k1.bbb".into()], 21)
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn oauth_states_are_single_use_and_expire() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let sessions = SessionRepository::new(&db);
        sessions.create_oauth_state("k1.s1", 0, 600).await.unwrap();
        sessions.create_oauth_state("k1.s2", 0, 600).await.unwrap();
        assert!(
            sessions
                .consume_oauth_state(&["k1.s1".into()], 10)
                .await
                .unwrap()
        );
        assert!(
            !sessions
                .consume_oauth_state(&["k1.s1".into()], 11)
                .await
                .unwrap(),
            "replayed"
        );
        assert!(
            !sessions
                .consume_oauth_state(&["k1.s2".into()], 601)
                .await
                .unwrap(),
            "expired"
        );
        assert!(
            !sessions
                .consume_oauth_state(&["k1.nope".into()], 5)
                .await
                .unwrap()
        );
    });
}

#[test]
fn personal_access_tokens_are_owner_scoped_and_revocable() {
    use sam_store::{TokenRecord, TokenRepository};
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        users
            .upsert_github("U1", &profile("101", "alice"), 1, FIRST, LATER)
            .await
            .unwrap();
        users
            .upsert_github("U2", &profile("102", "bob"), 1, FIRST, LATER)
            .await
            .unwrap();
        let tokens = TokenRepository::new(&db);
        let record = |id: &str, user: &str, expires_at| TokenRecord {
            id: id.into(),
            user_id: user.into(),
            name: "cli".into(),
            created_at: 10,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        tokens
            .create(&record("T1", "U1", None), "k1.h1")
            .await
            .unwrap();
        tokens
            .create(&record("T2", "U1", Some(100)), "k1.h2")
            .await
            .unwrap();
        let owner = tokens
            .use_token(&["k1.h1".into()], 50)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(owner.login, "alice");
        assert_eq!(
            tokens.list("U1").await.unwrap()[0]
                .last_used_at
                .or(tokens.list("U1").await.unwrap()[1].last_used_at),
            Some(50)
        );
        assert!(
            tokens
                .use_token(&["k1.h2".into()], 100)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        assert!(
            !tokens.revoke("U2", "T1", 60).await.unwrap(),
            "bob cannot revoke alice's token"
        );
        assert!(tokens.revoke("U1", "T1", 60).await.unwrap());
        assert!(
            !tokens.revoke("U1", "T1", 61).await.unwrap(),
            "already revoked"
        );
        assert!(
            tokens
                .use_token(&["k1.h1".into()], 62)
                .await
                .unwrap()
                .is_none(),
            "revoked"
        );
        assert!(tokens.list("U2").await.unwrap().is_empty());
    });
}

#[test]
fn github_sign_in_takes_its_name_back_and_dev_login_never_opens_it() {
    let db = Sqlite::with_repo_migrations();
    block_on(async {
        let users = UserRepository::new(&db);
        // A local developer account picked the name first.
        let dev = users
            .upsert_by_login("D1", "carol", 1)
            .await
            .unwrap()
            .unwrap();
        assert!(dev.github_id.is_none());
        let carol = users
            .upsert_github("U1", &profile("201", "carol"), 2, FIRST, LATER)
            .await
            .unwrap();
        assert_eq!((carol.id.as_str(), carol.login.as_str()), ("U1", "carol"));
        // The developer account still exists, under a displaced name.
        let displaced = users.get("D1").await.unwrap().unwrap();
        assert!(displaced.login.starts_with("carol~"), "{}", displaced.login);
        // Developer sign-in as "carol" must not open the GitHub account.
        assert!(
            users
                .upsert_by_login("D2", "carol", 3)
                .await
                .unwrap()
                .is_none()
        );

        // A GitHub rename frees a name another GitHub user may then take.
        let mut renamed = profile("201", "carol-new");
        renamed.name = None;
        users
            .upsert_github("U1", &renamed, 4, FIRST, LATER)
            .await
            .unwrap();
        let dave = users
            .upsert_github("U2", &profile("202", "carol"), 5, FIRST, LATER)
            .await
            .unwrap();
        assert_eq!(dave.login, "carol");
        assert_eq!(users.get("U1").await.unwrap().unwrap().login, "carol-new");
    });
}
