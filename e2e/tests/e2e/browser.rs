//! A real headless Chromium (Debian's chromium + chromedriver) for the
//! browser tests, and the checks they share: no sideways scrolling at
//! phone and desktop widths, and full-page screenshots for a person to
//! look at.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use sam_e2e::{Platform, eventually};
use serde_json::json;

/// chromedriver and the Chromium it starts, as one process group that is
/// killed on drop, so a failing test leaves no browser behind.
pub struct Chromedriver(Child);

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

pub async fn browser(p: &Platform) -> (Client, Chromedriver, tempdir::Dir) {
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
        },
        // Confirm dialogs stay open until the test answers them.
        "unhandledPromptBehavior": "ignore",
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

pub mod tempdir {
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

/// Where screenshots are kept for a person to look at.
pub fn artifacts(p: &Platform) -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("SAM_E2E_ARTIFACTS")
            .unwrap_or_else(|_| p.state_dir.join("logs").display().to_string()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn fits_without_horizontal_scroll(c: &Client) -> bool {
    c.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth;",
        vec![],
    )
    .await
    .unwrap()
    .as_bool()
    .unwrap()
}

/// True when the main navigation shows all of its links without a
/// scroll bar of its own (it may scroll sideways on a phone, never up and down).
async fn nav_fits_vertically(c: &Client) -> bool {
    c.execute(
        "const nav = document.querySelector('.site-header nav');
         return !nav || getComputedStyle(nav).overflowY === 'visible'
             || nav.scrollHeight <= nav.clientHeight;",
        vec![],
    )
    .await
    .unwrap()
    .as_bool()
    .unwrap()
}

/// Reloads the current page at desktop and phone widths, checks that it
/// fits without scrolling sideways and saves the whole page as
/// `ui-{name}-{width}.png`.
pub async fn check_widths(c: &Client, artifacts: &Path, name: &str) {
    for (width, height) in [(1280u32, 900u32), (375, 812)] {
        c.set_window_size(width, height).await.unwrap();
        c.refresh().await.unwrap();
        assert!(
            fits_without_horizontal_scroll(c).await,
            "{name} overflows at {width}px"
        );
        assert!(
            nav_fits_vertically(c).await,
            "{name}: the navigation scrolls vertically at {width}px"
        );
        // The whole page in one picture: a window as tall as the document.
        let full = c
            .execute(
                "window.scrollTo(0, 0);
                 return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(height);
        c.set_window_size(width, full.clamp(height, 6000))
            .await
            .unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(artifacts.join(format!("ui-{name}-{width}.png")), png).unwrap();
    }
    c.set_window_size(1280, 900).await.unwrap();
}
