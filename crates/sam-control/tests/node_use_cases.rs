//! Node use cases on real SQLite (the repository's migrations), with the
//! cloud provider, the users' cloud accounts, the node log and the node
//! timer faked at the edge.
//!
//! Every test reads nodes back through [`Ctx::stored`], which also checks
//! the rule the lifecycle rests on: a node that is not destroyed has its
//! next deadline stored (exactly `sam_domain::lifecycle::deadline` of its
//! stored state) and its timer armed no later than that.

#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::executor::block_on;
use sam_auth::{Audience, SigningKey, TokenClaims, Verifier};
use sam_control::lifecycle::{advance, node_config, run_due};
use sam_control::retry::CreateRetryPolicy;
use sam_control::sweep::{SweepReport, SweepSettings, destroy_orphans, sweep};
use sam_control::{
    BootLog, CloudAccounts, ControlError, NodePorts, NodeSettings, NodeTimer, OpenedAccount,
    RetryRuntime, ServerProvider, claim_warm_node, create_node, delete_node, list_nodes,
    record_heartbeat, record_ready, release_node, stop_node,
};
use sam_domain::lifecycle::{Event, LifecycleConfig, deadline};
use sam_domain::node::BootPhase;
use sam_providers::{CreateServer, DeleteOutcome, ProviderError, ProviderErrorKind, Server};
use sam_store::sqlite::Sqlite;
use sam_store::{NodeRecord, NodeRepository, SqlDatabase as _, UserRepository};
use sam_wire::{CreateNodeRequest, HeartbeatRequest, NodeMetrics};

const NOW: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const CP: &str = "http://api.localhost:8787";
const DEPLOYMENT: &str = "test-deploy";

const BOOT_MS: i64 = 900_000;
const WARM_MS: i64 = 300_000;
const LIFETIME_MS: i64 = 24 * HOUR;
const STALE_MS: i64 = 180_000;
const BACKOFF_MS: i64 = 1_000;
const GRACE_MS: i64 = 60_000;

fn lifecycle() -> LifecycleConfig {
    LifecycleConfig {
        boot_timeout_ms: BOOT_MS,
        warm_timeout_ms: WARM_MS,
        max_lifetime_ms: LIFETIME_MS,
        heartbeat_stale_ms: STALE_MS,
        destroy_backoff_base_ms: BACKOFF_MS,
        destroy_backoff_max_ms: 300_000,
    }
}

fn settings() -> NodeSettings {
    NodeSettings {
        control_plane_url: CP.into(),
        heartbeat_interval_secs: 60,
        vm_agent_port: 8443,
        app_origin: "http://app.localhost:8787".into(),
        callback_token_ttl_secs: 3600,
        max_nodes_per_user: 2,
        lifecycle: lifecycle(),
        images: BTreeMap::new(),
        deployment: DEPLOYMENT.into(),
        create_retry: CreateRetryPolicy::default(),
    }
}

fn sweep_settings(node: &NodeSettings) -> SweepSettings {
    SweepSettings {
        deployment: node.deployment.clone(),
        orphan_grace_ms: GRACE_MS,
        lifecycle: node.lifecycle,
    }
}

fn request() -> CreateNodeRequest {
    CreateNodeRequest {
        provider: "hetzner".into(),
        size: "medium".into(),
        location: None,
        name: None,
    }
}

fn provider_error(kind: ProviderErrorKind, code: &str) -> ProviderError {
    ProviderError {
        kind,
        status: Some(422),
        code: code.into(),
        message: "nope".into(),
        retry_after_secs: None,
    }
}

fn unavailable() -> ProviderError {
    ProviderError {
        status: Some(503),
        ..provider_error(ProviderErrorKind::Transient, "http_503")
    }
}

/// The id of the `index`-th server a [`FakeCloud`] ever held.
fn server_id(index: usize) -> String {
    format!("{}", 4242 + index)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

/// The labels that find one node's servers.
fn node_selector(node_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sam-managed".to_owned(), "true".to_owned()),
        ("sam-node".to_owned(), node_id.to_owned()),
    ])
}

// ---- fakes ----

/// A cloud that records calls and fails on demand.
#[derive(Default)]
struct FakeCloud {
    /// Every server that ever existed here (strays included), in order.
    servers: RefCell<Vec<Server>>,
    /// Create requests that produced a server.
    requests: RefCell<Vec<CreateServer>>,
    create_calls: Cell<u32>,
    /// Servers deleted, in order.
    deleted: RefCell<Vec<String>>,
    delete_calls: Cell<u32>,
    /// The labels of every lookup.
    finds: RefCell<Vec<BTreeMap<String, String>>>,
    fail_create: RefCell<Option<ProviderError>>,
    /// Failures for the next create calls, in order; `(error, true)` fails
    /// after creating the server anyway (a 5xx after the work was done).
    scripted_create_failures: RefCell<Vec<(ProviderError, bool)>>,
    /// Failures for the next delete calls, in order.
    scripted_delete_failures: RefCell<Vec<ProviderError>>,
    /// While the next server is being created, its owner (U1) stops its
    /// node in this database: a user's stop racing the create.
    stop_during_create: RefCell<Option<Rc<Sqlite>>>,
}

impl FakeCloud {
    fn add_server(&self, req: &CreateServer, created_ms: i64) -> Server {
        let mut servers = self.servers.borrow_mut();
        let server = Server {
            id: server_id(servers.len()),
            name: req.name.clone(),
            status: "initializing".into(),
            ipv4: Some(format!("127.1.0.{}", servers.len() + 2)),
            labels: req.labels.clone(),
            created: rfc3339(created_ms),
        };
        servers.push(server.clone());
        server
    }

    /// A server some earlier run left behind, labelled for `deployment`
    /// (and `node`, if given), created at `created_ms`.
    fn stray(&self, deployment: &str, node: Option<&str>, created_ms: i64) -> String {
        let mut labels = BTreeMap::from([
            ("sam-managed".to_owned(), "true".to_owned()),
            ("sam-deployment".to_owned(), deployment.to_owned()),
        ]);
        if let Some(node) = node {
            labels.insert("sam-node".to_owned(), node.to_owned());
        }
        let req = CreateServer {
            name: "stray".into(),
            server_type: "cx23".into(),
            location: "fsn1".into(),
            image: "ubuntu-24.04".into(),
            user_data: String::new(),
            labels,
        };
        self.add_server(&req, created_ms).id
    }

    fn deleted(&self) -> Vec<String> {
        self.deleted.borrow().clone()
    }

    /// How many times this deployment's servers were listed (one per
    /// account sweep).
    fn deployment_lookups(&self) -> usize {
        self.finds
            .borrow()
            .iter()
            .filter(|labels| labels.get("sam-deployment").map(String::as_str) == Some(DEPLOYMENT))
            .count()
    }
}

fn take_first<T>(queue: &RefCell<Vec<T>>) -> Option<T> {
    let mut queue = queue.borrow_mut();
    (!queue.is_empty()).then(|| queue.remove(0))
}

impl ServerProvider for FakeCloud {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        self.create_calls.set(self.create_calls.get() + 1);
        let refused = self.fail_create.borrow().clone();
        if let Some(e) = refused {
            return Err(e);
        }
        if let Some((error, after_effect)) = take_first(&self.scripted_create_failures) {
            if after_effect {
                self.requests.borrow_mut().push(req.clone());
                self.add_server(req, NOW);
            }
            return Err(error);
        }
        let racing_stop = self.stop_during_create.borrow_mut().take();
        if let Some(db) = racing_stop {
            let accounts = Accounts::new(self);
            let (log, timer) = (RecordedBootLog::default(), RecordedTimer::default());
            let ports = NodePorts {
                accounts: &accounts,
                boot_log: &log,
                timer: &timer,
            };
            let stopped = stop_node(
                &*db,
                &ports,
                &settings(),
                "U1",
                &req.labels["sam-node"],
                NOW,
            )
            .await
            .unwrap();
            assert_eq!(stopped.status, "destroyed", "the racing stop");
        }
        self.requests.borrow_mut().push(req.clone());
        Ok(self.add_server(req, NOW))
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        self.delete_calls.set(self.delete_calls.get() + 1);
        if let Some(error) = take_first(&self.scripted_delete_failures) {
            return Err(error);
        }
        let exists = self.servers.borrow().iter().any(|s| s.id == id);
        let mut deleted = self.deleted.borrow_mut();
        if !exists || deleted.iter().any(|d| d == id) {
            return Ok(DeleteOutcome::AlreadyGone);
        }
        deleted.push(id.to_owned());
        Ok(DeleteOutcome::Deleted)
    }

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        self.finds.borrow_mut().push(labels.clone());
        let deleted = self.deleted.borrow();
        Ok(self
            .servers
            .borrow()
            .iter()
            .filter(|s| {
                !deleted.contains(&s.id) && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .cloned()
            .collect())
    }
}

