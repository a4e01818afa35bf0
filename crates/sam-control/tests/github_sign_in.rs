//! The GitHub sign-in flow on real SQLite, with GitHub faked at the HTTP edge.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use futures::executor::block_on;
use sam_control::identity::{begin_github_sign_in, finish_github_sign_in};
use sam_providers::github::GithubOAuthApp;
use sam_providers::{HttpClient, HttpRequest, HttpResponse, TransportError};
use sam_store::UserRepository;
use sam_store::sqlite::Sqlite;
use sam_vault::SessionKeys;

const CALLBACK: &str = "http://app.localhost:8787/auth/github/callback";

/// GitHub as seen over HTTP: one valid code per user, `/user` for its token.
struct FakeGithub {
    users: Vec<(&'static str, u64, &'static str)>, // (code, id, login)
    used: RefCell<Vec<String>>,
}

fn reply(status: u16, body: &serde_json::Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![],
        body: serde_json::to_vec(body).unwrap(),
    }
}

impl HttpClient for FakeGithub {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        if req.url.ends_with("/login/oauth/access_token") {
            let body = String::from_utf8(req.body.unwrap()).unwrap();
            let code = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("code="))
                .unwrap()
                .to_owned();
            if self.used.borrow().contains(&code) || !self.users.iter().any(|u| u.0 == code) {
                return Ok(reply(
                    200,
                    &serde_json::json!({"error": "bad_verification_code"}),
                ));
            }
            self.used.borrow_mut().push(code.clone());
            return Ok(reply(
                200,
                &serde_json::json!({"access_token": format!("tok-{code}")}),
            ));
        }
        let token = req
            .header("authorization")
            .unwrap()
            .trim_start_matches("Bearer tok-")
            .to_owned();
        let (_, id, login) = self.users.iter().find(|u| u.0 == token).unwrap();
        if req.url.ends_with("/user") {
            Ok(reply(
                200,
                &serde_json::json!({"id": id, "login": login, "email": null}),
            ))
        } else {
            Ok(reply(
                200,
                &serde_json::json!([{"email": format!("{login}@example.test"), "primary": true, "verified": true}]),
            ))
        }
    }
}

fn app() -> GithubOAuthApp {
    GithubOAuthApp {
        web_url: "https://github.example".into(),
        api_url: "https://api.github.example".into(),
        client_id: "client".into(),
        client_secret: "secret".into(),
    }
}

#[test]
fn first_user_superadmin_later_pending_and_states_single_use() {
    let db = Sqlite::with_repo_migrations();
    let keys = SessionKeys::parse("s1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let github = FakeGithub {
        users: vec![("c1", 11, "ada"), ("c2", 22, "bob")],
        used: RefCell::new(vec![]),
    };
    block_on(async {
        let url = begin_github_sign_in(&db, &keys, &app(), CALLBACK, "state-1", 0)
            .await
            .unwrap();
        assert!(
            url.starts_with("https://github.example/login/oauth/authorize?client_id=client"),
            "{url}"
        );
        assert!(url.contains("state=state-1"));
        let ada = finish_github_sign_in(
            &db,
            &github,
            &keys,
            &app(),
            CALLBACK,
            "state-1",
            "c1",
            true,
            10,
            "U1",
        )
        .await
        .unwrap();
        assert_eq!(
            (ada.role.as_str(), ada.status.as_str()),
            ("superadmin", "active")
        );
        assert_eq!(
            ada.email.as_deref(),
            Some("ada@example.test"),
            "primary verified email"
        );

        // The same state cannot be used twice, nor an unknown one.
        let err = finish_github_sign_in(
            &db,
            &github,
            &keys,
            &app(),
            CALLBACK,
            "state-1",
            "c2",
            true,
            11,
            "U2",
        )
        .await
        .unwrap_err();
        assert_eq!((err.status(), err.code()), (400, "oauth_state_invalid"));

        begin_github_sign_in(&db, &keys, &app(), CALLBACK, "state-2", 20)
            .await
            .unwrap();
        let bob = finish_github_sign_in(
            &db,
            &github,
            &keys,
            &app(),
            CALLBACK,
            "state-2",
            "c2",
            true,
            30,
            "U2",
        )
        .await
        .unwrap();
        assert_eq!(
            (bob.role.as_str(), bob.status.as_str()),
            ("user", "pending")
        );

        // A replayed code is GitHub's refusal, reported as such.
        begin_github_sign_in(&db, &keys, &app(), CALLBACK, "state-3", 40)
            .await
            .unwrap();
        let err = finish_github_sign_in(
            &db,
            &github,
            &keys,
            &app(),
            CALLBACK,
            "state-3",
            "c2",
            true,
            50,
            "U3",
        )
        .await
        .unwrap_err();
        assert_eq!((err.status(), err.code()), (400, "oauth_code_invalid"));

        // Expired states are refused.
        begin_github_sign_in(&db, &keys, &app(), CALLBACK, "state-4", 0)
            .await
            .unwrap();
        let err = finish_github_sign_in(
            &db,
            &github,
            &keys,
            &app(),
            CALLBACK,
            "state-4",
            "c2",
            true,
            600_001,
            "U4",
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "oauth_state_invalid");

        // Suspended accounts cannot sign back in.
        assert!(
            UserRepository::new(&db)
                .set_status("U2", "pending", "suspended")
                .await
                .unwrap()
        );
        let fresh = FakeGithub {
            users: vec![("c9", 22, "bob")],
            used: RefCell::new(vec![]),
        };
        begin_github_sign_in(&db, &keys, &app(), CALLBACK, "state-5", 700_000)
            .await
            .unwrap();
        let err = finish_github_sign_in(
            &db,
            &fresh,
            &keys,
            &app(),
            CALLBACK,
            "state-5",
            "c9",
            true,
            700_001,
            "U5",
        )
        .await
        .unwrap_err();
        assert_eq!((err.status(), err.code()), (403, "account_suspended"));
    });
}
