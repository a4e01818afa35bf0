//! Typed configuration, read once per request (or Durable Object event)
//! from `[vars]` and secrets.

use sam_auth::SigningKey;
use sam_control::NodeSettings;
use worker::Env;

/// Why the configuration cannot be used: an HTTP status and a stable code
/// for the API to answer with (the API maps it onto its own error type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Build version reported by `/health` and page footers.
pub const VERSION: &str = match option_env!("SAM_BUILD_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

#[derive(Debug)]
pub struct Config {
    pub base_domain: String,
    /// `http://api.localhost:8787` locally, `https://api.<domain>` in production.
    pub api_origin: String,
    /// `http://app.localhost:8787` locally.
    pub app_origin: String,
    pub secure_cookies: bool,
    /// `PUBLIC_PORT` (locally 8787); `None` for the scheme's default.
    pub public_port: Option<u16>,
    pub dev_login_enabled: bool,
    pub hetzner_api_url: String,
    /// `https://api.scaleway.com` in production.
    pub scaleway_api_url: String,
    pub nodes: NodeSettings,
    /// Grace period before an unowned labelled server is destroyed.
    pub orphan_grace_ms: i64,
    /// GitHub sign-in; `None` until `GITHUB_CLIENT_ID` and its secret are set.
    pub github: Option<sam_providers::github::GithubOAuthApp>,
    /// New accounts wait for an admin (`REQUIRE_APPROVAL=true`).
    pub require_approval: bool,
    /// The GitHub App projects are linked through; `None` until
    /// `GITHUB_APP_ID` and `GITHUB_APP_SLUG` are set (its private key is the
    /// secret `GITHUB_APP_PRIVATE_KEY`, read only when used).
    pub github_app: Option<GithubAppConfig>,
    /// How tasks run: defaults and the model APIs agents are pointed at.
    pub tasks: sam_control::tasks::TaskSettings,
}

/// Where the GitHub App lives and what it is called.
#[derive(Debug, Clone)]
pub struct GithubAppConfig {
    pub app_id: u64,
    pub slug: String,
    pub web_url: String,
    pub api_url: String,
}

use crate::env::{secret, var};

fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> Result<T, ConfigError> {
    crate::env::number(env, name, default)
        .map_err(|message| ConfigError::new(500, "misconfigured", message))
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_domain = var(env, "BASE_DOMAIN").unwrap_or_else(|| "sam.localhost".to_owned());
        let scheme = var(env, "PUBLIC_URL_SCHEME").unwrap_or_else(|| "https".to_owned());
        let port = var(env, "PUBLIC_PORT")
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let origin = |host: &str| format!("{scheme}://{host}.{base_domain}{port}");
        let api_origin = origin("api");
        let app_origin_value = origin("app");
        Ok(Self {
            secure_cookies: scheme == "https",
            public_port: var(env, "PUBLIC_PORT").and_then(|p| p.parse().ok()),
            dev_login_enabled: sam_domain::accounts::dev_login_allowed(
                var(env, "DEV_LOGIN_ENABLED").as_deref() == Some("true"),
                &base_domain,
            ),
            hetzner_api_url: crate::env::provider_urls(env).hetzner,
            scaleway_api_url: crate::env::provider_urls(env).scaleway,
            orphan_grace_ms: number::<i64>(env, "ORPHAN_GRACE_SECS", 600)? * 1000,
            nodes: NodeSettings {
                control_plane_url: api_origin.clone(),
                heartbeat_interval_secs: number(env, "NODE_HEARTBEAT_INTERVAL_SECS", 60)?,
                vm_agent_port: number(env, "VM_AGENT_PORT", 8443)?,
                app_origin: app_origin_value.clone(),
                callback_token_ttl_secs: number(
                    env,
                    "NODE_CALLBACK_TOKEN_TTL_SECS",
                    7 * 24 * 3600,
                )?,
                max_nodes_per_user: number(env, "MAX_NODES_PER_USER", 10)?,
                lifecycle: crate::env::lifecycle_config(env)
                    .map_err(|message| ConfigError::new(500, "misconfigured", message))?,
                images: [
                    ("hetzner", "NODE_IMAGE"),
                    ("scaleway", "SCALEWAY_NODE_IMAGE"),
                ]
                .into_iter()
                .filter_map(|(provider, name)| Some((provider.to_owned(), var(env, name)?)))
                .collect(),
                // Distinct per deployment by default (the API origin), so
                // two deployments sharing a cloud account never sweep each
                // other's servers.
                create_retry: sam_control::retry::CreateRetryPolicy {
                    max_attempts: number(env, "NODE_CREATE_MAX_ATTEMPTS", 4)?,
                    budget_ms: number::<u64>(env, "NODE_CREATE_RETRY_BUDGET_SECS", 20)? * 1000,
                },
                deployment: sam_control::label_value(&var(env, "DEPLOYMENT_ID").unwrap_or_else(
                    || {
                        api_origin
                            .split_once("://")
                            .map_or(api_origin.as_str(), |(_, host)| host)
                            .to_owned()
                    },
                )),
            },
            github_app: match (var(env, "GITHUB_APP_ID"), var(env, "GITHUB_APP_SLUG")) {
                (Some(id), Some(slug)) => Some(GithubAppConfig {
                    app_id: id.parse().map_err(|_| {
                        ConfigError::new(500, "misconfigured", "GITHUB_APP_ID is not a number")
                    })?,
                    slug,
                    web_url: var(env, "GITHUB_WEB_URL")
                        .unwrap_or_else(|| "https://github.com".to_owned()),
                    api_url: var(env, "GITHUB_API_URL")
                        .unwrap_or_else(|| "https://api.github.com".to_owned()),
                }),
                _ => None,
            },
            github: match (
                var(env, "GITHUB_CLIENT_ID"),
                secret(env, "GITHUB_CLIENT_SECRET"),
            ) {
                (Some(client_id), Some(client_secret)) => {
                    Some(sam_providers::github::GithubOAuthApp {
                        web_url: var(env, "GITHUB_WEB_URL")
                            .unwrap_or_else(|| "https://github.com".to_owned()),
                        api_url: var(env, "GITHUB_API_URL")
                            .unwrap_or_else(|| "https://api.github.com".to_owned()),
                        client_id,
                        client_secret,
                    })
                }
                _ => None,
            },
            require_approval: var(env, "REQUIRE_APPROVAL").as_deref() == Some("true"),
            tasks: task_settings(env)?,
            base_domain,
            app_origin: app_origin_value,
            api_origin,
        })
    }

    /// Where workspaces are reached and how their tokens are issued.
    pub fn workspace_settings(&self) -> sam_control::workspaces::WorkspaceSettings {
        sam_control::workspaces::WorkspaceSettings {
            control_plane_url: self.api_origin.clone(),
            callback_token_ttl_secs: self.nodes.callback_token_ttl_secs,
            base_domain: self.base_domain.clone(),
            url_scheme: if self.secure_cookies { "https" } else { "http" }.to_owned(),
            url_port: self.public_port,
        }
    }

    /// What the cron sweep needs.
    pub fn sweep_settings(&self) -> sam_control::sweep::SweepSettings {
        sam_control::sweep::SweepSettings {
            deployment: self.nodes.deployment.clone(),
            orphan_grace_ms: self.orphan_grace_ms,
            lifecycle: self.nodes.lifecycle,
        }
    }

    /// The JWT signing key (secret `JWT_SIGNING_KEY`).
    pub fn signing_key(env: &Env) -> Result<SigningKey, ConfigError> {
        let raw = secret(env, "JWT_SIGNING_KEY").ok_or_else(|| {
            ConfigError::new(
                500,
                "misconfigured",
                "the JWT_SIGNING_KEY secret is not set",
            )
        })?;
        SigningKey::from_seed_base64(&raw)
            .map_err(|e| ConfigError::new(500, "misconfigured", format!("JWT_SIGNING_KEY: {e}")))
    }

    /// The vault's session key ring (secret `SESSION_KEYS`, `kid:key,...`).
    pub fn session_keys(env: &Env) -> Result<sam_vault::SessionKeys, ConfigError> {
        let raw = secret(env, "SESSION_KEYS").ok_or_else(|| {
            ConfigError::new(500, "misconfigured", "the SESSION_KEYS secret is not set")
        })?;
        sam_vault::SessionKeys::parse(&raw)
            .map_err(|e| ConfigError::new(500, "misconfigured", format!("SESSION_KEYS: {e}")))
    }

    /// The GitHub App's RSA private key (secret `GITHUB_APP_PRIVATE_KEY`, PEM).
    pub fn github_app_private_key(env: &Env) -> Result<String, ConfigError> {
        secret(env, "GITHUB_APP_PRIVATE_KEY").ok_or_else(|| {
            ConfigError::new(
                503,
                "github_app_unconfigured",
                "the GITHUB_APP_PRIVATE_KEY secret is not set",
            )
        })
    }

    /// The key ring webhook signatures are checked against (secret
    /// `WEBHOOK_KEYS`, `kid:key,...`; GitHub is configured with the key text).
    pub fn webhook_keys(env: &Env) -> Result<sam_vault::WebhookKeys, ConfigError> {
        let raw = secret(env, "WEBHOOK_KEYS").ok_or_else(|| {
            ConfigError::new(503, "misconfigured", "the WEBHOOK_KEYS secret is not set")
        })?;
        sam_vault::WebhookKeys::parse(&raw)
            .map_err(|e| ConfigError::new(500, "misconfigured", format!("WEBHOOK_KEYS: {e}")))
    }

    /// The operator's agent keys (secret `PLATFORM_AGENT_CREDENTIALS`,
    /// JSON `{"claude-code": {"kind": "api_key", "secret": "…"}}`), used
    /// when neither the project nor the user has one. Unset means none.
    pub fn platform_agent_credentials(
        env: &Env,
    ) -> Result<sam_control::agent_credentials::PlatformAgentCredentials, ConfigError> {
        sam_control::agent_credentials::PlatformAgentCredentials::parse(
            &secret(env, "PLATFORM_AGENT_CREDENTIALS").unwrap_or_default(),
        )
        .map_err(|e| {
            ConfigError::new(
                500,
                "misconfigured",
                format!("PLATFORM_AGENT_CREDENTIALS: {e}"),
            )
        })
    }

    /// The vault's credential key ring (secret `CREDENTIAL_KEYS`, `kid:key,...`).
    pub fn credential_keys(env: &Env) -> Result<sam_vault::CredentialKeys, ConfigError> {
        crate::env::credential_keys(env)
            .map_err(|message| ConfigError::new(500, "misconfigured", message))
    }
}

