//! Renders the cloud-init user-data that turns a fresh VM into a SAM node.
//!
//! The document is built from typed structs and serialised with
//! `serde_yaml_ng`, never assembled from string templates, so quoting and
//! escaping are the serialiser's job. Inputs are still validated first:
//! cloud-init reads YAML 1.1 (PyYAML) while the serialiser writes YAML 1.2,
//! and the two disagree on a few plain scalars (`yes`, `off`, `1_0`), so
//! values that end up as bare scalars are restricted to shapes both read as
//! strings. Values written into the systemd environment file are restricted
//! to characters systemd passes through literally.
//!
//! The only secret in the output is the node's own callback token; provider
//! and user credentials have no field to travel through.

use std::fmt::Write as _;

use serde::Serialize;

pub mod env;
mod validate;

/// Hetzner Cloud rejects `user_data` larger than 32 KiB.
pub const MAX_USER_DATA_BYTES: usize = 32 * 1024;

/// Where the agent binary is installed.
pub const AGENT_BINARY_PATH: &str = "/usr/local/bin/vm-agent";
/// The agent's environment file, loaded by its systemd unit.
pub const ENV_FILE_PATH: &str = "/etc/sam/vm-agent.env";
/// The node's callback token; a file rather than an environment variable
/// so it does not show up in `systemctl show` or `/proc/<pid>/environ`.
pub const CALLBACK_TOKEN_PATH: &str = "/etc/sam/callback-token";
/// journald limits, so agent logs cannot fill a small disk.
pub const JOURNALD_CONF_PATH: &str = "/etc/systemd/journald.conf.d/sam.conf";
/// The agent's systemd unit.
pub const SERVICE_UNIT_PATH: &str = "/etc/systemd/system/vm-agent.service";
/// The unit name passed to `systemctl`.
pub const SERVICE_NAME: &str = "vm-agent.service";

/// Everything a node needs to find and authenticate to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeBootstrap<'a> {
    /// The node's id (a ULID in practice); `[A-Za-z0-9_-]`, at most 64 bytes.
    pub node_id: &'a str,
    /// Hostname for the VM; letters, digits, `-` and `.`, starting with a letter.
    pub hostname: &'a str,
    /// Base URL of the control plane, e.g. `http://api.localhost:8787`.
    pub control_plane_url: &'a str,
    /// Full download URL of the agent binary, including `?arch=…`.
    pub agent_download_url: &'a str,
    /// Signed token the agent presents when calling back (a compact JWS).
    pub callback_token: &'a str,
    /// How often the agent reports in; at least one second.
    pub heartbeat_interval_secs: u64,
    /// Port the agent listens on; non-zero.
    pub vm_agent_port: u16,
    /// The web app's origin, e.g. `http://app.localhost:8787`: the agent
    /// lets pages of this origin (only) use workspace cookies.
    pub app_origin: &'a str,
}

