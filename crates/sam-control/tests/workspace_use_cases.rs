//! Workspace use cases on real SQLite (the repository's migrations), with
//! the node's vm-agent and the GitHub App faked at the edge: both record
//! every call and fail on demand.
//!
//! Callbacks are authenticated the way the Worker's routes do it
//! (`Verifier::authorize_workspace_callback` on the token the vm-agent was
//! given), so a test holds exactly what a vm-agent would.

#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::executor::block_on;
use sam_auth::{Audience, CallbackAuthError, Grant, SigningKey, TokenClaims, Verifier};
use sam_control::github::GithubAppClient;
use sam_control::projects::{GithubAppPort, InstallationInfo, RepositoryInfo, RepositoryToken};
use sam_control::workspace_access::{port_ticket, proxy_target};
use sam_control::workspaces::{
    WorkspaceSettings, append_workspace_event, create_workspace, delete_workspace, get_workspace,
    list_workspaces, rebuild_workspace, record_provisioning_failed, record_workspace_ready,
    rename_workspace, restart_workspace, set_ports_public, stop_workspace, workspace_events,
    workspace_git_token, workspace_view,
};
use sam_control::{AgentError, ControlError, NodeAgent, WorkspaceAction};
use sam_providers::github::GithubError;
use sam_providers::{
    GithubApp, GithubAppKey, HttpClient, HttpRequest, HttpResponse, Method, TransportError,
};
use sam_store::sqlite::Sqlite;
use sam_store::{
    NodeRecord, NodeRepository, ProjectRecord, ProjectRepository, SqlDatabase as _, UserRecord,
    UserRepository, WorkspaceRecord, WorkspaceRepository,
};
use sam_wire::{AgentWorkspaceRequest, CreateWorkspaceRequest, WorkspaceBootLogEntry};
use serde_json::json;

const NOW: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const CP: &str = "http://api.localhost:8787";

/// Alice's ready nodes, her booting one, and Mallory's ready one.
const N1: &str = "01J0000000000000000000NN01";
const N2: &str = "01J0000000000000000000NN02";
const N_BOOTING: &str = "01J0000000000000000000NN03";
const N_MALLORY: &str = "01J0000000000000000000NN04";
/// Alice's active project (installation 7, repository 42), her project
/// whose repository is gone, and Mallory's project.
const P1: &str = "01J00000000000000000000P01";
const P_MISSING: &str = "01J00000000000000000000P02";
const P_MALLORY: &str = "01J00000000000000000000P03";

// ---- fakes ----

#[derive(Debug, Clone, PartialEq)]
enum AgentCall {
    Create {
        node: String,
        req: AgentWorkspaceRequest,
    },
    Action {
        node: String,
        workspace: String,
        action: WorkspaceAction,
    },
    Delete {
        node: String,
        workspace: String,
    },
}

/// A vm-agent that records calls; answers come from `script` (in order),
/// then success.
#[derive(Default)]
struct FakeAgent {
    calls: RefCell<Vec<AgentCall>>,
    script: RefCell<Vec<Result<(), AgentError>>>,
    /// The next create fails with an error that quotes the request's
    /// callback token (as a careless transport error might).
    echo_token_on_create: Cell<bool>,
    /// During the next action, the vm-agent's own `ready` callback arrives
    /// (before the action's answer).
    ready_during_action: RefCell<Option<(Rc<Sqlite>, TokenClaims)>>,
}

impl FakeAgent {
    fn answer(&self) -> Result<(), AgentError> {
        let mut script = self.script.borrow_mut();
        if script.is_empty() {
            Ok(())
        } else {
            script.remove(0)
        }
    }

    fn fail_next(&self, error: AgentError) {
        self.script.borrow_mut().push(Err(error));
    }

    fn call_count(&self) -> usize {
        self.calls.borrow().len()
    }

    fn last(&self) -> AgentCall {
        self.calls.borrow().last().cloned().unwrap()
    }

    /// The request the workspace was created with.
    fn created(&self, workspace: &str) -> AgentWorkspaceRequest {
        self.calls
            .borrow()
            .iter()
            .find_map(|c| match c {
                AgentCall::Create { req, .. } if req.id == workspace => Some(req.clone()),
                _ => None,
            })
            .unwrap()
    }
}

impl NodeAgent for FakeAgent {
    async fn create_workspace(
        &self,
        node: &NodeRecord,
        req: &AgentWorkspaceRequest,
    ) -> Result<(), AgentError> {
        self.calls.borrow_mut().push(AgentCall::Create {
            node: node.id.clone(),
            req: req.clone(),
        });
        if self.echo_token_on_create.replace(false) {
            return Err(AgentError::Unreachable(format!(
                "timed out posting {{\"callback_token\":\"{}\"}} to 127.0.0.1:8443",
                req.callback_token
            )));
        }
        self.answer()
    }

    async fn workspace_action(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        action: WorkspaceAction,
    ) -> Result<(), AgentError> {
        self.calls.borrow_mut().push(AgentCall::Action {
            node: node.id.clone(),
            workspace: workspace_id.to_owned(),
            action,
        });
        let racing = self.ready_during_action.borrow_mut().take();
        if let Some((db, claims)) = racing {
            let ready = record_workspace_ready(&*db, &claims, NOW + 10)
                .await
                .unwrap();
            assert_eq!(ready.status, "running", "the racing ready callback");
        }
        self.answer()
    }

    async fn delete_workspace(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
    ) -> Result<(), AgentError> {
        self.calls.borrow_mut().push(AgentCall::Delete {
            node: node.id.clone(),
            workspace: workspace_id.to_owned(),
        });
        self.answer()
    }
}

/// The GitHub App: mints `ghs_repo<id>` tokens and records what it was asked.
#[derive(Default)]
struct FakeGithub {
    token_calls: RefCell<Vec<(u64, u64)>>,
    fail: RefCell<Option<GithubError>>,
}

impl GithubAppPort for FakeGithub {
    async fn installation(&self, _: u64) -> Result<InstallationInfo, GithubError> {
        Err(GithubError::NotFound)
    }
    async fn repositories(&self, _: u64) -> Result<Vec<RepositoryInfo>, GithubError> {
        Err(GithubError::NotFound)
    }
    async fn branches(&self, _: u64, _: u64) -> Result<Vec<String>, GithubError> {
        Err(GithubError::NotFound)
    }
    async fn branch_exists(&self, _: u64, _: u64, _: &str) -> Result<bool, GithubError> {
        Err(GithubError::NotFound)
    }
    async fn repository_token(
        &self,
        installation_id: u64,
        repository_id: u64,
    ) -> Result<RepositoryToken, GithubError> {
        self.token_calls
            .borrow_mut()
            .push((installation_id, repository_id));
        if let Some(e) = self.fail.borrow().clone() {
            return Err(e);
        }
        Ok(RepositoryToken {
            token: format!("ghs_repo{repository_id}"),
            expires_at: NOW + HOUR,
        })
    }
}