/// Task defaults (`TASK_DEFAULT_AGENT`, `TASK_DEFAULT_VM_SIZE`,
/// `TASK_DEFAULT_PROVIDER`) and the model APIs agents call
/// (`AGENT_ANTHROPIC_BASE_URL`, `AGENT_OPENAI_BASE_URL`,
/// `AGENT_GEMINI_BASE_URL`; unset: each vendor's own).
fn task_settings(env: &Env) -> Result<sam_control::tasks::TaskSettings, ConfigError> {
    let defaults = sam_control::tasks::TaskSettings::default();
    let misconfigured = |name: &str| {
        ConfigError::new(
            500,
            "misconfigured",
            format!("configuration variable {name} is not valid"),
        )
    };
    let default_agent = match var(env, "TASK_DEFAULT_AGENT") {
        Some(raw) => sam_domain::agents::AgentKind::parse(&raw)
            .map_err(|_| misconfigured("TASK_DEFAULT_AGENT"))?,
        None => defaults.default_agent,
    };
    let default_vm_size = match var(env, "TASK_DEFAULT_VM_SIZE") {
        Some(raw) => sam_domain::catalog::VmSize::parse(&raw)
            .ok_or_else(|| misconfigured("TASK_DEFAULT_VM_SIZE"))?,
        None => defaults.default_vm_size,
    };
    Ok(sam_control::tasks::TaskSettings {
        config: defaults.config,
        default_agent,
        default_vm_size,
        default_provider: var(env, "TASK_DEFAULT_PROVIDER").unwrap_or(defaults.default_provider),
        model_apis: sam_control::tasks::ModelApiUrls {
            anthropic: var(env, "AGENT_ANTHROPIC_BASE_URL"),
            openai: var(env, "AGENT_OPENAI_BASE_URL"),
            gemini: var(env, "AGENT_GEMINI_BASE_URL"),
        },
    })
}
