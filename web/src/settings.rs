//! The user's settings: cloud credentials, agent keys, personal access tokens.

use askama::Template;

use crate::projects::{
    AgentCredentialRow, CREDENTIAL_KINDS, CredentialView, SettingsOptions, credential_rows,
};
use crate::time::{self, Stamp, When};
use crate::{RenderError, Viewer, asset_version};

/// A stored cloud credential, masked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudCredentialRow {
    /// `hetzner`, `scaleway`.
    pub provider: String,
    /// E.g. `…abcd`; never the secret.
    pub masked: String,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

/// A personal access token (never the secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    /// Epoch milliseconds, like the other times.
    pub created_at: i64,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    /// `None`: never used.
    pub last_used_at: Option<i64>,
    /// `Some` once revoked; a revoked token has no revoke button.
    pub revoked_at: Option<i64>,
}

/// The settings page. `options.agents` fills the agent select.
pub fn render_settings_page(
    viewer: &Viewer,
    cloud: &[CloudCredentialRow],
    agents: &[AgentCredentialRow],
    tokens: &[TokenRow],
    options: &SettingsOptions,
    version: &str,
    now_ms: i64,
) -> Result<String, RenderError> {
    let page = SettingsPage {
        title: "Settings",
        version,
        asset_version: asset_version(),
        active_nav: "settings",
        viewer: Some(viewer),
        cloud: cloud
            .iter()
            .map(|row| CloudView {
                row,
                updated: time::when(row.updated_at, now_ms),
            })
            .collect(),
        agents: credential_rows(agents, now_ms),
        agent_options: &options.agents,
        kinds: CREDENTIAL_KINDS,
        tokens: tokens.iter().map(|t| TokenView::new(t, now_ms)).collect(),
    };
    Ok(page.render()?)
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    cloud: Vec<CloudView<'a>>,
    agents: Vec<CredentialView<'a>>,
    agent_options: &'a [String],
    kinds: &'static [&'static str],
    tokens: Vec<TokenView<'a>>,
}

struct CloudView<'a> {
    row: &'a CloudCredentialRow,
    updated: When,
}

struct TokenView<'a> {
    row: &'a TokenRow,
    created: Stamp,
    expires: Option<Stamp>,
    last_used: Option<When>,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
    state_class: &'static str,
}

impl<'a> TokenView<'a> {
    fn new(row: &'a TokenRow, now_ms: i64) -> Self {
        let (state, state_class) = if row.revoked_at.is_some() {
            ("revoked", "status-revoked")
        } else if row.expires_at.is_some_and(|at| at <= now_ms) {
            ("expired", "status-expired")
        } else {
            ("active", "status-active")
        };
        TokenView {
            row,
            created: time::stamp(row.created_at),
            expires: row.expires_at.map(time::stamp),
            last_used: row.last_used_at.map(|at| time::when(at, now_ms)),
            state,
            state_class,
        }
    }
}