/// The users' cloud accounts: every user's Hetzner credential opens `main`
/// (one shared account) unless the user is given another cloud; the
/// credentials of `broken` users fail to open.
struct Accounts<'c> {
    main: &'c FakeCloud,
    others: BTreeMap<String, (&'c FakeCloud, String)>,
    broken: Vec<String>,
    /// Every `(user, provider)` opened, in order.
    opened: RefCell<Vec<(String, String)>>,
}

impl<'c> Accounts<'c> {
    fn new(main: &'c FakeCloud) -> Self {
        Self {
            main,
            others: BTreeMap::new(),
            broken: Vec::new(),
            opened: RefCell::new(Vec::new()),
        }
    }
}

impl<'c> CloudAccounts for Accounts<'c> {
    type Provider = &'c FakeCloud;

    async fn open(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<OpenedAccount<Self::Provider>, ControlError> {
        self.opened
            .borrow_mut()
            .push((user_id.to_owned(), provider.to_owned()));
        if provider != "hetzner" {
            return Err(ControlError::UnknownCloudProvider(provider.to_owned()));
        }
        if self.broken.iter().any(|u| u == user_id) {
            return Err(ControlError::InvalidCloudCredential("revoked".into()));
        }
        Ok(match self.others.get(user_id) {
            Some((cloud, account)) => OpenedAccount {
                provider: *cloud,
                account: account.clone(),
            },
            None => OpenedAccount {
                provider: self.main,
                account: "acct-shared".into(),
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LogLine {
    node: String,
    at: i64,
    phase: BootPhase,
    detail: Option<String>,
}

#[derive(Default)]
struct RecordedBootLog(RefCell<Vec<LogLine>>);

impl RecordedBootLog {
    fn phases(&self, node: &str) -> Vec<BootPhase> {
        self.0
            .borrow()
            .iter()
            .filter(|l| l.node == node)
            .map(|l| l.phase)
            .collect()
    }

    /// The latest line of `phase` for `node`.
    fn line(&self, node: &str, phase: BootPhase) -> LogLine {
        self.0
            .borrow()
            .iter()
            .rev()
            .find(|l| l.node == node && l.phase == phase)
            .cloned()
            .unwrap_or_else(|| panic!("no {phase:?} logged for {node}"))
    }

    fn detail(&self, node: &str, phase: BootPhase) -> String {
        self.line(node, phase).detail.unwrap_or_default()
    }
}

impl BootLog for RecordedBootLog {
    async fn record(
        &self,
        node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> Result<(), String> {
        self.0.borrow_mut().push(LogLine {
            node: node_id.to_owned(),
            at,
            phase,
            detail: detail.map(str::to_owned),
        });
        Ok(())
    }
}

/// Records every `wake_at`.
#[derive(Default)]
struct RecordedTimer(RefCell<Vec<(String, i64)>>);

impl RecordedTimer {
    fn calls(&self, node: &str) -> Vec<i64> {
        self.0
            .borrow()
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, at)| *at)
            .collect()
    }

    fn latest(&self, node: &str) -> Option<i64> {
        self.calls(node).last().copied()
    }
}

impl NodeTimer for RecordedTimer {
    async fn wake_at(&self, node_id: &str, at: i64) -> Result<(), String> {
        self.0.borrow_mut().push((node_id.to_owned(), at));
        Ok(())
    }
}

/// Records the pauses retries ask for instead of waiting.
#[derive(Default)]
struct NoWait(RefCell<Vec<u64>>);

impl RetryRuntime for NoWait {
    async fn pause(&self, ms: u64) {
        self.0.borrow_mut().push(ms);
    }

    fn jitter(&self) -> f64 {
        0.5
    }
}

// ---- the test world ----

/// A database with users U1 (alice) and U2 (mallory), one cloud, and the
/// node log and timer every use case of a test shares.
struct Env {
    db: Rc<Sqlite>,
    key: SigningKey,
    cloud: FakeCloud,
    log: RecordedBootLog,
    timer: RecordedTimer,
    settings: NodeSettings,
}

impl Env {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: NodeSettings) -> Self {
        let db = Sqlite::with_repo_migrations();
        block_on(async {
            let users = UserRepository::new(&db);
            for (id, login) in [("U1", "alice"), ("U2", "mallory")] {
                users.upsert_by_login(id, login, NOW).await.unwrap();
            }
        });
        Self {
            db: Rc::new(db),
            key: SigningKey::from_seed([3; 32]),
            cloud: FakeCloud::default(),
            log: RecordedBootLog::default(),
            timer: RecordedTimer::default(),
            settings,
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            env: self,
            accounts: Accounts::new(&self.cloud),
        }
    }
}

/// The use cases, called the way the Worker calls them.
struct Ctx<'e> {
    env: &'e Env,
    accounts: Accounts<'e>,
}

impl<'e> Ctx<'e> {
    fn db(&self) -> &'e Sqlite {
        &self.env.db
    }

    fn ports(&self) -> NodePorts<'_, Accounts<'e>, RecordedBootLog, RecordedTimer> {
        NodePorts {
            accounts: &self.accounts,
            boot_log: &self.env.log,
            timer: &self.env.timer,
        }
    }

    fn platform(&self) -> &'e LifecycleConfig {
        &self.env.settings.lifecycle
    }

    /// `create_node` for U1 with the standard request.
    async fn create(&self, now: i64) -> Result<NodeRecord, ControlError> {
        self.create_with(&NoWait::default(), now).await
    }

    async fn create_with(&self, runtime: &NoWait, now: i64) -> Result<NodeRecord, ControlError> {
        create_node(
            self.db(),
            &self.env.cloud,
            runtime,
            &self.ports(),
            &self.env.key,
            &self.env.settings,
            "U1",
            &request(),
            now,
            7,
        )
        .await
    }

    async fn ready(&self, id: &str, now: i64) -> Result<NodeRecord, ControlError> {
        record_ready(self.db(), &self.ports(), &self.env.settings, id, "1.0", now).await
    }

    /// A node of U1's created at `now`, its agent registered 1 s later.
    async fn ready_node(&self, now: i64) -> NodeRecord {
        let node = self.create(now).await.unwrap();
        let ready = self.ready(&node.id, now + 1_000).await.unwrap();
        assert_eq!(ready.status, "ready");
        ready
    }

    /// The callback claims in the token `id`'s server was created with.
    fn claims_for(&self, id: &str) -> TokenClaims {
        let requests = self.env.cloud.requests.borrow();
        let req = requests
            .iter()
            .find(|r| r.labels["sam-node"] == id)
            .unwrap_or_else(|| panic!("no server was requested for {id}"));
        Verifier::for_key(CP, &self.env.key)
            .verify(callback_token(&req.user_data), Audience::NodeCallback, NOW)
            .unwrap()
    }

    async fn heartbeat(&self, id: &str, now: i64) -> Result<Option<String>, ControlError> {
        let claims = self.claims_for(id);
        let beat = HeartbeatRequest {
            agent_version: "1.0".into(),
            metrics: NodeMetrics::default(),
        };
        record_heartbeat(
            self.db(),
            &self.env.key,
            &self.env.settings,
            &claims,
            &beat,
            now,
        )
        .await
    }

    async fn release(
        &self,
        user: &str,
        id: &str,
        claim: &str,
        now: i64,
    ) -> Result<NodeRecord, ControlError> {
        release_node(
            self.db(),
            &self.ports(),
            &self.env.settings,
            user,
            id,
            claim,
            now,
        )
        .await
    }

    async fn claim(
        &self,
        user: &str,
        claim: &str,
        project: Option<(&str, Option<i64>)>,
        now: i64,
    ) -> Result<NodeRecord, ControlError> {
        claim_warm_node(
            self.db(),
            &self.ports(),
            &self.env.settings,
            user,
            claim,
            project,
            now,
        )
        .await
    }

    async fn stop(&self, user: &str, id: &str, now: i64) -> Result<NodeRecord, ControlError> {
        stop_node(self.db(), &self.ports(), &self.env.settings, user, id, now).await
    }

    async fn delete(&self, user: &str, id: &str, now: i64) -> Result<NodeRecord, ControlError> {
        delete_node(self.db(), &self.ports(), &self.env.settings, user, id, now).await
    }

    /// The node's alarm rings.
    async fn run_due(&self, id: &str, now: i64) -> Result<NodeRecord, ControlError> {
        run_due(
            self.db(),
            &self.accounts,
            &self.env.log,
            &self.env.timer,
            self.platform(),
            id,
            now,
        )
        .await
    }

    async fn sweep(&self, now: i64) -> SweepReport {
        sweep(
            self.db(),
            &self.accounts,
            &self.env.log,
            &self.env.timer,
            &sweep_settings(&self.env.settings),
            now,
        )
        .await
        .unwrap()
    }

    async fn views(&self, user: &str, now: i64) -> Vec<(String, String)> {
        list_nodes(self.db(), &self.env.settings, user, now)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.id, v.status))
            .collect()
    }

    /// The node as stored, checked: its stored deadline is the state
    /// machine's deadline of its stored state (none once destroyed), and
    /// its timer was asked to ring no later than that (heartbeats move a
    /// deadline later without touching the timer; an early alarm finds
    /// nothing due and is set again).
    async fn stored(&self, id: &str) -> NodeRecord {
        let node = NodeRepository::new(self.db())
            .get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node {id} is gone"));
        let cfg = node_config(self.platform(), &node);
        assert_eq!(
            node.deadline_at,
            deadline(&node.state(), &cfg),
            "the stored deadline of {} node {id}",
            node.status
        );
        if let Some(at) = node.deadline_at {
            let armed = self.env.timer.latest(id);
            assert!(
                armed.is_some_and(|armed| armed <= at),
                "{} node {id} is due at {at} but its timer was set for {armed:?}",
                node.status
            );
        }
        node
    }

    /// [`Self::stored`], with the timer set for exactly its deadline (what
    /// every change but a heartbeat leaves behind).
    async fn armed(&self, id: &str) -> NodeRecord {
        let node = self.stored(id).await;
        if node.deadline_at.is_some() {
            assert_eq!(
                self.env.timer.latest(id),
                node.deadline_at,
                "the timer of {} node {id}",
                node.status
            );
        }
        node
    }
}

