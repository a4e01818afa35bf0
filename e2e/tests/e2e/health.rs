//! `GET /health` exercises every binding; a broken binding is named in a 503.

use std::time::Duration;

use sam_e2e::{Platform, ScratchWorker, eventually};
use sam_wire::HealthReport;

#[tokio::test]
async fn j00_health_reports_every_binding() {
    let p = Platform::from_env();
    let resp = p.client().get(p.api("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let report: HealthReport = resp.json().await.unwrap();
    assert_eq!(report.status, "ok");
    assert!(!report.version.is_empty());
    let kinds: Vec<(&str, &str, bool)> = report
        .checks
        .iter()
        .map(|c| (c.binding.as_str(), c.kind.as_str(), c.ok))
        .collect();
    assert_eq!(
        kinds,
        [
            ("DB", "d1", true),
            ("KV", "kv", true),
            ("R2", "r2", true),
            ("NODE_LIFECYCLE", "durable_object", true)
        ]
    );

    // The same Worker with its R2 binding removed must say so with a 503.
    let broken = ScratchWorker::start(&p, "no-r2", &["r2_buckets"], &[]).unwrap();
    let client = broken.client();
    let url = broken.api("/health");
    let (status, report) = eventually(
        "the broken worker to answer",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let Ok(resp) = client.get(&url).send().await else {
                    return Ok(None);
                };
                let status = resp.status().as_u16();
                Ok(Some((status, resp.json::<HealthReport>().await?)))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(status, 503);
    assert_eq!(report.status, "degraded");
    let failing: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.binding.as_str())
        .collect();
    assert_eq!(failing, ["R2"]);
    let r2 = report.checks.iter().find(|c| c.binding == "R2").unwrap();
    assert!(r2.error.as_deref().is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn unknown_routes_and_hosts_are_json_404s() {
    let p = Platform::from_env();
    let client = p.client();
    for url in [p.api("/nope"), p.api("/api/nodes/x/y/z")] {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{url}");
        let body: sam_wire::ErrorBody = resp.json().await.unwrap();
        assert_eq!(body.code, "not_found");
    }
    let resp = client.put(p.api("/api/nodes")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let body: sam_wire::ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.code, "method_not_allowed");
    let resp = client
        .get(format!("http://127.0.0.1:{}/health", p.port))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: sam_wire::ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.code, "unknown_host");
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let p = Platform::from_env();
    let jwks: sam_auth::JwkSet = p
        .client()
        .get(p.api("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = p.signing_key().unwrap();
    assert_eq!(jwks, key.jwks());
}