// ---- the world ----

fn settings() -> WorkspaceSettings {
    WorkspaceSettings {
        control_plane_url: CP.into(),
        callback_token_ttl_secs: 3600,
        base_domain: "localhost".into(),
        url_scheme: "http".into(),
        url_port: Some(8787),
    }
}

fn node(id: &str, user: &str, status: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        user_id: user.into(),
        name: id.to_ascii_lowercase(),
        provider: "hetzner".into(),
        size: "medium".into(),
        location: "fsn1".into(),
        server_type: "cx33".into(),
        status: status.into(),
        version: 3,
        status_since: NOW - HOUR,
        deadline_at: Some(NOW + HOUR),
        claimed_by: Some(format!("user:{user}")),
        project_id: None,
        warm_timeout_ms: None,
        error_message: None,
        destroy_attempts: 0,
        last_destroy_at: None,
        destroy_error: None,
        provider_server_id: Some("4242".into()),
        ip_address: Some("127.1.0.2".into()),
        created_at: NOW - HOUR,
        agent_ready_at: Some(NOW - HOUR),
        agent_version: Some("1.0".into()),
        last_heartbeat_at: None,
        last_metrics: None,
        removed_at: None,
    }
}

fn project(id: &str, user: &str, repository_id: i64, status: &str) -> ProjectRecord {
    ProjectRecord {
        id: id.into(),
        user_id: user.into(),
        name: "app".into(),
        installation_id: "7".into(),
        repository_id,
        repo_full_name: "alice/app".into(),
        repo_html_url: "https://github.com/alice/app".into(),
        default_branch: "main".into(),
        status: status.into(),
        vm_size: None,
        provider: None,
        location: None,
        agent: None,
        warm_node_timeout_ms: None,
        created_at: NOW - HOUR,
        updated_at: NOW - HOUR,
    }
}

struct World {
    db: Rc<Sqlite>,
    key: SigningKey,
    agent: FakeAgent,
    github: FakeGithub,
    settings: WorkspaceSettings,
    /// U1, with a name and an email.
    alice: UserRecord,
    /// U2, with neither.
    mallory: UserRecord,
    random: Cell<u128>,
}

impl World {
    fn new() -> Self {
        let db = Sqlite::with_repo_migrations();
        let (alice, mallory) = block_on(async {
            let users = UserRepository::new(&db);
            let mut alice = users
                .upsert_by_login("U1", "alice", NOW)
                .await
                .unwrap()
                .unwrap();
            alice.name = Some("Alice Doe".into());
            alice.email = Some("alice@example.com".into());
            let mallory = users
                .upsert_by_login("U2", "mallory", NOW)
                .await
                .unwrap()
                .unwrap();
            let nodes = NodeRepository::new(&db);
            for n in [
                node(N1, "U1", "ready"),
                node(N2, "U1", "ready"),
                node(N_BOOTING, "U1", "booting"),
                node(N_MALLORY, "U2", "ready"),
            ] {
                assert!(nodes.insert_within_quota(&n, 100).await.unwrap());
            }
            let projects = ProjectRepository::new(&db);
            for p in [
                project(P1, "U1", 42, "active"),
                project(P_MISSING, "U1", 43, "repository_missing"),
                project(P_MALLORY, "U2", 44, "active"),
            ] {
                projects.insert(&p).await.unwrap();
            }
            (alice, mallory)
        });
        Self {
            db: Rc::new(db),
            key: SigningKey::from_seed([3; 32]),
            agent: FakeAgent::default(),
            github: FakeGithub::default(),
            settings: settings(),
            alice,
            mallory,
            random: Cell::new(1),
        }
    }

    fn db(&self) -> &Sqlite {
        &self.db
    }

    async fn create_as(
        &self,
        user: &UserRecord,
        req: &CreateWorkspaceRequest,
    ) -> Result<WorkspaceRecord, ControlError> {
        let random = self.random.get();
        self.random.set(random + 1);
        create_workspace(
            self.db(),
            &self.agent,
            &self.key,
            &self.settings,
            user,
            req,
            NOW,
            random,
        )
        .await
    }

    async fn create(&self, req: &CreateWorkspaceRequest) -> Result<WorkspaceRecord, ControlError> {
        self.create_as(&self.alice, req).await
    }

    /// The callback token the vm-agent was given for `workspace`,
    /// authenticated as the Worker's route does.
    fn claims(&self, workspace: &str) -> TokenClaims {
        let token = self.agent.created(workspace).callback_token;
        self.verifier()
            .authorize_workspace_callback(Some(&format!("Bearer {token}")), workspace, NOW)
            .unwrap()
    }

    fn verifier(&self) -> Verifier {
        Verifier::for_key(CP, &self.key)
    }

    /// A workspace of Alice's on N1, reported ready.
    async fn running(&self, name: &str) -> WorkspaceRecord {
        let ws = self.create(&named(name)).await.unwrap();
        let ready = record_workspace_ready(self.db(), &self.claims(&ws.id), NOW + 1)
            .await
            .unwrap();
        assert_eq!(ready.status, "running");
        ready
    }