/// The callback token in a server's user-data.
fn callback_token(user_data: &str) -> &str {
    let line = user_data
        .lines()
        .skip_while(|l| !l.contains("/etc/sam/callback-token"))
        .find(|l| l.contains("eyJ"))
        .unwrap();
    line.split_whitespace().last().unwrap().trim_matches('\'')
}

/// Forgets a node's recorded server id (a lost provider reply).
async fn forget_server(db: &Sqlite, id: &str) {
    db.execute(
        "UPDATE nodes SET provider_server_id = NULL WHERE id = ?",
        &[id.into()],
    )
    .await
    .unwrap();
}

// ---- create, boot, heartbeat, stop, delete ----

#[test]
fn create_boot_heartbeat_stop_delete() {
    let env = Env::new();
    let t = env.ctx();
    block_on(async {
        let node = t.create(NOW).await.unwrap();
        let id = node.id.clone();
        assert_eq!(node.status, "booting");
        assert_eq!(node.version, 1);
        assert_eq!(node.provider_server_id, Some(server_id(0)));
        assert_eq!(node.ip_address.as_deref(), Some("127.1.0.2"));
        assert_eq!(node.claimed_by.as_deref(), Some("user:U1"));
        assert_eq!(node.deadline_at, Some(NOW + BOOT_MS));
        t.armed(&id).await;
        assert_eq!(
            env.timer.calls(&id),
            [NOW + BOOT_MS, NOW + BOOT_MS],
            "armed when written and again once booting"
        );

        // What reached the provider: our labels, and user-data whose only
        // secret is a callback token scoped to this node.
        let created = env.cloud.requests.borrow()[0].clone();
        assert_eq!(created.server_type, "cx33");
        assert_eq!(
            created.image, "ubuntu-24.04",
            "the catalogue's image when none is configured"
        );
        assert_eq!(
            created.labels,
            BTreeMap::from([
                ("sam-managed".to_owned(), "true".to_owned()),
                ("sam-node".to_owned(), id.clone()),
                ("sam-deployment".to_owned(), DEPLOYMENT.to_owned()),
            ])
        );
        let claims = t.claims_for(&id);
        assert_eq!(claims.node, id);
        assert_eq!(claims.expires_at_ms, NOW + 3_600_000);

        let early = t.heartbeat(&id, NOW + 1).await.unwrap_err();
        assert_eq!((early.status(), early.code()), (409, "invalid_transition"));

        let ready = t.ready(&id, NOW + 2).await.unwrap();
        assert_eq!(ready.status, "ready");
        assert_eq!(ready.claimed_by.as_deref(), Some("user:U1"));
        assert_eq!(ready.agent_version.as_deref(), Some("1.0"));
        assert_eq!(
            (ready.agent_ready_at, ready.last_heartbeat_at),
            (Some(NOW + 2), Some(NOW + 2))
        );
        assert_eq!(
            t.armed(&id).await.deadline_at,
            Some(NOW + 2 + STALE_MS),
            "a ready node is due when its agent would be silent too long"
        );

        // Heartbeats every minute; a young token is kept, one past half its
        // lifetime renewed.
        for minute in 1..=30 {
            let at = NOW + minute * 60_000;
            assert_eq!(t.heartbeat(&id, at).await.unwrap(), None, "minute {minute}");
            let beating = t.stored(&id).await;
            assert_eq!(beating.deadline_at, Some(at + STALE_MS));
            if minute == 3 {
                // The alarm set at registration rings: nothing is due
                // (heartbeats moved the deadline), it is set again.
                let rung = t.run_due(&id, NOW + 2 + STALE_MS).await.unwrap();
                assert_eq!(
                    (rung.status.as_str(), rung.version),
                    ("ready", beating.version)
                );
                assert_eq!(env.timer.latest(&id), Some(at + STALE_MS));
            }
        }
        let later = NOW + 31 * 60_000;
        let fresh = t.heartbeat(&id, later).await.unwrap().unwrap();
        let renewed = Verifier::for_key(CP, &env.key)
            .verify(&fresh, Audience::NodeCallback, later)
            .unwrap();
        assert_eq!(renewed.node, id);
        assert_eq!(renewed.expires_at_ms, later + 3_600_000);
        assert_eq!(t.stored(&id).await.last_heartbeat_at, Some(later));

        let stop_at = later + 1_000;
        let stopped = t.stop("U1", &id, stop_at).await.unwrap();
        assert_eq!(stopped.status, "destroyed");
        assert_eq!(
            (
                stopped.destroy_attempts,
                stopped.deadline_at,
                stopped.destroy_error
            ),
            (1, None, None)
        );
        assert_eq!(env.cloud.deleted(), [server_id(0)]);
        assert_eq!(t.stored(&id).await.status, "destroyed");
        // A stopped node stays listed with its history...
        assert_eq!(
            t.views("U1", stop_at).await,
            [(id.clone(), "destroyed".to_owned())]
        );
        // ...until the user deletes it; nothing more reaches the provider.
        let deleted = t.delete("U1", &id, stop_at + 1).await.unwrap();
        assert_eq!(
            (deleted.status.as_str(), deleted.removed_at),
            ("destroyed", Some(stop_at + 1))
        );
        assert!(t.views("U1", stop_at + 1).await.is_empty());
        t.delete("U1", &id, stop_at + 2).await.unwrap();
        t.stop("U1", &id, stop_at + 2).await.unwrap();
        assert_eq!(env.cloud.delete_calls.get(), 1);

        // A late agent cannot bring it back.
        let late = t.ready(&id, stop_at + 3).await.unwrap_err();
        assert_eq!((late.status(), late.code()), (409, "node_destroyed"));
        let late = t.heartbeat(&id, stop_at + 3).await.unwrap_err();
        assert_eq!(late.code(), "node_destroyed");
        assert_eq!(t.stored(&id).await.status, "destroyed");

        assert_eq!(
            env.log.phases(&id),
            [
                BootPhase::Requested,
                BootPhase::ProviderCreated,
                BootPhase::AgentReady,
                BootPhase::DestroyRequested,
                BootPhase::Destroyed
            ]
        );
        assert_eq!(
            env.log.detail(&id, BootPhase::ProviderCreated),
            "server 4242"
        );
        assert_eq!(env.log.detail(&id, BootPhase::AgentReady), "vm-agent 1.0");
        assert_eq!(env.log.line(&id, BootPhase::Destroyed).at, stop_at);
    });
}

