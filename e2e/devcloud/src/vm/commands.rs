//! The commands devcloud emulates inside a server: `curl`, `chmod`,
//! `mkdir`, `touch`, `echo`, `true` and `systemctl`. Nothing is ever handed
//! to a shell; anything else is logged as not emulated and skipped.

use std::fs;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::console::Console;
use super::curl::{self, Curl};
use super::net::Http;
use super::rootfs::RootFs;
use super::unit::{self, ServiceSpec};
use super::write_files::parse_mode;

/// What `systemctl` needs from the machine: running and stopping service
/// processes and remembering which units are enabled.
pub(crate) trait Services: Sync {
    /// Starts `spec`'s main process, replacing a running instance.
    fn start(&self, spec: ServiceSpec) -> impl Future<Output = Result<(), String>> + Send;
    fn stop(&self, unit: &str) -> impl Future<Output = ()> + Send;
    fn set_enabled(&self, unit: &str, enabled: bool);
}

/// The parts of a server a command can touch.
pub(crate) struct Guest<'a, S> {
    pub rootfs: &'a RootFs,
    pub console: &'a Console,
    pub http: &'a Http,
    pub services: &'a S,
}

/// Units a stock Ubuntu image has; a systemctl verb on them is a no-op here
/// rather than a "unit not found" failure.
fn is_os_unit(unit: &str) -> bool {
    const OS_UNITS: &[&str] = &[
        "ssh",
        "sshd",
        "cron",
        "docker",
        "containerd",
        "ufw",
        "fail2ban",
        "rsyslog",
        "unattended-upgrades",
        "apparmor",
        "chrony",
        "snapd",
        "multipathd",
        "qemu-guest-agent",
        "networkd-dispatcher",
        "apt-daily",
        "apt-daily-upgrade",
    ];
    let base = unit.strip_suffix(".service").unwrap_or(unit);
    base.starts_with("systemd-")
        || OS_UNITS.contains(&base)
        || [".target", ".socket", ".timer", ".mount"]
            .iter()
            .any(|s| unit.ends_with(s))
}

/// Runs one command. `Err` fails the boot.
pub(crate) async fn run<S: Services>(guest: &Guest<'_, S>, argv: &[String]) -> Result<(), String> {
    let Some((program, arguments)) = argv.split_first() else {
        return Ok(());
    };
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    match name {
        "curl" => {
            let curl = Curl::parse(arguments)?;
            curl::run(&curl, guest.http, guest.rootfs, guest.console).await
        }
        "chmod" => chmod(guest, arguments),
        "mkdir" => mkdir(guest, arguments),
        "touch" => touch(guest, arguments),
        "echo" => {
            guest.console.line(arguments.join(" "));
            Ok(())
        }
        "true" | ":" => Ok(()),
        "systemctl" => systemctl(guest, arguments).await,
        _ => {
            guest
                .console
                .line(format!("not emulated: {}", argv.join(" ")));
            Ok(())
        }
    }
}

/// Splits leading `-x` options from operands (`--` ends options).
fn options(args: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut only_operands = false;
    for arg in args {
        if only_operands || !arg.starts_with('-') || arg == "-" {
            operands.push(arg.as_str());
        } else if arg == "--" {
            only_operands = true;
        } else {
            opts.push(arg.as_str());
        }
    }
    (opts, operands)
}

fn chmod<S>(guest: &Guest<'_, S>, args: &[String]) -> Result<(), String> {
    // chmod's own options come first; symbolic modes like `-x` also start
    // with a dash, so only the known options are taken as options.
    let mut recursive = false;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "-R" | "--recursive" => recursive = true,
            "-v" | "-f" | "-c" | "--verbose" | "--silent" | "--quiet" | "--changes" => {}
            "--" => {
                rest = tail;
                break;
            }
            _ => break,
        }
        rest = tail;
    }
    let (mode, paths) = rest.split_first().ok_or("chmod: missing operand")?;
    if paths.is_empty() {
        return Err(format!("chmod: missing operand after {mode:?}"));
    }
    for path in paths {
        let host = guest.rootfs.host_path(path);
        apply_mode(&host, mode, recursive).map_err(|e| format!("chmod {mode} {path}: {e}"))?;
    }
    guest
        .console
        .line(format!("chmod {mode} {}", paths.join(" ")));
    Ok(())
}

fn apply_mode(host: &Path, mode: &str, recursive: bool) -> Result<(), String> {
    let meta = fs::metadata(host).map_err(|e| e.to_string())?;
    let current = meta.permissions().mode() & 0o7777;
    let new = match parse_mode(mode) {
        Some(m) => m,
        None => symbolic_mode(mode, current, meta.is_dir())
            .ok_or_else(|| format!("invalid mode {mode:?}"))?,
    };
    fs::set_permissions(host, fs::Permissions::from_mode(new)).map_err(|e| e.to_string())?;
    if recursive && meta.is_dir() {
        for entry in fs::read_dir(host).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            apply_mode(&entry.path(), mode, true)?;
        }
    }
    Ok(())
}

/// Applies a symbolic mode (`+x`, `u+rwx,go-w`, `a=rX`) to `current`.
fn symbolic_mode(spec: &str, current: u32, is_dir: bool) -> Option<u32> {
    let mut mode = current;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '='])?;
        let (who, mut ops) = clause.split_at(op_at);
        let mut mask = 0;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => return None,
            };
        }
        if mask == 0 {
            mask = 0o7777;
        }
        while !ops.is_empty() {
            let op = ops.chars().next()?;
            let perms_end = ops[1..].find(['+', '-', '=']).map_or(ops.len(), |i| i + 1);
            let perms = &ops[1..perms_end];
            ops = &ops[perms_end..];
            let mut bits = 0;
            for c in perms.chars() {
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    'X' => 0,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => return None,
                };
            }
            let bits = bits & mask;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                '=' => mode = (mode & !(mask & 0o777)) | bits,
                _ => return None,
            }
        }
    }
    Some(mode)
}

