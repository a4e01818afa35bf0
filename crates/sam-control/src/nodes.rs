//! Node use cases: create, register, heartbeat, claim, release, stop,
//! delete, view.
//!
//! Every state change goes through [`crate::lifecycle`] (the pure state
//! machine, written compare-and-set). Two rules keep VMs from being
//! orphaned: a server created for a node that is already on its way out is
//! deleted at once, and destroying a node whose server id was never
//! recorded finds its servers by label.

use std::collections::BTreeMap;

use sam_auth::{Audience, Grant, SigningKey, TokenClaims};
use sam_cloud_init::NodeBootstrap;
use sam_domain::catalog::{
    ProviderKind, default_image, locations as catalog_locations, validate_node_name,
    validate_node_spec,
};
use sam_domain::ids::NodeId;
use sam_domain::lifecycle::{
    Event, LifecycleConfig, LifecycleStatus, NodeState, TransitionError,
    deadline as lifecycle_deadline,
};
use sam_domain::node::{BootPhase, health_in};
use sam_providers::{CreateServer, ProviderError, Server};
use sam_store::{NodeRecord, NodeRepository, SqlDatabase};
use sam_wire::{CreateNodeRequest, HeartbeatRequest, NodeMetrics, NodeView};

use crate::error::ControlError;
use crate::lifecycle::{advance, node_config, settle};
use crate::ports::{BootLog, CloudAccounts, NodeTimer, RetryRuntime, ServerProvider};
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
    /// The web app's origin, given to vm-agents (`SAM_APP_ORIGIN`).
    pub app_origin: String,
    pub callback_token_ttl_secs: i64,
    pub max_nodes_per_user: u64,
    /// Boot, warm, lifetime, heartbeat and delete-retry timings.
    pub lifecycle: LifecycleConfig,
    /// Image overrides by provider name (`hetzner` → `ubuntu-22.04`);
    /// the catalogue's default otherwise.
    pub images: BTreeMap<String, String>,
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
pub(crate) fn node_selector(node_id: &str) -> BTreeMap<String, String> {
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
            workspace_id: None,
            port: None,
            ttl_secs: settings.callback_token_ttl_secs,
        },
        now,
    )
}

/// The claim a user holds on a node they created themselves.
pub fn user_claim(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The ports a node use case acts through.
pub struct NodePorts<'a, A, L, T> {
    pub accounts: &'a A,
    pub boot_log: &'a L,
    pub timer: &'a T,
}

/// Creates a node held by its creator: write it `provisioning` (within
/// quota, with its boot deadline stored and its timer armed) → create the
/// server, retrying what is worth retrying → `booting`. A provider failure
/// fails the node, which then destroys whatever the failed create may
/// have left behind.
#[allow(clippy::too_many_arguments)]
pub async fn create_node<A: CloudAccounts>(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    runtime: &impl RetryRuntime,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    key: &SigningKey,
    settings: &NodeSettings,
    user_id: &str,
    req: &CreateNodeRequest,
    now: i64,
    random: u128,
) -> Result<NodeRecord, ControlError> {
    let holder = Holder {
        claim_id: user_claim(user_id),
        project: None,
    };
    create_node_held(
        db, provider, runtime, ports, key, settings, user_id, req, &holder, now, random,
    )
    .await
}

/// Who holds a new node: its creator (`user:<id>`) or a task
/// (`task:<id>`), and the project it works for (with that project's warm
/// timeout for when it is released).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub claim_id: String,
    pub project: Option<(String, Option<i64>)>,
}