#[test]
fn a_provider_refusal_destroys_the_node_and_keeps_the_reason() {
    let env = Env::new();
    let t = env.ctx();
    *env.cloud.fail_create.borrow_mut() = Some(provider_error(
        ProviderErrorKind::InvalidConfig,
        "invalid_input",
    ));
    block_on(async {
        let err = t.create(NOW).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (502, "provider_create_failed"));
        let ControlError::ProviderCreate { node_id, error } = err else {
            panic!("{err:?}")
        };
        assert_eq!(error.code, "invalid_input");
        assert_eq!(env.cloud.create_calls.get(), 1, "not worth retrying");

        // error moves on to destroying at once; the label lookup finds
        // nothing, so the node is destroyed without a delete call.
        let node = t.stored(&node_id).await;
        assert_eq!(node.status, "destroyed");
        let reason = node.error_message.clone().unwrap();
        assert!(reason.contains("invalid_input"), "{reason}");
        assert_eq!(
            (
                node.provider_server_id,
                node.destroy_attempts,
                node.deadline_at
            ),
            (None, 1, None)
        );
        assert_eq!(*env.cloud.finds.borrow(), [node_selector(&node_id)]);
        assert_eq!(env.cloud.delete_calls.get(), 0);
        assert_eq!(
            env.log.phases(&node_id),
            [
                BootPhase::Requested,
                BootPhase::ProviderFailed,
                BootPhase::DestroyRequested,
                BootPhase::Destroyed
            ]
        );
        assert_eq!(env.log.detail(&node_id, BootPhase::ProviderFailed), reason);
        // The user still sees what went wrong.
        let views = list_nodes(t.db(), &env.settings, "U1", NOW).await.unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].error_message.as_deref(), Some(reason.as_str()));

        // A destroyed node does not count against the quota of two.
        *env.cloud.fail_create.borrow_mut() = None;
        for i in 1..=2 {
            assert_eq!(t.create(NOW + i).await.unwrap().status, "booting");
        }
    });
}

#[test]
fn a_failed_delete_is_retried_with_backoff_until_the_provider_confirms() {
    let env = Env::new();
    let t = env.ctx();
    block_on(async {
        let id = t.ready_node(NOW).await.id;
        *env.cloud.scripted_delete_failures.borrow_mut() = vec![unavailable(), unavailable()];
        let t0 = NOW + 10_000;

        let stuck = t.delete("U1", &id, t0).await.unwrap();
        assert_eq!(stuck.status, "destroying");
        assert_eq!(stuck.destroy_attempts, 1);
        let reason = stuck.destroy_error.clone().unwrap();
        assert!(
            reason.contains("http_503") && reason.contains("4242"),
            "{reason}"
        );
        assert_eq!(stuck.deadline_at, Some(t0 + BACKOFF_MS));
        t.armed(&id).await;
        assert!(env.cloud.deleted().is_empty());
        assert_eq!(
            t.views("U1", t0).await,
            [(id.clone(), "destroying".to_owned())],
            "listed until its server is confirmed gone"
        );

        // Asking again does not hammer the provider.
        let again = t.stop("U1", &id, t0 + 5).await.unwrap();
        assert_eq!(
            (again.status.as_str(), again.version),
            ("destroying", stuck.version)
        );
        // Nor does the alarm before the backoff.
        let early = t.run_due(&id, t0 + BACKOFF_MS - 1).await.unwrap();
        assert_eq!(early.version, stuck.version);
        assert_eq!(env.cloud.delete_calls.get(), 1);

        // The retry fails too: the delay doubles.
        let second = t.run_due(&id, t0 + BACKOFF_MS).await.unwrap();
        assert_eq!(
            (second.status.as_str(), second.destroy_attempts),
            ("destroying", 2)
        );
        assert_eq!(second.deadline_at, Some(t0 + 3 * BACKOFF_MS));
        t.armed(&id).await;
        assert_eq!(env.cloud.delete_calls.get(), 2);
        let early = t.run_due(&id, t0 + 3 * BACKOFF_MS - 1).await.unwrap();
        assert_eq!(early.version, second.version);

        let done = t.run_due(&id, t0 + 3 * BACKOFF_MS).await.unwrap();
        assert_eq!(
            (done.status.as_str(), done.destroy_attempts),
            ("destroyed", 3)
        );
        assert_eq!(done.deadline_at, None);
        assert_eq!(env.cloud.deleted(), [server_id(0)]);
        assert_eq!(env.cloud.delete_calls.get(), 3);
        assert!(t.views("U1", t0).await.is_empty(), "removed and destroyed");
        // (A retry failing with the same reason in the same instant it was
        // issued changes no state, so it adds no log line of its own.)
        let phases = env.log.phases(&id);
        assert_eq!(
            phases[..5],
            [
                BootPhase::Requested,
                BootPhase::ProviderCreated,
                BootPhase::AgentReady,
                BootPhase::DestroyRequested,
                BootPhase::DestroyFailed,
            ]
        );
        assert_eq!(phases.last(), Some(&BootPhase::Destroyed));
        assert!(
            env.log
                .detail(&id, BootPhase::DestroyFailed)
                .contains("http_503")
        );
    });
}

#[test]
fn quota_counts_nodes_not_destroyed_and_other_users_nodes_are_not_found() {
    let env = Env::new();
    let t = env.ctx();
    block_on(async {
        let first = t.create(NOW).await.unwrap();
        t.create(NOW + 1).await.unwrap();
        let err = t.create(NOW + 2).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (429, "node_quota_exceeded"));
        assert_eq!(
            env.cloud.create_calls.get(),
            2,
            "refused before the provider"
        );

        // Mallory (U2) can do nothing to alice's node.
        let results = [
            t.stop("U2", &first.id, NOW + 3).await,
            t.delete("U2", &first.id, NOW + 3).await,
            t.release("U2", &first.id, "user:U1", NOW + 3).await,
        ];
        for result in results {
            let err = result.unwrap_err();
            assert_eq!((err.status(), err.code()), (404, "not_found"));
        }
        let untouched = t.stored(&first.id).await;
        assert_eq!(
            (
                untouched.status.as_str(),
                untouched.version,
                untouched.removed_at
            ),
            ("booting", first.version, None)
        );
        assert!(env.cloud.deleted().is_empty());
        assert!(t.views("U2", NOW).await.is_empty());
        assert_eq!(t.views("U1", NOW).await.len(), 2);

        // A destroyed node frees its place.
        assert_eq!(
            t.stop("U1", &first.id, NOW + 4).await.unwrap().status,
            "destroyed"
        );
        assert_eq!(t.create(NOW + 5).await.unwrap().status, "booting");
        let err = t.create(NOW + 6).await.unwrap_err();
        assert_eq!(err.code(), "node_quota_exceeded");
    });
}

#[test]
fn a_server_created_for_a_node_stopped_meanwhile_is_deleted_at_once() {
    let env = Env::new();
    let t = env.ctx();
    *env.cloud.stop_during_create.borrow_mut() = Some(Rc::clone(&env.db));
    block_on(async {
        let node = t.create(NOW).await.unwrap();
        assert_eq!(node.status, "destroyed");
        assert_eq!(env.cloud.requests.borrow().len(), 1);
        assert_eq!(env.cloud.deleted(), [server_id(0)], "no orphaned server");
        assert!(
            env.cloud
                .find_servers(&node_selector(&node.id))
                .await
                .unwrap()
                .is_empty()
        );
        t.stored(&node.id).await;
    });
}

#[test]
fn destroy_finds_servers_by_label_when_no_id_was_recorded() {
    let env = Env::new();
    let t = env.ctx();
    block_on(async {
        let node = t.create(NOW).await.unwrap();
        // As if the provider's reply had been lost, and an earlier attempt
        // had left a second server.
        forget_server(t.db(), &node.id).await;
        let second = env.cloud.stray(DEPLOYMENT, Some(&node.id), NOW);
        let stopped = t.stop("U1", &node.id, NOW + 1).await.unwrap();
        assert_eq!(stopped.status, "destroyed");
        assert_eq!(env.cloud.deleted(), [server_id(0), second]);
        assert_eq!(
            env.cloud.finds.borrow().last(),
            Some(&node_selector(&node.id))
        );
    });
}

// ---- create retries ----

