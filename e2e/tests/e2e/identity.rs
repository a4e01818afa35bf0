//! Sign in with GitHub (against the local GitHub stand-in), roles and
//! approval. Each journey runs on its own scratch Worker so "the first user"
//! means the first user of that deployment.

use sam_e2e::{Platform, ScratchWorker, create_github_user, github_sign_in};
use sam_wire::{ErrorBody, Me};
use serde_json::json;

fn app(worker: &ScratchWorker, path: &str) -> String {
    format!("http://app.sam.localhost:{}{path}", worker.port)
}

async fn me(client: &reqwest::Client, worker: &ScratchWorker) -> Me {
    sam_e2e::get_json(client, &app(worker, "/api/auth/me")).await
}

async fn code_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap();
    (status, body.code)
}

#[tokio::test]
async fn j01_sign_in_first_user_superadmin() {
    let p = Platform::from_env();
    let worker = ScratchWorker::start(&p, "j01", &[], &[]).unwrap();
    worker.signed_in_anonymous_ready().await.unwrap();
    create_github_user(&p, "j01-founder").await.unwrap();
    create_github_user(&p, "j01-second").await.unwrap();

    let founder = worker.client();
    let landed = github_sign_in(&founder, &app(&worker, ""), "j01-founder")
        .await
        .unwrap();
    assert_eq!(landed, "/");
    let who = me(&founder, &worker).await;
    assert_eq!(
        (who.login.as_str(), who.role.as_str(), who.status.as_str()),
        ("j01-founder", "superadmin", "active")
    );
    assert_eq!(who.email.as_deref(), Some("j01-founder@example.test"));
    // The dashboard is reachable with the browser session.
    let page = founder.get(app(&worker, "/")).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // The second user is an ordinary user (approval is off here).
    let second = worker.client();
    assert_eq!(
        github_sign_in(&second, &app(&worker, ""), "j01-second")
            .await
            .unwrap(),
        "/"
    );
    let who = me(&second, &worker).await;
    assert_eq!((who.role.as_str(), who.status.as_str()), ("user", "active"));
    // Signing in again keeps the role.
    assert_eq!(
        github_sign_in(&founder, &app(&worker, ""), "j01-founder")
            .await
            .unwrap(),
        "/"
    );
    assert_eq!(me(&founder, &worker).await.role, "superadmin");

    // Bad OAuth input: forged or replayed state, missing code.
    let anon = worker.client();
    let resp = anon
        .get(app(&worker, "/auth/github/callback?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = anon
        .get(app(&worker, "/auth/github/callback?state=only"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Signing out ends the session at once.
    let resp = founder
        .post(app(&worker, "/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = founder
        .get(app(&worker, "/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(resp).await, (401, "unauthenticated".to_owned()));
}

#[tokio::test]
async fn j02_signup_approval() {
    let p = Platform::from_env();
    let worker = ScratchWorker::start(&p, "j02", &[], &[("REQUIRE_APPROVAL", "true")]).unwrap();
    worker.signed_in_anonymous_ready().await.unwrap();
    create_github_user(&p, "j02-admin").await.unwrap();
    create_github_user(&p, "j02-newcomer").await.unwrap();

    let admin = worker.client();
    assert_eq!(
        github_sign_in(&admin, &app(&worker, ""), "j02-admin")
            .await
            .unwrap(),
        "/"
    );
    let newcomer = worker.client();
    assert_eq!(
        github_sign_in(&newcomer, &app(&worker, ""), "j02-newcomer")
            .await
            .unwrap(),
        "/pending"
    );
    let pending = me(&newcomer, &worker).await;
    assert_eq!(pending.status, "pending");

    // Pending users cannot reach protected routes or pages.
    let resp = newcomer
        .get(app(&worker, "/api/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(resp).await, (403, "account_pending".to_owned()));
    let page = newcomer.get(app(&worker, "/")).send().await.unwrap();
    assert_eq!(page.headers()["location"], "/pending");
    // Nor administer anything.
    let resp = newcomer
        .get(app(&worker, "/api/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // The admin sees and approves them.
    let list: serde_json::Value =
        sam_e2e::get_json(&admin, &app(&worker, "/api/admin/users")).await;
    let listed: Vec<(&str, &str)> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["login"].as_str().unwrap(), u["status"].as_str().unwrap()))
        .collect();
    assert!(listed.contains(&("j02-newcomer", "pending")), "{listed:?}");
    let approve = format!("/api/admin/users/{}/approve", pending.id);
    let approved: Me = admin
        .post(app(&worker, &approve))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved.status, "active");
    let resp = newcomer
        .get(app(&worker, "/api/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Approving twice is a conflict, not a silent success.
    let resp = admin.post(app(&worker, &approve)).send().await.unwrap();
    assert_eq!(
        code_of(resp).await,
        (409, "invalid_account_transition".to_owned())
    );

    // Suspension takes effect on the very next request.
    let suspend = format!("/api/admin/users/{}/suspend", pending.id);
    let resp = admin
        .post(app(&worker, &suspend))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = newcomer
        .get(app(&worker, "/api/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "the suspended user's sessions were revoked"
    );
    // And a suspended user cannot sign back in.
    let again = worker.client();
    let err = github_sign_in(&again, &app(&worker, ""), "j02-newcomer")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // Users cannot act on themselves or escalate.
    let resp = admin
        .post(app(
            &worker,
            &format!("/api/admin/users/{}/suspend", me(&admin, &worker).await.id),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(resp).await, (409, "own_account".to_owned()));
}
