//! Agent configuration, read once from the environment at start-up.
//!
//! The rest of the agent takes a `&Config` and never reads the environment
//! itself, so tests build a config from a plain map and then adjust the
//! timing fields (heartbeat interval, back-off, JWKS refresh limit) that the
//! environment only expresses in whole seconds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::callback::Backoff;

/// Default location of the callback token written by cloud-init.
const DEFAULT_TOKEN_FILE: &str = "/etc/sam/callback-token";
const DEFAULT_HEARTBEAT_SECS: u64 = 60;
const DEFAULT_PORT: u16 = 8443;
const DEFAULT_BIND_HOST: &str = "0.0.0.0";
/// Under `SAM_FS_ROOT`, unless `SAM_AGENTS_DIR` says otherwise.
const DEFAULT_AGENTS_DIR: &str = "opt/sam/agents";
/// A token with an unknown `kid` triggers a key-set refresh; without a floor
/// on how often, anyone could make the agent hammer the control plane by
/// sending tokens with random key ids.
const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// Why the environment does not describe a usable agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Everything the agent needs to know about its node and control plane.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: String,
    /// Base URL of the control plane, without a trailing slash.
    pub control_plane_url: String,
    pub jwks_url: String,
    /// Expected `iss` of management tokens.
    pub token_issuer: String,
    /// Absolute path as configured; read through [`Config::host_path`].
    pub callback_token_file: PathBuf,
    pub heartbeat_interval: Duration,
    pub bind_host: IpAddr,
    pub port: u16,
    /// Root that every absolute path the agent uses is resolved under. It is
    /// `/` on a real VM; the local cloud stand-in runs each "VM" as a plain
    /// process with its own directory as root.
    pub fs_root: PathBuf,
    /// Minimum time between two key-set fetches.
    pub jwks_min_refresh: Duration,
    /// Retry schedule for the ready call.
    pub backoff: Backoff,
    /// The web app's origin (`SAM_APP_ORIGIN`, e.g. `https://app.example.com`):
    /// the one origin allowed, by CORS, to exchange a terminal ticket for the
    /// workspace cookie with `fetch`, and one of the origins a
    /// cookie-authenticated request may come from. `None`: no CORS at all.
    pub app_origin: Option<String>,
    /// Whether the workspace cookie is always `Secure`
    /// (`SAM_SECURE_COOKIES=true`); otherwise only when the request came
    /// over https (`X-Forwarded-Proto: https` from the Worker).
    pub secure_cookies: bool,
    /// The shell terminals run (`SHELL` of the agent's environment); when
    /// unset or not executable, `/bin/bash`, then `/bin/sh`.
    pub shell: Option<PathBuf>,
    /// `HOME` for terminal shells (the agent's own `HOME`, default `/root`).
    pub home: PathBuf,
    /// Where coding agents are installed from npm (`SAM_AGENTS_DIR`, an
    /// absolute host path, not re-rooted, so nodes and tests can share one
    /// cache; default `<SAM_FS_ROOT>/opt/sam/agents`).
    pub agents_dir: PathBuf,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_map(&std::env::vars().collect())
    }

    /// Reads a configuration from `vars`, applying defaults. Empty values
    /// count as unset, as env files often carry `NAME=` lines.
    pub fn from_env_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let node_id = get("SAM_NODE_ID")
            .ok_or(ConfigError::Missing("SAM_NODE_ID"))?
            .to_owned();
        // The id goes into URL paths; refuse anything that would change the path.
        if !node_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("SAM_NODE_ID", &node_id, "must be alphanumeric"));
        }

        let control_plane_url =
            get("SAM_CONTROL_PLANE_URL").ok_or(ConfigError::Missing("SAM_CONTROL_PLANE_URL"))?;
        check_http_url("SAM_CONTROL_PLANE_URL", control_plane_url)?;
        let control_plane_url = control_plane_url.trim_end_matches('/').to_owned();

        let jwks_url = match get("SAM_JWKS_URL") {
            Some(url) => {
                check_http_url("SAM_JWKS_URL", url)?;
                url.to_owned()
            }
            None => format!("{control_plane_url}/.well-known/jwks.json"),
        };
        let token_issuer =
            get("SAM_TOKEN_ISSUER").map_or_else(|| control_plane_url.clone(), str::to_owned);

        let callback_token_file = absolute_path(
            "SAM_CALLBACK_TOKEN_FILE",
            get("SAM_CALLBACK_TOKEN_FILE").unwrap_or(DEFAULT_TOKEN_FILE),
        )?;
        let fs_root = absolute_path("SAM_FS_ROOT", get("SAM_FS_ROOT").unwrap_or("/"))?;

        let heartbeat_secs = match get("SAM_HEARTBEAT_INTERVAL_SECS") {
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs) if secs >= 1 => secs,
                _ => {
                    return Err(invalid(
                        "SAM_HEARTBEAT_INTERVAL_SECS",
                        raw,
                        "must be a whole number of seconds, at least 1",
                    ));
                }
            },
            None => DEFAULT_HEARTBEAT_SECS,
        };

        let port = match get("SAM_VM_AGENT_PORT") {
            Some(raw) => raw
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("SAM_VM_AGENT_PORT", raw, "must be a port, 1-65535"))?,
            None => DEFAULT_PORT,
        };

        let raw_host = get("SAM_BIND_HOST").unwrap_or(DEFAULT_BIND_HOST);
        let bind_host = raw_host
            .parse::<IpAddr>()
            .map_err(|_| invalid("SAM_BIND_HOST", raw_host, "must be an IP address"))?;

        let app_origin = get("SAM_APP_ORIGIN")
            .map(|raw| origin("SAM_APP_ORIGIN", raw))
            .transpose()?;
        let secure_cookies = match get("SAM_SECURE_COOKIES") {
            None => false,
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => {
                    return Err(invalid("SAM_SECURE_COOKIES", raw, "must be true or false"));
                }
            },
        };
        let shell = get("SHELL").map(PathBuf::from);
        let home = PathBuf::from(get("HOME").unwrap_or("/root"));
        let agents_dir = match get("SAM_AGENTS_DIR") {
            Some(raw) => absolute_path("SAM_AGENTS_DIR", raw)?,
            None => fs_root.join(DEFAULT_AGENTS_DIR),
        };

        Ok(Self {
            node_id,
            control_plane_url,
            jwks_url,
            token_issuer,
            callback_token_file,
            heartbeat_interval: Duration::from_secs(heartbeat_secs),
            bind_host,
            port,
            fs_root,
            jwks_min_refresh: DEFAULT_JWKS_MIN_REFRESH,
            backoff: Backoff::default(),
            app_origin,
            secure_cookies,
            shell,
            home,
            agents_dir,
        })
    }

    /// The address the HTTP server listens on.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_host, self.port)
    }

    /// Where an absolute agent path really lives: `path` re-rooted under
    /// `fs_root`. With the default root of `/` this is `path` itself.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        // `join` with an absolute path would replace the root entirely.
        let relative = path.strip_prefix("/").unwrap_or(path);
        self.fs_root.join(relative)
    }

    /// The callback token file, resolved under `fs_root`.
    pub fn token_path(&self) -> PathBuf {
        self.host_path(&self.callback_token_file)
    }

    /// The file system whose size is reported as disk metrics.
    pub fn disk_path(&self) -> PathBuf {
        self.host_path(Path::new("/"))
    }
}

