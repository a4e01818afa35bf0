//! The workspace page in a real headless Chromium, against the whole
//! platform: the page trades a terminal ticket for the vm-agent's cookie
//! on `ws-<id>.`, a terminal (xterm.js) echoes what is typed, a reload
//! reattaches and shows it again from scrollback, and the files and
//! changes tabs read the checkout; at phone and desktop widths.

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use sam_e2e::{Platform, eventually};
use serde_json::Value;

use crate::browser::{artifacts, browser, check_widths};
use crate::workspaces::{running_workspace, workspace_setup};

const WAIT: Duration = Duration::from_secs(30);

/// The terminal's screen, one string per row (xterm's DOM renderer).
async fn screen_rows(c: &Client) -> Vec<String> {
    let rows = c
        .execute(
            "return Array.from(document.querySelectorAll('#terminal .xterm-rows > div'))
                 .map(function (row) { return row.textContent.replace(/\\u00a0/g, ' ').trimEnd(); });",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(rows).unwrap_or_default()
}

/// Waits until some row of the terminal is exactly `line` (an output line,
/// not the command that printed it).
async fn wait_for_row(c: &Client, line: &str) {
    let found = eventually(
        &format!("a terminal row reading {line:?}"),
        WAIT,
        || async {
            Ok(screen_rows(c)
                .await
                .iter()
                .any(|row| row == line)
                .then_some(()))
        },
    )
    .await;
    if let Err(e) = found {
        panic!("{e}; screen: {:#?}", screen_rows(c).await);
    }
}

async fn wait_connected(c: &Client) {
    eventually("the terminal to connect", WAIT, || async {
        let state = c
            .find(Locator::Css("[data-testid=terminal-state]"))
            .await?
            .text()
            .await?;
        Ok((state == "connected").then_some(()))
    })
    .await
    .unwrap();
}

/// Types into the terminal as a user does (keys into xterm's input).
async fn type_keys(c: &Client, text: &str) {
    let input = c
        .find(Locator::Css("#terminal .xterm-helper-textarea"))
        .await
        .unwrap();
    input.send_keys(text).await.unwrap();
}

/// Gives the browser the app's session `cookie` (`sam_session=…`), set
/// from a page of the app as the test's stand-in for signing in there.
async fn sign_in_with(c: &Client, p: &Platform, cookie: &str) {
    c.goto(&p.app("/login")).await.unwrap();
    c.execute(
        "document.cookie = arguments[0] + '; path=/';",
        vec![Value::from(cookie)],
    )
    .await
    .unwrap();
}

async fn click_id(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click #{id}: {e}"));
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn ui_workspace_terminal_in_chromium() {
    let p = Platform::from_env();
    let s = workspace_setup(&p, "ui-ws-owner").await;
    let ws = running_workspace(&p, &s, "ui-ws").await;
    let (c, _driver, _profile) = browser(&p).await;

    // The browser signs in with the user's session.
    sign_in_with(&c, &p, &s.session).await;

    let page = p.app(&format!("/workspaces/{}", ws.id));
    c.goto(&page).await.unwrap();
    wait_connected(&c).await;
    type_keys(&c, &format!("echo hello{}", Key::Enter)).await;
    wait_for_row(&c, "hello").await;

    // Reload: the page reattaches and the scrollback shows it again.
    c.refresh().await.unwrap();
    wait_connected(&c).await;
    wait_for_row(&c, "hello").await;
    // The same shell: a change made now shows up in the Changes tab.
    type_keys(
        &c,
        &format!(
            "echo from-the-browser >> README.md && echo appended{}",
            Key::Enter
        ),
    )
    .await;
    wait_for_row(&c, "appended").await;

    // Files: the checkout's root, and README.md opened in the viewer.
    click_id(&c, "tab-files").await;
    let readme = eventually("README.md in the file list", WAIT, || async {
        Ok(
            c.find(Locator::Css("button.file-entry[data-path='README.md']"))
                .await
                .ok(),
        )
    })
    .await
    .unwrap();
    readme.click().await.unwrap();
    eventually("README.md's text", WAIT, || async {
        let shown = text_of(&c, "#file-text").await;
        Ok(shown.contains("from-the-browser").then_some(()))
    })
    .await
    .unwrap();

    // Changes: README.md is modified, and its diff adds the line.
    click_id(&c, "tab-changes").await;
    let changed = eventually("README.md among the changes", WAIT, || async {
        Ok(
            c.find(Locator::Css("#changes-files button[data-path='README.md']"))
                .await
                .ok(),
        )
    })
    .await
    .unwrap();
    changed.click().await.unwrap();
    eventually("the diff", WAIT, || async {
        Ok(text_of(&c, "#diff")
            .await
            .contains("+from-the-browser")
            .then_some(()))
    })
    .await
    .unwrap();

    // Ports: a dev server started in the terminal is listed and opens in a
    // new tab through ws-<id>--<port>. with a port ticket.
    click_id(&c, "tab-terminals").await;
    let server = std::env::var("SAM_E2E_PORT_ECHO").expect("SAM_E2E_PORT_ECHO names the test app");
    type_keys(&c, &format!("'{server}' 0 &{}", Key::Enter)).await;
    let port = eventually("the dev server's port", WAIT, || async {
        // A background job's line may share its row with the prompt.
        Ok(screen_rows(&c).await.iter().find_map(|row| {
            let rest = &row[row.find("listening on ")? + "listening on ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u16>().ok()
        }))
    })
    .await
    .unwrap();
    click_id(&c, "tab-ports").await;
    let open = eventually("the port in the list", WAIT, || async {
        Ok(c.find(Locator::Css(&format!(
            "button.port-open[data-port='{port}']"
        )))
        .await
        .ok())
    })
    .await;
    let open = match open {
        Ok(open) => open,
        Err(e) => panic!(
            "{e}: port {port}; the panel says {:?}",
            text_of(&c, "#panel-ports").await
        ),
    };
    let app_window = c.window().await.unwrap();
    open.click().await.unwrap();
    let preview = eventually("the port's new tab", WAIT, || async {
        let windows = c.windows().await?;
        Ok(windows.into_iter().find(|w| *w != app_window))
    })
    .await
    .unwrap();
    c.switch_to_window(preview).await.unwrap();
    eventually("the dev server's answer", WAIT, || async {
        let url = c.current_url().await?;
        let body = c.find(Locator::Css("body")).await?.text().await?;
        Ok((url.host_str()
            == Some(&format!(
                "ws-{}--{port}.sam.localhost",
                ws.id.to_ascii_lowercase()
            ))
            && body.starts_with("GET /"))
        .then_some(()))
    })
    .await
    .unwrap();
    c.close_window().await.unwrap();
    c.switch_to_window(app_window).await.unwrap();
    click_id(&c, "ports-public").await;
    eventually("the ports to be public", WAIT, || async {
        Ok((text_of(&c, "#workspace-ports-public").await == "public").then_some(()))
    })
    .await
    .unwrap();

    // Both widths fit; after each reload the terminal reattaches with its
    // scrollback (check_widths reloads the page at each width).
    check_widths(&c, &artifacts(&p), "workspace").await;
    click_id(&c, "tab-terminals").await;
    wait_connected(&c).await;
    wait_for_row(&c, "hello").await;
    c.set_window_size(375, 812).await.unwrap();
    c.refresh().await.unwrap();
    wait_connected(&c).await;
    wait_for_row(&c, "appended").await;
    type_keys(&c, &format!("echo narrow-$((20+1)){}", Key::Enter)).await;
    wait_for_row(&c, "narrow-21").await;

    // Another user's browser gets the 404 page for this workspace.
    let stranger = sam_e2e::session_cookie(&p, "ui-ws-stranger").await.unwrap();
    c.delete_all_cookies().await.unwrap();
    sign_in_with(&c, &p, &stranger).await;
    c.goto(&page).await.unwrap();
    assert_eq!(text_of(&c, "#error-title").await, "Error 404");
    let body = text_of(&c, "body").await;
    assert!(!body.contains("ui-ws"), "{body}");
    c.close().await.unwrap();
}
