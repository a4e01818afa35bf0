//! One node's page: status, holder, health and what happens next; facts,
//! the last reported metrics, the node's log as a timeline, the vm-agent's
//! own log, and the actions (release, stop, delete).
//!
//! The server-rendered page is complete on its own. While the node can
//! still change, `static/node-live.js` keeps it current in place: it
//! follows the node's log over a WebSocket, appends new timeline rows and
//! re-reads `GET /api/nodes/{id}` to update the elements marked with ids
//! below (`node-status`, `node-health`, `node-deadline`, ...). Wording that
//! both sides produce (deadline phrases, phase labels) is kept in step by
//! the page tests.

use askama::Template;
use sam_wire::{NodeMetrics, NodeView};

use crate::projects::path_segment;
use crate::time::{self, Stamp, When};
use crate::{RenderError, Viewer, asset_version, health_class, status_class};

/// One entry of a node's log (its `NodeLifecycle` object).
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
/// still shows everything else, and the live script loads it). `now_ms`
/// anchors "N s ago" and "in N min".
pub fn render_node_page(
    viewer: &Viewer,
    node: &NodeView,
    boot_log: Option<&[BootEventRow]>,
    now_ms: i64,
    version: &str,
) -> Result<String, RenderError> {
    let status = node.status.as_str();
    let running = is_running(status);
    // Nothing happens to a destroyed node any more: no live updates.
    let live = status != "destroyed";
    let actions = Actions::for_node(node);
    let phases: Vec<PhaseView> = boot_log
        .unwrap_or_default()
        .iter()
        .map(|e| PhaseView::new(e, node.created_at))
        .collect();
    let page = NodePage {
        title: &node.name,
        version,
        asset_version: asset_version(),
        active_nav: "nodes",
        viewer: Some(viewer),
        node,
        path_id: path_segment(&node.id),
        now_ms,
        status_class: status_class(status),
        health_class: health_class(&node.health),
        live,
        deadline: Deadline::of(node, now_ms),
        holder: node.claimed_by.as_deref().map(holder),
        // As on the list: a message belongs to the error it explains.
        error_message: node
            .error_message
            .as_deref()
            .filter(|m| status == "error" && !m.is_empty()),
        destroy_error: node.destroy_error.as_deref().filter(|e| !e.is_empty()),
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
        removed: node.removed_at.map(|at| time::when(at, now_ms)),
        // Figures from a node that is no longer running describe the past.
        metrics: node
            .metrics
            .as_ref()
            .filter(|_| running)
            .map(MetricsView::new),
        metrics_note: metrics_note(status),
        log_available: running,
        actions,
        log_loaded: boot_log.is_some(),
        phases,
    };
    Ok(page.render()?)
}

/// `ready` and `warm`: the vm-agent runs, reports metrics and serves its log.
fn is_running(status: &str) -> bool {
    matches!(status, "ready" | "warm")
}

fn metrics_note(status: &str) -> &'static str {
    if is_running(status) || matches!(status, "provisioning" | "booting") {
        "No metrics yet: the agent reports them with each heartbeat."
    } else {
        "No metrics: the node is not running."
    }
}

/// Who holds the node, for people: the signed-in user's own hold
/// (`user:<id>`, and a user only ever sees their own nodes) is "you".
pub(crate) fn holder(claimed_by: &str) -> &str {
    if claimed_by.starts_with("user:") {
        "you"
    } else {
        claimed_by
    }
}

/// The actions that apply to the node now. Forms for actions that may
/// still come to apply are rendered hidden, so the live script can show
/// them (a booting node becomes ready and releasable without a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Actions {
    /// The user's own hold on a ready node ends; it turns warm.
    release: bool,
    /// The server is deleted, the record stays.
    stop: bool,
    /// Stop, and leave the lists once destroyed.
    delete: bool,
}

impl Actions {
    fn for_node(node: &NodeView) -> Self {
        let status = node.status.as_str();
        let held_by_user = node
            .claimed_by
            .as_deref()
            .is_some_and(|c| c.starts_with("user:"));
        Actions {
            release: status == "ready" && held_by_user,
            stop: !matches!(status, "destroying" | "destroyed"),
            delete: !(status == "destroyed" && node.removed_at.is_some()),
        }
    }

    fn any(self) -> bool {
        self.release || self.stop || self.delete
    }
}

/// What `deadline_at` means for the node's status, in words.
pub(crate) struct Deadline {
    pub text: String,
    pub at: i64,
    pub stamp: Stamp,
}

impl Deadline {
    /// The node's deadline in words; for a warm node, its warm timeout
    /// (the deadline itself is often just the next heartbeat check).
    pub(crate) fn of(node: &NodeView, now_ms: i64) -> Option<Self> {
        let at = match node.status.as_str() {
            "warm" => node.warm_until.or(node.deadline_at),
            _ => node.deadline_at,
        }?;
        Self::new(&node.status, at, now_ms)
    }

    /// `None` for statuses without a deadline (`destroyed`, unknown ones).
    pub(crate) fn new(status: &str, at: i64, now_ms: i64) -> Option<Self> {
        Some(Deadline {
            text: deadline_phrase(status, at, now_ms)?,
            at,
            stamp: time::stamp(at),
        })
    }
}

