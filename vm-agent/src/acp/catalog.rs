//! The agent catalog: which coding agents exist, where they come from and
//! how each is started. Data, not code: `vm-agent/agents.toml` is embedded
//! at build time and parsed once ([`Catalog::builtin`]); a broken catalog is
//! a test failure, never a runtime surprise.
//!
//! Per agent (`[agents.<name>]`, the control plane's name):
//! - `package`, `version`: the npm package, pinned;
//! - `bin`: the executable it installs (`node_modules/.bin/<bin>`);
//! - `args`: its arguments (may use `{home}` and `{model}`, never
//!   `{api_key}`: argv is world-readable in `/proc`);
//! - `env`: variables (`{placeholder}`s allowed); an entry using a
//!   placeholder without a value is left out, so production (no base URL)
//!   simply does not point the agent anywhere;
//! - `files`: written into the session's private HOME before start
//!   (`path` relative to it, `content`, optional `when_base_url`);
//! - `client_fs`: whether to advertise the client's `fs/*` methods;
//! - `authenticate`: an auth method id to call after `initialize`;
//! - `default_model`: `{model}` when the session names none.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The embedded catalog.
const BUILTIN: &str = include_str!("../../agents.toml");

/// Why a catalog is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the agent catalog does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("agent {agent}: {reason}")]
    Invalid { agent: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    agents: BTreeMap<String, AgentSpec>,
}

/// One agent of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub package: String,
    pub version: String,
    pub bin: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub client_fs: bool,
    #[serde(default)]
    pub authenticate: Option<String>,
    #[serde(default)]
    pub default_model: Option<String>,
}

/// A file written into the session's HOME.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub content: String,
    /// `true`: only with a base URL; `false`: only without; absent: always.
    #[serde(default)]
    pub when_base_url: Option<bool>,
}

/// The agents the platform supports.
#[derive(Debug, Clone)]
pub struct Catalog {
    agents: BTreeMap<String, AgentSpec>,
}

/// The values placeholders stand for in one session.
#[derive(Clone)]
pub struct Values<'a> {
    pub api_key: &'a str,
    pub base_url: Option<&'a str>,
    pub home: &'a Path,
    pub model: Option<&'a str>,
}

/// How to start one agent for one session.
#[derive(Clone, PartialEq, Eq)]
pub struct Launch {
    pub args: Vec<String>,
    /// Only these (plus `PATH`, `LANG` and `HOME`, set by the session).
    pub env: Vec<(String, String)>,
    /// Relative to HOME, with their contents.
    pub files: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for Launch {
    // Env values and files may hold the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("args", &self.args)
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .field(
                "files",
                &self.files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Catalog {
    /// The catalog built into this agent.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::parse(BUILTIN)
    }

    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text)?;
        for (name, spec) in &file.agents {
            check(name, spec).map_err(|reason| CatalogError::Invalid {
                agent: name.clone(),
                reason,
            })?;
        }
        Ok(Self {
            agents: file.agents,
        })
    }

    pub fn get(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }
}

fn check(name: &str, spec: &AgentSpec) -> Result<(), String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !plain(name) {
        return Err("the name must be plain ASCII".to_owned());
    }
    let package = spec.package.strip_prefix('@').unwrap_or(&spec.package);
    if !package.split('/').all(plain) || package.split('/').count() > 2 {
        return Err(format!("package {:?} is not an npm name", spec.package));
    }
    if !plain(&spec.version) || !spec.version.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("version must be an exact version".to_owned());
    }
    if !plain(&spec.bin) {
        return Err("bin must be a plain file name".to_owned());
    }
    if spec.args.iter().any(|a| a.contains("{api_key}")) {
        return Err("the API key must never be an argument".to_owned());
    }
    for file in &spec.files {
        let path = Path::new(&file.path);
        if file.path.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("file path {:?} must be relative", file.path));
        }
    }
    for key in spec.env.keys() {
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || matches!(key.as_str(), "PATH" | "HOME" | "LANG")
        {
            return Err(format!("env name {key:?} is not allowed"));
        }
    }
    Ok(())
}

