//! systemd service units: the subset of `[Service]` devcloud honours
//! (ExecStart, Environment, EnvironmentFile, WorkingDirectory, Restart,
//! RestartSec), turned into a [`ServiceSpec`] the supervisor can run.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::rootfs::RootFs;
use super::words;

/// Where systemd looks for unit files, most specific first.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// `Restart=` policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    No,
    Always,
    OnSuccess,
    OnFailure,
    OnAbnormal,
    OnAbort,
}

impl Restart {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "no" => Restart::No,
            "always" => Restart::Always,
            "on-success" => Restart::OnSuccess,
            "on-failure" => Restart::OnFailure,
            "on-abnormal" | "on-watchdog" => Restart::OnAbnormal,
            "on-abort" => Restart::OnAbort,
            _ => return None,
        })
    }

    /// Whether a main process that ended with `status` is started again.
    pub(crate) fn applies(self, status: ExitStatus) -> bool {
        // systemd counts these signals as a clean exit, like code 0.
        const CLEAN_SIGNALS: [i32; 4] = [1, 2, 13, 15]; // HUP INT PIPE TERM
        let clean =
            status.code() == Some(0) || status.signal().is_some_and(|s| CLEAN_SIGNALS.contains(&s));
        let unclean_signal = status.signal().is_some_and(|s| !CLEAN_SIGNALS.contains(&s));
        match self {
            Restart::No => false,
            Restart::Always => true,
            Restart::OnSuccess => clean,
            Restart::OnFailure => !clean,
            Restart::OnAbnormal | Restart::OnAbort => unclean_signal,
        }
    }
}

/// Everything needed to (re)start one service's main process.
#[derive(Debug, Clone)]
pub(crate) struct ServiceSpec {
    pub unit: String,
    /// Host path of the executable (ExecStart's path, rebased).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Declared environment, in precedence order (later wins).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub restart: Restart,
    pub restart_sec: Duration,
    /// Settings seen but not emulated, reported on the console.
    pub ignored: Vec<String>,
}

/// Normalises `agent` to `agent.service`, as systemctl does.
pub(crate) fn unit_name(raw: &str) -> String {
    if raw.contains('.') {
        raw.to_owned()
    } else {
        format!("{raw}.service")
    }
}

/// Reads a unit from the server's root, searching systemd's unit dirs.
pub(crate) fn load(rootfs: &RootFs, unit: &str) -> Option<String> {
    UNIT_DIRS
        .iter()
        .find_map(|dir| fs::read_to_string(rootfs.host_path(&format!("{dir}/{unit}"))).ok())
}

/// The `[Service]` section as ordered key/value pairs; continuation lines
/// are joined and comments dropped.
fn service_section(text: &str) -> Vec<(String, String)> {
    let mut logical = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        logical.push(std::mem::take(&mut pending));
    }
    if !pending.is_empty() {
        logical.push(pending);
    }

    let mut in_service = false;
    let mut pairs = Vec::new();
    for line in logical {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && let Some((k, v)) = line.split_once('=') {
            pairs.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    pairs
}

/// Parses `KEY=VALUE` lines of an EnvironmentFile (comments, blank lines
/// and surrounding quotes handled as systemd does).
pub(crate) fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = if v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"'))
                    || (v.starts_with('\'') && v.ends_with('\'')))
            {
                words::split(v)
                    .ok()
                    .and_then(|w| w.into_iter().next())
                    .unwrap_or_default()
            } else {
                v.to_owned()
            };
            (k.trim().to_owned(), unquoted)
        })
        .collect()
}

/// systemd duration syntax: `5`, `5s`, `500ms`, `1min 30s`.
fn parse_duration(raw: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let compact: String = raw.split_whitespace().collect();
    let mut rest = compact.as_str();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "ms" | "msec" => 0.001,
            "us" | "usec" => 0.000_001,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(number * factor);
    }
    Some(total)
}

/// Expands `${VAR}` inside words and `$VAR` standing alone (split on
/// whitespace), as systemd does for ExecStart=.
fn expand_args(args: &[String], env: &BTreeMap<&str, &str>) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        if let Some(name) = arg.strip_prefix('$')
            && !name.starts_with('{')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            if let Some(value) = env.get(name) {
                out.extend(value.split_whitespace().map(str::to_owned));
            }
            continue;
        }
        let mut expanded = String::new();
        let mut rest = arg.as_str();
        while let Some(start) = rest.find("${") {
            expanded.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(end) = after.find('}') {
                expanded.push_str(env.get(&after[..end]).copied().unwrap_or(""));
                rest = &after[end + 1..];
            } else {
                expanded.push_str(&rest[start..]);
                rest = "";
            }
        }
        expanded.push_str(rest);
        out.push(expanded.replace("$$", "$"));
    }
    out
}

