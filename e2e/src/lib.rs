//! Helpers for the end-to-end tests.
//!
//! The tests talk to a platform that `cargo xtask test` started (wrangler dev
//! plus devcloud, on free ports, with fresh state) and described in
//! `SAM_E2E_*` environment variables. Run outside of it, they fail loudly
//! instead of passing vacuously.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

pub mod workspace_host;

/// The platform under test.
#[derive(Debug, Clone)]
pub struct Platform {
    pub port: u16,
    pub devcloud_url: String,
    pub devgithub_url: String,
    /// The LLM stand-in agents call.
    pub llmstub_url: String,
    pub hetzner_token: String,
    /// `(secret key, project id)` the local Scaleway stand-in accepts.
    pub scaleway: (String, String),
    pub state_dir: PathBuf,
}

impl Platform {
    /// Reads the platform description from the environment.
    pub fn from_env() -> Self {
        let get = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: end-to-end tests run against a platform started by `cargo xtask test`")
            })
        };
        Self {
            port: get("SAM_E2E_PORT").parse().expect("SAM_E2E_PORT is a port"),
            devcloud_url: get("SAM_E2E_DEVCLOUD_URL"),
            devgithub_url: get("SAM_E2E_DEVGITHUB_URL"),
            llmstub_url: get("SAM_E2E_LLMSTUB_URL"),
            hetzner_token: get("SAM_E2E_HETZNER_TOKEN"),
            scaleway: (
                get("SAM_E2E_SCALEWAY_SECRET_KEY"),
                get("SAM_E2E_SCALEWAY_PROJECT_ID"),
            ),
            state_dir: PathBuf::from(get("SAM_E2E_STATE_DIR")),
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://api.sam.localhost:{}{path}", self.port)
    }

    pub fn app(&self, path: &str) -> String {
        format!("http://app.sam.localhost:{}{path}", self.port)
    }

    /// The issuer the API signs tokens as.
    pub fn issuer(&self) -> String {
        format!("http://api.sam.localhost:{}", self.port)
    }

    /// An HTTP client for this platform; see [`client_for_port`].
    pub fn client(&self) -> reqwest::Client {
        client_for_port(self.port)
    }

    /// A client signed in (temporary developer sign-in) as `login`.
    pub async fn signed_in(&self, login: &str) -> Result<reqwest::Client> {
        let client = self.client();
        let resp = client
            .post(self.api("/api/auth/dev-login"))
            .json(&serde_json::json!({ "login": login }))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("dev login failed: {} {}", resp.status(), resp.text().await?);
        }
        Ok(client)
    }

    /// A client signed in as `login` that has added the Hetzner token the
    /// local cloud accepts (nodes are created with the user's own token).
    pub async fn signed_in_with_cloud(&self, login: &str) -> Result<reqwest::Client> {
        let client = self.signed_in(login).await?;
        add_cloud_credential(&client, &self.api(""), &self.hetzner_token).await?;
        Ok(client)
    }

    /// The platform's JWT signing key, for tests that act as a vm-agent.
    pub fn signing_key(&self) -> Result<sam_auth::SigningKey> {
        let vars = std::fs::read_to_string(self.state_dir.join(".dev.vars"))?;
        let seed = vars
            .lines()
            .find_map(|l| l.strip_prefix("JWT_SIGNING_KEY="))
            .context("no JWT_SIGNING_KEY")?
            .trim_matches('"');
        Ok(sam_auth::SigningKey::from_seed_base64(seed)?)
    }

    /// The Hetzner stand-in's view of a server (`None` once deleted).
    pub async fn devcloud_server(&self, id: &str) -> Result<Option<serde_json::Value>> {
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/servers/{id}", self.devcloud_url))
            .timeout(Duration::from_secs(10))
            .bearer_auth(&self.hetzner_token)
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: serde_json::Value = resp.error_for_status()?.json().await?;
        Ok(Some(body["server"].clone()))
    }
}

/// An HTTP client that reaches `api.sam.localhost`/`app.sam.localhost` on `port`
/// (glibc here does not resolve `*.localhost`) and keeps cookies, like a
/// browser would.
pub fn client_for_port(port: u16) -> reqwest::Client {
    client_with_jar(port, std::sync::Arc::new(reqwest::cookie::Jar::default()))
}

/// Like [`client_for_port`], keeping its cookies in `jar` (which the
/// caller can read, to hand a session to a browser).
pub fn client_with_jar(port: u16, jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Like a page of ours would, the client says where its requests come
    // from: cookie-authenticated state changes need a matching Origin.
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(origin) =
        reqwest::header::HeaderValue::from_str(&format!("http://api.sam.localhost:{port}"))
    {
        headers.insert(reqwest::header::ORIGIN, origin);
    }
    reqwest::Client::builder()
        .resolve("api.sam.localhost", addr)
        .resolve("app.sam.localhost", addr)
        .default_headers(headers)
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build http client")
}

