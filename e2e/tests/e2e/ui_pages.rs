//! The dashboard, new-project, project and settings pages in a real
//! headless Chromium (Debian's chromium + chromedriver): signing in through
//! the GitHub stand-in, installing the GitHub App, creating and changing a
//! project, and managing credentials and tokens through the pages' JSON
//! forms, at phone and desktop widths.

use std::time::Duration;

use fantoccini::{Client, Locator};
use sam_e2e::{Platform, create_github_repo, create_github_user, eventually};
use serde_json::json;

use crate::browser::{artifacts, browser, check_widths};

/// How long a navigation or a form's round trip may take.
const WAIT: Duration = Duration::from_secs(30);

/// Waits until the browser is on the app host at `path`.
async fn wait_for_app_path(c: &Client, p: &Platform, path: &str) {
    let host = format!("app.sam.localhost:{}", p.port);
    eventually(&format!("the browser to reach {path}"), WAIT, || async {
        let url = c.current_url().await?;
        let here = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port().unwrap_or(80)
        );
        Ok((here == host && url.path() == path).then_some(()))
    })
    .await
    .unwrap();
}

/// Waits until the browser is on devgithub at `path`; returns the URL.
async fn wait_for_github_path(c: &Client, p: &Platform, path: &str) -> url::Url {
    let base = url::Url::parse(&p.devgithub_url).unwrap();
    eventually(
        &format!("the browser to reach GitHub's {path}"),
        WAIT,
        || async {
            let url = c.current_url().await?;
            let same = url.host_str() == base.host_str()
                && url.port_or_known_default() == base.port_or_known_default()
                && url.path() == path;
            Ok(same.then_some(url))
        },
    )
    .await
    .unwrap()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Replaces the text of the input `css` with `text`.
async fn type_into(c: &Client, css: &str, text: &str) {
    let input = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    input.clear().await.unwrap();
    if !text.is_empty() {
        input.send_keys(text).await.unwrap();
    }
}

async fn choose(c: &Client, select_css: &str, value: &str) {
    c.find(Locator::Css(select_css))
        .await
        .unwrap_or_else(|e| panic!("{select_css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("{select_css} = {value}: {e}"));
}

/// The current value of a form control.
async fn value_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

/// Marks the current document, so a later check can tell it was replaced.
async fn mark_document(c: &Client) {
    c.execute("window.__samUiMarker = true;", vec![])
        .await
        .unwrap();
}

/// Waits until the marked document is replaced (a reload or navigation
/// done by forms.js) and the new one has finished loading.
async fn wait_for_new_document(c: &Client, what: &str) {
    eventually(what, WAIT, || async {
        let fresh = c
            .execute(
                "return window.__samUiMarker !== true && document.readyState === 'complete';",
                vec![],
            )
            .await?;
        Ok(fresh.as_bool().unwrap_or(false).then_some(()))
    })
    .await
    .unwrap();
}

/// Submits `form_id` and waits for forms.js to reload or leave the page.
async fn submit_and_wait_for_reload(c: &Client, form_id: &str) {
    mark_document(c).await;
    click(c, &format!("#{form_id} button[type=submit]")).await;
    let what = format!("{form_id} to succeed and reload the page");
    wait_for_new_document(c, &what).await;
}

/// Waits for the form's `[role=alert]` to show a message; returns it. The
/// page is not reloaded by a failed submission.
async fn form_error(c: &Client, form_id: &str) -> String {
    let css = format!("#{form_id} [role=alert]");
    eventually(&format!("an error in {form_id}"), WAIT, || async {
        let alert = c.find(Locator::Css(&css)).await?;
        let text = alert.text().await?;
        Ok((alert.is_displayed().await? && !text.is_empty()).then_some(text))
    })
    .await
    .unwrap()
}

/// Clicks a button whose form asks `confirm()` first, checks the question
/// and accepts it.
async fn click_and_confirm(c: &Client, css: &str, question_contains: &str) {
    click(c, css).await;
    let question = eventually("the confirm dialog", WAIT, || async {
        Ok(c.get_alert_text().await.ok())
    })
    .await
    .unwrap();
    assert!(question.contains(question_contains), "{question}");
    c.accept_alert().await.unwrap();
}

#[tokio::test]
async fn ui_sign_in_and_create_project_in_chromium() {
    let p = Platform::from_env();
    let login = "ui-pages-1";
    create_github_user(&p, login).await.unwrap();
    create_github_repo(&p, login, "webapp", &["main", "develop"])
        .await
        .unwrap();
    let full_name = format!("{login}/webapp");
    let artifacts = artifacts(&p);
    let (c, _driver, _profile) = browser(&p).await;

    // Signed out: the app sends us to sign in, and on to GitHub.
    c.goto(&p.app("/")).await.unwrap();
    wait_for_app_path(&c, &p, "/login").await;
    c.find(Locator::LinkText("Sign in with GitHub"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_github_path(&c, &p, "/login/oauth/authorize").await;
    // GitHub's page offers the accounts it knows; ours ends the link.
    click(&c, &format!("a[href$='login={login}']")).await;
    wait_for_app_path(&c, &p, "/").await;
    assert_eq!(c.title().await.unwrap(), "Projects · SAM");
    assert_eq!(
        c.find(Locator::Css("[data-viewer-login]"))
            .await
            .unwrap()
            .attr("data-viewer-login")
            .await
            .unwrap()
            .as_deref(),
        Some(login)
    );
    let main = text_of(&c, "main").await;
    assert!(main.contains("No projects yet"), "{main}");
    assert_eq!(count(&c, ".project-card").await, 0);

    // New project: nothing installed yet, so off to GitHub to install the app.
    click(&c, "#new-project-link").await;
    wait_for_app_path(&c, &p, "/projects/new").await;
    assert_eq!(c.title().await.unwrap(), "New project · SAM");
    assert_eq!(count(&c, "#no-installations").await, 1);
    assert_eq!(count(&c, "#create-project-form").await, 0);
    click(&c, "#install-app-link").await;
    let install = wait_for_github_path(&c, &p, "/apps/sam-local/installations/new").await;
    assert!(
        install
            .query_pairs()
            .any(|(k, v)| k == "state" && !v.is_empty()),
        "{install}"
    );
    // Who is installing: our account, then all repositories of it.
    click(&c, &format!("a[href$='login={login}']")).await;
    eventually("GitHub's install form", WAIT, || async {
        Ok(
            c.find(Locator::Css("input[name=repository_selection][value=all]"))
                .await
                .ok(),
        )
    })
    .await
    .unwrap();
    click(&c, &format!("input[name=account][value='{login}']")).await;
    click(&c, "input[name=repository_selection][value=all]").await;
    click(&c, "form button[type=submit]").await;

    // Back on New project, the repository is offered.
    wait_for_app_path(&c, &p, "/projects/new").await;
    let mut repo_value = None;
    for option in c
        .find_all(Locator::Css("#project-repository option"))
        .await
        .unwrap()
    {
        if option.text().await.unwrap().trim() == full_name {
            repo_value = option.attr("value").await.unwrap();
        }
    }
    let repo_value = repo_value.unwrap_or_else(|| panic!("{full_name} is not offered"));
    assert_eq!(
        c.find(Locator::Css(&format!(
            "#project-repository option[value='{repo_value}']"
        )))
        .await
        .unwrap()
        .attr("data-default-branch")
        .await
        .unwrap()
        .as_deref(),
        Some("main")
    );
    check_widths(&c, &artifacts, "new-project").await;

    // A branch the repository does not have is refused, and the form stays.
    choose(&c, "#project-repository", &repo_value).await;
    type_into(&c, "#project-branch", "no-such-branch").await;
    click(&c, "#create-project-form button[type=submit]").await;
    let error = form_error(&c, "create-project-form").await;
    assert!(error.starts_with("branch_not_found"), "{error}");
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/projects/new",
        "a refused project must not leave the page"
    );
    assert_eq!(value_of(&c, "#project-repository").await, repo_value);

    // Without a branch the repository's default is used.
    type_into(&c, "#project-branch", "").await;
    click(&c, "#create-project-form button[type=submit]").await;
    let project_id = eventually("the new project's page", WAIT, || async {
        let url = c.current_url().await?;
        let id = url
            .path()
            .strip_prefix("/projects/")
            .filter(|id| !id.is_empty() && *id != "new")
            .map(str::to_owned);
        Ok(id)
    })
    .await
    .unwrap();
    let head = c.find(Locator::Css(".project-head")).await.unwrap();
    assert_eq!(
        head.attr("data-project-id").await.unwrap().as_deref(),
        Some(project_id.as_str())
    );
    assert_eq!(c.title().await.unwrap(), "webapp · SAM");
    let head_text = head.text().await.unwrap();
    assert!(
        head_text.contains(&full_name) && head_text.contains("main"),
        "{head_text}"
    );
    if count(&c, "#repo-link").await > 0 {
        assert_eq!(text_of(&c, "#repo-link").await, full_name);
    }

    // Change the settings; they are kept across a reload.
    assert_eq!(value_of(&c, "#settings-vm-size").await, "");
    choose(&c, "#settings-vm-size", "large").await;
    choose(&c, "#settings-location", "hel1").await;
    choose(&c, "#settings-agent", "claude-code").await;
    type_into(&c, "#settings-branch", "develop").await;
    submit_and_wait_for_reload(&c, "project-settings-form").await;
    c.refresh().await.unwrap();
    assert_eq!(value_of(&c, "#settings-vm-size").await, "large");
    assert_eq!(value_of(&c, "#settings-location").await, "hel1");
    assert_eq!(value_of(&c, "#settings-agent").await, "claude-code");
    assert_eq!(value_of(&c, "#settings-provider").await, "");
    assert_eq!(value_of(&c, "#settings-branch").await, "develop");
    // A refused change shows why and changes nothing.
    type_into(&c, "#settings-branch", "gone").await;
    click(&c, "#project-settings-form button[type=submit]").await;
    let error = form_error(&c, "project-settings-form").await;
    assert!(error.starts_with("branch_not_found"), "{error}");
    c.refresh().await.unwrap();
    assert_eq!(value_of(&c, "#settings-branch").await, "develop");
    assert_eq!(value_of(&c, "#settings-vm-size").await, "large");
    check_widths(&c, &artifacts, "project").await;

    // The dashboard shows the project as a card.
    c.goto(&p.app("/")).await.unwrap();
    wait_for_app_path(&c, &p, "/").await;
    assert_eq!(count(&c, ".project-card").await, 1);
    let card_css = format!(".project-card[data-project-id='{project_id}']");
    let card = text_of(&c, &card_css).await;
    assert!(
        card.contains("webapp") && card.contains(&full_name) && card.contains("develop"),
        "{card}"
    );
    check_widths(&c, &artifacts, "dashboard").await;

    // The card leads to the project, whose danger zone deletes it.
    click(&c, &format!("{card_css} a.card-link")).await;
    wait_for_app_path(&c, &p, &format!("/projects/{project_id}")).await;
    click_and_confirm(
        &c,
        "#delete-project-form button[type=submit]",
        "Delete this project?",
    )
    .await;
    wait_for_app_path(&c, &p, "/").await;
    eventually("the empty dashboard", WAIT, || async {
        let text = c.find(Locator::Css("main")).await?.text().await?;
        Ok(text.contains("No projects yet").then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(count(&c, ".project-card").await, 0);
    c.close().await.unwrap();
}

#[tokio::test]
async fn ui_settings_credentials_and_tokens_in_chromium() {
    let p = Platform::from_env();
    let login = "ui-pages-2";
    let artifacts = artifacts(&p);
    let (c, _driver, _profile) = browser(&p).await;

    // A developer account, signed in through the sign-in page's form.
    c.goto(&p.app("/settings")).await.unwrap();
    wait_for_app_path(&c, &p, "/login").await;
    type_into(&c, "#login", login).await;
    click(&c, "form.login-form button[type=submit]").await;
    wait_for_app_path(&c, &p, "/").await;
    c.goto(&p.app("/settings")).await.unwrap();
    wait_for_app_path(&c, &p, "/settings").await;
    assert_eq!(c.title().await.unwrap(), "Settings · SAM");
    assert_eq!(count(&c, "#no-cloud-credentials").await, 1);
    assert_eq!(count(&c, "#no-agent-keys").await, 1);
    assert_eq!(count(&c, "#no-tokens").await, 1);
    assert_eq!(count(&c, "#token-reveal-box:not([hidden])").await, 0);

    // A token the provider refuses: the form says why, nothing is stored.
    let wrong = "not-a-real-hetzner-token-9999";
    type_into(&c, "#hetzner-token", wrong).await;
    click(&c, "#hetzner-form button[type=submit]").await;
    let error = form_error(&c, "hetzner-form").await;
    assert!(error.starts_with("cloud_credential_invalid"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    c.refresh().await.unwrap();
    assert_eq!(count(&c, "tr[data-provider]").await, 0);
    assert_eq!(count(&c, "#no-cloud-credentials").await, 1);

    // The real token is stored and listed masked only.
    let token = p.hetzner_token.clone();
    type_into(&c, "#hetzner-token", &token).await;
    submit_and_wait_for_reload(&c, "hetzner-form").await;
    assert_eq!(count(&c, "tr[data-provider]").await, 1);
    let masked = text_of(&c, "tr[data-provider='hetzner'] code").await;
    let tail: String = token
        .chars()
        .skip(token.chars().count().saturating_sub(4))
        .collect();
    assert!(
        masked.starts_with("••••") && masked.ends_with(&tail),
        "{masked}"
    );
    let source = c.source().await.unwrap();
    assert!(!source.contains(&token), "the page shows the whole token");

    // An agent key, likewise listed masked only.
    let secret = "sk-ant-ui-pages-secret-4242";
    choose(&c, "#agent-key-form-agent", "claude-code").await;
    choose(&c, "#agent-key-form-kind", "api_key").await;
    type_into(&c, "#agent-key-form-secret", secret).await;
    submit_and_wait_for_reload(&c, "agent-key-form").await;
    assert_eq!(count(&c, "#no-agent-keys").await, 0);
    let row = text_of(&c, "#agent-keys tr[data-agent='claude-code']").await;
    assert!(row.contains("api_key"), "{row}");
    let masked = text_of(&c, "#agent-keys tr[data-agent='claude-code'] code").await;
    assert_eq!(masked, "••••4242");
    let source = c.source().await.unwrap();
    assert!(
        !source.contains(secret),
        "the page shows the whole agent key"
    );

    // A personal access token is shown once, right after it is created.
    type_into(&c, "#token-name", "ui laptop").await;
    type_into(&c, "#token-expiry", "30").await;
    mark_document(&c).await;
    click(&c, "#create-token-form button[type=submit]").await;
    let pat = eventually("the new token to be revealed", WAIT, || async {
        let reveal = c.find(Locator::Id("token-reveal")).await?;
        let text = reveal.text().await?;
        Ok((reveal.is_displayed().await? && !text.is_empty()).then_some(text))
    })
    .await
    .unwrap();
    assert!(pat.starts_with("sam_pat_"), "{pat}");
    let still_here = c
        .execute("return window.__samUiMarker === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        still_here,
        json!(true),
        "revealing must not reload the page"
    );
    assert_eq!(value_of(&c, "#token-name").await, "", "the form is reset");
    c.refresh().await.unwrap();
    assert!(!c.source().await.unwrap().contains(&pat));
    let rows = c.find_all(Locator::Css("tr[data-token-id]")).await.unwrap();
    assert_eq!(rows.len(), 1);
    let token_id = rows[0].attr("data-token-id").await.unwrap().unwrap();
    let row_css = format!("tr[data-token-id='{token_id}']");
    let row = text_of(&c, &row_css).await;
    assert!(row.contains("ui laptop"), "{row}");
    assert_eq!(
        rows[0].attr("data-state").await.unwrap().as_deref(),
        Some("active")
    );
    check_widths(&c, &artifacts, "settings").await;

    // Revoking asks first, then marks the token revoked.
    mark_document(&c).await;
    click_and_confirm(
        &c,
        &format!("{row_css} button[type=submit]"),
        "Revoke the token ui laptop?",
    )
    .await;
    wait_for_new_document(&c, "the page to reload after revoking").await;
    let state = c
        .find(Locator::Css(&row_css))
        .await
        .unwrap()
        .attr("data-state")
        .await
        .unwrap();
    assert_eq!(state.as_deref(), Some("revoked"));
    assert_eq!(count(&c, &format!("{row_css} button")).await, 0);
    c.close().await.unwrap();
}
