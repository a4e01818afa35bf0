//! Installing agents from npm, pinned, into
//! `<agents_dir>/<scope+name>@<version>/`.
//!
//! - Idempotent: an installation whose bin exists is used as is.
//! - One install per agent at a time within this process (a per-agent
//!   lock); across processes (nodes or test binaries sharing a cache) each
//!   installs into a temporary directory of its own and renames it into
//!   place, so whoever finishes first wins and the others discard theirs. A
//!   killed install leaves only a `.tmp-*` directory, never a half-filled
//!   installation.
//! - npm runs with an environment of its own: `HOME` and the npm cache
//!   under the agents dir (the vm-agent may run with an empty environment),
//!   and a `PATH` that finds `npm` and `node`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::catalog::AgentSpec;

/// How long one `npm install` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Always searched for `npm` and `node`, after the agent's own `PATH`.
pub(crate) const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run npm: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("npm install {package} failed: {detail}")]
    Failed { package: String, detail: String },
    #[error("npm install {package} took too long")]
    TimedOut { package: String },
    #[error("npm installed {package} but {bin} is missing")]
    NoBin { package: String, bin: String },
}

/// Installs agents into one directory.
#[derive(Debug, Clone)]
pub struct Installer {
    dir: PathBuf,
    /// `PATH` for npm (and for the agents it installs).
    path: OsString,
    /// Per-installation locks.
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Installer {
    /// Installs into `dir`; npm is looked up in `path`.
    pub fn new(dir: PathBuf, path: OsString) -> Self {
        Self {
            dir,
            path,
            locks: Arc::default(),
        }
    }

    /// The `PATH` of the agent's own environment, then the system's.
    pub fn default_path() -> OsString {
        match std::env::var_os("PATH").filter(|p| !p.is_empty()) {
            Some(mut path) => {
                path.push(":");
                path.push(SYSTEM_PATH);
                path
            }
            None => SYSTEM_PATH.into(),
        }
    }

    pub fn path_env(&self) -> &OsString {
        &self.path
    }

    /// Where `spec` is (or would be) installed.
    pub fn install_dir(&self, spec: &AgentSpec) -> PathBuf {
        self.dir.join(spec.install_name())
    }

    /// The agent's executable.
    pub fn bin_path(&self, spec: &AgentSpec) -> PathBuf {
        bin_in(&self.install_dir(spec), spec)
    }

    /// Installs `spec` unless it is there already; returns its executable.
    pub async fn ensure(&self, spec: &AgentSpec) -> Result<PathBuf, InstallError> {
        let bin = self.bin_path(spec);
        if bin.exists() {
            return Ok(bin);
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(spec.install_name()).or_default())
        };
        let _guard = lock.lock().await;
        // Another install may have finished while this one waited.
        if bin.exists() {
            return Ok(bin);
        }
        self.install(spec).await?;
        if bin.exists() {
            Ok(bin)
        } else {
            Err(InstallError::NoBin {
                package: spec.package.clone(),
                bin: spec.bin.clone(),
            })
        }
    }

    async fn install(&self, spec: &AgentSpec) -> Result<(), InstallError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| InstallError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let home = self.dir.join(".home");
        let cache = self.dir.join(".npm-cache");
        for dir in [&home, &cache] {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let temp = self.dir.join(format!(
            ".tmp-{}-{}-{:08x}",
            spec.install_name(),
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&temp).map_err(io(&temp))?;
        let package = format!("{}@{}", spec.package, spec.version);
        tracing::info!(%package, dir = %self.dir.display(), "installing an agent");
        let started = std::time::Instant::now();
        // Looked up in npm's own PATH, not the vm-agent's.
        let npm = find_in_path(&self.path, "npm").unwrap_or_else(|| PathBuf::from("npm"));
        let mut command = tokio::process::Command::new(npm);
        command
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &home)
            .env("npm_config_cache", &cache)
            .env("npm_config_update_notifier", "false")
            .args(["install", "--prefix"])
            .arg(&temp)
            .args(["--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"])
            .arg(&package)
            .current_dir(&temp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Registry, proxy and TLS trust settings of the node still apply.
        for (key, value) in std::env::vars_os() {
            let name = key.to_string_lossy().to_ascii_lowercase();
            if name.starts_with("npm_config_") && name != "npm_config_cache"
                || matches!(name.as_str(), "https_proxy" | "http_proxy" | "no_proxy")
            {
                command.env(key, value);
            }
        }
        command.envs(trust_env());
        let outcome = tokio::time::timeout(INSTALL_TIMEOUT, async {
            command
                .spawn()
                .map_err(InstallError::Spawn)?
                .wait_with_output()
                .await
                .map_err(InstallError::Spawn)
        })
        .await;
        let failed = |detail: String| InstallError::Failed {
            package: package.clone(),
            detail,
        };
        let result = match outcome {
            Err(_) => Err(InstallError::TimedOut {
                package: package.clone(),
            }),
            Ok(Err(err)) => Err(err),
            Ok(Ok(output)) if !output.status.success() => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
                Err(failed(format!(
                    "{}: {}",
                    output.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join("; ")
                )))
            }
            Ok(Ok(_)) if !bin_in(&temp, spec).exists() => Err(InstallError::NoBin {
                package: spec.package.clone(),
                bin: spec.bin.clone(),
            }),
            Ok(Ok(_)) => {
                let target = self.install_dir(spec);
                match std::fs::rename(&temp, &target) {
                    Ok(()) => Ok(()),
                    // Someone else finished first: theirs is as good.
                    Err(_) if bin_in(&target, spec).exists() => Ok(()),
                    Err(err) => Err(io(&target)(err)),
                }
            }
        };
        if temp.exists() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        match &result {
            Ok(()) => {
                tracing::info!(%package, secs = started.elapsed().as_secs_f32(), "agent installed");
            }
            Err(err) => tracing::warn!(%package, %err, "agent installation failed"),
        }
        result
    }
}