    async fn stored(&self, id: &str) -> WorkspaceRecord {
        WorkspaceRepository::new(self.db())
            .get(id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn set_node_status(&self, id: &str, status: &str) {
        self.db()
            .execute(
                "UPDATE nodes SET status = ? WHERE id = ?",
                &[status.into(), id.into()],
            )
            .await
            .unwrap();
    }

    async fn set_project_status(&self, id: &str, status: &str) {
        self.db()
            .execute(
                "UPDATE projects SET status = ? WHERE id = ?",
                &[status.into(), id.into()],
            )
            .await
            .unwrap();
    }
}

fn request(project: &str, node: &str) -> CreateWorkspaceRequest {
    CreateWorkspaceRequest {
        project_id: project.into(),
        node_id: node.into(),
        ..CreateWorkspaceRequest::default()
    }
}

/// Alice's project on N1, named.
fn named(name: &str) -> CreateWorkspaceRequest {
    CreateWorkspaceRequest {
        name: Some(name.into()),
        ..request(P1, N1)
    }
}

/// The HTTP status and code the API would answer with.
fn refusal<T: std::fmt::Debug>(result: Result<T, ControlError>) -> (u16, &'static str) {
    let e = result.unwrap_err();
    (e.status(), e.code())
}

fn entry(step: &str, status: &str, detail: Option<&str>) -> WorkspaceBootLogEntry {
    WorkspaceBootLogEntry {
        at: NOW + 5,
        step: step.into(),
        status: status.into(),
        detail: detail.map(str::to_owned),
    }
}

// ---- create, callbacks, the happy path ----

#[test]
fn create_then_ready_runs_with_the_exact_agent_request_and_a_scoped_token() {
    let w = World::new();
    block_on(async {
        let req = CreateWorkspaceRequest {
            branch: Some("feature/Login".into()),
            ..request(P1, N1)
        };
        let ws = w.create(&req).await.unwrap();
        assert_eq!(ws.status, "creating");
        assert_eq!(ws.name, "feature-login", "a slug of the branch");
        assert_eq!(
            (ws.branch.as_str(), ws.runtime.as_str()),
            ("feature/Login", "host")
        );
        assert_eq!((ws.user_id.as_str(), ws.node_id.as_str()), ("U1", N1));

        // The vm-agent got exactly the contract's body.
        assert_eq!(w.agent.call_count(), 1);
        let AgentCall::Create { node, req: sent } = w.agent.last() else {
            panic!("not a create");
        };
        assert_eq!(node, N1);
        let token = sent.callback_token.clone();
        assert_eq!(
            serde_json::to_value(&sent).unwrap(),
            json!({
                "id": ws.id,
                "repository": {
                    "clone_url": "https://github.com/alice/app.git",
                    "branch": "feature/Login",
                    "base_branch": "main"
                },
                "git_identity": {"name": "Alice Doe", "email": "alice@example.com"},
                "runtime": "host",
                "callback_token": token
            })
        );

        // The token opens this workspace's callbacks, on this node, and nothing else.
        let v = w.verifier();
        let claims = v
            .authorize_workspace_callback(Some(&format!("Bearer {token}")), &ws.id, NOW)
            .unwrap();
        assert_eq!(claims.node, N1);
        assert_eq!(claims.workspace.as_deref(), Some(ws.id.as_str()));
        assert_eq!(claims.aud, "workspace-callback");
        assert_eq!(claims.expires_at_ms, NOW + HOUR);
        let other = v
            .authorize_workspace_callback(
                Some(&format!("Bearer {token}")),
                "01J00000000000000000000W99",
                NOW,
            )
            .unwrap_err();
        assert_eq!(
            (other.status(), other.code()),
            (403, "token_scope_mismatch")
        );
        let as_node = v
            .authorize_node_callback(Some(&format!("Bearer {token}")), N1, NOW)
            .unwrap_err();
        assert_eq!(as_node.code(), "token_wrong_audience");
        for audience in [Audience::NodeManagement, Audience::Terminal] {
            assert!(v.verify(&token, audience, NOW).is_err());
        }

        // The creation log, in order.
        for (step, status, detail) in [
            ("clone", "started", None),
            ("clone", "done", Some("cloned main")),
            ("branch", "done", Some("created feature/Login from main")),
            ("runtime_start", "done", Some("host")),
        ] {
            append_workspace_event(w.db(), &claims, &entry(step, status, detail), NOW + 6)
                .await
                .unwrap();
        }
        let log = workspace_events(w.db(), "U1", &ws.id).await.unwrap();
        let steps: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.step.as_str(), e.status.as_str()))
            .collect();
        assert_eq!(
            steps,
            [
                ("clone", "started"),
                ("clone", "done"),
                ("branch", "done"),
                ("runtime_start", "done")
            ]
        );
        assert_eq!(log[1].detail.as_deref(), Some("cloned main"));
        assert_eq!(log[0].at, NOW + 5);

        // Git credentials while creating: the project's repository only.
        let git = workspace_git_token(w.db(), &w.github, &claims)
            .await
            .unwrap();
        assert_eq!(
            (git.token.as_str(), git.expires_at),
            ("ghs_repo42", NOW + HOUR)
        );
        assert_eq!(*w.github.token_calls.borrow(), [(7, 42)]);

        // Ready: running; a repeated ready changes nothing.
        let running = record_workspace_ready(w.db(), &claims, NOW + 100)
            .await
            .unwrap();
        assert_eq!(
            (
                running.status.as_str(),
                running.ready_at,
                running.status_since
            ),
            ("running", Some(NOW + 100), NOW + 100)
        );
        let again = record_workspace_ready(w.db(), &claims, NOW + 200)
            .await
            .unwrap();
        assert_eq!(again, running);
        assert!(
            workspace_git_token(w.db(), &w.github, &claims)
                .await
                .is_ok()
        );

        // The view.
        let view = workspace_view(&running, &w.settings);
        assert_eq!(
            view.url,
            format!("http://ws-{}.localhost:8787", ws.id.to_ascii_lowercase())
        );
        assert!(!view.ports_public);
        assert_eq!(view.status, "running");
        let listed = list_workspaces(w.db(), &w.settings, "U1").await.unwrap();
        assert_eq!(listed, [view]);
        assert!(
            list_workspaces(w.db(), &w.settings, "U2")
                .await
                .unwrap()
                .is_empty()
        );

        // Stopped: no more git credentials.
        let stopped = stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 300)
            .await
            .unwrap();
        assert_eq!(stopped.status, "stopped");
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (409, "workspace_not_active")
        );
        assert_eq!(w.github.token_calls.borrow().len(), 2);
    });
}

#[test]
fn defaults_come_from_the_project_and_the_user() {
    let w = World::new();
    block_on(async {
        let req = CreateWorkspaceRequest {
            runtime: Some("devcontainer".into()),
            devcontainer_config: Some("python".into()),
            ..request(P_MALLORY, N_MALLORY)
        };
        let ws = w.create_as(&w.mallory, &req).await.unwrap();
        assert_eq!(
            (ws.name.as_str(), ws.branch.as_str(), ws.runtime.as_str()),
            ("main", "main", "devcontainer")
        );
        let sent = w.agent.created(&ws.id);
        assert_eq!(sent.git_identity.name, "mallory");
        assert_eq!(sent.git_identity.email, "mallory@users.noreply.localhost");
        assert_eq!(sent.runtime, "devcontainer");
        assert_eq!(sent.devcontainer_config.as_deref(), Some("python"));
        assert_eq!(sent.repository.branch, "main");
        assert_eq!(sent.repository.base_branch.as_deref(), Some("main"));
        let json = serde_json::to_value(&sent).unwrap();
        assert_eq!(json["devcontainer_config"], "python");
        assert!(!format!("{sent:?}").contains(&sent.callback_token));
    });
}

