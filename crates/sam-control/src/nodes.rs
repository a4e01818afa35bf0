//! Node use cases: create, register, heartbeat, delete, view.
//!
//! Every status change goes through `sam_domain::node::transition` and is
//! written compare-and-set, so concurrent requests cannot skip an edge.
//! Two rules keep VMs from being orphaned: a server created for a node that
//! left `creating` meanwhile is deleted at once, and deleting a node whose
//! server id was never recorded finds its servers by label.

use std::collections::BTreeMap;

use sam_auth::{Audience, Grant, SigningKey, TokenClaims};
use sam_cloud_init::NodeBootstrap;
use sam_domain::catalog::{
    ProviderKind, locations as catalog_locations, validate_node_name, validate_node_spec,
};
use sam_domain::ids::NodeId;
use sam_domain::node::{
    BootPhase, NodeEvent, NodeStatus, TransitionError, deadline, health, transition,
};
use sam_providers::{CreateServer, ProviderError, Server};
use sam_store::{NodeRecord, NodeRepository, ProviderServerUpdate, SqlDatabase};
use sam_wire::{CreateNodeRequest, HeartbeatRequest, NodeMetrics, NodeView};

use crate::error::ControlError;
use crate::ports::{BootLog, RetryRuntime, ServerProvider};
use crate::retry::{CreateRetryPolicy, RetryDecision, plan_retry};

/// Labels on every server SAM creates: they prove ownership when servers
/// are looked up by node, or reconciled against D1.
pub const LABEL_MANAGED: &str = "sam-managed";
pub const LABEL_NODE: &str = "sam-node";
/// Which SAM deployment created the server: two deployments sharing a cloud
/// account (staging and production) must never sweep each other's servers.
pub const LABEL_DEPLOYMENT: &str = "sam-deployment";

/// Deployment settings the node use cases need (read once from Worker config).
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Token issuer and the URL vm-agents call back to, e.g. `http://api.localhost:8787`.
    pub control_plane_url: String,
    pub heartbeat_interval_secs: u64,
    pub vm_agent_port: u16,
    pub boot_timeout_ms: i64,
    pub callback_token_ttl_secs: i64,
    pub max_nodes_per_user: u64,
    pub heartbeat_stale_ms: i64,
    /// Provider image for new servers.
    pub image: String,
    /// This deployment's label value (see [`LABEL_DEPLOYMENT`]).
    pub deployment: String,
    /// Retries of the provider's create call.
    pub create_retry: CreateRetryPolicy,
}

/// The labels a node's server is created with.
fn node_labels(settings: &NodeSettings, node_id: &str) -> BTreeMap<String, String> {
    let mut labels = node_selector(node_id);
    labels.insert(LABEL_DEPLOYMENT.to_owned(), settings.deployment.clone());
    labels
}

/// Finds a node's servers (node ids are unique across deployments).
fn node_selector(node_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_NODE.to_owned(), node_id.to_owned()),
    ])
}

/// Finds every server this deployment created.
pub fn deployment_selector(deployment: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_DEPLOYMENT.to_owned(), deployment.to_owned()),
    ])
}

