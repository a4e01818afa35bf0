//! Node resource metrics, as reported in heartbeats and `/system-info`.
//!
//! The `/proc` parsers are pure functions over the file text so they can be
//! tested on samples; [`collect_metrics`] does the I/O. `/proc` is the
//! kernel's view and is read from the real root even when `SAM_FS_ROOT` is
//! set: a stand-in "VM" directory has no `/proc` of its own.

use std::path::Path;

use sam_wire::NodeMetrics;

/// Where the kernel publishes the figures.
pub const PROC_DIR: &str = "/proc";

/// Parses `/proc/loadavg`: the first three fields are the 1, 5 and 15 minute
/// load averages.
pub fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let one = fields.next()?.ok()?;
    let five = fields.next()?.ok()?;
    let fifteen = fields.next()?.ok()?;
    Some((one, five, fifteen))
}

/// Parses `/proc/meminfo` into `(MemTotal, MemAvailable)` in KiB.
///
/// Both lines are required: every kernel since 3.14 has `MemAvailable`, and
/// estimating it from `MemFree` would report a misleadingly low figure.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let mut total = None;
    let mut available = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        // Values are `<n> kB`; the unit is always kB despite meaning KiB.
        *slot = rest.split_whitespace().next()?.parse::<u64>().ok();
    }
    Some((total?, available?))
}

/// Parses `/proc/uptime`: seconds since boot, fractional, first field.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs = text.split_whitespace().next()?.parse::<f64>().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        // Truncating to whole seconds is the intent.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(secs as u64)
    } else {
        None
    }
}

/// Total and available bytes of the file system holding `path`.
fn disk_usage(path: &Path) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(path)?;
    // Block counts are in fragment-size units (`f_frsize`), not `f_bsize`.
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    // `f_bavail` excludes blocks reserved for root, which the agent's
    // workloads cannot use.
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    Ok((total, available))
}

/// Reads current metrics from `proc_dir` (normally `/proc`) and the file
/// system of `disk_path`. A figure that cannot be read is reported as zero
/// and logged: a partial heartbeat is more useful than none.
pub fn collect_metrics(proc_dir: &Path, disk_path: &Path) -> NodeMetrics {
    let mut m = NodeMetrics::default();
    // These are tiny in-memory pseudo-files; reading them synchronously on the
    // runtime thread is cheaper than a hop to the blocking pool.
    if let Some((one, five, fifteen)) = read(proc_dir, "loadavg").as_deref().and_then(parse_loadavg)
    {
        m.load_avg_1m = one;
        m.load_avg_5m = five;
        m.load_avg_15m = fifteen;
    } else {
        tracing::debug!("load averages unavailable");
    }
    if let Some((total, available)) = read(proc_dir, "meminfo").as_deref().and_then(parse_meminfo) {
        m.memory_total_kib = total;
        m.memory_available_kib = available;
    } else {
        tracing::debug!("memory figures unavailable");
    }
    if let Some(uptime) = read(proc_dir, "uptime").as_deref().and_then(parse_uptime) {
        m.uptime_secs = uptime;
    } else {
        tracing::debug!("uptime unavailable");
    }
    match disk_usage(disk_path) {
        Ok((total, available)) => {
            m.disk_total_bytes = total;
            m.disk_available_bytes = available;
        }
        Err(err) => tracing::debug!(path = %disk_path.display(), %err, "disk figures unavailable"),
    }
    m
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "\
MemTotal:        8029876 kB
MemFree:          512340 kB
MemAvailable:    6123456 kB
Buffers:          204800 kB
Cached:          4096000 kB
HugePages_Total:       0
";

    #[test]
    fn loadavg_parses_the_first_three_fields() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 2/1234 56789\n"),
            Some((0.52, 0.58, 0.59))
        );
        assert_eq!(parse_loadavg("0.52 0.58"), None);
        assert_eq!(parse_loadavg("high 0.58 0.59 1/1 1"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn meminfo_needs_total_and_available() {
        assert_eq!(parse_meminfo(MEMINFO), Some((8_029_876, 6_123_456)));
        let without_available: String = MEMINFO
            .lines()
            .filter(|l| !l.starts_with("MemAvailable"))
            .flat_map(|l| [l, "\n"])
            .collect();
        assert_eq!(parse_meminfo(&without_available), None);
        assert_eq!(
            parse_meminfo("MemTotal: lots kB\nMemAvailable: 1 kB\n"),
            None
        );
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn uptime_truncates_to_whole_seconds() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime("0.99 0.10"), Some(0));
        assert_eq!(parse_uptime("-1 0"), None);
        assert_eq!(parse_uptime("NaN 0"), None);
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn collect_reads_a_proc_directory_and_a_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "1.00 2.00 3.00 1/100 42\n").unwrap();
        std::fs::write(dir.path().join("meminfo"), MEMINFO).unwrap();
        std::fs::write(dir.path().join("uptime"), "42.9 10.0\n").unwrap();
        let m = collect_metrics(dir.path(), dir.path());
        assert_eq!(
            (m.load_avg_1m, m.load_avg_5m, m.load_avg_15m),
            (1.0, 2.0, 3.0)
        );
        assert_eq!(m.memory_total_kib, 8_029_876);
        assert_eq!(m.memory_available_kib, 6_123_456);
        assert_eq!(m.uptime_secs, 42);
        assert!(m.disk_total_bytes > 0);
        assert!(m.disk_available_bytes <= m.disk_total_bytes);
    }

    #[test]
    fn collect_reports_zero_for_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let m = collect_metrics(&missing, &missing);
        assert_eq!(m, NodeMetrics::default());
    }
}