/// [`create_node`], held by `holder` from the start, so no other claim can
/// take the node while it boots.
#[allow(clippy::too_many_arguments)]
pub async fn create_node_held<A: CloudAccounts>(
    db: &impl SqlDatabase,
    provider: &impl ServerProvider,
    runtime: &impl RetryRuntime,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    key: &SigningKey,
    settings: &NodeSettings,
    user_id: &str,
    req: &CreateNodeRequest,
    holder: &Holder,
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
    let state = NodeState::new(now, Some(holder.claim_id.clone()));
    let mut record = NodeRecord {
        id: id.to_string(),
        user_id: user_id.to_owned(),
        name,
        provider: spec.provider.as_str().to_owned(),
        size: spec.size.as_str().to_owned(),
        location: spec.location.clone(),
        server_type: spec.server_type.name.to_owned(),
        status: String::new(),
        version: 0,
        status_since: now,
        deadline_at: None,
        claimed_by: None,
        project_id: holder.project.as_ref().map(|(id, _)| id.clone()),
        warm_timeout_ms: holder.project.as_ref().and_then(|(_, warm)| *warm),
        error_message: None,
        destroy_attempts: 0,
        last_destroy_at: None,
        destroy_error: None,
        provider_server_id: None,
        ip_address: None,
        created_at: now,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        last_metrics: None,
        removed_at: None,
    };
    let boot_deadline = lifecycle_deadline(&state, &node_config(&settings.lifecycle, &record));
    record.set_state(&state, boot_deadline);
    let nodes = NodeRepository::new(db);
    if !nodes
        .insert_within_quota(&record, settings.max_nodes_per_user)
        .await?
    {
        return Err(ControlError::Quota {
            limit: settings.max_nodes_per_user,
        });
    }
    if let Some(at) = boot_deadline {
        // The sweep finds the node by its stored deadline if this fails.
        let _ = ports.timer.wake_at(&record.id, at).await;
    }
    let _ = ports
        .boot_log
        .record(&record.id, now, BootPhase::Requested, None)
        .await;

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
        app_origin: &settings.app_origin,
    });
    let user_data = match user_data {
        Ok(u) => u,
        Err(e) => {
            fail_creation(db, ports, settings, &record.id, &e.to_string(), now).await?;
            return Err(e.into());
        }
    };
    let request = CreateServer {
        name: hostname,
        server_type: spec.server_type.name.to_owned(),
        location: spec.location.clone(),
        image: settings
            .images
            .get(spec.provider.as_str())
            .cloned()
            .unwrap_or_else(|| default_image(spec.provider).to_owned()),
        user_data,
        labels: node_labels(settings, &record.id),
    };
    let created = create_with_retries(
        provider,
        runtime,
        ports.boot_log,
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
            fail_creation(db, ports, settings, &record.id, &error.to_string(), now).await?;
            return Err(ControlError::ProviderCreate {
                node_id: record.id,
                error,
            });
        }
    };
    let event = Event::ServerCreated {
        server_id: server.id.clone(),
    };
    // The server id first: it is what lets a failure below still find
    // and delete the server.
    match advance(db, &settings.lifecycle, &record.id, &event, now).await {
        Ok(mut applied) => {
            nodes
                .record_address(&record.id, server.ipv4.as_deref(), &location)
                .await?;
            applied.node.location.clone_from(&location);
            if let Some(ip) = &server.ipv4 {
                applied.node.ip_address = Some(ip.clone());
            }
            settle_with(db, ports, settings, applied, now).await
        }
        Err(ControlError::Transition(TransitionError::NodeDestroyed { .. })) => {
            // Destroyed while its server was being created: that server
            // must not outlive it. (The orphan sweep is the fallback.)
            if let Err(e) = provider.delete_server(&server.id).await {
                let detail = format!(
                    "server {} created after the node was destroyed: {e}",
                    server.id
                );
                let _ = ports
                    .boot_log
                    .record(&record.id, now, BootPhase::DestroyFailed, Some(&detail))
                    .await;
            }
            nodes.get(&record.id).await?.ok_or(ControlError::NotFound)
        }
        Err(e) => Err(e),
    }
}

