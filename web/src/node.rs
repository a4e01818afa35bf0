//! One node's page: status and health, facts, the last reported metrics,
//! the boot log as a timeline, and deletion.

use askama::Template;
use sam_wire::{NodeMetrics, NodeView};

use crate::projects::path_segment;
use crate::time::{self, Stamp, When};
use crate::{RenderError, Viewer, asset_version, health_class, status_class};

/// One entry of a node's boot log (its `NodeLifecycle` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootEventRow {
    /// Epoch milliseconds.
    pub at: i64,
    /// `requested`, `provider_created`, `agent_ready`, …; an unknown phase
    /// is shown as it is, with a neutral style.
    pub phase: String,
    /// What happened, e.g. the provider's error; may be absent.
    pub detail: Option<String>,
}

/// One node. `boot_log` is `None` when it could not be loaded (the page
/// still shows everything else). `now_ms` anchors "N s ago". The page
/// refreshes itself every 5 s until the node is deleted.
pub fn render_node_page(
    viewer: &Viewer,
    node: &NodeView,
    boot_log: Option<&[BootEventRow]>,
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let running = node.status == "running";
    let deleted = node.status == "deleted";
    let page = NodePage {
        title: &node.name,
        version,
        asset_version: asset_version(),
        active_nav: "nodes",
        viewer: Some(viewer),
        node,
        path_id: path_segment(&node.id),
        status_class: status_class(&node.status),
        health_class: health_class(&node.health),
        refresh: !deleted,
        deletable: !deleted,
        // As on the list: a message belongs to the error it explains.
        error_message: node
            .error_message
            .as_deref()
            .filter(|m| node.status == "error" && !m.is_empty()),
        ip_address: node.ip_address.as_deref().filter(|ip| !ip.is_empty()),
        server_id: node
            .provider_server_id
            .as_deref()
            .filter(|id| !id.is_empty()),
        agent_version: node.agent_version.as_deref().filter(|v| !v.is_empty()),
        created: time::when(node.created_at, now_ms),
        ready: node.agent_ready_at.map(|at| Milestone {
            when: time::when(at, now_ms),
            after_creation: time::offset(at - node.created_at),
        }),
        last_heartbeat: node.last_heartbeat_at.map(|at| time::when(at, now_ms)),
        deleted: node.deleted_at.map(|at| time::when(at, now_ms)),
        // Figures from a node that is no longer running describe the past.
        metrics: node
            .metrics
            .as_ref()
            .filter(|_| running)
            .map(MetricsView::new),
        metrics_note: if running || node.status == "creating" {
            "No metrics yet: the agent reports them with each heartbeat."
        } else {
            "No metrics: the node is not running."
        },
        phases: boot_log.map(|events| {
            events
                .iter()
                .map(|e| PhaseView::new(e, node.created_at))
                .collect()
        }),
    };
    Ok(page.render()?)
}

#[derive(Template)]
#[template(path = "node.html")]
struct NodePage<'a> {
    title: &'a str,
    version: &'a str,
    asset_version: &'a str,
    active_nav: &'a str,
    viewer: Option<&'a Viewer<'a>>,
    node: &'a NodeView,
    /// The id, encoded for a URL path.
    path_id: String,
    status_class: &'static str,
    health_class: &'static str,
    /// Meta refresh while the node can still change.
    refresh: bool,
    deletable: bool,
    error_message: Option<&'a str>,
    ip_address: Option<&'a str>,
    server_id: Option<&'a str>,
    agent_version: Option<&'a str>,
    created: When,
    ready: Option<Milestone>,
    last_heartbeat: Option<When>,
    deleted: Option<When>,
    metrics: Option<MetricsView>,
    metrics_note: &'static str,
    phases: Option<Vec<PhaseView<'a>>>,
}

/// A point in the node's life, with its distance from the node's creation.
struct Milestone {
    when: When,
    /// `+42.1 s`.
    after_creation: String,
}