#[test]
fn create_refusals_have_their_codes_and_change_nothing() {
    let w = World::new();
    block_on(async {
        let cases: Vec<(CreateWorkspaceRequest, (u16, &str))> = vec![
            // Another user's project or node, or none at all: not found.
            (request(P_MALLORY, N1), (404, "not_found")),
            (request(P1, N_MALLORY), (404, "not_found")),
            (request("nope", N1), (404, "not_found")),
            (request(P1, "nope"), (404, "not_found")),
            (request(P_MISSING, N1), (409, "project_unavailable")),
            (request(P1, N_BOOTING), (409, "node_not_ready")),
            (
                CreateWorkspaceRequest {
                    branch: Some("bad..branch".into()),
                    ..request(P1, N1)
                },
                (400, "invalid_branch"),
            ),
            (
                CreateWorkspaceRequest {
                    branch: Some("-x".into()),
                    ..request(P1, N1)
                },
                (400, "invalid_branch"),
            ),
            (named("Bad_Name"), (400, "invalid_name")),
            (named("-web"), (400, "invalid_name")),
            (named(&"a".repeat(64)), (400, "invalid_name")),
            (
                CreateWorkspaceRequest {
                    runtime: Some("qemu".into()),
                    ..request(P1, N1)
                },
                (400, "invalid_runtime"),
            ),
            (
                CreateWorkspaceRequest {
                    devcontainer_config: Some("python".into()),
                    ..request(P1, N1)
                },
                (400, "invalid_devcontainer_config"),
            ),
            (
                CreateWorkspaceRequest {
                    runtime: Some("devcontainer".into()),
                    devcontainer_config: Some("../etc".into()),
                    ..request(P1, N1)
                },
                (400, "invalid_devcontainer_config"),
            ),
        ];
        for (req, expected) in cases {
            assert_eq!(refusal(w.create(&req).await), expected, "{req:?}");
        }
        // A node that is no longer ready.
        w.set_node_status(N2, "warm").await;
        assert_eq!(
            refusal(w.create(&request(P1, N2)).await),
            (409, "node_not_ready")
        );
        assert_eq!(w.agent.call_count(), 0);
        assert!(
            list_workspaces(w.db(), &w.settings, "U1")
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn names_are_unique_per_node() {
    let w = World::new();
    block_on(async {
        let web = w.create(&named("web")).await.unwrap();
        assert_eq!(
            refusal(w.create(&named("web")).await),
            (409, "workspace_name_taken")
        );
        assert_eq!(w.agent.call_count(), 1, "a refused name reaches no agent");
        let on_n2 = CreateWorkspaceRequest {
            name: Some("web".into()),
            ..request(P1, N2)
        };
        assert_eq!(w.create(&on_n2).await.unwrap().name, "web");

        // A name made up from the branch is made unique instead.
        let first = w.create(&request(P1, N1)).await.unwrap();
        let second = w.create(&request(P1, N1)).await.unwrap();
        assert_eq!(first.name, "main");
        assert_eq!(
            second.name,
            format!("main-{}", second.id[20..].to_ascii_lowercase())
        );

        // Renames: a taken name is refused, a free one taken.
        assert_eq!(
            refusal(rename_workspace(w.db(), "U1", &second.id, "web", NOW).await),
            (409, "workspace_name_taken")
        );
        assert_eq!(
            refusal(rename_workspace(w.db(), "U1", &second.id, "No Way", NOW).await),
            (400, "invalid_name")
        );
        let renamed = rename_workspace(w.db(), "U1", &second.id, "api", NOW + 1)
            .await
            .unwrap();
        assert_eq!(renamed.name, "api");
        let same = rename_workspace(w.db(), "U1", &second.id, "api", NOW + 2)
            .await
            .unwrap();
        assert_eq!(
            same.updated_at,
            NOW + 1,
            "renaming to its own name is a no-op"
        );

        // A deleted workspace's name is free again.
        let deleted = delete_workspace(w.db(), &w.agent, "U1", &web.id, NOW + 3)
            .await
            .unwrap();
        assert_eq!(deleted.status, "deleted");
        assert_eq!(w.create(&named("web")).await.unwrap().name, "web");
        assert_eq!(
            refusal(rename_workspace(w.db(), "U1", &web.id, "old", NOW).await),
            (409, "workspace_deleted")
        );
    });
}

#[test]
fn a_failed_agent_call_fails_the_workspace_without_leaking_the_token() {
    let w = World::new();
    block_on(async {
        w.agent.echo_token_on_create.set(true);
        let err = w.create(&named("web")).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (502, "vm_agent_failed"));
        let ws = WorkspaceRepository::new(w.db())
            .list_on_node(N1)
            .await
            .unwrap()
            .pop()
            .unwrap();
        let token = w.agent.created(&ws.id).callback_token;
        assert!(!err.to_string().contains(&token), "{err}");
        let stored = w.stored(&ws.id).await;
        assert_eq!(stored.status, "error");
        let reason = stored.error_message.unwrap();
        assert!(!reason.contains(&token), "{reason}");
        assert!(reason.contains("[redacted]"), "{reason}");
        assert!(reason.contains("127.0.0.1:8443"), "{reason}");

        // It never runs: a late ready is refused; a failure report is a no-op.
        let claims = w.claims(&ws.id);
        assert_eq!(
            refusal(record_workspace_ready(w.db(), &claims, NOW + 1).await),
            (409, "invalid_transition")
        );
        let failed = record_provisioning_failed(w.db(), &claims, "clone failed", NOW + 2)
            .await
            .unwrap();
        assert_eq!(failed.error_message.as_deref(), Some(reason.as_str()));
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (409, "workspace_not_active")
        );
        assert_eq!(
            refusal(restart_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 3).await),
            (409, "invalid_transition")
        );

        // The agent's refusals keep their codes.
        for (status, code, expected) in [
            (409, "workspace_exists", (409, "workspace_exists")),
            (400, "invalid_clone_url", (400, "invalid_clone_url")),
            (400, "something_new", (400, "vm_agent_refused")),
            (401, "token_expired", (502, "vm_agent_failed")),
        ] {
            w.agent.fail_next(AgentError::Refused {
                status,
                code: code.into(),
                message: "no".into(),
            });
            let name = format!("w{status}-{}", code.len());
            assert_eq!(refusal(w.create(&named(&name)).await), expected, "{code}");
        }
    });
}

#[test]
fn provisioning_failures_and_boot_log_entries_are_cleaned() {
    let w = World::new();
    block_on(async {
        let ws = w.create(&named("web")).await.unwrap();
        let claims = w.claims(&ws.id);

        let secret = "ghs_abcdefghijklmnopqrstuvwxyz0123";
        let raw_reason = format!(
            "clone failed:\nfatal: auth {secret}\u{7}\tfailed {}",
            "x".repeat(900)
        );
        let failed = record_provisioning_failed(w.db(), &claims, &raw_reason, NOW + 1)
            .await
            .unwrap();
        assert_eq!(failed.status, "error");
        let reason = failed.error_message.unwrap();
        assert!(reason.starts_with("clone failed: fatal: auth [redacted] failed xxx"));
        assert_eq!(reason.chars().count(), 500);
        assert!(!reason.chars().any(char::is_control));
        assert!(!reason.contains(secret));
        let again = record_provisioning_failed(w.db(), &claims, "other", NOW + 2)
            .await
            .unwrap();
        assert_eq!(again.error_message.as_deref(), Some(reason.as_str()));

        // Boot log entries: steps and statuses are checked, details clipped.
        for bad in [
            entry("Clone", "started", None),
            entry("", "started", None),
            entry(&"a".repeat(41), "started", None),
            entry("clone-x", "started", None),
            entry("clone", "ok", None),
        ] {
            assert_eq!(
                refusal(append_workspace_event(w.db(), &claims, &bad, NOW).await),
                (400, "invalid_boot_log_entry"),
                "{bad:?}"
            );
        }
        let detail = format!("line\nnext {}", "d".repeat(1000));
        append_workspace_event(
            w.db(),
            &claims,
            &entry("clone", "failed", Some(&detail)),
            NOW,
        )
        .await
        .unwrap();
        // An agent clock far ahead is replaced by ours.
        let mut ahead = entry(&"a".repeat(40), "done", None);
        ahead.at = NOW + 10 * HOUR;
        append_workspace_event(w.db(), &claims, &ahead, NOW + 7)
            .await
            .unwrap();
        let log = workspace_events(w.db(), "U1", &ws.id).await.unwrap();
        assert_eq!(log.len(), 2);
        let kept = log[0].detail.as_deref().unwrap();
        assert!(kept.starts_with("line next ddd"));
        assert_eq!(kept.chars().count(), 500);
        assert_eq!(log[1].at, NOW + 7);
    });
}

#[test]
fn callbacks_need_a_token_for_that_workspace_on_its_node() {
    let w = World::new();
    block_on(async {
        let a = w.create(&named("a")).await.unwrap();
        let b = w.create(&named("b")).await.unwrap();
        let token_a = w.agent.created(&a.id).callback_token;

        // A's token on B's path: the route refuses it.
        let v = w.verifier();
        let err = v
            .authorize_workspace_callback(Some(&format!("Bearer {token_a}")), &b.id, NOW)
            .unwrap_err();
        assert_eq!(err, CallbackAuthError::ScopeMismatch);
        assert_eq!(err.status(), 403);

        // A node callback token for N1 is no workspace token.
        let node_token = w
            .key
            .issue(CP, &Grant::node(Audience::NodeCallback, N1, 3600), NOW);
        let err = v
            .authorize_workspace_callback(Some(&format!("Bearer {node_token}")), &a.id, NOW)
            .unwrap_err();
        assert_eq!(err.code(), "token_wrong_audience");

        // A validly signed token for workspace A but another node: refused
        // by the use cases themselves (defence in depth).
        let forged = w.key.issue(
            CP,
            &Grant::workspace(Audience::WorkspaceCallback, N2, &a.id, 3600),
            NOW,
        );
        let claims = v
            .authorize_workspace_callback(Some(&format!("Bearer {forged}")), &a.id, NOW)
            .unwrap();
        assert_eq!(
            refusal(record_workspace_ready(w.db(), &claims, NOW).await),
            (403, "token_scope_mismatch")
        );
        assert_eq!(
            refusal(record_provisioning_failed(w.db(), &claims, "x", NOW).await),
            (403, "token_scope_mismatch")
        );
        assert_eq!(
            refusal(
                append_workspace_event(w.db(), &claims, &entry("clone", "done", None), NOW).await
            ),
            (403, "token_scope_mismatch")
        );
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (403, "token_scope_mismatch")
        );
        // Claims of another audience handed in by mistake: refused too.
        let node_claims = v.verify(&node_token, Audience::NodeCallback, NOW).unwrap();
        assert_eq!(
            refusal(record_workspace_ready(w.db(), &node_claims, NOW).await),
            (403, "token_scope_mismatch")
        );
        assert!(w.github.token_calls.borrow().is_empty());
        assert_eq!(w.stored(&a.id).await.status, "creating");

        // A workspace that does not exist.
        let ghost = w.key.issue(
            CP,
            &Grant::workspace(
                Audience::WorkspaceCallback,
                N1,
                "01J00000000000000000000W99",
                3600,
            ),
            NOW,
        );
        let ghost = v.verify(&ghost, Audience::WorkspaceCallback, NOW).unwrap();
        assert_eq!(
            refusal(record_workspace_ready(w.db(), &ghost, NOW).await),
            (404, "not_found")
        );

        // A deleted workspace takes no more callbacks.
        delete_workspace(w.db(), &w.agent, "U1", &a.id, NOW + 1)
            .await
            .unwrap();
        let claims = w.claims(&a.id);
        assert_eq!(
            refusal(record_workspace_ready(w.db(), &claims, NOW + 2).await),
            (409, "workspace_deleted")
        );
        assert_eq!(
            refusal(record_provisioning_failed(w.db(), &claims, "x", NOW + 2).await),
            (409, "workspace_deleted")
        );
        assert_eq!(
            refusal(
                append_workspace_event(w.db(), &claims, &entry("clone", "done", None), NOW).await
            ),
            (409, "workspace_deleted")
        );
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (409, "workspace_deleted")
        );
    });
}