/// `node-live.js` has the same phrases (`deadlinePhrase`); the page tests
/// check both.
///
/// For `ready` the deadline is the earliest of the running timers (stale
/// heartbeats, the maximum lifetime). Heartbeats push the first one on, so
/// nothing happens before it, but something need not happen at it: hence
/// "next check". A warm node is described by its warm timeout instead.
fn deadline_phrase(status: &str, at: i64, now_ms: i64) -> Option<String> {
    let left = at.saturating_sub(now_ms);
    let due = left <= 0;
    Some(match status {
        "provisioning" | "booting" if due => "boot deadline passed".to_owned(),
        "provisioning" | "booting" => format!("boot deadline in {}", in_words(left)),
        "ready" if due => "next check due now".to_owned(),
        "ready" => format!("next check in {}", in_words(left)),
        "warm" if due => "warm; next check due now (destroyed if not claimed)".to_owned(),
        "warm" => format!("warm until {} (destroyed if not claimed)", hour_minute(at)),
        "destroying" if due => "next delete attempt due now".to_owned(),
        "destroying" => format!("next delete attempt in {}", in_words(left)),
        "error" => "its server is deleted next".to_owned(),
        _ => return None,
    })
}

/// A time ahead, in the units of [`time::ago`]: `8 s`, `4 min`, `3 h`,
/// `2 d`. Seconds round up, so a moment still ahead never reads `0 s`.
fn in_words(left_ms: i64) -> String {
    let secs = left_ms.max(0).saturating_add(999) / 1000;
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// `12:30 UTC`.
fn hour_minute(epoch_ms: i64) -> String {
    let of_day = epoch_ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02} UTC", of_day / 3600, of_day % 3600 / 60)
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
    /// When the page was rendered, so the live script can correct for the
    /// browser's clock.
    now_ms: i64,
    status_class: &'static str,
    health_class: &'static str,
    /// The node can still change: load the live script and mark the hooks.
    live: bool,
    deadline: Option<Deadline>,
    holder: Option<&'a str>,
    error_message: Option<&'a str>,
    destroy_error: Option<&'a str>,
    ip_address: Option<&'a str>,
    server_id: Option<&'a str>,
    agent_version: Option<&'a str>,
    created: When,
    ready: Option<Milestone>,
    last_heartbeat: Option<When>,
    removed: Option<When>,
    metrics: Option<MetricsView>,
    metrics_note: &'static str,
    /// The vm-agent log can be streamed (ready or warm).
    log_available: bool,
    actions: Actions,
    /// False when the node's log could not be loaded.
    log_loaded: bool,
    phases: Vec<PhaseView<'a>>,
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

/// One log entry on the timeline.
struct PhaseView<'a> {
    /// Epoch milliseconds, for `data-at`: with the phase, what the live
    /// script deduplicates rows by.
    at_ms: i64,
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
        // node-live.js has the same table (`PHASES`); the page tests check it.
        let (label, kind_class) = match event.phase.as_str() {
            "requested" => ("Requested", "phase-ok"),
            "provider_retrying" => ("Provider retry", "phase-warn"),
            "provider_created" => ("Server created", "phase-ok"),
            "provider_failed" => ("Provider failed", "phase-error"),
            "agent_ready" => ("Agent ready", "phase-ok"),
            "claimed" => ("Claimed", "phase-ok"),
            "released" => ("Released", "phase-neutral"),
            "boot_deadline_passed" => ("Boot deadline passed", "phase-error"),
            "heartbeat_stale" => ("Heartbeats stopped", "phase-error"),
            "warm_timeout_passed" => ("Warm timeout passed", "phase-neutral"),
            "max_lifetime_passed" => ("Maximum lifetime reached", "phase-warn"),
            "destroy_requested" => ("Delete requested", "phase-warn"),
            "destroy_failed" => ("Delete failed", "phase-warn"),
            "destroyed" => ("Destroyed", "phase-neutral"),
            other => (other, "phase-unknown"),
        };
        PhaseView {
            at_ms: event.at,
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
    fn times_ahead_read_like_times_ago() {
        assert_eq!(in_words(0), "0 s");
        assert_eq!(in_words(-5_000), "0 s");
        assert_eq!(in_words(1), "1 s", "a moment still ahead is never 0 s");
        assert_eq!(in_words(8_000), "8 s");
        assert_eq!(in_words(119_000), "119 s");
        assert_eq!(in_words(240_000), "4 min");
        assert_eq!(in_words(7_200_000), "2 h");
        assert_eq!(in_words(3 * 86_400_000), "3 d");
        assert_eq!(hour_minute(1_772_359_200_000 + 9_000_000), "12:30 UTC");
        assert_eq!(hour_minute(-60_000), "23:59 UTC");
    }

    #[test]
    fn the_users_own_hold_is_you() {
        assert_eq!(holder("user:01JUSER"), "you");
        assert_eq!(holder("task-42"), "task-42");
        assert_eq!(holder("users:x"), "users:x");
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