/// The last heartbeat's figures in readable units.
struct MetricsView {
    load_1m: String,
    load_5m: String,
    load_15m: String,
    memory: Option<Usage>,
    disk: Option<Usage>,
    uptime: String,
}

/// Used out of total, e.g. `1.2 GiB` of `3.8 GiB` (32 %).
struct Usage {
    used: String,
    total: String,
    percent: u64,
}

impl MetricsView {
    fn new(m: &NodeMetrics) -> Self {
        MetricsView {
            load_1m: format!("{:.2}", m.load_avg_1m),
            load_5m: format!("{:.2}", m.load_avg_5m),
            load_15m: format!("{:.2}", m.load_avg_15m),
            memory: Usage::new(
                m.memory_total_kib.saturating_mul(1024),
                m.memory_available_kib.saturating_mul(1024),
            ),
            disk: Usage::new(m.disk_total_bytes, m.disk_available_bytes),
            uptime: time::duration(m.uptime_secs),
        }
    }
}

impl Usage {
    /// `None` when the agent reported no total (nothing meaningful to show).
    fn new(total: u64, available: u64) -> Option<Self> {
        if total == 0 {
            return None;
        }
        let used = total.saturating_sub(available);
        let percent = (u128::from(used) * 100 + u128::from(total) / 2) / u128::from(total);
        Some(Usage {
            used: bytes(used),
            total: bytes(total),
            percent: u64::try_from(percent).unwrap_or(100),
        })
    }
}

/// Binary units with one decimal: `512 B`, `1.5 KiB`, `3.8 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let n = u128::from(n);
    let tenths_in = |divisor: u128| (n * 10 + divisor / 2) / divisor;
    let (mut unit, mut divisor) = (1, 1024_u128);
    // Up a unit while the rounded figure would read 1024.0 or more.
    while unit + 1 < UNITS.len() && tenths_in(divisor) >= 10_240 {
        unit += 1;
        divisor *= 1024;
    }
    let tenths = tenths_in(divisor);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// One boot-log entry on the timeline.
struct PhaseView<'a> {
    /// As recorded, for `data-phase` and the small code next to the label.
    phase: &'a str,
    label: &'a str,
    /// From a closed set: `phase-ok`, `phase-warn`, `phase-error`,
    /// `phase-neutral`, `phase-unknown`.
    kind_class: &'static str,
    at: Stamp,
    clock: String,
    /// From the node's creation: `+0.8 s`.
    offset: String,
    detail: Option<&'a str>,
}

impl<'a> PhaseView<'a> {
    fn new(event: &'a BootEventRow, created_at: i64) -> Self {
        let (label, kind_class) = match event.phase.as_str() {
            "requested" => ("Requested", "phase-ok"),
            "provider_created" => ("Server created", "phase-ok"),
            "provider_retrying" => ("Provider retry", "phase-warn"),
            "provider_failed" => ("Provider failed", "phase-error"),
            "agent_ready" => ("Agent ready", "phase-ok"),
            "boot_deadline_passed" => ("Boot deadline passed", "phase-error"),
            "delete_requested" => ("Delete requested", "phase-warn"),
            "deleted" => ("Deleted", "phase-neutral"),
            other => (other, "phase-unknown"),
        };
        PhaseView {
            phase: &event.phase,
            label,
            kind_class,
            at: time::stamp(event.at),
            clock: time::clock(event.at),
            offset: time::offset(event.at - created_at),
            detail: event.detail.as_deref().filter(|d| !d.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(bytes(4_026_531_840), "3.8 GiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn usage_rounds_and_tolerates_odd_reports() {
        let u = Usage::new(1000, 667).unwrap();
        assert_eq!(u.percent, 33);
        assert_eq!(Usage::new(1000, 2000).unwrap().percent, 0);
        assert!(Usage::new(0, 0).is_none());
        assert_eq!(Usage::new(u64::MAX, 0).unwrap().percent, 100);
    }
}