#[test]
fn git_tokens_need_an_active_project_github_still_reaches() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let claims = w.claims(&ws.id);

        *w.github.fail.borrow_mut() = Some(GithubError::NotFound);
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (409, "project_unavailable")
        );
        *w.github.fail.borrow_mut() = Some(GithubError::RateLimited {
            retry_after_secs: Some(5),
            reset_at: None,
        });
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (502, "github_rate_limited")
        );
        *w.github.fail.borrow_mut() = None;

        w.set_project_status(P1, "installation_missing").await;
        let calls = w.github.token_calls.borrow().len();
        assert_eq!(
            refusal(workspace_git_token(w.db(), &w.github, &claims).await),
            (409, "project_unavailable")
        );
        assert_eq!(
            w.github.token_calls.borrow().len(),
            calls,
            "GitHub not asked"
        );
        w.set_project_status(P1, "active").await;
        assert!(
            workspace_git_token(w.db(), &w.github, &claims)
                .await
                .is_ok()
        );
    });
}

// ---- the user's actions ----

#[test]
fn stop_sequences() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let stopped = stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 10)
            .await
            .unwrap();
        assert_eq!(
            (stopped.status.as_str(), stopped.status_since),
            ("stopped", NOW + 10)
        );
        assert_eq!(
            w.agent.last(),
            AgentCall::Action {
                node: N1.into(),
                workspace: ws.id.clone(),
                action: WorkspaceAction::Stop
            }
        );
        // Repeated: nothing to do, no call.
        let calls = w.agent.call_count();
        let again = stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 20)
            .await
            .unwrap();
        assert_eq!(again, stopped);
        assert_eq!(w.agent.call_count(), calls);

        // A creating workspace cannot be stopped.
        let creating = w.create(&named("new")).await.unwrap();
        assert_eq!(
            refusal(stop_workspace(w.db(), &w.agent, "U1", &creating.id, NOW).await),
            (409, "invalid_transition")
        );

        // The agent fails: the workspace stays stopping; stopping again retries.
        let api = w.running("api").await;
        w.agent
            .fail_next(AgentError::Unreachable("connection refused".into()));
        assert_eq!(
            refusal(stop_workspace(w.db(), &w.agent, "U1", &api.id, NOW + 30).await),
            (502, "vm_agent_failed")
        );
        assert_eq!(w.stored(&api.id).await.status, "stopping");
        let calls = w.agent.call_count();
        let stopped = stop_workspace(w.db(), &w.agent, "U1", &api.id, NOW + 40)
            .await
            .unwrap();
        assert_eq!(stopped.status, "stopped");
        assert_eq!(w.agent.call_count(), calls + 1);

        // An agent that does not know the workspace runs nothing of it.
        let db_ws = w.running("db").await;
        w.agent.fail_next(AgentError::NotFound);
        let stopped = stop_workspace(w.db(), &w.agent, "U1", &db_ws.id, NOW + 50)
            .await
            .unwrap();
        assert_eq!(stopped.status, "stopped");

        // On a destroyed node there is nothing to stop: no call.
        let cache = w.running("cache").await;
        w.set_node_status(N1, "destroyed").await;
        let calls = w.agent.call_count();
        let stopped = stop_workspace(w.db(), &w.agent, "U1", &cache.id, NOW + 60)
            .await
            .unwrap();
        assert_eq!(stopped.status, "stopped");
        assert_eq!(w.agent.call_count(), calls);
    });
}

