//! Project chat in a real headless Chromium, against the whole platform: a
//! task typed into the chat page runs to a pull request while the page
//! follows its session live (agent text, the tool call with its diff) and
//! its task (status, pull request link); the task list and the task's page
//! show it; at phone and desktop widths; another user gets a 404.

use std::time::Duration;

use fantoccini::{Client, Locator};
use sam_e2e::{Platform, eventually};
use serde_json::Value;

use crate::browser::{artifacts, browser, check_widths, fits_without_horizontal_scroll};

/// How long the task may take (the first task of a run also boots a node).
const TASK_TIMEOUT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(30);

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

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// What the chat page shows of the task and its stream right now.
async fn chat_state(c: &Client) -> Value {
    c.execute(
        "const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
         const pr = document.getElementById('pr-link');
         const stream = document.getElementById('chat-stream');
         return {
           status: text('task-status'),
           pr: pr && !pr.hidden ? pr.getAttribute('href') : null,
           tool_calls: stream ? stream.querySelectorAll('.tool-call').length : 0,
           diffs: stream ? stream.querySelectorAll('.tool-call .diff').length : 0,
           agent: stream ? stream.querySelectorAll('.msg-agent').length : 0,
           prompt: stream && stream.querySelector('.msg-user') ? stream.querySelector('.msg-user').textContent.trim() : null,
           live: text('chat-live-state'),
           failure: text('task-failure'),
           error: text('task-error'),
         };",
        vec![],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn ui_task_chat_in_chromium() {
    let p = Platform::from_env();
    let (_client, session, project) = sam_e2e::github_project(&p, "ui-tasks-owner", "ui-tasks-app")
        .await
        .unwrap();
    let project_id = project["id"].as_str().unwrap().to_owned();
    let (c, _driver, _profile) = browser(&p).await;
    sign_in_with(&c, &p, &session).await;

    // The project page links to its chat.
    c.goto(&p.app(&format!("/projects/{project_id}")))
        .await
        .unwrap();
    c.find(Locator::Id("project-chat-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let chat = p.app(&format!("/projects/{project_id}/chat"));
    eventually("the chat page", WAIT, || async {
        Ok((c.current_url().await?.as_str() == chat).then_some(()))
    })
    .await
    .unwrap();
    c.find(Locator::Id("no-sessions")).await.unwrap();

    // Submit a task with Claude Code.
    c.find(Locator::Id("task-message"))
        .await
        .unwrap()
        .send_keys("Please create hello.txt with a greeting")
        .await
        .unwrap();
    c.find(Locator::Id("task-agent"))
        .await
        .unwrap()
        .select_by_value("claude-code")
        .await
        .unwrap();
    c.find(Locator::Id("task-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let session_url = eventually("the new session's page", WAIT, || async {
        let url = c.current_url().await?;
        Ok(url
            .query_pairs()
            .any(|(k, _)| k == "session")
            .then(|| url.to_string()))
    })
    .await;
    let session_url = match session_url {
        Ok(url) => url,
        Err(e) => panic!("{e}; the form says {:?}", text_of(&c, "#task-error").await),
    };

    // The page follows the run live until the pull request is there.
    let done = eventually("the task to complete on the page", TASK_TIMEOUT, || async {
        let s = chat_state(&c).await;
        if s["status"] == "failed" || s["status"] == "cancelled" {
            return Ok(Some(s));
        }
        let ready = s["status"] == "completed"
            && s["pr"].as_str().is_some_and(|href| href.contains("/pull/"))
            && s["tool_calls"].as_u64() > Some(0)
            && s["diffs"].as_u64() > Some(0);
        Ok(ready.then_some(s))
    })
    .await;
    let done = match done {
        Ok(done) => done,
        Err(e) => panic!("{e}; the page shows {}", chat_state(&c).await),
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["prompt"], "Please create hello.txt with a greeting",
        "{done}"
    );
    assert!(done["agent"].as_u64() > Some(0), "agent text: {done}");
    assert_eq!(
        text_of(&c, "#session-list .session-selected .session-title").await,
        "Please create hello.txt with a greeting"
    );

    // Rendered by the server after a reload, the same things are there.
    c.goto(&session_url).await.unwrap();
    let again = chat_state(&c).await;
    assert_eq!(again["status"], "completed", "{again}");
    assert!(
        again["pr"].as_str().unwrap_or_default().contains("/pull/"),
        "{again}"
    );
    assert!(again["diffs"].as_u64() > Some(0), "{again}");

    // Searching the sessions by title filters the list.
    let search = c.find(Locator::Id("session-search")).await.unwrap();
    search.send_keys("no such title").await.unwrap();
    let hidden: bool = c
        .execute(
            "return document.querySelector('#session-list .session-item').hidden;",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(
        hidden,
        "the search hides a session whose title does not match"
    );

    // Both widths fit; at 375 px the diff scrolls inside its box.
    check_widths(&c, &artifacts(&p), "chat").await;
    c.set_window_size(375, 812).await.unwrap();
    c.goto(&session_url).await.unwrap();
    assert!(
        fits_without_horizontal_scroll(&c).await,
        "chat overflows at 375px"
    );

    // The task list and the task's page show it.
    c.goto(&p.app(&format!("/projects/{project_id}/tasks")))
        .await
        .unwrap();
    let row_status = text_of(&c, "#tasks-table tbody tr .badge").await;
    assert_eq!(row_status, "completed");
    assert!(
        fits_without_horizontal_scroll(&c).await,
        "tasks overflow at 375px"
    );
    c.find(Locator::Css("#tasks-table a.task-title"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the task's page", WAIT, || async {
        Ok(c.find(Locator::Id("task-timeline")).await.ok())
    })
    .await
    .unwrap();
    assert_eq!(text_of(&c, "#task-status").await, "completed");
    assert!(
        text_of(&c, "#task-timeline").await.contains("finalizing"),
        "the status log"
    );
    c.set_window_size(1280, 900).await.unwrap();

    // Another user's browser gets the 404 page for this chat.
    let stranger = sam_e2e::session_cookie(&p, "ui-tasks-stranger")
        .await
        .unwrap();
    c.delete_all_cookies().await.unwrap();
    sign_in_with(&c, &p, &stranger).await;
    c.goto(&chat).await.unwrap();
    assert_eq!(text_of(&c, "#error-title").await, "Error 404");
    let body = text_of(&c, "body").await;
    assert!(!body.contains("ui-tasks-app"), "{body}");
    c.close().await.unwrap();
}