/// Applies `event` to the node and performs what its new state asks for
/// ([`crate::lifecycle::advance`], then [`crate::lifecycle::settle`]).
async fn change<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    node_id: &str,
    event: &Event,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    let applied = advance(db, &settings.lifecycle, node_id, event, now).await?;
    settle_with(db, ports, settings, applied, now).await
}

/// [`crate::lifecycle::settle`] through the use cases' ports.
async fn settle_with<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    applied: crate::lifecycle::Applied,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    settle(
        db,
        ports.accounts,
        ports.boot_log,
        ports.timer,
        &settings.lifecycle,
        applied,
        now,
    )
    .await
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

/// The create call failed for good: the node fails (and, being failed,
/// moves on to destroy whatever the create may have left behind).
async fn fail_creation<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    node_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), ControlError> {
    let event = Event::CreateFailed {
        reason: reason.to_owned(),
        retryable: false,
    };
    // A node the user already destroyed has nothing left to fail.
    if let Ok(applied) = advance(db, &settings.lifecycle, node_id, &event, now).await {
        settle_with(db, ports, settings, applied, now).await?;
    }
    Ok(())
}

/// The vm-agent registered (`POST /api/nodes/{id}/ready`): the node is
/// `ready` for its holder, or `warm` if nobody holds it.
pub async fn record_ready<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    node_id: &str,
    agent_version: &str,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    let nodes = NodeRepository::new(db);
    nodes.get(node_id).await?.ok_or(ControlError::NotFound)?;
    nodes
        .record_agent(node_id, &clip(agent_version, 64), now)
        .await?;
    change(db, ports, settings, node_id, &Event::AgentReady, now).await
}

/// A heartbeat from a running node's vm-agent. Returns a fresh callback
/// token when the one the agent used is past half its lifetime, so a node
/// that lives longer than one token keeps reporting.
///
/// A heartbeat only moves the node's stale deadline later, so the timer
/// is not touched: an alarm that rings early finds nothing due and is set
/// again for the new deadline.
pub async fn record_heartbeat(
    db: &impl SqlDatabase,
    key: &SigningKey,
    settings: &NodeSettings,
    claims: &TokenClaims,
    beat: &HeartbeatRequest,
    now: i64,
) -> Result<Option<String>, ControlError> {
    let node_id = claims.node.as_str();
    advance(db, &settings.lifecycle, node_id, &Event::Heartbeat, now).await?;
    let metrics = serde_json::to_string(&beat.metrics).unwrap_or_default();
    NodeRepository::new(db)
        .record_metrics(node_id, &clip(&beat.agent_version, 64), &metrics)
        .await?;
    let half_life_ms = settings.callback_token_ttl_secs.saturating_mul(500);
    let refresh = claims.expires_at_ms.saturating_sub(now) < half_life_ms;
    Ok(refresh.then(|| callback_token(key, settings, node_id, now)))
}

/// The project a claim works for, if one is named: it must be the user's
/// (another user's is not found), and its warm timeout applies when the
/// node is released.
pub async fn claim_project(
    db: &impl SqlDatabase,
    user_id: &str,
    project_id: Option<&str>,
) -> Result<Option<(String, Option<i64>)>, ControlError> {
    let Some(project_id) = project_id else {
        return Ok(None);
    };
    let project = sam_store::ProjectRepository::new(db)
        .get_owned(user_id, project_id)
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(Some((project.id, project.warm_node_timeout_ms)))
}

