//! The nodes page in a real headless Chromium (Debian's chromium +
//! chromedriver), at phone and desktop widths.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use sam_e2e::{Platform, eventually};
use serde_json::json;

/// chromedriver and the Chromium it starts, as one process group that is
/// killed on drop, so a failing test leaves no browser behind.
struct Chromedriver(Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        // In case the group kill could not be delivered, never wait on a live child.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(p: &Platform) -> (Client, Chromedriver, tempdir::Dir) {
    // reqwest and fantoccini pull in different rustls back ends; pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = sam_e2e::free_port().unwrap();
    let driver = Chromedriver(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed; run cargo xtask setup --test"),
    );
    let profile = tempdir::Dir::new(&p.state_dir.join(format!("chromium-{port}")));
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.0.display()),
                "--window-size=1280,900",
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let client = eventually(
        "chromedriver to accept a session",
        Duration::from_secs(30),
        || {
            let caps = caps.clone();
            async move {
                Ok(ClientBuilder::rustls()?
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
                    .ok())
            }
        },
    )
    .await
    .unwrap();
    (client, driver, profile)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(path: &std::path::Path) -> Self {
            std::fs::create_dir_all(path).unwrap();
            Self(path.to_owned())
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn fits_without_horizontal_scroll(c: &Client) -> bool {
    c.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth;",
        vec![],
    )
    .await
    .unwrap()
    .as_bool()
    .unwrap()
}

#[tokio::test]
async fn ui_nodes_page_in_chromium() {
    let p = Platform::from_env();
    let (c, _driver, _profile) = browser(&p).await;

    // Signed out: the app sends us to sign in.
    c.goto(&p.app("/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys("ui-user")
        .await
        .unwrap();
    c.find(Locator::Css("form.login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the dashboard", Duration::from_secs(10), || async {
        let path = c.current_url().await?.path().to_owned();
        Ok((path == "/").then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(c.title().await.unwrap(), "Projects · SAM");
    c.goto(&p.app("/nodes")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Nodes · SAM");
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("No nodes yet"), "{text}");

    // A node created through the API by the same user appears with its status.
    let api = p.signed_in_with_cloud("ui-user").await.unwrap();
    let node: sam_wire::NodeView = api
        .post(p.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "ui-node" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let selector = format!("[data-node-id='{}']", node.id);
    let status = eventually(
        "the node to show as running",
        Duration::from_secs(60),
        || async {
            c.refresh().await?;
            let row = c.find(Locator::Css(&selector)).await?;
            let status = row.attr("data-status").await?.unwrap_or_default();
            Ok((status == "running").then_some(status))
        },
    )
    .await
    .unwrap();
    assert_eq!(status, "running");
    let row_text = c
        .find(Locator::Css(&selector))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row_text.contains("ui-node"), "{row_text}");

    // Desktop and phone widths both fit; screenshots are kept for a person to look at.
    let artifacts = std::path::PathBuf::from(
        std::env::var("SAM_E2E_ARTIFACTS")
            .unwrap_or_else(|_| p.state_dir.join("logs").display().to_string()),
    );
    std::fs::create_dir_all(&artifacts).unwrap();
    for (width, height) in [(1280u32, 900u32), (375, 812)] {
        c.set_window_size(width, height).await.unwrap();
        c.refresh().await.unwrap();
        assert!(
            fits_without_horizontal_scroll(&c).await,
            "page overflows at {width}px"
        );
        let png = c.screenshot().await.unwrap();
        std::fs::write(artifacts.join(format!("ui-nodes-{width}.png")), png).unwrap();
    }

    // Clean up the node so no server outlives the test.
    let resp = api
        .delete(p.api(&format!("/api/nodes/{}", node.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    c.close().await.unwrap();
}
