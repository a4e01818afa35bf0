//! Fault injection: rules that make the provider APIs answer 429 or 5xx,
//! make first boots fail or drag, plus the counters `GET /_devcloud/stats`
//! reports.
//!
//! Rules come from the CLI (`--fault`, `--boot-fault`) or the admin API and
//! live only in memory. A rule fires on a matching request (or first boot)
//! for its next `count` matches, each with `probability`; a rule whose count
//! is used up is removed. Every rule draws from its own seeded generator
//! (`seed`, or `--fault-seed` mixed with the rule id), so a run is
//! reproducible as long as requests arrive in the same order.

mod rng;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use rng::Rng;

/// Which provider API a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiSelector {
    /// Both APIs.
    #[default]
    Any,
    /// `/v1/...`.
    Hetzner,
    /// `/instance/v1/...`.
    Scaleway,
}

/// The API a request or server belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Hetzner,
    Scaleway,
}

impl ApiSelector {
    fn admits(self, api: Api) -> bool {
        match self {
            ApiSelector::Any => true,
            ApiSelector::Hetzner => api == Api::Hetzner,
            ApiSelector::Scaleway => api == Api::Scaleway,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiFaultKind {
    /// 429 with `Retry-After` and the provider's rate-limit error body.
    RateLimit,
    /// A 5xx (`status`, default 500) with the provider's error body.
    ServerError,
}

/// An API fault rule, as `POST /_devcloud/faults` and `--fault` take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFaultSpec {
    #[serde(default)]
    pub api: ApiSelector,
    /// Only requests with this method (any case), e.g. `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// Only paths starting with these segments (`*` matches any one
    /// segment): `/v1/servers` matches `/v1/servers` and `/v1/servers/7`,
    /// not `/v1/servers_x`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only exactly this path (`*` matches any one segment), e.g.
    /// `/instance/v1/zones/*/servers`.
    #[serde(default)]
    pub path: Option<String>,
    pub kind: ApiFaultKind,
    /// `server_error` only: 500..=599, default 500.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` in seconds; `rate_limit` defaults to 1, a
    /// `server_error` sends it only when set.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Fire on at most this many requests, then expire (default: no limit).
    #[serde(default)]
    pub count: Option<u64>,
    /// Chance of firing on each matching request (default 1).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seeds this rule's generator (default: `--fault-seed` and the rule id).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Let the request take effect, then answer with the fault anyway.
    #[serde(default)]
    pub after_effect: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootFaultKind {
    /// The user-data never runs: the server reaches `running` with no agent.
    Fail,
    /// The boot takes `delay_ms` longer.
    Slow,
}

/// A boot fault rule, as `POST /_devcloud/boot-faults` and `--boot-fault`
/// take it. It applies to a server's first boot (the one that runs
/// user-data), decided once per server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootFaultSpec {
    #[serde(default)]
    pub api: ApiSelector,
    pub kind: BootFaultKind,
    /// `slow` only: extra boot time in milliseconds (required).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Fault settings a devcloud starts with.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Seeds the rules' generators; `None` picks one from the clock (logged
    /// and reported by `/_devcloud/stats`).
    pub seed: Option<u64>,
    pub api: Vec<ApiFaultSpec>,
    pub boot: Vec<BootFaultSpec>,
}

fn check_gate(
    count: Option<u64>,
    probability: Option<f64>,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    if count == Some(0) {
        problems.push("count must be at least 1".into());
    }
    if let Some(p) = probability
        && !(0.0..=1.0).contains(&p)
    {
        problems.push("probability must be between 0 and 1".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn check_path(name: &str, value: Option<&str>, problems: &mut Vec<String>) {
    if let Some(p) = value
        && !p.starts_with('/')
    {
        problems.push(format!("{name} must start with '/'"));
    }
}

impl ApiFaultSpec {
    /// Checks the rule and fills in defaults (`status`, `retry_after_secs`,
    /// upper-case `method`).
    pub fn normalized(mut self) -> Result<Self, String> {
        let mut problems = Vec::new();
        if let Some(method) = &self.method {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                problems.push(format!("method {method:?} is not an HTTP method"));
            }
            self.method = Some(method.to_ascii_uppercase());
        }
        check_path("path_prefix", self.path_prefix.as_deref(), &mut problems);
        check_path("path", self.path.as_deref(), &mut problems);
        if self.path.is_some() && self.path_prefix.is_some() {
            problems.push("give path or path_prefix, not both".into());
        }
        match self.kind {
            ApiFaultKind::RateLimit => {
                if self.status.is_some_and(|s| s != 429) {
                    problems.push("a rate_limit fault is always status 429".into());
                }
                self.status = Some(429);
                self.retry_after_secs.get_or_insert(1);
            }
            ApiFaultKind::ServerError => {
                let status = *self.status.get_or_insert(500);
                if !(500..=599).contains(&status) {
                    problems.push(format!("status {status} is not a 5xx"));
                }
            }
        }
        check_gate(self.count, self.probability, &mut problems)?;
        Ok(self)
    }
}

impl BootFaultSpec {
    pub fn normalized(self) -> Result<Self, String> {
        let mut problems = Vec::new();
        match (self.kind, self.delay_ms) {
            (BootFaultKind::Slow, None | Some(0)) => {
                problems.push("a slow boot fault needs delay_ms > 0".into());
            }
            (BootFaultKind::Fail, Some(_)) => {
                problems.push("delay_ms only applies to slow boot faults".into());
            }
            _ => {}
        }
        check_gate(self.count, self.probability, &mut problems)?;
        Ok(self)
    }
}

/// When a rule fires: remaining uses, chance and its generator.
#[derive(Debug)]
struct Gate {
    remaining: Option<u64>,
    probability: f64,
    rng: Rng,
    matched: u64,
    fired: u64,
}

impl Gate {
    fn new(
        count: Option<u64>,
        probability: Option<f64>,
        seed: Option<u64>,
        global: u64,
        id: u64,
    ) -> Self {
        Gate {
            remaining: count,
            probability: probability.unwrap_or(1.0),
            rng: match seed {
                Some(seed) => Rng::new(seed),
                None => Rng::for_rule(global, id),
            },
            matched: 0,
            fired: 0,
        }
    }

    /// Called for each match; true when the rule fires this time.
    fn roll(&mut self) -> bool {
        self.matched += 1;
        let fire = self.probability >= 1.0 || self.rng.chance(self.probability);
        if fire {
            self.fired += 1;
            if let Some(n) = &mut self.remaining {
                *n = n.saturating_sub(1);
            }
        }
        fire
    }

    fn used_up(&self) -> bool {
        self.remaining == Some(0)
    }

    fn view(&self) -> Value {
        json!({ "remaining": self.remaining, "matched": self.matched, "fired": self.fired })
    }
}

#[derive(Debug)]
struct ApiRule {
    id: u64,
    spec: ApiFaultSpec,
    /// `path_prefix` or `path`, split into segments.
    pattern: Option<Vec<String>>,
    gate: Gate,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl ApiRule {
    fn matches(&self, api: Api, method: &str, path: &str) -> bool {
        if !self.spec.api.admits(api) {
            return false;
        }
        if let Some(m) = &self.spec.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        let Some(pattern) = &self.pattern else {
            return true;
        };
        let actual: Vec<&str> = segments(path).collect();
        let exact = self.spec.path.is_some();
        if actual.len() < pattern.len() || (exact && actual.len() != pattern.len()) {
            return false;
        }
        pattern
            .iter()
            .zip(&actual)
            .all(|(want, have)| want == "*" || want == have)
    }

    fn view(&self) -> Value {
        let mut view = serde_json::to_value(&self.spec).unwrap_or_else(|_| json!({}));
        merge(&mut view, json!({ "id": self.id }));
        merge(&mut view, self.gate.view());
        view
    }
}

#[derive(Debug)]
struct BootRule {
    id: u64,
    spec: BootFaultSpec,
    gate: Gate,
}

impl BootRule {
    fn view(&self) -> Value {
        let mut view = serde_json::to_value(&self.spec).unwrap_or_else(|_| json!({}));
        merge(&mut view, json!({ "id": self.id }));
        merge(&mut view, self.gate.view());
        view
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// An API fault to inject into the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApiFault {
    pub rule_id: u64,
    pub kind: ApiFaultKind,
    pub status: u16,
    pub retry_after_secs: Option<u64>,
    pub after_effect: bool,
}

/// What happens to a server's first boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootFault {
    Fail,
    Slow(Duration),
}

/// Things `/_devcloud/stats` counts besides requests and API faults.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    ServerCreated,
    ServerDeleted,
    ServerVanished,
    AgentKilled,
    AgentFrozen,
}

#[derive(Debug, Default, Clone, Serialize)]
struct RequestCounts {
    hetzner: u64,
    scaleway: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
struct FaultCounts {
    rate_limit: u64,
    server_error: u64,
    /// Of the two above, those answered after the request took effect.
    after_effect: u64,
    boot_fail: u64,
    boot_slow: u64,
    vanish: u64,
    kill_agent: u64,
    freeze: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
struct ServerCounts {
    created: u64,
    deleted: u64,
    vanished: u64,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    api: Vec<ApiRule>,
    boot: Vec<BootRule>,
    /// First-boot decisions, so a boot that is restarted decides alike.
    boot_decisions: HashMap<u64, Option<BootFault>>,
    requests: RequestCounts,
    faults: FaultCounts,
    servers: ServerCounts,
}

/// The fault rules and counters of one devcloud.
#[derive(Debug)]
pub(crate) struct Faults {
    seed: u64,
    state: Mutex<State>,
}

impl Faults {
    /// Installs `config`'s rules; fails on the first invalid one.
    pub(crate) fn new(config: &FaultConfig) -> Result<Self, String> {
        let seed = config.seed.unwrap_or_else(clock_seed);
        let faults = Faults {
            seed,
            state: Mutex::new(State::default()),
        };
        for spec in &config.api {
            faults.add_api(spec.clone())?;
        }
        for spec in &config.boot {
            faults.add_boot(spec.clone())?;
        }
        Ok(faults)
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_id(state: &mut State) -> u64 {
        state.next_id += 1;
        state.next_id
    }

    /// Adds an API rule; returns its view (with its `id`).
    pub(crate) fn add_api(&self, spec: ApiFaultSpec) -> Result<Value, String> {
        let spec = spec.normalized()?;
        let mut state = self.state();
        let id = Self::next_id(&mut state);
        let pattern = spec
            .path
            .as_deref()
            .or(spec.path_prefix.as_deref())
            .map(|p| segments(p).map(str::to_owned).collect());
        let rule = ApiRule {
            id,
            gate: Gate::new(spec.count, spec.probability, spec.seed, self.seed, id),
            pattern,
            spec,
        };
        let view = rule.view();
        state.api.push(rule);
        Ok(view)
    }

    pub(crate) fn add_boot(&self, spec: BootFaultSpec) -> Result<Value, String> {
        let spec = spec.normalized()?;
        let mut state = self.state();
        let id = Self::next_id(&mut state);
        let rule = BootRule {
            id,
            gate: Gate::new(spec.count, spec.probability, spec.seed, self.seed, id),
            spec,
        };
        let view = rule.view();
        state.boot.push(rule);
        Ok(view)
    }

    pub(crate) fn api_rules(&self) -> Vec<Value> {
        self.state().api.iter().map(ApiRule::view).collect()
    }

    pub(crate) fn boot_rules(&self) -> Vec<Value> {
        self.state().boot.iter().map(BootRule::view).collect()
    }

    /// Removes every rule (API and boot); returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut state = self.state();
        let n = state.api.len() + state.boot.len();
        state.api.clear();
        state.boot.clear();
        n
    }

    pub(crate) fn clear_boot(&self) -> usize {
        let mut state = self.state();
        let n = state.boot.len();
        state.boot.clear();
        n
    }

    /// Removes one rule of either kind; false when there is none.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut state = self.state();
        let before = state.api.len() + state.boot.len();
        state.api.retain(|r| r.id != id);
        state.boot.retain(|r| r.id != id);
        state.api.len() + state.boot.len() != before
    }

    /// Counts a provider API request and decides whether it is faulted:
    /// rules are tried in creation order, the first that fires wins.
    pub(crate) fn api_fault(&self, api: Api, method: &str, path: &str) -> Option<ApiFault> {
        let mut state = self.state();
        match api {
            Api::Hetzner => state.requests.hetzner += 1,
            Api::Scaleway => state.requests.scaleway += 1,
        }
        let index = state
            .api
            .iter_mut()
            .position(|rule| rule.matches(api, method, path) && rule.gate.roll())?;
        let rule = &state.api[index];
        let fault = ApiFault {
            rule_id: rule.id,
            kind: rule.spec.kind,
            status: rule.spec.status.unwrap_or(500),
            retry_after_secs: rule.spec.retry_after_secs,
            after_effect: rule.spec.after_effect,
        };
        if rule.gate.used_up() {
            state.api.remove(index);
        }
        match fault.kind {
            ApiFaultKind::RateLimit => state.faults.rate_limit += 1,
            ApiFaultKind::ServerError => state.faults.server_error += 1,
        }
        if fault.after_effect {
            state.faults.after_effect += 1;
        }
        Some(fault)
    }

    /// The fault for server `id`'s first boot, decided on the first call
    /// and remembered.
    pub(crate) fn boot_fault(&self, id: u64, api: Api) -> Option<BootFault> {
        let mut state = self.state();
        if let Some(decided) = state.boot_decisions.get(&id) {
            return *decided;
        }
        let fired = state
            .boot
            .iter_mut()
            .position(|rule| rule.spec.api.admits(api) && rule.gate.roll());
        let fault = fired.map(|index| {
            let rule = &state.boot[index];
            let fault = match rule.spec.kind {
                BootFaultKind::Fail => BootFault::Fail,
                BootFaultKind::Slow => {
                    BootFault::Slow(Duration::from_millis(rule.spec.delay_ms.unwrap_or(0)))
                }
            };
            if rule.gate.used_up() {
                state.boot.remove(index);
            }
            fault
        });
        match fault {
            Some(BootFault::Fail) => state.faults.boot_fail += 1,
            Some(BootFault::Slow(_)) => state.faults.boot_slow += 1,
            None => {}
        }
        state.boot_decisions.insert(id, fault);
        fault
    }

    pub(crate) fn record(&self, event: Event) {
        let mut state = self.state();
        match event {
            Event::ServerCreated => state.servers.created += 1,
            Event::ServerDeleted => state.servers.deleted += 1,
            Event::ServerVanished => {
                state.servers.vanished += 1;
                state.faults.vanish += 1;
            }
            Event::AgentKilled => state.faults.kill_agent += 1,
            Event::AgentFrozen => state.faults.freeze += 1,
        }
    }

    /// The counters, with `live` servers supplied by the caller.
    pub(crate) fn stats(&self, live: usize) -> Value {
        let state = self.state();
        let mut servers = serde_json::to_value(&state.servers).unwrap_or_else(|_| json!({}));
        merge(&mut servers, json!({ "live": live }));
        json!({
            "seed": self.seed,
            "requests": state.requests,
            "faults": state.faults,
            "servers": servers,
            "rules": { "api": state.api.len(), "boot": state.boot.len() },
        })
    }
}

/// A seed for runs that did not ask for one.
fn clock_seed() -> u64 {
    let nanos = chrono::Utc::now()
        .timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or_default();
    Rng::for_rule(nanos, u64::from(std::process::id())).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: Value) -> ApiFaultSpec {
        serde_json::from_value(value).unwrap()
    }

    fn faults() -> Faults {
        Faults::new(&FaultConfig {
            seed: Some(1),
            ..FaultConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn validation_and_defaults() {
        let r = rule(json!({"kind": "rate_limit", "method": "post"}))
            .normalized()
            .unwrap();
        assert_eq!(
            (r.status, r.retry_after_secs, r.method.as_deref()),
            (Some(429), Some(1), Some("POST"))
        );
        let r = rule(json!({"kind": "server_error"})).normalized().unwrap();
        assert_eq!((r.status, r.retry_after_secs), (Some(500), None));
        for bad in [
            json!({"kind": "server_error", "status": 404}),
            json!({"kind": "rate_limit", "status": 503}),
            json!({"kind": "server_error", "count": 0}),
            json!({"kind": "server_error", "probability": 1.5}),
            json!({"kind": "server_error", "path_prefix": "v1"}),
            json!({"kind": "server_error", "path": "/v1", "path_prefix": "/v1"}),
            json!({"kind": "server_error", "method": "GE T"}),
        ] {
            assert!(rule(bad.clone()).normalized().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<ApiFaultSpec>(json!({"kind": "x"})).is_err());
        assert!(
            serde_json::from_value::<ApiFaultSpec>(json!({"kind": "rate_limit", "typo": 1}))
                .is_err()
        );
    }

    #[test]
    fn paths_match_by_segment() {
        let f = faults();
        f.add_api(rule(
            json!({"kind": "server_error", "path_prefix": "/v1/servers", "method": "DELETE"}),
        ))
        .unwrap();
        assert!(f.api_fault(Api::Hetzner, "GET", "/v1/servers/1").is_none());
        assert!(
            f.api_fault(Api::Hetzner, "DELETE", "/v1/servers_x")
                .is_none()
        );
        assert!(
            f.api_fault(Api::Hetzner, "DELETE", "/v1/servers/1")
                .is_some()
        );
        f.clear();
        f.add_api(rule(
            json!({"kind": "server_error", "path": "/instance/v1/zones/*/servers"}),
        ))
        .unwrap();
        assert!(
            f.api_fault(Api::Scaleway, "POST", "/instance/v1/zones/fr-par-1/servers")
                .is_some()
        );
        assert!(
            f.api_fault(
                Api::Scaleway,
                "POST",
                "/instance/v1/zones/fr-par-1/servers/x"
            )
            .is_none()
        );
    }

    #[test]
    fn api_selector_and_expiry() {
        let f = faults();
        f.add_api(rule(
            json!({"api": "scaleway", "kind": "rate_limit", "count": 2}),
        ))
        .unwrap();
        assert!(f.api_fault(Api::Hetzner, "GET", "/v1/servers").is_none());
        assert!(
            f.api_fault(Api::Scaleway, "GET", "/instance/v1/x")
                .is_some()
        );
        assert!(
            f.api_fault(Api::Scaleway, "GET", "/instance/v1/x")
                .is_some()
        );
        assert!(f.api_rules().is_empty());
        assert!(
            f.api_fault(Api::Scaleway, "GET", "/instance/v1/x")
                .is_none()
        );
    }

    #[test]
    fn boot_decisions_are_remembered() {
        let f = faults();
        f.add_boot(BootFaultSpec {
            api: ApiSelector::Any,
            kind: BootFaultKind::Fail,
            delay_ms: None,
            count: Some(1),
            probability: None,
            seed: None,
        })
        .unwrap();
        assert_eq!(f.boot_fault(1, Api::Hetzner), Some(BootFault::Fail));
        assert_eq!(f.boot_fault(2, Api::Hetzner), None);
        assert_eq!(f.boot_fault(1, Api::Hetzner), Some(BootFault::Fail));
    }
}