fn invalid(var: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason,
    }
}

fn check_http_url(var: &'static str, raw: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(raw).map_err(|_| invalid(var, raw, "not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(var, raw, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(var, raw, "has no host"));
    }
    Ok(())
}

/// An http(s) origin: scheme, host and optional port, nothing else. Returned
/// in the form browsers send in `Origin` (no trailing slash, default port
/// omitted, host in lower case).
fn origin(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    check_http_url(var, raw)?;
    let url = url::Url::parse(raw).map_err(|_| invalid(var, raw, "not a URL"))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(var, raw, "must be an origin, without a path"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(var, raw, "must not carry credentials"));
    }
    Ok(url.origin().ascii_serialization())
}

fn absolute_path(var: &'static str, raw: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(raw);
    if !path.is_absolute() {
        return Err(invalid(var, raw, "must be an absolute path"));
    }
    // `..` would climb out of SAM_FS_ROOT once the path is re-rooted.
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(invalid(var, raw, "must not contain `..`"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_components_are_refused() {
        assert!(absolute_path("SAM_CALLBACK_TOKEN_FILE", "/etc/sam/callback-token").is_ok());
        assert!(absolute_path("SAM_CALLBACK_TOKEN_FILE", "/../../etc/shadow").is_err());
        assert!(absolute_path("SAM_CALLBACK_TOKEN_FILE", "/etc/sam/../x").is_err());
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn minimal() -> HashMap<String, String> {
        env(&[
            ("SAM_NODE_ID", "01HZX3Y0000000000000000000"),
            ("SAM_CONTROL_PLANE_URL", "http://api.localhost:8787/"),
        ])
    }

    #[test]
    fn defaults_apply_to_a_minimal_environment() {
        let c = Config::from_env_map(&minimal()).unwrap();
        assert_eq!(c.node_id, "01HZX3Y0000000000000000000");
        assert_eq!(c.control_plane_url, "http://api.localhost:8787");
        assert_eq!(
            c.jwks_url,
            "http://api.localhost:8787/.well-known/jwks.json"
        );
        assert_eq!(c.token_issuer, "http://api.localhost:8787");
        assert_eq!(c.callback_token_file, Path::new("/etc/sam/callback-token"));
        assert_eq!(c.heartbeat_interval.as_secs(), 60);
        assert_eq!(c.bind_addr(), "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.token_path(), Path::new("/etc/sam/callback-token"));
        assert_eq!(c.disk_path(), Path::new("/"));
        assert_eq!(c.app_origin, None);
        assert!(!c.secure_cookies);
        assert_eq!(c.shell, None);
        assert_eq!(c.home, Path::new("/root"));
        assert_eq!(c.agents_dir, Path::new("/opt/sam/agents"));
    }

    #[test]
    fn the_agents_dir_is_absolute_and_not_re_rooted() {
        let mut vars = minimal();
        vars.insert("SAM_FS_ROOT".to_owned(), "/tmp/vm1".to_owned());
        let c = Config::from_env_map(&vars).unwrap();
        assert_eq!(c.agents_dir, Path::new("/tmp/vm1/opt/sam/agents"));
        vars.insert(
            "SAM_AGENTS_DIR".to_owned(),
            "/root/.cache/sam/agents".to_owned(),
        );
        let c = Config::from_env_map(&vars).unwrap();
        assert_eq!(c.agents_dir, Path::new("/root/.cache/sam/agents"));
        vars.insert("SAM_AGENTS_DIR".to_owned(), "cache/agents".to_owned());
        assert!(Config::from_env_map(&vars).is_err());
    }

    #[test]
    fn the_app_origin_is_normalised_to_what_browsers_send() {
        for (raw, expected) in [
            ("https://app.example.com", "https://app.example.com"),
            ("https://App.Example.com/", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://app.localhost:8787/", "http://app.localhost:8787"),
        ] {
            let mut vars = minimal();
            vars.insert("SAM_APP_ORIGIN".to_owned(), raw.to_owned());
            let c = Config::from_env_map(&vars).unwrap();
            assert_eq!(c.app_origin.as_deref(), Some(expected), "{raw}");
        }
    }

    #[test]
    fn cookie_and_shell_settings_are_read() {
        let mut vars = minimal();
        for (k, v) in [
            ("SAM_SECURE_COOKIES", "true"),
            ("SHELL", "/bin/zsh"),
            ("HOME", "/home/dev"),
        ] {
            vars.insert(k.to_owned(), v.to_owned());
        }
        let c = Config::from_env_map(&vars).unwrap();
        assert!(c.secure_cookies);
        assert_eq!(c.shell.as_deref(), Some(Path::new("/bin/zsh")));
        assert_eq!(c.home, Path::new("/home/dev"));
    }

    #[test]
    fn explicit_values_override_defaults_and_paths_resolve_under_the_root() {
        let mut vars = minimal();
        for (k, v) in [
            ("SAM_JWKS_URL", "https://keys.example/jwks.json"),
            ("SAM_TOKEN_ISSUER", "https://issuer.example"),
            ("SAM_CALLBACK_TOKEN_FILE", "/run/sam/token"),
            ("SAM_HEARTBEAT_INTERVAL_SECS", "5"),
            ("SAM_VM_AGENT_PORT", "9000"),
            ("SAM_BIND_HOST", "127.0.0.1"),
            ("SAM_FS_ROOT", "/tmp/devcloud/srv-1"),
        ] {
            vars.insert(k.to_owned(), v.to_owned());
        }
        let c = Config::from_env_map(&vars).unwrap();
        assert_eq!(c.jwks_url, "https://keys.example/jwks.json");
        assert_eq!(c.token_issuer, "https://issuer.example");
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.bind_addr(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            c.token_path(),
            Path::new("/tmp/devcloud/srv-1/run/sam/token")
        );
        assert_eq!(c.disk_path(), Path::new("/tmp/devcloud/srv-1/"));
    }

    #[test]
    fn missing_required_values_are_named() {
        let err = Config::from_env_map(&env(&[("SAM_CONTROL_PLANE_URL", "http://x")]));
        assert_eq!(err.unwrap_err(), ConfigError::Missing("SAM_NODE_ID"));

        let err = Config::from_env_map(&env(&[
            ("SAM_NODE_ID", "n1"),
            ("SAM_CONTROL_PLANE_URL", " "),
        ]));
        assert_eq!(
            err.unwrap_err(),
            ConfigError::Missing("SAM_CONTROL_PLANE_URL")
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("SAM_CONTROL_PLANE_URL", "api.localhost:8787"),
            ("SAM_CONTROL_PLANE_URL", "ftp://api.localhost"),
            ("SAM_JWKS_URL", "not a url"),
            ("SAM_NODE_ID", "../../admin"),
            ("SAM_HEARTBEAT_INTERVAL_SECS", "0"),
            ("SAM_HEARTBEAT_INTERVAL_SECS", "soon"),
            ("SAM_VM_AGENT_PORT", "70000"),
            ("SAM_VM_AGENT_PORT", "0"),
            ("SAM_BIND_HOST", "localhost"),
            ("SAM_FS_ROOT", "relative/root"),
            ("SAM_CALLBACK_TOKEN_FILE", "token"),
            ("SAM_APP_ORIGIN", "app.example.com"),
            ("SAM_APP_ORIGIN", "https://app.example.com/path"),
            ("SAM_APP_ORIGIN", "https://app.example.com/?q=1"),
            ("SAM_APP_ORIGIN", "https://user:pw@app.example.com"),
            ("SAM_SECURE_COOKIES", "maybe"),
        ];
        for (var, value) in cases {
            let mut vars = minimal();
            vars.insert(var.to_owned(), value.to_owned());
            match Config::from_env_map(&vars) {
                Err(ConfigError::Invalid { var: got, .. }) => assert_eq!(got, var, "{value}"),
                other => panic!("{var}={value}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_are_readable() {
        let mut vars = minimal();
        vars.insert("SAM_VM_AGENT_PORT".to_owned(), "http".to_owned());
        let msg = Config::from_env_map(&vars).unwrap_err().to_string();
        assert_eq!(
            msg,
            r#"SAM_VM_AGENT_PORT="http" is invalid: must be a port, 1-65535"#
        );
    }
}
