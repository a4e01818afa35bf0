//! `token_scope_matrix`: every kind of token the control plane mints —
//! node callback, node management, workspace callback, terminal ticket,
//! port ticket — is presented at every place a token is taken (the API's
//! node and workspace callbacks, the vm-agent's management API, a
//! workspace route and the ticket exchanges behind the Worker's ws-<id>
//! proxy). Each is accepted at its own place only; scoped to another node,
//! workspace or port it is refused there too; and once expired it is
//! refused everywhere.
//!
//! Tokens are minted with the platform's signing key (the test acts as the
//! control plane), with the real issuer, so only audience, scope and time
//! decide.

use std::time::Duration;

use sam_auth::{Audience, Grant, SigningKey};
use sam_e2e::Platform;
use sam_wire::{HeartbeatRequest, NodeMetrics, NodeView, WorkspaceView};

use crate::workspaces::{running_workspace, workspace_setup};

/// Where a token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// `POST /api/nodes/{node}/heartbeat` (bearer).
    NodeHeartbeat,
    /// `POST /api/workspaces/{ws}/git-token` (bearer).
    WorkspaceGitToken,
    /// The vm-agent's `GET /workspaces` (bearer).
    AgentManagement,
    /// `GET ws-<ws>./terminals` through the proxy (bearer).
    WorkspaceRoute,
    /// `GET ws-<ws>./session?token=` through the proxy.
    TerminalExchange,
    /// `GET ws-<ws>--<port>./?port_token=` through the proxy.
    PortExchange,
}

const PLACES: [Place; 6] = [
    Place::NodeHeartbeat,
    Place::WorkspaceGitToken,
    Place::AgentManagement,
    Place::WorkspaceRoute,
    Place::TerminalExchange,
    Place::PortExchange,
];

/// A kind of token and the place it is for.
#[derive(Debug, Clone, Copy)]
struct Kind {
    audience: Audience,
    scope: Scope,
    home: &'static [Place],
}

#[derive(Debug, Clone, Copy)]
enum Scope {
    Node,
    Workspace,
    Port,
}

const KINDS: [Kind; 5] = [
    Kind {
        audience: Audience::NodeCallback,
        scope: Scope::Node,
        home: &[Place::NodeHeartbeat],
    },
    Kind {
        audience: Audience::NodeManagement,
        scope: Scope::Node,
        home: &[Place::AgentManagement, Place::WorkspaceRoute],
    },
    Kind {
        audience: Audience::WorkspaceCallback,
        scope: Scope::Workspace,
        home: &[Place::WorkspaceGitToken],
    },
    Kind {
        audience: Audience::Terminal,
        scope: Scope::Workspace,
        home: &[Place::TerminalExchange],
    },
    Kind {
        audience: Audience::PortAccess,
        scope: Scope::Port,
        home: &[Place::PortExchange],
    },
];

/// The port the matrix's port tickets are for; nothing needs to listen
/// there, as the ticket is checked before the port is looked up.
const PORT: u16 = 4173;

struct Target {
    node: String,
    workspace: String,
    agent: String,
}

struct Matrix {
    p: Platform,
    key: SigningKey,
    http: reqwest::Client,
    target: Target,
}

impl Matrix {
    fn mint(&self, kind: &Kind, node: &str, workspace: &str, port: u16, issued_at: i64) -> String {
        let grant = match kind.scope {
            Scope::Node => Grant::node(kind.audience, node, 60),
            Scope::Workspace => Grant::workspace(kind.audience, node, workspace, 60),
            Scope::Port => Grant {
                port: Some(port),
                ..Grant::workspace(kind.audience, node, workspace, 60)
            },
        };
        self.key.issue(&self.p.issuer(), &grant, issued_at)
    }