impl AgentSpec {
    /// The directory name of this agent's installation:
    /// `@scope/name` → `scope+name@version`.
    pub fn install_name(&self) -> String {
        let package = self.package.strip_prefix('@').unwrap_or(&self.package);
        format!("{}@{}", package.replace('/', "+"), self.version)
    }

    /// The agent's arguments, environment and files for one session.
    pub fn render(&self, values: &Values<'_>) -> Launch {
        let model = values.model.or(self.default_model.as_deref());
        let home = values.home.to_string_lossy();
        let fill = |template: &str| -> Option<String> {
            let mut out = template.to_owned();
            for (name, value) in [
                ("{api_key}", Some(values.api_key)),
                ("{base_url}", values.base_url),
                ("{home}", Some(home.as_ref())),
                ("{model}", model),
            ] {
                if out.contains(name) {
                    out = out.replace(name, value?);
                }
            }
            Some(out)
        };
        let args = self.args.iter().filter_map(|a| fill(a)).collect();
        let env = self
            .env
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), fill(v)?)))
            .collect();
        let files = self
            .files
            .iter()
            .filter(|f| {
                f.when_base_url
                    .is_none_or(|w| w == values.base_url.is_some())
            })
            .filter_map(|f| Some((PathBuf::from(&f.path), fill(&f.content)?)))
            .collect();
        Launch { args, env, files }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(base_url: Option<&'a str>, model: Option<&'a str>) -> Values<'a> {
        Values {
            api_key: "sk-test-secret-123",
            base_url,
            home: Path::new("/var/lib/sam/workspaces/W/sessions/S/home"),
            model,
        }
    }

    #[test]
    fn the_builtin_catalog_has_the_four_agents_pinned() {
        let catalog = Catalog::builtin().unwrap();
        let names: Vec<&str> = catalog.names().collect();
        assert_eq!(
            names,
            ["claude-code", "google-gemini", "openai-codex", "opencode"]
        );
        let codex = catalog.get("openai-codex").unwrap();
        assert_eq!(codex.package, "@zed-industries/codex-acp");
        assert_eq!(codex.version, "0.16.0");
        assert_eq!(codex.install_name(), "zed-industries+codex-acp@0.16.0");
        assert_eq!(
            catalog.get("opencode").unwrap().install_name(),
            "opencode-ai@1.18.33"
        );
        let gemini = catalog.get("google-gemini").unwrap();
        assert!(!gemini.client_fs);
        assert_eq!(gemini.authenticate.as_deref(), Some("gemini-api-key"));
        assert_eq!(gemini.args, ["--acp"]);
        assert_eq!(catalog.get("opencode").unwrap().args, ["acp", "--pure"]);
    }

    #[test]
    fn the_key_goes_to_env_and_files_only() {
        let catalog = Catalog::builtin().unwrap();
        for name in catalog.names() {
            let launch = catalog
                .get(name)
                .unwrap()
                .render(&values(Some("http://127.0.0.1:9"), None));
            assert!(
                launch
                    .args
                    .iter()
                    .all(|a| !a.contains("sk-test-secret-123")),
                "{name}"
            );
            assert!(
                launch
                    .env
                    .iter()
                    .any(|(_, v)| v.contains("sk-test-secret-123")),
                "{name} gets no key"
            );
            assert!(!format!("{launch:?}").contains("sk-test-secret"));
        }
        let bad = r#"[agents.x]
package = "x"
version = "1.0.0"
bin = "x"
args = ["--key", "{api_key}"]
"#;
        assert!(matches!(
            Catalog::parse(bad),
            Err(CatalogError::Invalid { .. })
        ));
    }

    #[test]
    fn codex_gets_a_provider_only_with_a_base_url() {
        let catalog = Catalog::builtin().unwrap();
        let codex = catalog.get("openai-codex").unwrap();
        let local = codex.render(&values(Some("http://127.0.0.1:4000"), None));
        assert_eq!(local.files.len(), 1);
        let (path, config) = &local.files[0];
        assert_eq!(path, Path::new(".codex/config.toml"));
        let parsed: toml::Table = toml::from_str(config).unwrap();
        assert_eq!(parsed["model"].as_str(), Some("gpt-5.3-codex"));
        assert_eq!(parsed["sandbox_mode"].as_str(), Some("danger-full-access"));
        let provider = &parsed["model_providers"]["sam"];
        assert_eq!(
            provider["base_url"].as_str(),
            Some("http://127.0.0.1:4000/v1")
        );
        assert_eq!(provider["wire_api"].as_str(), Some("responses"));
        assert!(local.env.contains(&(
            "CODEX_HOME".to_owned(),
            "/var/lib/sam/workspaces/W/sessions/S/home/.codex".to_owned()
        )));

        let production = codex.render(&values(None, Some("gpt-5.5")));
        let (_, config) = &production.files[0];
        let parsed: toml::Table = toml::from_str(config).unwrap();
        assert_eq!(parsed["model"].as_str(), Some("gpt-5.5"));
        assert!(parsed.get("model_providers").is_none());
    }

    #[test]
    fn entries_without_a_value_are_left_out() {
        let catalog = Catalog::builtin().unwrap();
        let claude = catalog.get("claude-code").unwrap();
        let production = claude.render(&values(None, None));
        let names: Vec<&str> = production.env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(!names.contains(&"ANTHROPIC_BASE_URL"));
        assert!(!names.contains(&"ANTHROPIC_MODEL"));
        assert!(names.contains(&"ANTHROPIC_API_KEY"));
        assert!(names.contains(&"DISABLE_TELEMETRY"));
        let local = claude.render(&values(Some("http://127.0.0.1:5"), Some("claude-x")));
        assert!(local.env.contains(&(
            "ANTHROPIC_BASE_URL".to_owned(),
            "http://127.0.0.1:5".to_owned()
        )));
        assert!(
            local
                .env
                .contains(&("ANTHROPIC_MODEL".to_owned(), "claude-x".to_owned()))
        );

        // opencode's JSON config is valid once rendered.
        let opencode = catalog.get("opencode").unwrap();
        let local = opencode.render(&values(Some("http://127.0.0.1:5"), None));
        let (_, config) = local
            .env
            .iter()
            .find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(json["model"], "sam/gpt-5.3-codex");
        // Gemini's settings are JSON too.
        let gemini = catalog
            .get("google-gemini")
            .unwrap()
            .render(&values(None, None));
        let (path, settings) = &gemini.files[0];
        assert_eq!(path, Path::new(".gemini/settings.json"));
        serde_json::from_str::<serde_json::Value>(settings).unwrap();
    }

    #[test]
    fn unsafe_entries_are_refused() {
        for bad in [
            "[agents.x]\npackage = \"x\"\nversion = \"latest\"\nbin = \"x\"\n",
            "[agents.x]\npackage = \"x\"\nversion = \"1.0.0\"\nbin = \"../x\"\n",
            "[agents.x]\npackage = \"x\"\nversion = \"1.0.0\"\nbin = \"x\"\n[[agents.x.files]]\npath = \"../etc/passwd\"\ncontent = \"\"\n",
            "[agents.x]\npackage = \"x\"\nversion = \"1.0.0\"\nbin = \"x\"\n[agents.x.env]\nPATH = \"/tmp\"\n",
            "[agents.x]\npackage = \"x\"\nversion = \"1.0.0\"\nbin = \"x\"\ntypo = 1\n",
        ] {
            assert!(Catalog::parse(bad).is_err(), "{bad}");
        }
    }
}