/// Adds a Hetzner API token to the signed-in user's cloud credentials.
pub async fn add_cloud_credential(
    client: &reqwest::Client,
    api_base: &str,
    token: &str,
) -> Result<()> {
    let resp = client
        .put(format!("{api_base}/api/credentials/cloud/hetzner"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "adding the cloud credential failed: {} {}",
            resp.status(),
            resp.text().await?
        );
    }
    Ok(())
}

/// GETs `url` and decodes the JSON reply, panicking (failing the test) on any error.
pub async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> T {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url} → {status}: {e}: {text}"))
}

/// Creates a GitHub account in the local GitHub stand-in.
pub async fn create_github_user(p: &Platform, login: &str) -> Result<()> {
    let resp = reqwest::Client::new()
        .post(format!("{}/_devgithub/users", p.devgithub_url))
        .timeout(Duration::from_secs(10))
        .json(&serde_json::json!({
            "login": login,
            "name": format!("{login} Example"),
            "email": format!("{login}@example.test"),
        }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("creating GitHub user {login}: {}", resp.status());
    }
    Ok(())
}

/// Walks the "Sign in with GitHub" flow as a browser would, choosing
/// `login` on GitHub's consent page; returns where the app finally sends
/// the browser (`/` or `/pending`). The session cookie lands in `client`.
pub async fn github_sign_in(
    client: &reqwest::Client,
    app_base: &str,
    login: &str,
) -> Result<String> {
    let start = client.get(format!("{app_base}/auth/github")).send().await?;
    if start.status() != reqwest::StatusCode::FOUND
        && start.status() != reqwest::StatusCode::SEE_OTHER
    {
        bail!("sign-in did not redirect to GitHub: {}", start.status());
    }
    // `login=` is the stand-in's shortcut for clicking that account on its page.
    let authorize = format!("{}&login={login}", location(&start)?);
    let consent = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(authorize)
        .send()
        .await?;
    let callback = location(&consent)?;
    let done = client.get(callback).send().await?;
    if !done.status().is_redirection() {
        bail!("callback failed: {} {}", done.status(), done.text().await?);
    }
    location(&done)
}

/// Polls `check` every 100 ms until it yields `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while Instant::now() < deadline {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match last_error {
        Some(e) => Err(e.context(format!("timed out waiting for {what}"))),
        None => bail!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0)
}

/// A second `wrangler dev` of the same build with its own state and a
/// changed configuration (a binding removed, other `[vars]`), for tests of
/// how the Worker behaves when something is broken. It shares the
/// platform's Hetzner stand-in. Dropping it kills its whole process group.
pub struct ScratchWorker {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl ScratchWorker {
    pub fn start(
        p: &Platform,
        name: &str,
        remove_sections: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Self> {
        Self::launch(p, name, remove_sections, vars, false)
    }

    /// Like [`ScratchWorker::start`], with the vm-agent in its R2, so its
    /// nodes can boot and register.
    pub fn start_with_vm_agent(p: &Platform, name: &str, vars: &[(&str, &str)]) -> Result<Self> {
        Self::launch(p, name, &[], vars, true)
    }

    fn launch(
        p: &Platform,
        name: &str,
        remove_sections: &[&str],
        vars: &[(&str, &str)],
        with_vm_agent: bool,
    ) -> Result<Self> {
        let dir = p.state_dir.join(format!("scratch-{name}"));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let mut config: toml::Table =
            std::fs::read_to_string(p.state_dir.join("wrangler.toml"))?.parse()?;
        for section in remove_sections {
            config.remove(*section);
        }
        if let Some(table) = config.get_mut("vars").and_then(toml::Value::as_table_mut) {
            table.insert("PUBLIC_PORT".into(), port.to_string().into());
            for (k, v) in vars {
                table.insert((*k).into(), (*v).into());
            }
        }
        let config_path = dir.join("wrangler.toml");
        std::fs::write(&config_path, toml::to_string(&config)?)?;
        std::fs::copy(p.state_dir.join(".dev.vars"), dir.join(".dev.vars"))?;
        let migrated = Self::wrangler(&dir, &["d1", "migrations", "apply", "DB", "--local"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !migrated.success() && !remove_sections.contains(&"d1_databases") {
            bail!("migrating the scratch worker's D1 failed");
        }
        // Its own R2 needs the vm-agent its nodes download.
        if with_vm_agent {
            let agent = std::env::var("SAM_E2E_VM_AGENT_BINARY")
                .context("SAM_E2E_VM_AGENT_BINARY names the vm-agent build")?;
            let put = Self::wrangler(
                &dir,
                &[
                    "r2",
                    "object",
                    "put",
                    "sam/vm-agent/x86_64/vm-agent",
                    "--local",
                    "--file",
                    &agent,
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
            if !put.success() {
                bail!("putting the vm-agent into the scratch worker's R2 failed");
            }
        }
        let child = Self::spawn(&dir, port)?;
        Ok(Self { port, child, dir })
    }

    /// `wrangler <args>` against this scratch worker's config and state.
    fn wrangler(dir: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(std::env::var("SAM_E2E_NODE").unwrap_or_default());
        cmd.arg(std::env::var("SAM_E2E_WRANGLER_JS").unwrap_or_default())
            .args(args)
            .arg("--config")
            .arg(dir.join("wrangler.toml"))
            .arg("--persist-to")
            .arg(dir.join("state"))
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Result<Child> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("wrangler.log"))?;
        Self::wrangler(dir, &["dev"])
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            // `/__scheduled` runs the cron sweep on demand.
            .arg("--test-scheduled")
            .args(["--inspector-port", &free_port()?.to_string()])
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "warn",
            ])
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("start the scratch worker (SAM_E2E_NODE / SAM_E2E_WRANGLER_JS)")
    }

    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // The whole group: wrangler leaves workerd running otherwise.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        // Never wait on a child the group kill did not reach.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The value of a secret as this worker was last started with.
    pub fn secret(&self, name: &str) -> Option<String> {
        let vars = std::fs::read_to_string(self.dir.join(".dev.vars")).ok()?;
        vars.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix('=')?;
            Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
        })
    }