/// Claims one of the user's warm nodes for `claim_id` (a task, or the
/// user), most recently warmed first. Exclusive: of two claims racing for
/// the last warm node, one gets it and the other `no_warm_node`.
/// `project` names the project the node now works for and its warm
/// timeout (`None`: the platform's) for when it is released.
#[allow(clippy::too_many_arguments)]
pub async fn claim_warm_node<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    user_id: &str,
    claim_id: &str,
    project: Option<(&str, Option<i64>)>,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    let nodes = NodeRepository::new(db);
    // A repeated claim (its first answer was lost) gets the node it holds.
    if let Some(held) = nodes.find_claimed(user_id, claim_id).await? {
        return Ok(held);
    }
    let claim = Event::Claim {
        claim_id: claim_id.to_owned(),
    };
    for candidate in nodes.list_warm_owned(user_id).await? {
        match advance(db, &settings.lifecycle, &candidate.id, &claim, now).await {
            Ok(applied) => {
                // Without a project the node works for no project, and the
                // platform's warm timeout applies when it is released.
                let (project_id, warm_timeout) = match project {
                    Some((id, warm)) => (Some(id), warm),
                    None => (None, None),
                };
                nodes
                    .record_project(&candidate.id, project_id, warm_timeout)
                    .await?;
                let mut applied = applied;
                applied.node.project_id = project_id.map(str::to_owned);
                applied.node.warm_timeout_ms = warm_timeout;
                return settle_with(db, ports, settings, applied, now).await;
            }
            // Taken by a racing claim, stale, or at the end of its life.
            Err(ControlError::Transition(_) | ControlError::NodeBusy) => {}
            Err(e) => return Err(e),
        }
    }
    Err(ControlError::NoWarmNode)
}

/// The holder `claim_id` is done with the user's node: it turns warm and
/// is kept for reuse until its warm timeout.
pub async fn release_node<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    user_id: &str,
    node_id: &str,
    claim_id: &str,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    owned(db, user_id, node_id).await?;
    let event = Event::Released {
        claim_id: claim_id.to_owned(),
    };
    change(db, ports, settings, node_id, &event, now).await
}

/// Stops the user's node: its server is deleted (retried with backoff
/// until the provider confirms it gone); the node stays listed, with its
/// log, as `destroyed`. Repeating a stop is harmless.
pub async fn stop_node<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    user_id: &str,
    node_id: &str,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    owned(db, user_id, node_id).await?;
    change(db, ports, settings, node_id, &Event::DestroyRequested, now).await
}

/// Deletes the user's node: stops it, and removes it from lists once its
/// server is confirmed gone.
pub async fn delete_node<A: CloudAccounts>(
    db: &impl SqlDatabase,
    ports: &NodePorts<'_, A, impl BootLog, impl NodeTimer>,
    settings: &NodeSettings,
    user_id: &str,
    node_id: &str,
    now: i64,
) -> Result<NodeRecord, ControlError> {
    owned(db, user_id, node_id).await?;
    NodeRepository::new(db).mark_removed(node_id, now).await?;
    stop_node(db, ports, settings, user_id, node_id, now).await
}

/// The user's node, or `NotFound` (another user's node looks missing).
async fn owned(
    db: &impl SqlDatabase,
    user_id: &str,
    node_id: &str,
) -> Result<NodeRecord, ControlError> {
    NodeRepository::new(db)
        .get_owned(user_id, node_id)
        .await?
        .ok_or(ControlError::NotFound)
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
    let health = health_in(
        n.status(),
        n.last_heartbeat_at,
        now,
        settings.lifecycle.heartbeat_stale_ms,
    );
    NodeView {
        id: n.id.clone(),
        name: n.name.clone(),
        provider: n.provider.clone(),
        size: n.size.clone(),
        location: n.location.clone(),
        server_type: n.server_type.clone(),
        status: n.status.clone(),
        status_since: n.status_since,
        deadline_at: n.deadline_at,
        warm_until: (n.status() == LifecycleStatus::Warm).then(|| {
            n.status_since
                .saturating_add(node_config(&settings.lifecycle, n).warm_timeout_ms)
        }),
        claimed_by: n.claimed_by.clone(),
        project_id: n.project_id.clone(),
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
        destroy_attempts: u32::try_from(n.destroy_attempts).unwrap_or(u32::MAX),
        destroy_error: n.destroy_error.clone(),
        removed_at: n.removed_at,
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