/// The node's TLS trust settings (an extra CA behind a proxy), which npm
/// and the agents (Node programs) need to reach their registries and APIs.
pub(crate) fn trust_env() -> Vec<(OsString, OsString)> {
    ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(|name| Some((OsString::from(name), std::env::var_os(name)?)))
        .collect()
}

fn bin_in(dir: &Path, spec: &AgentSpec) -> PathBuf {
    dir.join("node_modules/.bin").join(&spec.bin)
}

/// The first executable `name` in the `:`-separated `path`.
pub(crate) fn find_in_path(path: &OsString, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::acp::catalog::Catalog;

    /// A fake `npm` that records its arguments and environment, then
    /// creates the bin under `--prefix` (or fails when told to).
    fn fake_npm(dir: &Path) -> OsString {
        let bin = dir.join("fakebin");
        std::fs::create_dir_all(&bin).unwrap();
        let script = r#"#!/bin/sh
log="$(dirname "$0")/calls"
echo "args: $*" >> "$log"
echo "home: $HOME cache: $npm_config_cache" >> "$log"
[ -e "$(dirname "$0")/fail" ] && { echo "npm ERR! boom" >&2; exit 1; }
prefix="$3"
sleep 0.2
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\n' > "$prefix/node_modules/.bin/codex-acp"
chmod +x "$prefix/node_modules/.bin/codex-acp"
"#;
        let npm = bin.join("npm");
        std::fs::write(&npm, script).unwrap();
        std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).unwrap();
        format!("{}:{SYSTEM_PATH}", bin.display()).into()
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("fakebin/calls"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("args:"))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn installs_once_even_when_asked_concurrently() {
        let tmp = tempfile::tempdir().unwrap();
        let path = fake_npm(tmp.path());
        let agents = tmp.path().join("agents");
        let installer = Installer::new(agents.clone(), path);
        let catalog = Catalog::builtin().unwrap();
        let codex = catalog.get("openai-codex").unwrap();

        let (a, b) = tokio::join!(installer.ensure(codex), installer.ensure(codex));
        let bin = a.unwrap();
        assert_eq!(b.unwrap(), bin);
        assert_eq!(
            bin,
            agents.join("zed-industries+codex-acp@0.16.0/node_modules/.bin/codex-acp")
        );
        let got = calls(tmp.path());
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("install --prefix")
                && got[0].contains("--no-audit --no-fund --omit=dev")
                && got[0].ends_with("@zed-industries/codex-acp@0.16.0"),
            "{got:?}"
        );
        let log = std::fs::read_to_string(tmp.path().join("fakebin/calls")).unwrap();
        assert!(log.contains(&format!("home: {}", agents.join(".home").display())));
        assert!(log.contains(&format!("cache: {}", agents.join(".npm-cache").display())));

        // Installed: no npm at all.
        installer.ensure(codex).await.unwrap();
        assert_eq!(calls(tmp.path()).len(), 1);
        // No temporary directory left.
        let leftovers: Vec<_> = std::fs::read_dir(&agents)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn a_failed_install_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let path = fake_npm(tmp.path());
        std::fs::write(tmp.path().join("fakebin/fail"), "").unwrap();
        let agents = tmp.path().join("agents");
        let installer = Installer::new(agents.clone(), path);
        let catalog = Catalog::builtin().unwrap();
        let codex = catalog.get("openai-codex").unwrap();
        let err = installer.ensure(codex).await.unwrap_err();
        assert!(matches!(err, InstallError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("boom"), "{err}");
        let names: Vec<String> = std::fs::read_dir(&agents)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n == ".home" || n == ".npm-cache"),
            "{names:?}"
        );
    }
}