#[test]
fn rate_limits_are_retried_honouring_retry_after() {
    let env = Env::new();
    let t = env.ctx();
    let mut limited = provider_error(ProviderErrorKind::RateLimited, "rate_limit_exceeded");
    limited.retry_after_secs = Some(2);
    *env.cloud.scripted_create_failures.borrow_mut() = vec![
        (limited, false),
        (
            provider_error(ProviderErrorKind::Transient, "unavailable"),
            false,
        ),
    ];
    let pauses = NoWait::default();
    block_on(async {
        let node = t.create_with(&pauses, NOW).await.unwrap();
        assert_eq!(node.status, "booting");
        assert_eq!(env.cloud.create_calls.get(), 3);
        assert_eq!(env.cloud.requests.borrow().len(), 1);
        assert_eq!(node.provider_server_id, Some(server_id(0)));
        let waited = pauses.0.borrow().clone();
        assert_eq!(waited.len(), 2);
        assert!(waited[0] >= 2_000, "Retry-After is a floor: {waited:?}");
        let retries = env
            .log
            .phases(&node.id)
            .into_iter()
            .filter(|phase| *phase == BootPhase::ProviderRetrying)
            .count();
        assert_eq!(retries, 2);
        t.armed(&node.id).await;
    });
}

#[test]
fn a_location_out_of_capacity_falls_back_to_the_next() {
    let env = Env::new();
    let t = env.ctx();
    *env.cloud.scripted_create_failures.borrow_mut() = vec![(
        provider_error(ProviderErrorKind::Capacity, "resource_unavailable"),
        false,
    )];
    block_on(async {
        let node = t.create(NOW).await.unwrap();
        let placed = env.cloud.requests.borrow()[0].location.clone();
        assert_ne!(placed, "fsn1");
        assert_eq!(node.location, placed);
        assert_eq!(t.stored(&node.id).await.location, placed);
        assert_eq!(node.status, "booting");
    });
}

#[test]
fn a_create_that_failed_after_creating_is_adopted_not_repeated() {
    let env = Env::new();
    let t = env.ctx();
    *env.cloud.scripted_create_failures.borrow_mut() = vec![(
        provider_error(ProviderErrorKind::Transient, "server_error"),
        true,
    )];
    block_on(async {
        let node = t.create(NOW).await.unwrap();
        assert_eq!(
            env.cloud.servers.borrow().len(),
            1,
            "a second server was created"
        );
        assert_eq!(env.cloud.create_calls.get(), 1);
        assert_eq!(node.provider_server_id, Some(server_id(0)));
        assert_eq!(node.status, "booting");
        t.armed(&node.id).await;
    });
}

// ---- the sweep ----

mod sweeping {
    use super::*;

    #[test]
    fn destroy_orphans_takes_only_this_deployments_servers_no_live_node_owns() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let live = t.create(NOW).await.unwrap();
            let gone = t.create(NOW + 1).await.unwrap();
            // Destroyed in D1 while its server delete never reached the provider.
            for event in [Event::DestroyRequested, Event::ServerGone] {
                advance(t.db(), t.platform(), &gone.id, &event, NOW + 2)
                    .await
                    .unwrap();
            }
            let sweep_at = NOW + 120_000;
            let cloud = &env.cloud;
            let unknown = cloud.stray(DEPLOYMENT, Some("01UNKNOWNNODE000000000000"), NOW - HOUR);
            let foreign = cloud.stray("staging", Some("01UNKNOWNNODE000000000000"), NOW - HOUR);
            // A second server carrying the live node's label, not its recorded id.
            let second = cloud.stray(DEPLOYMENT, Some(&live.id), NOW);
            let young = cloud.stray(
                DEPLOYMENT,
                Some("01UNKNOWNNODE000000000001"),
                sweep_at - 10_000,
            );
            let unlabelled = cloud.stray(DEPLOYMENT, None, NOW);
            let settings = sweep_settings(&env.settings);

            let mut report = SweepReport::default();
            destroy_orphans(t.db(), cloud, &settings, sweep_at, &mut report)
                .await
                .unwrap();
            let gone_server = gone.provider_server_id.clone().unwrap();
            assert_eq!(
                cloud.deleted(),
                [gone_server, unknown, second, unlabelled],
                "the live node's own server, the young one and staging's stay"
            );
            assert!(!cloud.deleted().contains(&foreign));
            assert_eq!(
                (
                    report.accounts_checked,
                    report.servers_seen,
                    report.orphans_destroyed
                ),
                (1, 6, 4),
                "{report:?}"
            );
            assert!(report.failures.is_empty(), "{report:?}");
            let live_now = t.stored(&live.id).await;
            assert_eq!(
                (live_now.status.as_str(), live_now.provider_server_id),
                ("booting", live.provider_server_id.clone())
            );

            // Past its grace period the young orphan goes too.
            let mut later = SweepReport::default();
            destroy_orphans(t.db(), cloud, &settings, sweep_at + GRACE_MS, &mut later)
                .await
                .unwrap();
            assert_eq!((later.servers_seen, later.orphans_destroyed), (2, 1));
            assert_eq!(cloud.deleted().last(), Some(&young));