#[test]
fn restart_and_rebuild_sequences() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let first_ready = ws.ready_at;
        stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 10)
            .await
            .unwrap();

        // Restart from stopped: the agent answers when done → running.
        let restarted = restart_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 20)
            .await
            .unwrap();
        assert_eq!(
            (restarted.status.as_str(), restarted.status_since),
            ("running", NOW + 20)
        );
        assert_eq!(restarted.ready_at, first_ready, "first run kept");
        assert_eq!(
            w.agent.last(),
            AgentCall::Action {
                node: N1.into(),
                workspace: ws.id.clone(),
                action: WorkspaceAction::Restart
            }
        );
        // The agent's ready callback after the answer: accepted, no change.
        let late = record_workspace_ready(w.db(), &w.claims(&ws.id), NOW + 21)
            .await
            .unwrap();
        assert_eq!(late, restarted);

        // Rebuild from running, the agent's ready arriving before its answer.
        *w.agent.ready_during_action.borrow_mut() = Some((w.db.clone(), w.claims(&ws.id)));
        let rebuilt = rebuild_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 30)
            .await
            .unwrap();
        assert_eq!(rebuilt.status, "running");
        assert_eq!(
            w.agent.last(),
            AgentCall::Action {
                node: N1.into(),
                workspace: ws.id.clone(),
                action: WorkspaceAction::Rebuild
            }
        );

        // A creating workspace cannot be restarted.
        let creating = w.create(&named("new")).await.unwrap();
        assert_eq!(
            refusal(restart_workspace(w.db(), &w.agent, "U1", &creating.id, NOW).await),
            (409, "invalid_transition")
        );

        // Not on a node that is not ready: refused before anything changes.
        w.set_node_status(N1, "destroying").await;
        let calls = w.agent.call_count();
        assert_eq!(
            refusal(rebuild_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 40).await),
            (409, "node_not_ready")
        );
        assert_eq!(w.agent.call_count(), calls);
        assert_eq!(w.stored(&ws.id).await.status, "running");
        w.set_node_status(N1, "ready").await;

        // A failed restart fails the workspace, as the vm-agent records it.
        w.agent.fail_next(AgentError::Unreachable(
            "HTTP 500 (runtime_failed): devcontainer up failed".into(),
        ));
        assert_eq!(
            refusal(restart_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 50).await),
            (502, "vm_agent_failed")
        );
        let failed = w.stored(&ws.id).await;
        assert_eq!(failed.status, "error");
        assert!(
            failed
                .error_message
                .unwrap()
                .contains("devcontainer up failed")
        );
        assert_eq!(
            refusal(rebuild_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 60).await),
            (409, "invalid_transition")
        );
    });
}

