//! JSON bodies that cross a process boundary: browser/CLI ⇄ API and
//! vm-agent ⇄ API. Both sides compile these same types, so a renamed field
//! breaks the build instead of a running node.

pub mod routes;

use serde::{Deserialize, Serialize};

/// Every API error body: a stable machine-readable `code` and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `GET /health` on the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `ok` when every binding check passed, `degraded` otherwise.
    pub status: String,
    pub version: String,
    pub checks: Vec<BindingCheck>,
}

/// The result of exercising one Worker binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingCheck {
    /// Binding name as in `wrangler.toml` (`DB`, `KV`, `R2`, `NODE_LIFECYCLE`).
    pub binding: String,
    /// `d1`, `kv`, `r2` or `durable_object`.
    pub kind: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/auth/me` (and the dev sign-in reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// `user`, `admin` or `superadmin`.
    pub role: String,
    /// `active`, `pending` or `suspended`.
    pub status: String,
}

/// `POST /api/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNodeRequest {
    pub provider: String,
    pub size: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A node as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub size: String,
    pub location: String,
    pub server_type: String,
    /// `provisioning`, `booting`, `ready`, `warm`, `destroying`,
    /// `destroyed` or `error`.
    pub status: String,
    pub status_since: i64,
    /// When something next happens to the node (boot deadline, warm
    /// timeout, delete retry...); absent once destroyed.
    #[serde(default)]
    pub deadline_at: Option<i64>,
    /// When a `warm` node is destroyed unless claimed (its warm timeout).
    #[serde(default)]
    pub warm_until: Option<i64>,
    /// The task or user holding a `ready` node.
    #[serde(default)]
    pub claimed_by: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// `unknown`, `healthy`, `stale` or `unhealthy`, derived from heartbeats.
    pub health: String,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub provider_server_id: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    pub created_at: i64,
    #[serde(default)]
    pub agent_ready_at: Option<i64>,
    #[serde(default)]
    pub agent_version: Option<String>,
    #[serde(default)]
    pub last_heartbeat_at: Option<i64>,
    #[serde(default)]
    pub metrics: Option<NodeMetrics>,
    /// Delete calls issued so far, and why the latest failed.
    #[serde(default)]
    pub destroy_attempts: u32,
    #[serde(default)]
    pub destroy_error: Option<String>,
    /// The user deleted the node (it leaves lists once destroyed).
    #[serde(default)]
    pub removed_at: Option<i64>,
}

/// `POST /api/nodes/claim`: take one of the user's warm nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNodeRequest {
    /// Names the holder; a retry with the same id gets the same node.
    /// Generated when absent.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// The project the node will work for: its warm timeout applies when
    /// the node is released. Without one, the platform's applies.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedNode {
    pub claim_id: String,
    pub node: NodeView,
}

/// `POST /api/nodes/{id}/release`: the holder is done with the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseNodeRequest {
    /// The claim to release; the user's own hold (`user:<id>`) when absent.
    #[serde(default)]
    pub claim_id: Option<String>,
}

/// `GET /api/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// `POST /api/nodes/{id}/ready` from the vm-agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReadyRequest {
    pub agent_version: String,
}

/// `POST /api/nodes/{id}/heartbeat` from the vm-agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub agent_version: String,
    pub metrics: NodeMetrics,
}

/// Resource figures a vm-agent reports with each heartbeat.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub load_avg_1m: f64,
    pub load_avg_5m: f64,
    pub load_avg_15m: f64,
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    pub uptime_secs: u64,
}

/// Reply to a heartbeat: the interval the control plane wants next, so it
/// can slow agents down without a redeploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub next_interval_secs: u64,
    /// A fresh callback token, sent when the one in use is past half its
    /// lifetime; the agent replaces its token file with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_token: Option<String>,
}

/// `GET /system-info` on the vm-agent (node-management token required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub node_id: String,
    pub agent_version: String,
    pub hostname: String,
    pub metrics: NodeMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_node_rejects_unknown_fields() {
        let err = serde_json::from_str::<CreateNodeRequest>(
            r#"{"provider":"hetzner","size":"small","sneaky":1}"#,
        );
        assert!(err.is_err());
        let ok: CreateNodeRequest =
            serde_json::from_str(r#"{"provider":"hetzner","size":"small"}"#).unwrap();
        assert_eq!(ok.location, None);
    }
}
