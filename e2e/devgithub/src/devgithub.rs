//! [`DevGitHub`]: one instance's state, webhook queue and router, assembled.

use std::io;
use std::sync::Arc;

use axum::Router;
use jsonwebtoken::DecodingKey;

use crate::config::Config;
use crate::git::GitRepos;
use crate::hooks::Webhooks;
use crate::server::{self, AppState};
use crate::state::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating state directory {path}: {source}")]
    StateDir { path: String, source: io::Error },
    #[error(transparent)]
    State(#[from] StoreError),
    #[error("the app public key is not an RSA public key in PEM: {0}")]
    AppKey(#[from] jsonwebtoken::errors::Error),
    #[error("{what} is not an absolute http(s) URL: {url}")]
    Url { what: &'static str, url: String },
    #[error("building HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A running devgithub: persisted state, webhook deliveries and the API.
#[derive(Clone)]
pub struct DevGitHub {
    state: AppState,
}

impl std::fmt::Debug for DevGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevGitHub")
            .field("state_dir", &self.state.config.state_dir)
            .finish_non_exhaustive()
    }
}

fn check_url(what: &'static str, url: Option<&str>) -> Result<(), StartError> {
    match url {
        Some(raw)
            if !url::Url::parse(raw).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
            }) =>
        {
            Err(StartError::Url {
                what,
                url: raw.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

impl DevGitHub {
    /// Loads state from `config.state_dir` (bare git repositories live in
    /// its `git/`) and starts the webhook delivery task. Must run inside a
    /// Tokio runtime.
    pub fn start(config: Config) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::StateDir {
            path: config.state_dir.display().to_string(),
            source,
        })?;
        check_url("--public-url", config.public_url.as_deref())?;
        check_url("--callback-url", config.app.callback_url.as_deref())?;
        check_url("--setup-url", config.app.setup_url.as_deref())?;
        check_url(
            "--webhook-url",
            config.webhook.as_ref().map(|w| w.url.as_str()),
        )?;
        let git_root = config.git_root();
        std::fs::create_dir_all(&git_root).map_err(|source| StartError::StateDir {
            path: git_root.display().to_string(),
            source,
        })?;
        let app_key = DecodingKey::from_rsa_pem(config.app.public_key_pem.as_bytes())?;
        let store = Arc::new(Store::open(config.state_file())?);
        let hooks = Webhooks::start(config.webhook.clone(), config.app.id, Arc::clone(&store))?;
        Ok(DevGitHub {
            state: AppState {
                store,
                config: Arc::new(config),
                app_key: Arc::new(app_key),
                hooks,
                git: Arc::new(GitRepos::new(git_root)),
            },
        })
    }

    /// The web host, REST host and admin API on one router, ready to serve
    /// on any listener.
    pub fn router(&self) -> Router {
        server::router(self.state.clone())
    }
}