#[test]
fn delete_sequences() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let deleted = delete_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 10)
            .await
            .unwrap();
        assert_eq!(
            (deleted.status.as_str(), deleted.status_since),
            ("deleted", NOW + 10)
        );
        assert_eq!(
            w.agent.last(),
            AgentCall::Delete {
                node: N1.into(),
                workspace: ws.id.clone()
            }
        );
        let calls = w.agent.call_count();
        let again = delete_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 20)
            .await
            .unwrap();
        assert_eq!(again, deleted);
        assert_eq!(w.agent.call_count(), calls, "a repeat calls no agent");
        assert_eq!(
            get_workspace(w.db(), "U1", &ws.id).await.unwrap().status,
            "deleted"
        );
        assert!(
            list_workspaces(w.db(), &w.settings, "U1")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            refusal(stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW).await),
            (409, "workspace_deleted")
        );

        // The agent has no such workspace: it is gone.
        let api = w.running("api").await;
        w.agent.fail_next(AgentError::NotFound);
        let gone = delete_workspace(w.db(), &w.agent, "U1", &api.id, NOW + 30)
            .await
            .unwrap();
        assert_eq!(gone.status, "deleted");

        // An unreachable ready node: it stays deleting; the next delete finishes.
        let db_ws = w.running("db").await;
        w.agent
            .fail_next(AgentError::Unreachable("timed out".into()));
        assert_eq!(
            refusal(delete_workspace(w.db(), &w.agent, "U1", &db_ws.id, NOW + 40).await),
            (502, "vm_agent_failed")
        );
        assert_eq!(w.stored(&db_ws.id).await.status, "deleting");
        assert_eq!(
            refusal(stop_workspace(w.db(), &w.agent, "U1", &db_ws.id, NOW).await),
            (409, "invalid_transition")
        );
        let done = delete_workspace(w.db(), &w.agent, "U1", &db_ws.id, NOW + 50)
            .await
            .unwrap();
        assert_eq!(done.status, "deleted");

        // A delete during creation cancels it; the late ready is refused.
        let creating = w.create(&named("new")).await.unwrap();
        let claims = w.claims(&creating.id);
        assert_eq!(
            delete_workspace(w.db(), &w.agent, "U1", &creating.id, NOW + 60)
                .await
                .unwrap()
                .status,
            "deleted"
        );
        assert_eq!(
            refusal(record_workspace_ready(w.db(), &claims, NOW + 61).await),
            (409, "workspace_deleted")
        );

        // A failed workspace can be deleted.
        w.agent.fail_next(AgentError::Unreachable("down".into()));
        assert!(w.create(&named("broken")).await.is_err());
        let broken = WorkspaceRepository::new(w.db())
            .list_on_node(N1)
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.name == "broken")
            .unwrap();
        assert_eq!(broken.status, "error");
        assert_eq!(
            delete_workspace(w.db(), &w.agent, "U1", &broken.id, NOW + 70)
                .await
                .unwrap()
                .status,
            "deleted"
        );

        // On N2: an unreachable node that is being destroyed counts as gone,
        // and so does a destroyed one (without a call).
        let on_n2 = |name: &str| CreateWorkspaceRequest {
            name: Some(name.into()),
            ..request(P1, N2)
        };
        let x = w.create(&on_n2("x")).await.unwrap();
        let y = w.create(&on_n2("y")).await.unwrap();
        w.set_node_status(N2, "destroying").await;
        w.agent
            .fail_next(AgentError::Unreachable("no route".into()));
        assert_eq!(
            delete_workspace(w.db(), &w.agent, "U1", &x.id, NOW + 80)
                .await
                .unwrap()
                .status,
            "deleted"
        );
        w.set_node_status(N2, "destroyed").await;
        let calls = w.agent.call_count();
        assert_eq!(
            delete_workspace(w.db(), &w.agent, "U1", &y.id, NOW + 90)
                .await
                .unwrap()
                .status,
            "deleted"
        );
        assert_eq!(w.agent.call_count(), calls);
        // A refusal (not unreachability) is not taken for gone, even there.
        let z = {
            w.set_node_status(N2, "ready").await;
            w.create(&on_n2("z")).await.unwrap()
        };
        w.set_node_status(N2, "destroying").await;
        w.agent.fail_next(AgentError::Refused {
            status: 409,
            code: "workspace_busy".into(),
            message: "busy".into(),
        });
        assert_eq!(
            refusal(delete_workspace(w.db(), &w.agent, "U1", &z.id, NOW + 95).await),
            (409, "workspace_busy")
        );
        assert_eq!(w.stored(&z.id).await.status, "deleting");
    });
}

#[test]
fn another_users_workspace_is_not_found() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let db = w.db();
        let agent = &w.agent;
        let id = ws.id.as_str();
        let not_found = (404, "not_found");
        assert_eq!(refusal(get_workspace(db, "U2", id).await), not_found);
        assert_eq!(refusal(workspace_events(db, "U2", id).await), not_found);
        assert_eq!(
            refusal(rename_workspace(db, "U2", id, "mine", NOW).await),
            not_found
        );
        assert_eq!(
            refusal(set_ports_public(db, "U2", id, true, NOW).await),
            not_found
        );
        assert_eq!(
            refusal(stop_workspace(db, agent, "U2", id, NOW).await),
            not_found
        );
        assert_eq!(
            refusal(restart_workspace(db, agent, "U2", id, NOW).await),
            not_found
        );
        assert_eq!(
            refusal(rebuild_workspace(db, agent, "U2", id, NOW).await),
            not_found
        );
        assert_eq!(
            refusal(delete_workspace(db, agent, "U2", id, NOW).await),
            not_found
        );
        assert_eq!(w.agent.call_count(), 1, "only the create reached an agent");
        assert_eq!(w.stored(id).await, ws, "nothing changed");

        // Ids that are not ULIDs are simply not found; case does not matter.
        assert_eq!(refusal(get_workspace(db, "U1", "nope").await), not_found);
        assert_eq!(
            refusal(get_workspace(db, "U1", "../../etc/passwd").await),
            not_found
        );
        let lower = id.to_ascii_lowercase();
        assert_eq!(get_workspace(db, "U1", &lower).await.unwrap(), ws);
    });
}

#[test]
fn forwarded_ports_can_be_made_public() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let open = set_ports_public(w.db(), "U1", &ws.id, true, NOW + 1)
            .await
            .unwrap();
        assert!(workspace_view(&open, &w.settings).ports_public);
        let again = set_ports_public(w.db(), "U1", &ws.id, true, NOW + 2)
            .await
            .unwrap();
        assert!(workspace_view(&again, &w.settings).ports_public);
        let closed = set_ports_public(w.db(), "U1", &ws.id, false, NOW + 3)
            .await
            .unwrap();
        assert!(!workspace_view(&closed, &w.settings).ports_public);
        delete_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 4)
            .await
            .unwrap();
        assert_eq!(
            refusal(set_ports_public(w.db(), "U1", &ws.id, true, NOW + 5).await),
            (409, "workspace_deleted")
        );
    });
}

// ---- browser access: the ws-<id> proxy's target and port tickets ----

#[test]
fn the_proxy_reaches_only_a_running_workspace_on_its_live_node() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let target = |id: String, port: Option<u16>| {
            let w = &w;
            async move { proxy_target(w.db(), &w.key, &w.settings, 8443, &id, port, NOW + 2).await }
        };
        let lower = ws.id.to_ascii_lowercase();
        let own = target(lower.clone(), None).await.unwrap();
        assert_eq!(own.agent_url, "http://127.1.0.2:8443");
        assert_eq!(own.path_prefix, format!("/workspaces/{}", ws.id));
        assert_eq!(own.port_access, None);
        let port = target(lower.clone(), Some(5173)).await.unwrap();
        assert_eq!(
            port.url("/src/main.ts", "?v=1"),
            format!(
                "http://127.1.0.2:8443/workspaces/{}/ports/5173/src/main.ts?v=1",
                ws.id
            )
        );
        assert_eq!(
            port.port_access, None,
            "ports are private unless switched public"
        );

        // Public ports: the proxy vouches with a port-access token for
        // exactly that node, workspace and port.
        set_ports_public(w.db(), "U1", &ws.id, true, NOW + 3)
            .await
            .unwrap();
        let public = target(lower.clone(), Some(5173)).await.unwrap();
        let token = public.port_access.unwrap();
        let claims = w
            .verifier()
            .verify(&token, Audience::PublicPort, NOW + 4)
            .unwrap();
        assert_eq!(claims.node, N1);
        assert_eq!(claims.workspace.as_deref(), Some(ws.id.as_str()));
        assert_eq!(claims.port, Some(5173));
        assert!(
            w.verifier()
                .verify(&token, Audience::Terminal, NOW + 4)
                .is_err()
        );
        assert!(
            w.verifier()
                .verify(&token, Audience::PortAccess, NOW + 4)
                .is_err(),
            "the proxy's token is no ticket"
        );
        assert_eq!(target(lower.clone(), None).await.unwrap().port_access, None);

        // Unknown and malformed ids are not found; a stopped workspace or a
        // node that is not running is refused.
        assert_eq!(
            refusal(target("01J0000000000000000000XXXX".into(), None).await),
            (404, "not_found")
        );
        assert_eq!(
            refusal(target("../health".into(), None).await),
            (404, "not_found")
        );
        w.set_node_status(N1, "destroying").await;
        assert_eq!(
            refusal(target(lower.clone(), None).await),
            (409, "node_not_ready")
        );
        w.set_node_status(N1, "ready").await;
        stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 5)
            .await
            .unwrap();
        assert_eq!(
            refusal(target(lower.clone(), None).await),
            (409, "workspace_not_running")
        );
        delete_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 6)
            .await
            .unwrap();
        assert_eq!(refusal(target(lower, None).await), (404, "not_found"));
    });
}