    /// Stops the worker and starts it again on the same port and state
    /// with `secrets` replaced, as deploying new secrets does; waits until
    /// it answers.
    pub async fn restart_with_secrets(&mut self, secrets: &[(&str, &str)]) -> Result<()> {
        use std::fmt::Write as _;
        self.kill();
        let path = self.dir.join(".dev.vars");
        let mut text = String::new();
        for line in std::fs::read_to_string(&path)?.lines() {
            let replaced = secrets
                .iter()
                .any(|(name, _)| line.starts_with(&format!("{name}=")));
            if !replaced {
                let _ = writeln!(text, "{line}");
            }
        }
        for (name, value) in secrets {
            let _ = writeln!(text, "{name}=\"{value}\"");
        }
        std::fs::write(&path, text)?;
        self.child = Self::spawn(&self.dir, self.port)?;
        self.signed_in_anonymous_ready().await
    }

    /// Every SQLite file of this worker's local D1 state.
    pub fn d1_files(&self) -> Vec<PathBuf> {
        sqlite_files(&self.dir.join("state/v3/d1"))
    }

    pub fn app(&self, path: &str) -> String {
        format!("http://app.sam.localhost:{}{path}", self.port)
    }

    pub fn client(&self) -> reqwest::Client {
        client_for_port(self.port)
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://api.sam.localhost:{}{path}", self.port)
    }

    /// Waits until the worker answers at all.
    pub async fn signed_in_anonymous_ready(&self) -> Result<()> {
        let client = self.client();
        let url = self.api("/health");
        eventually(
            "the scratch worker to answer",
            Duration::from_secs(60),
            || {
                let client = client.clone();
                let url = url.clone();
                async move { Ok(client.get(&url).send().await.ok().map(|_| ())) }
            },
        )
        .await
    }

    /// A client signed in as `login`, once the worker answers.
    pub async fn signed_in(&self, login: &str) -> Result<reqwest::Client> {
        let client = self.client();
        let url = self.api("/api/auth/dev-login");
        eventually(
            "the scratch worker to sign us in",
            Duration::from_secs(60),
            || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let Ok(resp) = client
                        .post(&url)
                        .json(&serde_json::json!({ "login": login }))
                        .send()
                        .await
                    else {
                        return Ok(None);
                    };
                    Ok(resp.status().is_success().then_some(()))
                }
            },
        )
        .await?;
        Ok(client)
    }

    /// Signed in as `login`, with the local cloud's Hetzner token added.
    pub async fn signed_in_with_cloud(&self, p: &Platform, login: &str) -> Result<reqwest::Client> {
        let client = self.signed_in(login).await?;
        add_cloud_credential(&client, &self.api(""), &p.hetzner_token).await?;
        Ok(client)
    }
}

