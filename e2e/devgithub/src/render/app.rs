//! The GitHub App and its installations.

use serde_json::{Value, json};

use super::simple_user;
use crate::config::AppConfig;
use crate::ids::node_id;
use crate::state::{Installation, World};

/// Id of the synthetic organization that owns the app.
const APP_OWNER_ID: u64 = 1;

/// Id of the app's bot user (`{slug}[bot]`), which installation tokens
/// act as; outside the account id range.
pub(crate) fn bot_id(app_id: u64) -> u64 {
    41_000_000 + app_id
}

/// The app's bot user (`{slug}[bot]`), which installation tokens act as.
pub(crate) fn bot_user(base: &str, config: &AppConfig) -> Value {
    let login = format!("{}[bot]", config.slug);
    let id = bot_id(config.id);
    json!({
        "login": login,
        "id": id,
        "node_id": node_id("Bot", id),
        "avatar_url": format!("{base}/avatars/u/{id}"),
        "gravatar_id": "",
        "url": format!("{base}/users/{login}"),
        "html_url": format!("{base}/apps/{}", config.slug),
        "type": "Bot",
        "user_view_type": "public",
        "site_admin": false,
    })
}

pub(crate) fn app(base: &str, config: &AppConfig, world: &World) -> Value {
    let mut permissions = serde_json::Map::new();
    let mut events: Vec<String> = Vec::new();
    for installation in world.installations.values() {
        for (k, v) in &installation.permissions {
            permissions.insert(k.clone(), Value::String(v.clone()));
        }
        events.extend(installation.events.iter().cloned());
    }
    if permissions.is_empty() {
        for (k, v) in crate::state::default_permissions() {
            permissions.insert(k, Value::String(v));
        }
    }
    events.sort();
    events.dedup();
    json!({
        "id": config.id,
        "slug": config.slug,
        "node_id": node_id("Integration", config.id),
        "client_id": config.client_id,
        "owner": {
            "login": "devgithub",
            "id": APP_OWNER_ID,
            "node_id": node_id("Organization", APP_OWNER_ID),
            "avatar_url": format!("{base}/avatars/u/{APP_OWNER_ID}"),
            "url": format!("{base}/users/devgithub"),
            "html_url": format!("{base}/devgithub"),
            "type": "Organization",
            "site_admin": false,
        },
        "name": config.slug,
        "description": "GitHub App hosted by devgithub",
        "external_url": config.setup_url.clone().unwrap_or_else(|| base.to_owned()),
        "html_url": format!("{base}/apps/{}", config.slug),
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "permissions": permissions,
        "events": events,
        "installations_count": world.installations.len(),
    })
}

pub(crate) fn installation(
    base: &str,
    config: &AppConfig,
    world: &World,
    installation: &Installation,
) -> Value {
    let account = world.accounts.get(&installation.account_id);
    let id = installation.id;
    json!({
        "id": id,
        "node_id": node_id("Installation", id),
        "account": account.map(|a| simple_user(base, a)),
        "repository_selection": installation.repository_selection.as_str(),
        "access_tokens_url": format!("{base}/app/installations/{id}/access_tokens"),
        "repositories_url": format!("{base}/installation/repositories"),
        "html_url": format!("{base}/settings/installations/{id}"),
        "app_id": config.id,
        "app_slug": config.slug,
        "client_id": config.client_id,
        "target_id": installation.account_id,
        "target_type": account.map_or("User", |a| a.kind.as_str()),
        "permissions": installation.permissions,
        "events": installation.events,
        "created_at": installation.created_at,
        "updated_at": installation.updated_at,
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null,
    })
}