/// Why user-data could not be rendered.
///
/// Messages never echo the callback token and clip other echoed input.
#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    #[error("invalid node id {value:?}: expected 1-64 characters of [A-Za-z0-9_-]")]
    InvalidNodeId { value: String },
    #[error("invalid hostname {value:?}: {reason}")]
    InvalidHostname { value: String, reason: &'static str },
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidUrl {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid callback token: {reason}")]
    InvalidCallbackToken { reason: &'static str },
    #[error("heartbeat interval must be at least one second")]
    InvalidHeartbeatInterval,
    #[error("vm-agent port must be non-zero")]
    InvalidPort,
    #[error("rendered user-data is {bytes} bytes; the limit is {MAX_USER_DATA_BYTES}")]
    TooLarge { bytes: usize },
    #[error("could not serialise cloud-config: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

impl CloudInitError {
    /// A stable machine-readable code for logs and API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidNodeId { .. } => "invalid_node_id",
            Self::InvalidHostname { .. } => "invalid_hostname",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::InvalidCallbackToken { .. } => "invalid_callback_token",
            Self::InvalidHeartbeatInterval => "invalid_heartbeat_interval",
            Self::InvalidPort => "invalid_port",
            Self::TooLarge { .. } => "user_data_too_large",
            Self::Yaml(_) => "yaml_serialisation",
        }
    }
}

/// The subset of the cloud-config schema SAM uses. Field order is the
/// order in the output, which keeps the snapshot readable.
#[derive(Serialize)]
struct CloudConfig<'a> {
    hostname: &'a str,
    package_update: bool,
    package_upgrade: bool,
    write_files: Vec<WriteFile>,
    runcmd: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct WriteFile {
    path: &'static str,
    owner: &'static str,
    permissions: &'static str,
    content: String,
}

impl WriteFile {
    fn root(path: &'static str, permissions: &'static str, content: String) -> Self {
        Self {
            path,
            owner: "root:root",
            permissions,
            content,
        }
    }
}

/// Renders the `#cloud-config` user-data for one node.
pub fn render(b: &NodeBootstrap<'_>) -> Result<String, CloudInitError> {
    validate::bootstrap(b)?;
    let config = CloudConfig {
        hostname: b.hostname,
        // Upgrading packages on every boot makes boot time unpredictable and
        // can restart services mid-provisioning; images are kept current instead.
        package_update: false,
        package_upgrade: false,
        write_files: vec![
            WriteFile::root(ENV_FILE_PATH, "0600", env_file(b)),
            // No trailing newline: the file holds exactly the token.
            WriteFile::root(CALLBACK_TOKEN_PATH, "0600", b.callback_token.to_owned()),
            WriteFile::root(JOURNALD_CONF_PATH, "0644", JOURNALD_CONF.to_owned()),
            WriteFile::root(SERVICE_UNIT_PATH, "0644", SERVICE_UNIT.to_owned()),
        ],
        runcmd: runcmd(b),
    };
    let mut out = String::from("#cloud-config\n");
    out.push_str(&serde_yaml_ng::to_string(&config)?);
    if out.len() > MAX_USER_DATA_BYTES {
        return Err(CloudInitError::TooLarge { bytes: out.len() });
    }
    Ok(out)
}

fn env_file(b: &NodeBootstrap<'_>) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "{}={}", env::NODE_ID, b.node_id);
    let _ = writeln!(s, "{}={}", env::CONTROL_PLANE_URL, b.control_plane_url);
    let _ = writeln!(s, "{}={}", env::CALLBACK_TOKEN_FILE, CALLBACK_TOKEN_PATH);
    let _ = writeln!(
        s,
        "{}={}",
        env::HEARTBEAT_INTERVAL_SECS,
        b.heartbeat_interval_secs
    );
    let _ = writeln!(s, "{}={}", env::VM_AGENT_PORT, b.vm_agent_port);
    let _ = writeln!(s, "{}={}", env::APP_ORIGIN, b.app_origin);
    s
}

/// Commands in list form: cloud-init executes them directly, without a
/// shell, so no argument is ever subject to word splitting or expansion.
fn runcmd(b: &NodeBootstrap<'_>) -> Vec<Vec<String>> {
    let cmd = |args: &[&str]| args.iter().map(|&a| a.to_owned()).collect();
    vec![
        cmd(&[
            "curl",
            "-fsSL",
            "--retry",
            "5",
            "--retry-delay",
            "2",
            "-o",
            AGENT_BINARY_PATH,
            b.agent_download_url,
        ]),
        cmd(&["chmod", "0755", AGENT_BINARY_PATH]),
        // journald only reads its drop-ins at start-up.
        cmd(&["systemctl", "restart", "systemd-journald"]),
        cmd(&["systemctl", "daemon-reload"]),
        cmd(&["systemctl", "enable", "--now", SERVICE_NAME]),
    ]
}

const JOURNALD_CONF: &str = "\
# Written by SAM at first boot: bounds journal disk use on small nodes.
[Journal]
SystemMaxUse=200M
SystemMaxFileSize=50M
MaxRetentionSec=7day
RateLimitIntervalSec=30s
RateLimitBurst=10000
";

const SERVICE_UNIT: &str = "\
[Unit]
Description=SAM vm-agent
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=/etc/sam/vm-agent.env
ExecStart=/usr/local/bin/vm-agent
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeBootstrap<'static> {
        NodeBootstrap {
            node_id: "01HZY8J3K4M5N6P7Q8R9S0T1V2",
            hostname: "sam-dev-box",
            control_plane_url: "http://api.localhost:8787",
            agent_download_url: "http://api.localhost:8787/agent/download?arch=x86_64",
            callback_token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJub2RlIn0.c2lnbmF0dXJl",
            heartbeat_interval_secs: 30,
            vm_agent_port: 8443,
            app_origin: "http://app.localhost:8787",
        }
    }

    #[test]
    fn unit_and_env_constants_agree() {
        // The unit file is a literal for readability; keep it in step with the constants.
        assert!(SERVICE_UNIT.contains(&format!("EnvironmentFile={ENV_FILE_PATH}\n")));
        assert!(SERVICE_UNIT.contains(&format!("ExecStart={AGENT_BINARY_PATH}\n")));
    }

    #[test]
    fn env_file_lists_every_variable_once() {
        let env = env_file(&sample());
        let keys: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                env::NODE_ID,
                env::CONTROL_PLANE_URL,
                env::CALLBACK_TOKEN_FILE,
                env::HEARTBEAT_INTERVAL_SECS,
                env::VM_AGENT_PORT,
                env::APP_ORIGIN,
            ]
        );
        assert!(!env.contains(sample().callback_token));
    }
}
