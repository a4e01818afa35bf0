//! `secrets_never_leak`: after every other end-to-end flow has run, no
//! secret the platform holds appears in any log or in any API response.
//!
//! The secrets are collected, not listed by hand: every value in the
//! platform's secret configuration (`.dev.vars`), and every credential
//! stored in D1, opened with the vault's own key ring. The haystacks are
//! every log file of the Worker, the stand-ins and the VMs, and every
//! response body the recording proxy in front of the Worker saw.
//! `cargo xtask test` runs this test alone, after the others.

use std::path::{Path, PathBuf};

use sam_control::agent_credentials::agent_credential_aad;
use sam_control::credentials::{ScalewayCredential, cloud_credential_aad};
use sam_e2e::{Platform, query_text_column, sqlite_files};
use sam_vault::CredentialKeys;

/// `.dev.vars` entries that are configuration, not secrets.
const NOT_SECRET: &[&str] = &["SCALEWAY_PROJECT_ID"];

/// Shorter values are not distinctive enough to search for.
const MIN_SECRET_LEN: usize = 12;

/// Every secret value in `.dev.vars`: whole values, each key of a key
/// ring, the secrets inside JSON values, each line of a PEM body.
fn configured_secrets(dev_vars: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in dev_vars.lines() {
        let Some((name, raw)) = line.split_once('=') else {
            continue;
        };
        // Comments, and identifiers that live beside secrets without being
        // one (a Scaleway project id is shown with its masked key).
        if name.starts_with('#') || NOT_SECRET.contains(&name) {
            continue;
        }
        let value = raw.trim().trim_matches(|c| c == '"' || c == '\'');
        let mut add = |what: &str, v: &str| {
            if v.len() >= MIN_SECRET_LEN {
                out.push((format!("{name} {what}"), v.to_owned()));
            }
        };
        if value.contains("BEGIN") {
            // A PEM key: its base64 lines are what would leak.
            for (i, part) in value.split("\\n").enumerate() {
                if !part.contains("-----") {
                    add(&format!("line {i}"), part);
                }
            }
        } else if value.starts_with('{') {
            let json: serde_json::Value = serde_json::from_str(value).unwrap();
            for (agent, entry) in json.as_object().unwrap() {
                add(agent, entry["secret"].as_str().unwrap());
            }
        } else if value.contains(':') && value.contains(',') || name.ends_with("_KEYS") {
            for entry in value.split(',') {
                let (kid, key) = entry.split_once(':').unwrap();
                add(kid, key);
            }
        } else {
            add("value", value);
        }
    }
    out
}

/// Every credential stored in D1, opened with the credential key ring.
fn stored_secrets(p: &Platform, keys: &CredentialKeys) -> Vec<(String, String)> {
    let files = sqlite_files(&p.state_dir.join("wrangler-state/v3/d1"));
    let mut out = Vec::new();
    for row in query_text_column(
        &files,
        "SELECT user_id || '|' || provider || '|' || secret_envelope FROM cloud_credentials",
    ) {
        let [user, provider, envelope] = row.splitn(3, '|').collect::<Vec<_>>()[..] else {
            panic!("{row}");
        };
        let opened =
            sam_vault::decrypt(keys, envelope, &cloud_credential_aad(user, provider)).unwrap();
        let secret = if provider == "scaleway" {
            ScalewayCredential::from_opened(&opened).unwrap().secret_key
        } else {
            opened.expose_str().unwrap().to_owned()
        };
        out.push((format!("{provider} credential of {user}"), secret));
    }
    for row in query_text_column(
        &files,
        "SELECT user_id || '|' || COALESCE(project_id, '') || '|' || agent || '|' || kind \
         || '|' || secret_envelope FROM agent_credentials",
    ) {
        let [user, project, agent, kind, envelope] = row.splitn(5, '|').collect::<Vec<_>>()[..]
        else {
            panic!("{row}");
        };
        let project = Some(project).filter(|p| !p.is_empty());
        let aad = agent_credential_aad(user, project, agent, kind);
        let opened = sam_vault::decrypt(keys, envelope, &aad).unwrap();
        out.push((
            format!("{agent} key of {user} (project {project:?})"),
            opened.expose_str().unwrap().to_owned(),
        ));
    }
    out
}

/// Log files: the platform's, and each VM's console.
fn log_files(state_dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("wrangler-state") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "log") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(state_dir, &mut out);
    out
}

#[tokio::test]
async fn secrets_never_leak() {
    let p = Platform::from_env();
    let dev_vars = std::fs::read_to_string(p.state_dir.join(".dev.vars")).unwrap();
    let mut secrets = configured_secrets(&dev_vars);
    let ring = secrets
        .iter()
        .filter(|(name, _)| name.starts_with("CREDENTIAL_KEYS"))
        .count();
    let spec = dev_vars
        .lines()
        .find_map(|l| l.strip_prefix("CREDENTIAL_KEYS="))
        .unwrap()
        .trim_matches('"');
    let keys = CredentialKeys::parse(spec).unwrap();
    let stored = stored_secrets(&p, &keys);
    // The other flows leave credentials behind (a Hetzner token, project
    // and user agent keys); without them this test would prove little.
    assert!(
        stored.len() >= 2,
        "expected stored credentials from the other flows, found {}",
        stored.len()
    );
    secrets.extend(stored);
    assert!(
        ring >= 1 && secrets.len() >= 10,
        "{} secrets",
        secrets.len()
    );

    let mut haystacks: Vec<(String, String)> = log_files(&p.state_dir)
        .into_iter()
        .map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            (f.display().to_string(), text)
        })
        .collect();
    let record = std::env::var("SAM_E2E_RECORD").expect("SAM_E2E_RECORD names the response record");
    let mut responses = 0;
    for (i, line) in std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .enumerate()
    {
        let exchange: serde_json::Value = serde_json::from_str(line).unwrap();
        responses += 1;
        haystacks.push((
            format!(
                "response {i}: {} {} → {}",
                exchange["method"], exchange["path"], exchange["status"]
            ),
            exchange["body"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    assert!(
        responses >= 200,
        "only {responses} recorded responses: did the flows run through the recorder?"
    );
    let wrangler_log = haystacks
        .iter()
        .find(|(name, _)| name.ends_with("wrangler.log"))
        .map_or(0, |(_, text)| text.len());
    assert!(wrangler_log > 0, "the Worker's log is empty");

    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for (where_, text) in &haystacks {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{what} in {where_}"));
            }
        }
    }
    println!(
        "searched {} secrets in {} logs and {responses} responses",
        secrets.len(),
        haystacks.len() - responses
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