#[test]
fn port_tickets_are_the_owners_scoped_to_one_port_and_short() {
    let w = World::new();
    block_on(async {
        let ws = w.running("web").await;
        let ticket = port_ticket(w.db(), &w.key, &w.settings, "U1", &ws.id, 3000, NOW)
            .await
            .unwrap();
        assert_eq!(ticket.expires_at, NOW + 60_000);
        assert_eq!(
            ticket.url,
            format!(
                "http://ws-{}--3000.localhost:8787/?port_token={}",
                ws.id.to_ascii_lowercase(),
                ticket.ticket
            )
        );
        let claims = w
            .verifier()
            .verify(&ticket.ticket, Audience::PortAccess, NOW + 1)
            .unwrap();
        assert_eq!(claims.port, Some(3000));
        assert_eq!(claims.workspace.as_deref(), Some(ws.id.as_str()));
        assert!(
            w.verifier()
                .verify(&ticket.ticket, Audience::PortAccess, NOW + 10 * 60_000)
                .is_err(),
            "expired"
        );
        assert!(!format!("{ticket:?}").contains(&ticket.ticket));

        assert_eq!(
            refusal(port_ticket(w.db(), &w.key, &w.settings, "U2", &ws.id, 3000, NOW).await),
            (404, "not_found")
        );
        assert_eq!(
            refusal(port_ticket(w.db(), &w.key, &w.settings, "U1", &ws.id, 0, NOW).await),
            (400, "invalid_port")
        );
        stop_workspace(w.db(), &w.agent, "U1", &ws.id, NOW + 1)
            .await
            .unwrap();
        assert_eq!(
            refusal(port_ticket(w.db(), &w.key, &w.settings, "U1", &ws.id, 3000, NOW).await),
            (409, "workspace_not_running")
        );
    });
}

// ---- the ports' own pieces ----

#[test]
fn agent_replies_are_classified() {
    assert_eq!(AgentError::from_reply(202, b"{}"), None);
    assert_eq!(
        AgentError::from_reply(404, br#"{"code":"not_found","message":"no"}"#),
        Some(AgentError::NotFound)
    );
    assert_eq!(
        AgentError::from_reply(409, br#"{"code":"workspace_busy","message":"creating"}"#),
        Some(AgentError::Refused {
            status: 409,
            code: "workspace_busy".into(),
            message: "creating".into()
        })
    );
    assert_eq!(
        AgentError::from_reply(400, b"not json"),
        Some(AgentError::Refused {
            status: 400,
            code: "http_400".into(),
            message: String::new()
        })
    );
    assert_eq!(
        AgentError::from_reply(500, br#"{"code":"storage_failed","message":"disk full"}"#),
        Some(AgentError::Unreachable(
            "HTTP 500 (storage_failed): disk full".into()
        ))
    );
    assert_eq!(
        AgentError::from_reply(502, b""),
        Some(AgentError::Unreachable("HTTP 502 (http_502)".into()))
    );
    let busy = ControlError::VmAgent(
        AgentError::from_reply(409, br#"{"code":"workspace_busy","message":"x"}"#).unwrap(),
    );
    assert_eq!((busy.status(), busy.code()), (409, "workspace_busy"));
    let gone = ControlError::VmAgent(AgentError::NotFound);
    assert_eq!((gone.status(), gone.code()), (502, "vm_agent_failed"));
}

/// Canned GitHub replies; records requests.
struct CannedHttp {
    status: u16,
    body: String,
    requests: RefCell<Vec<HttpRequest>>,
}

impl HttpClient for CannedHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.requests.borrow_mut().push(req);
        Ok(HttpResponse {
            status: self.status,
            headers: vec![],
            body: self.body.clone().into_bytes(),
        })
    }
}

fn app(http: &CannedHttp) -> GithubAppClient<&CannedHttp> {
    let key = GithubAppKey::from_pem(include_str!(
        "../../sam-providers/tests/fixtures/github_app_test_key.pkcs1.pem"
    ))
    .unwrap();
    GithubAppClient::new(
        GithubApp {
            api_url: "http://gh.test/".into(),
            app_id: 99,
            key,
        },
        http,
        NOW / 1000,
    )
}

fn canned(status: u16, body: &str) -> CannedHttp {
    CannedHttp {
        status,
        body: body.into(),
        requests: RefCell::new(Vec::new()),
    }
}

#[test]
fn the_github_app_mints_a_token_narrowed_to_one_repository() {
    block_on(async {
        let http = canned(
            201,
            r#"{"token":"ghs_narrow","expires_at":"2027-01-15T09:00:00Z","permissions":{"contents":"write"}}"#,
        );
        let client = app(&http);
        let token = client.repository_token(7, 42).await.unwrap();
        assert_eq!(token.token, "ghs_narrow");
        assert_eq!(token.expires_at, NOW + HOUR, "2027-01-15T09:00:00Z");
        assert!(!format!("{token:?}").contains("ghs_narrow"));
        let sent = http.requests.borrow().clone();
        assert_eq!(sent.len(), 1);
        let req = &sent[0];
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.url, "http://gh.test/app/installations/7/access_tokens");
        assert!(
            req.header("authorization")
                .unwrap()
                .starts_with("Bearer ey")
        );
        let body: serde_json::Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"repository_ids": [42], "permissions": {"contents": "write"}})
        );

        for (status, expected) in [
            (422, GithubError::NotFound),
            (404, GithubError::NotFound),
            (401, GithubError::BadCredentials),
        ] {
            let http = canned(status, r#"{"message":"nope"}"#);
            let client = app(&http);
            assert_eq!(client.repository_token(7, 42).await.unwrap_err(), expected);
        }
        let http = canned(201, r#"{"token":"t","expires_at":"soon"}"#);
        let client = app(&http);
        assert_eq!(
            client.repository_token(7, 42).await.unwrap_err().code(),
            "github_unexpected_response"
        );
    });
}
