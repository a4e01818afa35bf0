//! Runtime configuration: the registered app, where webhooks go, and the
//! lifetimes of codes and tokens.

use std::path::PathBuf;
use std::time::Duration;

/// The one GitHub App devgithub hosts; it doubles as the OAuth app whose
/// client id and secret the web flow checks.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Numeric app id, the JWT `iss`.
    pub id: u64,
    /// URL slug, as in `/apps/{slug}/installations/new`.
    pub slug: String,
    /// OAuth client id (`client_id` in the web flow; also accepted as `iss`).
    pub client_id: String,
    pub client_secret: String,
    /// PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`) that verifies the
    /// app's RS256 JWTs.
    pub public_key_pem: String,
    /// Registered OAuth callback URL. When set, `redirect_uri` must live
    /// under it and may be omitted; when unset, any `redirect_uri` goes.
    pub callback_url: Option<String>,
    /// Where the install flow sends the browser afterwards.
    pub setup_url: Option<String>,
}

/// Where signed webhook deliveries go.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC key for `X-Hub-Signature-256`; without it the header is omitted,
    /// as GitHub does for hooks without a secret.
    pub secret: Option<String>,
    /// First retry delay; each further retry waits four times longer.
    pub retry_delay: Duration,
    /// Attempts per delivery, the first one included.
    pub max_attempts: u32,
}

/// What a devgithub instance needs to know; the CLI builds it from flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `state.json`, the `port` file and `git/` (a bare repository
    /// per repository).
    pub state_dir: PathBuf,
    /// Base URL the server is reached at (`http://127.0.0.1:PORT`), used for
    /// `clone_url`, `html_url`, `Link` headers and webhook payloads. When
    /// `None`, each request's `Host` header decides.
    pub public_url: Option<String>,
    pub app: AppConfig,
    pub webhook: Option<WebhookConfig>,
    /// How long an OAuth code may wait before being exchanged (GitHub: 10 min).
    pub oauth_code_ttl: Duration,
    /// Lifetime of installation access tokens (GitHub: 1 h).
    pub installation_token_ttl: Duration,
}

impl Config {
    pub(crate) fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    pub(crate) fn git_root(&self) -> PathBuf {
        self.state_dir.join("git")
    }
}