impl Drop for ScratchWorker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every SQLite file (and WAL) under `dir`.
pub fn sqlite_files(dir: &std::path::Path) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "sqlite" || e == "sqlite-wal")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// Runs a one-column text query against every local SQLite database in
/// `files` that has the tables it names (read-only, beside the running
/// platform); returns the values of all of them.
pub fn query_text_column(files: &[PathBuf], sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "sqlite"))
    {
        let Ok(db) =
            rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            continue;
        };
        let Ok(mut stmt) = db.prepare(sql) else {
            continue;
        };
        if let Ok(rows) = stmt.query_map([], |row| row.get::<_, String>(0)) {
            out.extend(rows.flatten());
        }
    }
    out
}

/// Runs a Worker's `scheduled` handler (the cron sweep) as its trigger
/// would, through `wrangler dev --test-scheduled`; returns when it is done.
pub async fn run_sweep(client: &reqwest::Client, port: u16) -> Result<()> {
    let resp = client
        .get(format!(
            "http://api.sam.localhost:{port}/__scheduled?cron=*/5+*+*+*+*"
        ))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("the sweep answered {}", resp.status());
    }
    Ok(())
}

/// Where a redirect points.
pub fn location(resp: &reqwest::Response) -> Result<String> {
    Ok(resp
        .headers()
        .get(reqwest::header::LOCATION)
        .context("expected a redirect")?
        .to_str()?
        .to_owned())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A client signed in through the GitHub stand-in as a new GitHub user `login`.
pub async fn github_user_signed_in(p: &Platform, login: &str) -> Result<reqwest::Client> {
    create_github_user(p, login).await?;
    let client = p.client();
    let landed = github_sign_in(&client, &p.app(""), login).await?;
    if landed != "/" {
        bail!("{login} landed on {landed}, not the dashboard");
    }
    Ok(client)
}

/// Like [`github_user_signed_in`], also returning the app's session
/// cookie (`name=value`), for a browser to sign in with.
pub async fn github_user_session(p: &Platform, login: &str) -> Result<(reqwest::Client, String)> {
    use reqwest::cookie::CookieStore as _;
    create_github_user(p, login).await?;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = client_with_jar(p.port, std::sync::Arc::clone(&jar));
    let landed = github_sign_in(&client, &p.app(""), login).await?;
    if landed != "/" {
        bail!("{login} landed on {landed}, not the dashboard");
    }
    let url = p.app("/").parse()?;
    let cookies = jar.cookies(&url).context("no cookies for the app")?;
    let session = cookies
        .to_str()?
        .split("; ")
        .find(|c| c.starts_with("sam_session="))
        .context("no session cookie")?
        .to_owned();
    Ok((client, session))
}

/// A GitHub user signed in as `login` with the local cloud's token, a new
/// repository `repo` (branch `main`), the platform's GitHub App installed
/// and a project for that repository. Returns the user's client, its
/// session cookie (for a browser) and the project's JSON.
pub async fn github_project(
    p: &Platform,
    login: &str,
    repo: &str,
) -> Result<(reqwest::Client, String, serde_json::Value)> {
    let (client, session) = github_user_session(p, login).await?;
    add_cloud_credential(&client, &p.app(""), &p.hetzner_token).await?;
    let repo = create_github_repo(p, login, repo, &["main"]).await?;
    let installation = install_github_app(p, &client, login).await?;
    let resp = client
        .post(p.app("/api/projects"))
        .json(&serde_json::json!({ "repository": format!("{installation}:{}", repo["id"]) }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "creating the project: {} {}",
            resp.status(),
            resp.text().await?
        );
    }
    Ok((client, session, resp.json().await?))
}

/// Waits (60 s at most) until the node at `url` (`…/api/nodes/{id}`) has
/// `status`; returns it.
pub async fn wait_for_node(
    client: &reqwest::Client,
    url: &str,
    status: &str,
) -> Result<sam_wire::NodeView> {
    eventually(
        &format!("the node to be {status}"),
        Duration::from_secs(60),
        || async {
            let n: sam_wire::NodeView = client.get(url).send().await?.json().await?;
            Ok((n.status == status).then_some(n))
        },
    )
    .await
}

/// Creates a repository in the GitHub stand-in; returns its JSON (with `id`).
pub async fn create_github_repo(
    p: &Platform,
    owner: &str,
    name: &str,
    branches: &[&str],
) -> Result<serde_json::Value> {
    let resp = reqwest::Client::new()
        .post(format!("{}/_devgithub/repos", p.devgithub_url))
        .timeout(Duration::from_secs(10))
        .json(&serde_json::json!({
            "owner": owner,
            "name": name,
            "default_branch": branches.first().copied().unwrap_or("main"),
            "branches": branches,
        }))
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await?;
    if !status.is_success() {
        bail!("creating repository {owner}/{name}: {status} {body}");
    }
    Ok(body)
}

/// Installs the platform's GitHub App on `login`'s account (all
/// repositories) the way a browser does: the app sends the user to
/// GitHub's install page, GitHub redirects back to the setup URL, the app
/// links the installation. Returns the installation id.
pub async fn install_github_app(
    p: &Platform,
    client: &reqwest::Client,
    login: &str,
) -> Result<String> {
    let start = client.get(p.app("/github/install")).send().await?;
    if !start.status().is_redirection() {
        bail!("install did not redirect to GitHub: {}", start.status());
    }
    let install_page = url::Url::parse(&location(&start)?)?;
    let state = install_page
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .context("the install link carries no state")?;
    // Submitting GitHub's install form, as the user would.
    let mut form = install_page.clone();
    form.set_query(None);
    let submitted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(form)
        .form(&[
            ("login", login),
            ("account", login),
            ("repository_selection", "all"),
            ("state", state.as_str()),
        ])
        .send()
        .await?;
    if !submitted.status().is_redirection() {
        bail!(
            "GitHub's install form: {} {}",
            submitted.status(),
            submitted.text().await?
        );
    }
    let setup = location(&submitted)?;
    let installation_id = url::Url::parse(&setup)?
        .query_pairs()
        .find(|(k, _)| k == "installation_id")
        .map(|(_, v)| v.into_owned())
        .context("GitHub's redirect carries no installation_id")?;
    let done = client.get(setup).send().await?;
    if !done.status().is_redirection() {
        bail!("setup callback: {} {}", done.status(), done.text().await?);
    }
    Ok(installation_id)
}

/// A fresh developer sign-in as `login`, returned as the `Cookie` header
/// value (for clients that are not reqwest, like a WebSocket).
pub async fn session_cookie(p: &Platform, login: &str) -> Result<String> {
    let resp = p
        .client()
        .post(p.api("/api/auth/dev-login"))
        .json(&serde_json::json!({ "login": login }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("dev login failed: {}", resp.status());
    }
    let pairs: Vec<String> = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect();
    if pairs.is_empty() {
        bail!("dev login set no cookie");
    }
    Ok(pairs.join("; "))
}

/// A node's log stream (`/api/nodes/{id}/events/ws`), signed in by `cookie`.
pub type NodeEventSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a node's log WebSocket from SAM's own app page; a refused upgrade
/// is an error naming the HTTP status.
pub async fn node_event_socket(
    p: &Platform,
    cookie: &str,
    node_id: &str,
) -> Result<NodeEventSocket> {
    let origin = format!("http://app.sam.localhost:{}", p.port);
    node_event_socket_from(p, cookie, node_id, &origin).await
}

/// Like [`node_event_socket`], from a page at `origin`.
pub async fn node_event_socket_from(
    p: &Platform,
    cookie: &str,
    node_id: &str,
    origin: &str,
) -> Result<NodeEventSocket> {
    let url = format!(
        "ws://api.sam.localhost:{}/api/nodes/{node_id}/events/ws",
        p.port
    );
    workspace_host::upgrade(p.port, &url, &[("cookie", cookie), ("origin", origin)]).await
}

/// The phases of the next `count` log lines on the socket (20 s at most).
pub async fn next_phases(socket: &mut NodeEventSocket, count: usize) -> Result<Vec<String>> {
    use futures::StreamExt as _;
    let mut phases = Vec::with_capacity(count);
    while phases.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .with_context(|| format!("waiting for log line {} of {count}", phases.len() + 1))?
            .context("the socket closed")??;
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let line: serde_json::Value = serde_json::from_str(&text)?;
            phases.push(
                line["phase"]
                    .as_str()
                    .context("a log line without a phase")?
                    .to_owned(),
            );
        }
    }
    Ok(phases)
}

/// The first complete Server-Sent Event of a streaming response.
pub async fn first_sse_event(mut resp: reqwest::Response, timeout: Duration) -> Result<String> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .context("no event before the timeout")??
            .context("the stream ended")?;
        text.push_str(&String::from_utf8_lossy(&chunk));
        // Events end with a blank line; comments (keep-alives) start with ':'.
        while let Some(end) = text.find("\n\n") {
            let event = text[..end].to_owned();
            text.drain(..end + 2);
            if event.lines().any(|l| l.starts_with("data:")) {
                return Ok(event);
            }
        }
    }
}
