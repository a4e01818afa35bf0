//! The GitHub App, configured from the Worker's environment (shared with
//! the Durable Objects, see `sam_durable_objects::platform::github`).

use worker::Env;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};

pub use sam_durable_objects::platform::github::AppGithub;

/// Why the App cannot be used on this deployment.
pub fn unconfigured() -> ApiError {
    sam_durable_objects::platform::github::unconfigured().into()
}

/// The App's client, or a clear error when the deployment has none.
pub fn from_env(env: &Env, config: &Config) -> ApiResult<AppGithub> {
    Ok(sam_durable_objects::platform::github::app_client(
        env, config,
    )?)
}