/// Builds the spec for `unit` from its file text. EnvironmentFile= is read
/// now (from the server's root), as systemd reads it at each start.
pub(crate) fn service_spec(unit: &str, text: &str, rootfs: &RootFs) -> Result<ServiceSpec, String> {
    let mut exec_start: Option<String> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut env_files: Vec<String> = Vec::new();
    let mut cwd = rootfs.path().to_path_buf();
    let mut restart = Restart::No;
    // systemd's default RestartSec=.
    let mut restart_sec = Duration::from_millis(100);
    let mut ignored = Vec::new();

    for (key, value) in service_section(text) {
        match key.as_str() {
            "ExecStart" => exec_start = (!value.is_empty()).then_some(value),
            "Environment" if value.is_empty() => env.clear(),
            "Environment" => {
                for word in words::split(&value).map_err(|e| e.to_string())? {
                    if let Some((k, v)) = word.split_once('=') {
                        env.push((k.to_owned(), v.to_owned()));
                    }
                }
            }
            "EnvironmentFile" if value.is_empty() => env_files.clear(),
            "EnvironmentFile" => env_files.push(value),
            "WorkingDirectory" => {
                let (optional, dir) = match value.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, value.as_str()),
                };
                let host = rootfs.host_path(dir);
                if host.is_dir() {
                    cwd = host;
                } else if !optional {
                    return Err(format!("WorkingDirectory={dir} does not exist"));
                }
            }
            "Restart" => {
                restart = Restart::parse(&value).ok_or_else(|| format!("bad Restart={value}"))?;
            }
            "RestartSec" => {
                restart_sec =
                    parse_duration(&value).ok_or_else(|| format!("bad RestartSec={value}"))?;
            }
            // Harmless for a single local process.
            "Type" | "User" | "Group" | "StandardOutput" | "StandardError" => {}
            _ => ignored.push(format!("{key}={value}")),
        }
    }

    // Settings from EnvironmentFile= override Environment=, as in systemd.
    for file in env_files {
        let (optional, path) = match file.strip_prefix('-') {
            Some(p) => (true, p.to_owned()),
            None => (false, file),
        };
        match fs::read_to_string(rootfs.host_path(&path)) {
            Ok(text) => env.extend(parse_env_file(&text)),
            Err(_) if optional => {}
            Err(e) => return Err(format!("EnvironmentFile={path}: {e}")),
        }
    }

    let exec_start = exec_start.ok_or("no ExecStart= in [Service]")?;
    let command = exec_start.trim_start_matches(['@', '-', ':', '+', '!']);
    let command_line = words::split(command).map_err(|e| e.to_string())?;
    let (program, raw_args) = command_line.split_first().ok_or("empty ExecStart=")?;
    if !program.starts_with('/') {
        return Err(format!("ExecStart= path {program:?} is not absolute"));
    }
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args = expand_args(raw_args, &lookup);

    Ok(ServiceSpec {
        unit: unit.to_owned(),
        program: rootfs.host_path(program),
        args,
        env,
        cwd,
        restart,
        restart_sec,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn parses_the_honoured_keys() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = RootFs::new(dir.path().to_path_buf());
        rootfs.create_skeleton().unwrap();
        fs::create_dir_all(rootfs.host_path("/etc/sam")).unwrap();
        fs::write(
            rootfs.host_path("/etc/sam/agent.env"),
            "# comment\nTOKEN=\"abc def\"\nPORT=8080\n\nA=from-file\n",
        )
        .unwrap();
        let text = "\
[Unit]
Description=SAM agent
ExecStart=/not/this

[Service]
Type=simple
Environment=A=1 \"B=two words\"
Environment=C=3
EnvironmentFile=/etc/sam/agent.env
EnvironmentFile=-/etc/sam/missing.env
WorkingDirectory=/var/lib
ExecStart=/usr/local/bin/sam-agent --port ${PORT} \\
  --config /etc/sam/agent.toml $TOKEN
Restart=always
RestartSec=2s
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
";
        let spec = service_spec("sam-agent.service", text, &rootfs).unwrap();
        assert_eq!(spec.program, dir.path().join("usr/local/bin/sam-agent"));
        assert_eq!(
            spec.args,
            [
                "--port",
                "8080",
                "--config",
                "/etc/sam/agent.toml",
                "abc",
                "def"
            ]
        );
        let env: BTreeMap<_, _> = spec.env.iter().cloned().collect();
        assert_eq!(
            env["A"], "from-file",
            "EnvironmentFile overrides Environment"
        );
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "3");
        assert_eq!(env["TOKEN"], "abc def");
        assert_eq!(spec.cwd, dir.path().join("var/lib"));
        assert_eq!(spec.restart, Restart::Always);
        assert_eq!(spec.restart_sec, Duration::from_secs(2));
        assert_eq!(spec.ignored, ["LimitNOFILE=65536"]);
    }

    #[test]
    fn missing_required_environment_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = RootFs::new(dir.path().to_path_buf());
        let text = "[Service]\nEnvironmentFile=/etc/none\nExecStart=/bin/x\n";
        let err = service_spec("x.service", text, &rootfs).unwrap_err();
        assert!(err.contains("/etc/none"), "{err}");
        let text = "[Service]\nExecStart=relative\n";
        assert!(service_spec("x.service", text, &rootfs).is_err());
        assert!(service_spec("x.service", "[Service]\n", &rootfs).is_err());
    }

    #[test]
    fn restart_policies() {
        let code = |c| ExitStatus::from_raw(c << 8);
        let signal = ExitStatus::from_raw;
        assert!(Restart::Always.applies(code(0)));
        assert!(!Restart::OnFailure.applies(code(0)));
        assert!(Restart::OnFailure.applies(code(3)));
        assert!(Restart::OnFailure.applies(signal(9)));
        assert!(!Restart::OnFailure.applies(signal(15)));
        assert!(!Restart::No.applies(code(1)));
        assert!(Restart::OnAbnormal.applies(signal(11)));
        assert!(!Restart::OnAbnormal.applies(code(1)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1min 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("fast"), None);
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("agent"), "agent.service");
        assert_eq!(unit_name("agent.service"), "agent.service");
    }
}
