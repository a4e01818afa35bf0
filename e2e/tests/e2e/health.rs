//! `GET /health` exercises every binding; a broken binding is named in a 503.

use std::process::{Command, Stdio};
use std::time::Duration;

use sam_e2e::{Platform, eventually};
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
    let broken = BrokenWorker::start(&p, "r2_buckets");
    let client = sam_e2e::client_for_port(broken.port);
    let url = format!("http://api.localhost:{}/health", broken.port);
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

/// A second `wrangler dev` of the same build with one binding section removed.
struct BrokenWorker {
    port: u16,
    child: std::process::Child,
    _dir: PathGuard,
}

struct PathGuard(std::path::PathBuf);
impl Drop for PathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl BrokenWorker {
    fn start(p: &Platform, remove_section: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = p.state_dir.join(format!("broken-{remove_section}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = std::fs::read_to_string(p.state_dir.join("wrangler.toml")).unwrap();
        let mut table: toml::Table = config.parse().unwrap();
        table.remove(remove_section);
        std::fs::write(dir.join("wrangler.toml"), toml::to_string(&table).unwrap()).unwrap();
        std::fs::copy(p.state_dir.join(".dev.vars"), dir.join(".dev.vars")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let inspector = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let node = std::env::var("SAM_E2E_NODE").expect("SAM_E2E_NODE");
        let wrangler = std::env::var("SAM_E2E_WRANGLER_JS").expect("SAM_E2E_WRANGLER_JS");
        let log = std::fs::File::create(dir.join("wrangler.log")).unwrap();
        let child = Command::new(node)
            .arg(wrangler)
            .args(["dev", "--config"])
            .arg(dir.join("wrangler.toml"))
            .args([
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--inspector-port",
                &inspector.to_string(),
            ])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "warn",
            ])
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        Self {
            port,
            child,
            _dir: PathGuard(dir),
        }
    }
}

impl Drop for BrokenWorker {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // Kill the whole group: wrangler leaves workerd behind otherwise.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.child.wait();
    }
}