            // A provider that fails is reported, not fatal; the next run retries.
            let stuck = cloud.stray(DEPLOYMENT, Some("01UNKNOWNNODE000000000002"), NOW);
            *cloud.scripted_delete_failures.borrow_mut() = vec![unavailable()];
            let mut failing = SweepReport::default();
            destroy_orphans(t.db(), cloud, &settings, sweep_at + GRACE_MS, &mut failing)
                .await
                .unwrap();
            assert_eq!(failing.orphans_destroyed, 0);
            assert_eq!(failing.failures.len(), 1, "{failing:?}");
            assert!(failing.failures[0].contains(&stuck), "{failing:?}");
            let mut retried = SweepReport::default();
            destroy_orphans(t.db(), cloud, &settings, sweep_at + GRACE_MS, &mut retried)
                .await
                .unwrap();
            assert_eq!(retried.orphans_destroyed, 1);
            assert_eq!(cloud.deleted().last(), Some(&stuck));
            assert!(!cloud.deleted().contains(&live.provider_server_id.unwrap()));
        });
    }

    #[test]
    fn a_node_that_never_booted_fails_at_its_boot_deadline_and_is_destroyed() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let node = t.create(NOW).await.unwrap();
            let early = t.sweep(NOW + BOOT_MS - 1).await;
            assert_eq!(early.nodes_due, 0, "{early:?}");
            assert_eq!(t.stored(&node.id).await.status, "booting");

            let report = t.sweep(NOW + BOOT_MS).await;
            assert_eq!(
                (report.nodes_due, report.nodes_destroyed),
                (1, 1),
                "{report:?}"
            );
            assert!(report.failures.is_empty(), "{report:?}");
            let stored = t.stored(&node.id).await;
            assert_eq!(stored.status, "destroyed");
            let reason = stored.error_message.unwrap();
            assert!(reason.contains("boot deadline"), "{reason}");
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
            assert_eq!(
                env.log.phases(&node.id)[2..],
                [
                    BootPhase::BootDeadlinePassed,
                    BootPhase::DestroyRequested,
                    BootPhase::Destroyed
                ]
            );
            assert_eq!(t.sweep(NOW + BOOT_MS + 1).await.nodes_due, 0);
        });
    }

    #[test]
    fn a_node_whose_agent_went_silent_fails_and_is_destroyed() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let node = t.ready_node(NOW).await;
            let silent_at = NOW + 1_000 + STALE_MS;
            assert_eq!(node.deadline_at, Some(silent_at));
            assert_eq!(t.sweep(silent_at - 1).await.nodes_due, 0);
            assert_eq!(t.stored(&node.id).await.status, "ready");

            let report = t.sweep(silent_at).await;
            assert_eq!(
                (report.nodes_due, report.nodes_destroyed),
                (1, 1),
                "{report:?}"
            );
            let stored = t.stored(&node.id).await;
            assert_eq!(stored.status, "destroyed");
            let reason = stored.error_message.unwrap();
            assert!(reason.contains("heartbeats"), "{reason}");
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
            assert!(
                env.log
                    .phases(&node.id)
                    .contains(&BootPhase::HeartbeatStale)
            );
        });
    }

    #[test]
    fn a_node_reaching_its_maximum_lifetime_is_destroyed_even_with_fresh_heartbeats() {
        let life = 600_000;
        let env = Env::with(NodeSettings {
            lifecycle: LifecycleConfig {
                max_lifetime_ms: life,
                ..lifecycle()
            },
            ..settings()
        });
        let t = env.ctx();
        block_on(async {
            let node = t.ready_node(NOW).await;
            let mut last_beat = NOW;
            for minute in 1..10 {
                last_beat = NOW + minute * 60_000;
                t.heartbeat(&node.id, last_beat).await.unwrap();
            }
            let report = t.sweep(NOW + life - 1).await;
            assert_eq!(report.nodes_due, 0, "{report:?}");
            let alive = t.stored(&node.id).await;
            assert_eq!(alive.status, "ready");
            assert_eq!(
                alive.deadline_at,
                Some(NOW + life),
                "the lifetime comes first"
            );

            let report = t.sweep(NOW + life).await;
            assert_eq!(
                (report.nodes_due, report.nodes_destroyed),
                (1, 1),
                "{report:?}"
            );
            let stored = t.stored(&node.id).await;
            assert_eq!(stored.status, "destroyed");
            assert_eq!(stored.last_heartbeat_at, Some(last_beat));
            assert!(
                NOW + life - last_beat < STALE_MS,
                "its heartbeats were fresh"
            );
            assert_eq!(stored.error_message, None, "not a failure");
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
            assert_eq!(
                env.log.phases(&node.id)[3..],
                [BootPhase::MaxLifetimePassed, BootPhase::Destroyed]
            );
        });
    }

    #[test]
    fn a_destroy_the_provider_refuses_is_reported_and_retried_by_the_next_sweep() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let node = t.create(NOW).await.unwrap();
            *env.cloud.scripted_delete_failures.borrow_mut() = vec![unavailable()];
            let report = t.sweep(NOW + BOOT_MS).await;
            assert_eq!(
                (report.nodes_due, report.nodes_destroyed),
                (1, 0),
                "{report:?}"
            );
            assert_eq!(report.failures.len(), 1, "{report:?}");
            assert!(
                report.failures[0].contains(&node.id) && report.failures[0].contains("http_503"),
                "{report:?}"
            );
            let stuck = t.armed(&node.id).await;
            assert_eq!(stuck.status, "destroying");
            assert_eq!(stuck.deadline_at, Some(NOW + BOOT_MS + BACKOFF_MS));

            assert_eq!(t.sweep(NOW + BOOT_MS + BACKOFF_MS - 1).await.nodes_due, 0);
            let report = t.sweep(NOW + BOOT_MS + BACKOFF_MS).await;
            assert_eq!(
                (report.nodes_due, report.nodes_destroyed),
                (1, 1),
                "{report:?}"
            );
            assert!(report.failures.is_empty(), "{report:?}");
            assert_eq!(t.stored(&node.id).await.status, "destroyed");
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
        });
    }

    #[test]
    fn a_whole_sweep_visits_each_cloud_account_once() {
        let env = Env::new();
        let their_cloud = FakeCloud::default();
        let mut accounts = Accounts::new(&env.cloud);
        accounts
            .others
            .insert("U3".into(), (&their_cloud, "acct-u3".into()));
        accounts.broken.push("U4".into());
        let t = Ctx {
            env: &env,
            accounts,
        };
        let keys = sam_vault::CredentialKeys::parse(
            &sam_vault::CredentialKeys::generate_spec("k1", &[5; 32]).unwrap(),
        )
        .unwrap();
        block_on(async {
            let users = UserRepository::new(t.db());
            users.upsert_by_login("U3", "carol", NOW).await.unwrap();
            users.upsert_by_login("U4", "dave", NOW).await.unwrap();
            // U1 and U2 gave the same account; U3 has their own and a
            // Scaleway one; U4's credential no longer opens.
            let credentials = [
                ("U1", "hetzner", "C1"),
                ("U2", "hetzner", "C2"),
                ("U3", "hetzner", "C3"),
                ("U3", "scaleway", "C4"),
                ("U4", "hetzner", "C5"),
            ];
            for (user, provider, id) in credentials {
                sam_control::credentials::store_cloud_credential(
                    t.db(),
                    &keys,
                    user,
                    provider,
                    "some-token-0000",
                    NOW,
                    id,
                    [1; 12],
                )
                .await
                .unwrap();
            }
            let overdue = t.create(NOW).await.unwrap();
            let orphan = env
                .cloud
                .stray(DEPLOYMENT, Some("01UNKNOWNNODE000000000002"), NOW - HOUR);
            let their_orphan =
                their_cloud.stray(DEPLOYMENT, Some("01UNKNOWNNODE000000000003"), NOW - HOUR);

            let report = t.sweep(NOW + BOOT_MS).await;
            assert_eq!(
                (report.nodes_due, report.nodes_destroyed),
                (1, 1),
                "{report:?}"
            );
            assert_eq!(report.accounts_checked, 2, "{report:?}");
            assert_eq!(
                (report.servers_seen, report.orphans_destroyed),
                (2, 2),
                "{report:?}"
            );
            assert_eq!(
                report.failures,
                ["credential of U4: cloud_credential_invalid"],
                "{report:?}"
            );
            assert_eq!(env.cloud.deployment_lookups(), 1);
            assert_eq!(their_cloud.deployment_lookups(), 1);
            assert_eq!(
                env.cloud.deleted(),
                [overdue.provider_server_id.clone().unwrap(), orphan]
            );
            assert_eq!(their_cloud.deleted(), [their_orphan]);
            let opened: Vec<(String, String)> = t.accounts.opened.borrow().clone();
            let expected: Vec<(String, String)> = [
                ("U1", "hetzner"), // the overdue node's delete
                ("U1", "hetzner"),
                ("U2", "hetzner"),
                ("U3", "hetzner"),
                ("U3", "scaleway"),
                ("U4", "hetzner"),
            ]
            .iter()
            .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
            .collect();
            assert_eq!(opened, expected);
            assert_eq!(t.stored(&overdue.id).await.status, "destroyed");

            // Nothing is left for the next run.
            let again = t.sweep(NOW + BOOT_MS + 1).await;
            assert_eq!(
                (again.nodes_due, again.servers_seen, again.orphans_destroyed),
                (0, 0, 0),
                "{again:?}"
            );
            assert_eq!(again.accounts_checked, 2);
        });
    }
}

// ---- the warm pool ----

/// A longer stale limit than the one a node's stored deadline was computed
/// with (a changed setting, a migrated row): the alarm ringing at the old
/// deadline finds nothing due and stores and arms the new deadline, instead
/// of re-arming the past one (which would ring again at once, forever).
#[test]
fn a_stale_stored_deadline_is_recomputed_not_rearmed() {
    let env = Env::new();
    let t = env.ctx();
    block_on(async {
        let node = t.ready_node(NOW).await;
        let old = node.deadline_at.unwrap();
        let longer = LifecycleConfig {
            heartbeat_stale_ms: STALE_MS * 10,
            ..lifecycle()
        };
        let after = run_due(
            t.db(),
            &t.accounts,
            &env.log,
            &env.timer,
            &longer,
            &node.id,
            old + 1,
        )
        .await
        .unwrap();
        assert_eq!(after.status, "ready");
        let fresh = deadline(&after.state(), &longer).unwrap();
        assert!(fresh > old + 1, "{fresh} is not ahead of {}", old + 1);
        assert_eq!(after.deadline_at, Some(fresh));
        let stored = NodeRepository::new(t.db())
            .get(&node.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.deadline_at, Some(fresh));
        assert_eq!(env.timer.latest(&node.id), Some(fresh));
    });
}

mod warm_pool {
    use super::*;

    #[test]
    fn release_makes_a_ready_node_warm_and_a_claim_takes_it_back() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let node = t.ready_node(NOW).await;
            let id = node.id.clone();
            let beat = NOW + 1_000;
            let released_at = beat + 10;