/// A label value from free text: Hetzner allows 63 characters of
/// `[a-z0-9A-Z._-]`, starting and ending alphanumerically.
pub fn label_value(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "sam".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A node callback token for `node_id`, issued at `now`.
fn callback_token(key: &SigningKey, settings: &NodeSettings, node_id: &str, now: i64) -> String {
    key.issue(
        &settings.control_plane_url,
        &Grant {
            audience: Audience::NodeCallback,
            node_id: node_id.to_owned(),
            ttl_secs: settings.callback_token_ttl_secs,
        },
        now,
    )
}

/// Creates a node: set the boot deadline → write `creating` (within quota)
/// → create the server → record it. The deadline is armed before the node
/// exists, so no `creating` node is ever without one (a deadline for a node
/// that was never written finds nothing to fail). A provider failure leaves
/// the node in `error` with the reason.
#[allow(clippy::too_many_arguments)]
pub async fn create_node(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    runtime: &impl RetryRuntime,
    boot_log: &impl BootLog,
    key: &SigningKey,
    settings: &NodeSettings,
    user_id: &str,
    req: &CreateNodeRequest,
    now: i64,
    random: u128,
) -> Result<NodeRecord, ControlError> {
    let spec = validate_node_spec(&req.provider, &req.size, req.location.as_deref())?;
    let id = NodeId::generate(now, random);
    let name = match &req.name {
        Some(name) => {
            validate_node_name(name)?;
            name.clone()
        }
        None => format!("node-{}", id.as_str()[20..].to_ascii_lowercase()),
    };
    let mut record = NodeRecord {
        id: id.to_string(),
        user_id: user_id.to_owned(),
        name,
        provider: spec.provider.as_str().to_owned(),
        size: spec.size.as_str().to_owned(),
        location: spec.location.clone(),
        server_type: spec.server_type.name.to_owned(),
        status: NodeStatus::Creating.as_str().to_owned(),
        status_changed_at: now,
        error_message: None,
        provider_server_id: None,
        ip_address: None,
        created_at: now,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        last_metrics: None,
        deleted_at: None,
    };
    let boot_deadline = deadline(NodeStatus::Creating, now, settings.boot_timeout_ms)
        .unwrap_or(now.saturating_add(settings.boot_timeout_ms));
    boot_log
        .started(&record.id, now, boot_deadline)
        .await
        .map_err(ControlError::BootLog)?;
    let nodes = NodeRepository::new(db);
    if !nodes
        .insert_within_quota(&record, settings.max_nodes_per_user)
        .await?
    {
        return Err(ControlError::Quota {
            limit: settings.max_nodes_per_user,
        });
    }

    let token = callback_token(key, settings, &record.id, now);
    let hostname = format!("sam-{}", record.id.to_ascii_lowercase());
    let download_url = format!(
        "{}/api/agent/download?arch={}",
        settings.control_plane_url,
        spec.server_type.arch.as_str()
    );
    let user_data = sam_cloud_init::render(&NodeBootstrap {
        node_id: &record.id,
        hostname: &hostname,
        control_plane_url: &settings.control_plane_url,
        agent_download_url: &download_url,
        callback_token: &token,
        heartbeat_interval_secs: settings.heartbeat_interval_secs,
        vm_agent_port: settings.vm_agent_port,
    });
    let user_data = match user_data {
        Ok(u) => u,
        Err(e) => {
            fail_creation(&nodes, boot_log, &record.id, now, &e.to_string()).await?;
            return Err(e.into());
        }
    };
    let request = CreateServer {
        name: hostname,
        server_type: spec.server_type.name.to_owned(),
        location: spec.location.clone(),
        image: settings.image.clone(),
        user_data,
        labels: node_labels(settings, &record.id),
    };
    let created = create_with_retries(
        provider,
        runtime,
        boot_log,
        &settings.create_retry,
        &record.id,
        spec.provider,
        request,
        now,
    )
    .await;
    let Placed { server, location } = match created {
        Ok(placed) => placed,
        Err(error) => {
            fail_creation(&nodes, boot_log, &record.id, now, &error.to_string()).await?;
            return Err(ControlError::ProviderCreate {
                node_id: record.id,
                error,
            });
        }
    };
    let update = ProviderServerUpdate {
        server_id: server.id.clone(),
        ip_address: server.ipv4.clone(),
        location: location.clone(),
    };
    if !nodes.record_provider_server(&record.id, &update).await? {
        // The node was deleted (or timed out) while its server was being
        // created: that server must not outlive it.
        if let Err(e) = provider.delete_server(&server.id).await {
            nodes
                .note_error(
                    &record.id,
                    &format!("could not delete server {}: {e}", server.id),
                )
                .await?;
        }
        return Err(lost_race(&nodes, &record.id, NodeEvent::ServerCreated).await);
    }
    let _ = boot_log
        .record(
            &record.id,
            now,
            BootPhase::ProviderCreated,
            Some(&format!("server {}", server.id)),
        )
        .await;
    record.provider_server_id = Some(server.id);
    record.ip_address = server.ipv4;
    record.location = location;
    Ok(record)
}

/// A created server and the location it was created in.
struct Placed {
    server: Server,
    location: String,
}

/// Calls the provider's create until it succeeds or [`plan_retry`] gives
/// up: backing off on rate limits and transient errors, moving to the
/// next location when one is out of capacity. Before every retry it looks
/// for a server an earlier attempt may have created after all (a 5xx can
/// come after the work was done) and adopts it, so retries never leave a
/// second server behind.
#[allow(clippy::too_many_arguments)]
async fn create_with_retries(
    provider: &impl ServerProvider,
    runtime: &impl RetryRuntime,
    boot_log: &impl BootLog,
    policy: &CreateRetryPolicy,
    node_id: &str,
    provider_kind: ProviderKind,
    mut request: CreateServer,
    now: i64,
) -> Result<Placed, ProviderError> {
    // The chosen location first, then the provider's others.
    let mut locations = vec![request.location.clone()];
    locations.extend(
        catalog_locations(provider_kind)
            .iter()
            .map(|l| (*l).to_owned())
            .filter(|l| *l != request.location),
    );
    let (mut attempt, mut location, mut waited_ms) = (0u32, 0usize, 0u64);
    loop {
        if attempt > 0
            && let Ok(found) = provider.find_servers(&node_selector(node_id)).await
            && let Some(server) = found.into_iter().next()
        {
            let location = request.location.clone();
            return Ok(Placed { server, location });
        }
        request.location.clone_from(&locations[location]);
        let error = match provider.create_server(&request).await {
            Ok(server) => {
                return Ok(Placed {
                    server,
                    location: request.location,
                });
            }
            Err(error) => error,
        };
        match plan_retry(
            policy,
            &error,
            attempt,
            location,
            locations.len(),
            waited_ms,
            runtime.jitter(),
        ) {
            RetryDecision::GiveUp => return Err(error),
            RetryDecision::Retry {
                delay_ms,
                location: next,
            } => {
                let detail = format!(
                    "{} in {}; retrying in {} ms in {}",
                    error.code, request.location, delay_ms, locations[next]
                );
                let _ = boot_log
                    .record(node_id, now, BootPhase::ProviderRetrying, Some(&detail))
                    .await;
                runtime.pause(delay_ms).await;
                waited_ms += delay_ms;
                location = next;
                attempt += 1;
            }
        }
    }
}

async fn fail_creation<D: SqlDatabase>(
    nodes: &NodeRepository<'_, D>,
    boot_log: &impl BootLog,
    id: &str,
    now: i64,
    reason: &str,
) -> Result<(), ControlError> {
    let to = transition(NodeStatus::Creating, &NodeEvent::ServerCreateFailed)?;
    if nodes
        .transition(id, NodeStatus::Creating, to, now, Some(reason))
        .await?
    {
        let _ = boot_log
            .record(id, now, BootPhase::ProviderFailed, Some(reason))
            .await;
    }
    Ok(())
}

/// The vm-agent registered (`POST /api/nodes/{id}/ready`).
pub async fn record_ready(
    db: &impl SqlDatabase,
    boot_log: &impl BootLog,
    node_id: &str,
    agent_version: &str,
    now: i64,
) -> Result<(), ControlError> {
    let nodes = NodeRepository::new(db);
    let node = nodes.get(node_id).await?.ok_or(ControlError::NotFound)?;
    transition(node.status(), &NodeEvent::AgentReady)?;
    let version = clip(agent_version, 64);
    if !nodes.mark_ready(node_id, &version, now).await? {
        return Err(lost_race(&nodes, node_id, NodeEvent::AgentReady).await);
    }
    if node.status() == NodeStatus::Creating {
        let _ = boot_log
            .record(
                node_id,
                now,
                BootPhase::AgentReady,
                Some(&format!("vm-agent {version}")),
            )
            .await;
    }
    Ok(())
}

/// A heartbeat from a running node's vm-agent. Returns a fresh callback
/// token when the one the agent used is past half its lifetime, so a node
/// that lives longer than one token keeps reporting.
pub async fn record_heartbeat(
    db: &impl SqlDatabase,
    key: &SigningKey,
    settings: &NodeSettings,
    claims: &TokenClaims,
    beat: &HeartbeatRequest,
    now: i64,
) -> Result<Option<String>, ControlError> {
    let node_id = claims.node.as_str();
    let nodes = NodeRepository::new(db);
    let node = nodes.get(node_id).await?.ok_or(ControlError::NotFound)?;
    transition(node.status(), &NodeEvent::Heartbeat)?;
    let metrics = serde_json::to_string(&beat.metrics).unwrap_or_default();
    if !nodes
        .record_heartbeat(node_id, &clip(&beat.agent_version, 64), &metrics, now)
        .await?
    {
        return Err(lost_race(&nodes, node_id, NodeEvent::Heartbeat).await);
    }
    let half_life_ms = settings.callback_token_ttl_secs.saturating_mul(500);
    let refresh = claims.expires_at_ms.saturating_sub(now) < half_life_ms;
    Ok(refresh.then(|| callback_token(key, settings, node_id, now)))
}

/// The error for a compare-and-set that changed nothing: another request
/// (typically a delete) moved the node first. Reports the status that won.
async fn lost_race<D: SqlDatabase>(
    nodes: &NodeRepository<'_, D>,
    node_id: &str,
    event: NodeEvent,
) -> ControlError {
    let current = match nodes.get(node_id).await {
        Ok(Some(node)) => node.status(),
        Ok(None) => return ControlError::NotFound,
        Err(e) => return e.into(),
    };
    match transition(current, &event) {
        Err(refused) => refused.into(),
        // The status allows the event again (a retry would succeed): report
        // the conflict as seen from the status we lost to.
        Ok(_) => TransitionError {
            from: current,
            event,
        }
        .into(),
    }
}

/// Deletes a user's node: `deleting`, delete its servers at the provider (a
/// server that is already gone counts as deleted), then `deleted`.
/// Repeating a delete is harmless. If the provider fails, the node stays
/// `deleting` with the reason in `error_message`, and deleting it again
/// finishes the job.
pub async fn delete_node(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    boot_log: &impl BootLog,
    user_id: &str,
    node_id: &str,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    let nodes = NodeRepository::new(db);
    let node = nodes
        .get_owned(user_id, node_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    if node.status() == NodeStatus::Deleted {
        return Ok(node);
    }
    let from = node.status();
    let to = transition(from, &NodeEvent::DeleteRequested)?;
    if from != to && !nodes.transition(node_id, from, to, now, None).await? {
        // Someone else moved the node first. A concurrent delete is fine:
        // finish (or report) as that one would.
        let current = nodes.get(node_id).await?.ok_or(ControlError::NotFound)?;
        match current.status() {
            NodeStatus::Deleted => return Ok(current),
            NodeStatus::Deleting => {}
            _ => return Err(lost_race(&nodes, node_id, NodeEvent::DeleteRequested).await),
        }
    }
    let _ = boot_log
        .record(node_id, now, BootPhase::DeleteRequested, None)
        .await;
    // The recorded server, or — if creation never recorded one — whatever
    // the provider holds under this node's label.
    let server_ids = match nodes.get(node_id).await?.and_then(|n| n.provider_server_id) {
        Some(id) => vec![id],
        None => provider
            .find_servers(&node_selector(node_id))
            .await
            .map_err(|error| ControlError::ProviderDelete {
                node_id: node_id.to_owned(),
                error,
            })?
            .into_iter()
            .map(|s| s.id)
            .collect(),
    };
    for server_id in server_ids {
        if let Err(error) = provider.delete_server(&server_id).await {
            nodes.note_error(node_id, &error.to_string()).await?;
            return Err(ControlError::ProviderDelete {
                node_id: node_id.to_owned(),
                error,
            });
        }
    }
    let done = transition(NodeStatus::Deleting, &NodeEvent::ServerDeleted)?;
    if nodes
        .transition(node_id, NodeStatus::Deleting, done, now, None)
        .await?
    {
        let _ = boot_log
            .record(node_id, now, BootPhase::Deleted, None)
            .await;
    }
    nodes.get(node_id).await?.ok_or(ControlError::NotFound)
}

/// A user's nodes as API views.
pub async fn list_nodes(
    db: &impl SqlDatabase,
    settings: &NodeSettings,
    user_id: &str,
    now: i64,
) -> Result<Vec<NodeView>, ControlError> {
    Ok(NodeRepository::new(db)
        .list_owned(user_id)
        .await?
        .iter()
        .map(|n| node_view(n, settings, now))
        .collect())
}

/// The API view of a node record.
pub fn node_view(n: &NodeRecord, settings: &NodeSettings, now: i64) -> NodeView {
    let health = if n.status() == NodeStatus::Running {
        health(n.last_heartbeat_at, now, settings.heartbeat_stale_ms)
    } else {
        sam_domain::node::NodeHealth::Unknown
    };
    NodeView {
        id: n.id.clone(),
        name: n.name.clone(),
        provider: n.provider.clone(),
        size: n.size.clone(),
        location: n.location.clone(),
        server_type: n.server_type.clone(),
        status: n.status.clone(),
        health: health.as_str().to_owned(),
        error_message: n.error_message.clone(),
        provider_server_id: n.provider_server_id.clone(),
        ip_address: n.ip_address.clone(),
        created_at: n.created_at,
        agent_ready_at: n.agent_ready_at,
        agent_version: n.agent_version.clone(),
        last_heartbeat_at: n.last_heartbeat_at,
        metrics: n
            .last_metrics
            .as_deref()
            .and_then(|m| serde_json::from_str::<NodeMetrics>(m).ok()),
        deleted_at: n.deleted_at,
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
