//! The GitHub App, configured from the Worker's environment.

use sam_control::github::GithubAppClient;
use sam_providers::{GithubApp, GithubAppKey};
use worker::Env;

use super::config::{Config, ConfigError};
use crate::now_ms;
use crate::runtime::FetchHttp;

/// The App's client for one request or event.
pub type AppGithub = GithubAppClient<FetchHttp>;

/// Why the App cannot be used on this deployment.
pub fn unconfigured() -> ConfigError {
    ConfigError::new(
        503,
        "github_app_unconfigured",
        "the GitHub App is not configured here (GITHUB_APP_ID, GITHUB_APP_SLUG, GITHUB_APP_PRIVATE_KEY)",
    )
}

/// The App's client, or a clear error when the deployment has none.
pub fn app_client(env: &Env, config: &Config) -> Result<AppGithub, ConfigError> {
    let app = config.github_app.as_ref().ok_or_else(unconfigured)?;
    let key = GithubAppKey::from_pem(&Config::github_app_private_key(env)?).map_err(|e| {
        ConfigError::new(
            500,
            "misconfigured",
            format!("GITHUB_APP_PRIVATE_KEY: {}", e.code()),
        )
    })?;
    Ok(GithubAppClient::new(
        GithubApp {
            api_url: app.api_url.clone(),
            app_id: app.app_id,
            key,
        },
        FetchHttp,
        now_ms() / 1000,
    ))
}