            let warm = t.release("U1", &id, "user:U1", released_at).await.unwrap();
            assert_eq!(warm.status, "warm");
            assert_eq!(warm.claimed_by, None);
            assert_eq!(warm.status_since, released_at);
            assert_eq!(warm.version, node.version + 1);
            assert_eq!(
                t.armed(&id).await.deadline_at,
                Some(beat + STALE_MS),
                "its agent's silence comes before the warm timeout"
            );
            assert_eq!(env.log.phases(&id).last(), Some(&BootPhase::Released));
            let listed = NodeRepository::new(t.db())
                .list_warm_owned("U1")
                .await
                .unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].id, id);

            // Releasing again changes nothing.
            let again = t
                .release("U1", &id, "user:U1", released_at + 1)
                .await
                .unwrap();
            assert_eq!(
                (again.status.as_str(), again.version),
                ("warm", warm.version)
            );

            // Another user has no warm node to claim.
            let err = t
                .claim("U2", "task:m", None, released_at + 5)
                .await
                .unwrap_err();
            assert_eq!((err.status(), err.code()), (409, "no_warm_node"));
            assert_eq!(t.stored(&id).await.version, warm.version);

            let claimed = t
                .claim("U1", "task:1", Some(("P1", None)), released_at + 10)
                .await
                .unwrap();
            assert_eq!(claimed.id, id);
            assert_eq!(claimed.status, "ready");
            assert_eq!(claimed.claimed_by.as_deref(), Some("task:1"));
            assert_eq!(claimed.project_id.as_deref(), Some("P1"));
            assert_eq!(claimed.warm_timeout_ms, None);
            assert_eq!(claimed.version, warm.version + 1);
            let stored = t.armed(&id).await;
            assert_eq!(
                (stored.claimed_by, stored.project_id),
                (Some("task:1".to_owned()), Some("P1".to_owned()))
            );
            assert_eq!(env.log.detail(&id, BootPhase::Claimed), "claimed by task:1");
            assert!(
                NodeRepository::new(t.db())
                    .list_warm_owned("U1")
                    .await
                    .unwrap()
                    .is_empty()
            );

            let err = t
                .claim("U1", "task:2", None, released_at + 11)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "no_warm_node");
            assert_eq!(env.cloud.create_calls.get(), 1, "a claim never creates");
        });
    }

    #[test]
    fn the_most_recently_warmed_node_is_claimed_first() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let a = t.ready_node(NOW).await.id;
            let b = t.ready_node(NOW + 1).await.id;
            t.release("U1", &b, "user:U1", NOW + 5_000).await.unwrap();
            t.release("U1", &a, "user:U1", NOW + 6_000).await.unwrap();

            let first = t.claim("U1", "task:1", None, NOW + 7_000).await.unwrap();
            assert_eq!(first.id, a, "the freshest cache first");
            let second = t.claim("U1", "task:2", None, NOW + 7_000).await.unwrap();
            assert_eq!(second.id, b);
            let err = t
                .claim("U1", "task:3", None, NOW + 7_000)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "no_warm_node");
            assert_eq!(t.armed(&a).await.claimed_by.as_deref(), Some("task:1"));
            assert_eq!(t.armed(&b).await.claimed_by.as_deref(), Some("task:2"));
        });
    }

    #[test]
    fn of_two_claims_for_one_warm_node_exactly_one_wins() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let id = t.ready_node(NOW).await.id;
            let nodes = NodeRepository::new(t.db());
            let claim = |c: &str| Event::Claim {
                claim_id: c.to_owned(),
            };
            t.release("U1", &id, "user:U1", NOW + 2_000).await.unwrap();

            // Two requests computed their claim from the same loaded state:
            // the compare-and-set write keeps the first only.
            let loaded = nodes.get(&id).await.unwrap().unwrap().state();
            let cfg = lifecycle();
            let a =
                sam_domain::lifecycle::apply(&loaded, &claim("task:a"), NOW + 3_000, &cfg).unwrap();
            let b =
                sam_domain::lifecycle::apply(&loaded, &claim("task:b"), NOW + 3_000, &cfg).unwrap();
            assert_eq!(
                (a.version, b.version),
                (loaded.version + 1, loaded.version + 1)
            );
            assert!(
                nodes
                    .save_state(&id, loaded.version, &a, deadline(&a, &cfg))
                    .await
                    .unwrap()
            );
            assert!(
                !nodes
                    .save_state(&id, loaded.version, &b, deadline(&b, &cfg))
                    .await
                    .unwrap()
            );
            // The loser applies its claim again to what was stored: refused.
            let err = advance(t.db(), t.platform(), &id, &claim("task:b"), NOW + 3_000)
                .await
                .unwrap_err();
            assert_eq!((err.status(), err.code()), (409, "node_not_claimable"));
            let stored = t.stored(&id).await;
            assert_eq!(
                (stored.status.as_str(), stored.claimed_by.as_deref()),
                ("ready", Some("task:a"))
            );
            t.release("U1", &id, "task:a", NOW + 4_000).await.unwrap();

            // The same through `advance`, twice: the first wins, the
            // second is judged against the state that won.
            let won = advance(t.db(), t.platform(), &id, &claim("task:c"), NOW + 5_000)
                .await
                .unwrap();
            assert!(won.changed());
            assert_eq!(won.node.claimed_by.as_deref(), Some("task:c"));
            let lost = advance(t.db(), t.platform(), &id, &claim("task:d"), NOW + 5_000)
                .await
                .unwrap_err();
            assert_eq!(lost.code(), "node_not_claimable");
            // The holder repeating its own claim keeps the node.
            let repeat = advance(t.db(), t.platform(), &id, &claim("task:c"), NOW + 5_001)
                .await
                .unwrap();
            assert!(!repeat.changed());
            assert_eq!(
                nodes.get(&id).await.unwrap().unwrap().claimed_by.as_deref(),
                Some("task:c")
            );
            t.release("U1", &id, "task:c", NOW + 6_000).await.unwrap();

            // And through the use case.
            let winner = t.claim("U1", "task:e", None, NOW + 7_000).await.unwrap();
            assert_eq!(
                (winner.id.as_str(), winner.status.as_str()),
                (id.as_str(), "ready")
            );
            let err = t
                .claim("U1", "task:f", None, NOW + 7_000)
                .await
                .unwrap_err();
            assert!(matches!(err, ControlError::NoWarmNode), "{err:?}");
            let stored = t.armed(&id).await;
            assert_eq!(stored.claimed_by.as_deref(), Some("task:e"));
        });
    }

    #[test]
    fn a_warm_node_whose_agent_went_silent_is_not_claimable() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let id = t.ready_node(NOW).await.id;
            let beat = NOW + 1_000;
            let warm = t.release("U1", &id, "user:U1", beat + 10).await.unwrap();
            let cfg = lifecycle();
            assert!(warm.state().is_claimable(beat + STALE_MS - 1, &cfg));
            assert!(!warm.state().is_claimable(beat + STALE_MS, &cfg));

            let err = t
                .claim("U1", "task:1", None, beat + STALE_MS)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "no_warm_node");
            let still = t.stored(&id).await;
            assert_eq!(
                (still.status.as_str(), still.version),
                ("warm", warm.version)
            );

            // Its alarm fails and destroys it.
            let gone = t.run_due(&id, beat + STALE_MS).await.unwrap();
            assert_eq!(gone.status, "destroyed");
            assert!(gone.error_message.unwrap().contains("heartbeats"));
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
            assert_eq!(
                env.log.phases(&id)[4..],
                [
                    BootPhase::HeartbeatStale,
                    BootPhase::DestroyRequested,
                    BootPhase::Destroyed
                ]
            );
        });
    }

    /// Keeps a node's agent alive with a heartbeat every minute from
    /// `from` (exclusive) up to `until` (inclusive).
    async fn beat_until(t: &Ctx<'_>, id: &str, from: i64, until: i64) {
        let mut at = from + 60_000;
        while at <= until {
            t.heartbeat(id, at).await.unwrap();
            at += 60_000;
        }
    }

    #[test]
    fn a_warm_node_is_destroyed_at_the_platform_warm_timeout_not_before() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let id = t.ready_node(NOW).await.id;
            let warmed = NOW + 2_000;
            t.release("U1", &id, "user:U1", warmed).await.unwrap();
            beat_until(&t, &id, warmed, warmed + WARM_MS - 1).await;
            let warm = t.stored(&id).await;
            assert_eq!(warm.warm_timeout_ms, None);
            assert_eq!(warm.deadline_at, Some(warmed + WARM_MS));

            // A stale alarm cannot cut its time short.
            let err = advance(
                t.db(),
                t.platform(),
                &id,
                &Event::WarmTimeoutPassed,
                warmed + WARM_MS - 1,
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), "deadline_not_reached");
            let early = t.run_due(&id, warmed + WARM_MS - 1).await.unwrap();
            assert_eq!(
                (early.status.as_str(), early.version),
                ("warm", warm.version)
            );
            assert_eq!(env.timer.latest(&id), Some(warmed + WARM_MS));
            assert!(env.cloud.deleted().is_empty());

            let gone = t.run_due(&id, warmed + WARM_MS).await.unwrap();
            assert_eq!(gone.status, "destroyed");
            assert_eq!(gone.error_message, None);
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
            assert_eq!(
                env.log.phases(&id)[3..],
                [
                    BootPhase::Released,
                    BootPhase::WarmTimeoutPassed,
                    BootPhase::Destroyed
                ]
            );
        });
    }

    #[test]
    fn a_nodes_own_warm_timeout_overrides_the_platform_default() {
        let env = Env::new();
        let t = env.ctx();
        let own = 60_000;
        block_on(async {
            let id = t.ready_node(NOW).await.id;
            t.release("U1", &id, "user:U1", NOW + 1_010).await.unwrap();
            let claimed = t
                .claim("U1", "task:1", Some(("P1", Some(own))), NOW + 1_020)
                .await
                .unwrap();
            assert_eq!(claimed.warm_timeout_ms, Some(own));
            assert_eq!(t.stored(&id).await.warm_timeout_ms, Some(own));

            let warmed = NOW + 1_030;
            let warm = t.release("U1", &id, "task:1", warmed).await.unwrap();
            assert_eq!(warm.status, "warm");
            assert_eq!(warm.deadline_at, Some(warmed + own));
            assert_ne!(
                deadline(&warm.state(), &lifecycle()),
                warm.deadline_at,
                "the platform default would give another deadline"
            );
            t.armed(&id).await;

            // A repeated claim (its answer was lost) gets the same node.
            t.claim("U1", "task:2", Some(("P1", Some(own))), warmed + 10)
                .await
                .unwrap();
            let again = t.claim("U1", "task:2", None, warmed + 15).await.unwrap();
            assert_eq!(again.id, id);
            assert_eq!(again.claimed_by.as_deref(), Some("task:2"));
            let warmed = warmed + 20;
            let warm = t.release("U1", &id, "task:2", warmed).await.unwrap();
            assert_eq!(
                (warm.project_id.as_deref(), warm.warm_timeout_ms),
                (Some("P1"), Some(own))
            );
            assert_eq!(t.armed(&id).await.deadline_at, Some(warmed + own));

            let early = t.run_due(&id, warmed + own - 1).await.unwrap();
            assert_eq!(
                (early.status.as_str(), early.version),
                ("warm", warm.version)
            );
            let gone = t.run_due(&id, warmed + own).await.unwrap();
            assert_eq!(gone.status, "destroyed");
            assert_eq!(env.cloud.deleted(), [server_id(0)]);
            assert_eq!(env.log.phases(&id).last(), Some(&BootPhase::Destroyed));
            assert!(env.log.phases(&id).contains(&BootPhase::WarmTimeoutPassed));
        });
    }

    #[test]
    fn a_project_without_its_own_timeout_brings_back_the_default() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let id = t.ready_node(NOW).await.id;
            t.release("U1", &id, "user:U1", NOW + 1_010).await.unwrap();
            t.claim("U1", "task:1", Some(("P1", Some(60_000))), NOW + 1_020)
                .await
                .unwrap();
            t.release("U1", &id, "task:1", NOW + 1_030).await.unwrap();
            let claimed = t
                .claim("U1", "task:2", Some(("P2", None)), NOW + 1_040)
                .await
                .unwrap();
            assert_eq!(
                (claimed.project_id.as_deref(), claimed.warm_timeout_ms),
                (Some("P2"), None)
            );
            let warmed = NOW + 2_000;
            t.release("U1", &id, "task:2", warmed).await.unwrap();
            beat_until(&t, &id, warmed, warmed + WARM_MS - 1).await;
            assert_eq!(t.stored(&id).await.deadline_at, Some(warmed + WARM_MS));
        });
    }

    #[test]
    fn a_release_naming_another_claim_is_refused() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let node = t.ready_node(NOW).await;
            let id = node.id.clone();
            let err = t
                .release("U1", &id, "task:9", NOW + 2_000)
                .await
                .unwrap_err();
            assert_eq!((err.status(), err.code()), (409, "claim_mismatch"));
            let held = t.stored(&id).await;
            assert_eq!(
                (
                    held.status.as_str(),
                    held.claimed_by.as_deref(),
                    held.version
                ),
                ("ready", Some("user:U1"), node.version)
            );
            assert!(!env.log.phases(&id).contains(&BootPhase::Released));

            // A late release by the previous holder cannot free the next
            // holder's node.
            t.release("U1", &id, "user:U1", NOW + 3_000).await.unwrap();
            t.claim("U1", "task:1", None, NOW + 4_000).await.unwrap();
            let err = t
                .release("U1", &id, "user:U1", NOW + 5_000)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "claim_mismatch");
            assert_eq!(t.armed(&id).await.claimed_by.as_deref(), Some("task:1"));

            // Someone else's node is not found, whatever the claim.
            let err = t
                .release("U2", &id, "task:1", NOW + 6_000)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "not_found");
            assert_eq!(t.stored(&id).await.status, "ready");
        });
    }

    #[test]
    fn a_node_released_while_booting_joins_the_warm_pool_when_its_agent_registers() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let node = t.create(NOW).await.unwrap();
            let released = t
                .release("U1", &node.id, "user:U1", NOW + 10)
                .await
                .unwrap();
            assert_eq!(
                (released.status.as_str(), released.claimed_by),
                ("booting", None)
            );
            assert_eq!(t.armed(&node.id).await.deadline_at, Some(NOW + BOOT_MS));
            assert_eq!(t.ready(&node.id, NOW + 20).await.unwrap().status, "warm");
            assert_eq!(
                t.armed(&node.id).await.deadline_at,
                Some(NOW + 20 + STALE_MS)
            );
            let claimed = t.claim("U1", "task:1", None, NOW + 30).await.unwrap();
            assert_eq!(claimed.id, node.id);
        });
    }

    /// Every change of a node's life leaves its deadline stored and its
    /// timer asked for exactly that deadline; heartbeats only move the
    /// stored deadline later.
    #[test]
    fn every_change_stores_the_next_deadline_and_arms_the_timer() {
        let env = Env::new();
        let t = env.ctx();
        block_on(async {
            let id = t.create(NOW).await.unwrap().id;
            let mut deadlines = vec![t.armed(&id).await.deadline_at];
            t.ready(&id, NOW + 1_000).await.unwrap();
            deadlines.push(t.armed(&id).await.deadline_at);
            t.heartbeat(&id, NOW + 61_000).await.unwrap();
            let beaten = t.stored(&id).await;
            assert_eq!(beaten.deadline_at, Some(NOW + 61_000 + STALE_MS));
            assert_eq!(
                env.timer.latest(&id),
                Some(NOW + 1_000 + STALE_MS),
                "a heartbeat leaves the timer alone"
            );
            t.release("U1", &id, "user:U1", NOW + 62_000).await.unwrap();
            deadlines.push(t.armed(&id).await.deadline_at);
            t.claim("U1", "task:1", Some(("P1", Some(30_000))), NOW + 63_000)
                .await
                .unwrap();
            deadlines.push(t.armed(&id).await.deadline_at);
            t.release("U1", &id, "task:1", NOW + 64_000).await.unwrap();
            let warm = t.armed(&id).await;
            assert_eq!(warm.deadline_at, Some(NOW + 94_000), "its own warm timeout");
            deadlines.push(warm.deadline_at);
            *env.cloud.scripted_delete_failures.borrow_mut() = vec![unavailable()];
            let destroying = t.stop("U1", &id, NOW + 65_000).await.unwrap();
            assert_eq!(destroying.status, "destroying");
            deadlines.push(t.armed(&id).await.deadline_at);
            let destroyed = t.run_due(&id, NOW + 65_000 + BACKOFF_MS).await.unwrap();
            assert_eq!(destroyed.status, "destroyed");
            assert_eq!(t.stored(&id).await.deadline_at, None);

            let deadlines: Vec<i64> = deadlines.into_iter().map(Option::unwrap).collect();
            assert_eq!(
                deadlines,
                [
                    NOW + BOOT_MS,
                    NOW + 1_000 + STALE_MS,
                    NOW + 61_000 + STALE_MS,
                    NOW + 61_000 + STALE_MS,
                    NOW + 94_000,
                    NOW + 65_000 + BACKOFF_MS
                ]
            );
            let calls = env.timer.calls(&id);
            for at in &deadlines {
                assert!(
                    calls.contains(at),
                    "the timer was never asked for {at}: {calls:?}"
                );
            }
            assert_eq!(
                calls.last(),
                Some(&(NOW + 65_000 + BACKOFF_MS)),
                "nothing is armed for a destroyed node"
            );
        });
    }
}