fn mkdir<S>(guest: &Guest<'_, S>, args: &[String]) -> Result<(), String> {
    let mut parents = false;
    let mut mode = None;
    let mut paths = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-p" | "--parents" => parents = true,
            "-v" | "--verbose" => {}
            "-m" | "--mode" => {
                let raw = iter.next().ok_or("mkdir: -m needs a mode")?;
                mode = Some(parse_mode(raw).ok_or_else(|| format!("mkdir: bad mode {raw:?}"))?);
            }
            a if a.starts_with("--mode=") => {
                mode = Some(parse_mode(&a[7..]).ok_or_else(|| format!("mkdir: bad mode {a:?}"))?);
            }
            a if a.starts_with("-m") && a.len() > 2 => {
                mode = Some(parse_mode(&a[2..]).ok_or_else(|| format!("mkdir: bad mode {a:?}"))?);
            }
            "-pv" | "-vp" => parents = true,
            a if a.starts_with('-') => return Err(format!("mkdir: option {a} is not emulated")),
            a => paths.push(a),
        }
    }
    if paths.is_empty() {
        return Err("mkdir: missing operand".into());
    }
    for path in &paths {
        let host = guest.rootfs.host_path(path);
        let created = if parents {
            fs::create_dir_all(&host)
        } else {
            fs::create_dir(&host)
        };
        created.map_err(|e| format!("mkdir {path}: {e}"))?;
        if let Some(m) = mode {
            fs::set_permissions(&host, fs::Permissions::from_mode(m))
                .map_err(|e| format!("mkdir {path}: {e}"))?;
        }
    }
    guest.console.line(format!("mkdir {}", paths.join(" ")));
    Ok(())
}

fn touch<S>(guest: &Guest<'_, S>, args: &[String]) -> Result<(), String> {
    let (_, paths) = options(args);
    for path in &paths {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(guest.rootfs.host_path(path))
            .map_err(|e| format!("touch {path}: {e}"))?;
    }
    guest.console.line(format!("touch {}", paths.join(" ")));
    Ok(())
}

async fn systemctl<S: Services>(guest: &Guest<'_, S>, args: &[String]) -> Result<(), String> {
    let (opts, operands) = options(args);
    let now = opts.contains(&"--now");
    let Some((verb, units)) = operands.split_first() else {
        return Err("systemctl: no verb".into());
    };
    let verb = *verb;
    let units: Vec<String> = units.iter().map(|u| unit::unit_name(u)).collect();
    match verb {
        "daemon-reload" | "daemon-reexec" => {
            guest
                .console
                .line(format!("systemctl {verb}: nothing to do"));
            return Ok(());
        }
        "enable" | "disable" | "start" | "restart" | "try-restart" | "reload-or-restart"
        | "stop" => {}
        _ => {
            guest
                .console
                .line(format!("not emulated: systemctl {}", args.join(" ")));
            return Ok(());
        }
    }
    if units.is_empty() {
        return Err(format!("systemctl {verb}: no unit given"));
    }
    for unit in &units {
        let text = unit::load(guest.rootfs, unit);
        if text.is_none() {
            if is_os_unit(unit) {
                guest.console.line(format!(
                    "systemctl {verb} {unit}: OS unit, nothing to emulate"
                ));
                continue;
            }
            return Err(format!("Failed to {verb} {unit}: Unit {unit} not found."));
        }
        let start = matches!(
            verb,
            "start" | "restart" | "try-restart" | "reload-or-restart"
        ) || (verb == "enable" && now);
        let stop = verb == "stop" || (verb == "disable" && now);
        match verb {
            "enable" => guest.services.set_enabled(unit, true),
            "disable" => guest.services.set_enabled(unit, false),
            _ => {}
        }
        if stop {
            guest.services.stop(unit).await;
            guest.console.line(format!("systemctl: stopped {unit}"));
        }
        if start {
            let text = text.unwrap_or_default();
            let spec = unit::service_spec(unit, &text, guest.rootfs)
                .map_err(|e| format!("Failed to start {unit}: {e}"))?;
            for setting in &spec.ignored {
                guest
                    .console
                    .line(format!("{unit}: not emulated: {setting}"));
            }
            guest
                .services
                .start(spec)
                .await
                .map_err(|e| format!("Failed to start {unit}: {e}"))?;
            guest.console.line(format!("systemctl: started {unit}"));
        } else if !stop {
            guest.console.line(format!("systemctl: {verb}d {unit}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes() {
        assert_eq!(symbolic_mode("+x", 0o644, false), Some(0o755));
        assert_eq!(symbolic_mode("u+x", 0o644, false), Some(0o744));
        assert_eq!(symbolic_mode("go-rwx", 0o755, false), Some(0o700));
        assert_eq!(symbolic_mode("a=rX", 0o700, true), Some(0o555));
        assert_eq!(symbolic_mode("u=rw,go=r", 0o777, false), Some(0o644));
        assert_eq!(symbolic_mode("u+x-w", 0o644, false), Some(0o544));
        assert_eq!(symbolic_mode("q+x", 0o644, false), None);
        assert_eq!(symbolic_mode("+z", 0o644, false), None);
    }

    #[test]
    fn os_units() {
        assert!(is_os_unit("systemd-journald.service"));
        assert!(is_os_unit("docker.service"));
        assert!(is_os_unit("multi-user.target"));
        assert!(!is_os_unit("sam-agent.service"));
    }
}