    /// Presents `token` at `place` for the target node/workspace/port;
    /// returns the HTTP status.
    async fn present(&self, place: Place, token: &str) -> u16 {
        let t = &self.target;
        let ws_host = format!(
            "http://ws-{}.sam.localhost:{}",
            t.workspace.to_ascii_lowercase(),
            self.p.port
        );
        let request = match place {
            Place::NodeHeartbeat => self
                .http
                .post(self.p.api(&format!("/api/nodes/{}/heartbeat", t.node)))
                .bearer_auth(token)
                .json(&HeartbeatRequest {
                    agent_version: "token-scope-matrix".into(),
                    metrics: NodeMetrics::default(),
                }),
            Place::WorkspaceGitToken => self
                .http
                .post(
                    self.p
                        .api(&format!("/api/workspaces/{}/git-token", t.workspace)),
                )
                .bearer_auth(token),
            Place::AgentManagement => self
                .http
                .get(format!("{}/workspaces", t.agent))
                .bearer_auth(token),
            Place::WorkspaceRoute => self
                .http
                .get(format!("{ws_host}/terminals"))
                .bearer_auth(token),
            Place::TerminalExchange => self.http.get(format!("{ws_host}/session?token={token}")),
            Place::PortExchange => self.http.get(format!(
                "http://ws-{}--{PORT}.sam.localhost:{}/?port_token={token}",
                t.workspace.to_ascii_lowercase(),
                self.p.port
            )),
        };
        request.send().await.unwrap().status().as_u16()
    }
}

fn accepted(place: Place, status: u16) -> bool {
    match place {
        // A port ticket is accepted with a redirect that sets the cookie;
        // a terminal ticket with 204.
        Place::PortExchange => status == 303,
        _ => (200..300).contains(&status),
    }
}

#[tokio::test]
async fn token_scope_matrix() {
    let p = Platform::from_env();
    let s = workspace_setup(&p, "scope-owner").await;
    let ws = running_workspace(&p, &s, "scope-a").await;
    let other_ws: WorkspaceView = running_workspace(&p, &s, "scope-b").await;
    let node: NodeView =
        sam_e2e::get_json(&s.client, &p.app(&format!("/api/nodes/{}", s.node_id))).await;
    let agent = format!(
        "http://{}:{}",
        node.ip_address.clone().unwrap(),
        std::env::var("SAM_E2E_VM_AGENT_PORT").unwrap()
    );
    let ws_name = format!("ws-{}.sam.localhost", ws.id.to_ascii_lowercase());
    let port_name = format!("ws-{}--{PORT}.sam.localhost", ws.id.to_ascii_lowercase());
    // No cookies: each request stands on its token alone.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p.port));
    let http = reqwest::Client::builder()
        .resolve("api.sam.localhost", addr)
        .resolve(&ws_name, addr)
        .resolve(&port_name, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let m = Matrix {
        key: p.signing_key().unwrap(),
        p: p.clone(),
        http,
        target: Target {
            node: s.node_id.clone(),
            workspace: ws.id.clone(),
            agent,
        },
    };
    let now = sam_e2e::now_ms();
    // A node id that is not this one (well formed, so only scope decides).
    let other_node = "01J0000000000000000000ZZZZ";
    let mut checked = 0;
    let mut failures = Vec::new();

    for kind in &KINDS {
        for place in PLACES {
            // In scope and fresh: accepted at its home, refused elsewhere.
            let token = m.mint(kind, &s.node_id, &ws.id, PORT, now);
            let status = m.present(place, &token).await;
            let home = kind.home.contains(&place);
            checked += 1;
            if accepted(place, status) != home {
                failures.push(format!(
                    "{:?} at {place:?}: {status} (home: {home})",
                    kind.audience
                ));
            }
            if !home {
                continue;
            }
            // At its home: out of scope, or expired, it is refused.
            let mut variants = vec![
                ("another node", m.mint(kind, other_node, &ws.id, PORT, now)),
                (
                    "expired",
                    m.mint(kind, &s.node_id, &ws.id, PORT, now - 10 * 60_000),
                ),
            ];
            match kind.scope {
                Scope::Node => {}
                Scope::Workspace => variants.push((
                    "another workspace",
                    m.mint(kind, &s.node_id, &other_ws.id, PORT, now),
                )),
                Scope::Port => {
                    variants.push((
                        "another workspace",
                        m.mint(kind, &s.node_id, &other_ws.id, PORT, now),
                    ));
                    variants.push((
                        "another port",
                        m.mint(kind, &s.node_id, &ws.id, PORT + 1, now),
                    ));
                }
            }
            for (what, token) in variants {
                let status = m.present(place, &token).await;
                checked += 1;
                let expected: &[u16] = if what == "expired" {
                    &[401]
                } else {
                    &[401, 403]
                };
                if !expected.contains(&status) {
                    failures.push(format!(
                        "{:?} ({what}) at {place:?}: {status}, expected one of {expected:?}",
                        kind.audience
                    ));
                }
            }
        }
    }
    println!("token_scope_matrix: {checked} presentations checked");
    assert!(failures.is_empty(), "{failures:#?}");
}
