//! The HTTP adapter to a node's vm-agent, against a recording fake at the
//! HTTP edge.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use futures::executor::block_on;
use sam_auth::{Audience, SigningKey, Verifier};
use sam_control::agent_client::HttpNodeAgent;
use sam_control::{AgentError, NodeAgent, WorkspaceAction};
use sam_domain::lifecycle::NodeState;
use sam_providers::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use sam_store::NodeRecord;
use sam_wire::{AgentGitIdentity, AgentRepository, AgentWorkspaceRequest};

const NOW: i64 = 1_800_000_000_000;
const ISSUER: &str = "http://api.localhost:8787";
const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";

/// Answers every request with the next scripted reply and keeps them all.
struct Scripted {
    replies: RefCell<Vec<Result<HttpResponse, TransportError>>>,
    seen: RefCell<Vec<HttpRequest>>,
}

impl Scripted {
    fn new(replies: Vec<Result<HttpResponse, TransportError>>) -> Self {
        Self {
            replies: RefCell::new(replies),
            seen: RefCell::new(Vec::new()),
        }
    }
}

impl HttpClient for &Scripted {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.seen.borrow_mut().push(req);
        self.replies.borrow_mut().remove(0)
    }
}

// A scripted reply is a result: the script mixes answers with transport errors.
#[allow(clippy::unnecessary_wraps)]
fn reply(status: u16, body: &str) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    })
}

fn node(ip: Option<&str>) -> NodeRecord {
    let mut n = NodeRecord {
        id: "01JNODE0000000000000000000".into(),
        user_id: "U1".into(),
        name: "n".into(),
        provider: "hetzner".into(),
        size: "small".into(),
        location: "fsn1".into(),
        server_type: "cx23".into(),
        status: String::new(),
        version: 0,
        status_since: 0,
        deadline_at: None,
        claimed_by: None,
        project_id: None,
        warm_timeout_ms: None,
        error_message: None,
        destroy_attempts: 0,
        last_destroy_at: None,
        destroy_error: None,
        provider_server_id: None,
        ip_address: ip.map(str::to_owned),
        created_at: 0,
        agent_ready_at: None,
        agent_version: None,
        last_heartbeat_at: None,
        last_metrics: None,
        removed_at: None,
    };
    n.set_state(&NodeState::new(0, None), None);
    n
}

fn request() -> AgentWorkspaceRequest {
    AgentWorkspaceRequest {
        id: WS.into(),
        repository: AgentRepository {
            clone_url: "http://github.localhost/alice/app.git".into(),
            branch: "sam/x".into(),
            base_branch: Some("main".into()),
        },
        git_identity: AgentGitIdentity {
            name: "Alice".into(),
            email: "alice@example.com".into(),
        },
        runtime: "host".into(),
        devcontainer_config: None,
        callback_token: "cb-token".into(),
    }
}

#[test]
fn calls_carry_a_short_management_token_for_that_node_and_the_exact_body() {
    let key = SigningKey::from_seed([7; 32]);
    let http = Scripted::new(vec![
        reply(202, r#"{"workspace":{}}"#),
        reply(200, "{}"),
        reply(204, ""),
    ]);
    let agent = HttpNodeAgent {
        http: &http,
        key: &key,
        issuer: ISSUER,
        port: 8443,
        now: NOW,
    };
    let n = node(Some("127.1.0.9"));
    block_on(async {
        agent.create_workspace(&n, &request()).await.unwrap();
        agent
            .workspace_action(&n, WS, WorkspaceAction::Rebuild)
            .await
            .unwrap();
        agent.delete_workspace(&n, WS).await.unwrap();
    });
    let seen = http.seen.borrow();
    let calls: Vec<(Method, &str)> = seen.iter().map(|r| (r.method, r.url.as_str())).collect();
    assert_eq!(
        calls,
        [
            (Method::Post, "http://127.1.0.9:8443/workspaces"),
            (
                Method::Post,
                "http://127.1.0.9:8443/workspaces/01JAB3C4D5E6F7G8H9J0K1M2N3/rebuild"
            ),
            (
                Method::Delete,
                "http://127.1.0.9:8443/workspaces/01JAB3C4D5E6F7G8H9J0K1M2N3"
            ),
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(seen[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(
        body["repository"]["clone_url"],
        "http://github.localhost/alice/app.git"
    );
    assert_eq!(body["callback_token"], "cb-token");
    let verifier = Verifier::for_key(ISSUER, &key);
    for req in seen.iter() {
        let token = req
            .header("authorization")
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        let claims = verifier
            .verify(token, Audience::NodeManagement, NOW + 1_000)
            .unwrap();
        assert_eq!(claims.node, n.id);
        assert!(claims.workspace.is_none());
        assert!(claims.expires_at_ms <= NOW + 300_000, "short-lived");
        assert!(
            verifier
                .verify(token, Audience::NodeManagement, NOW + 400_000)
                .is_err(),
            "expired after minutes"
        );
    }
}

#[test]
fn replies_and_addresses_are_classified() {
    let key = SigningKey::from_seed([7; 32]);
    let http = Scripted::new(vec![
        reply(404, r#"{"code":"not_found","message":"no such workspace"}"#),
        reply(409, r#"{"code":"workspace_busy","message":"creating"}"#),
        reply(500, r#"{"code":"io_error","message":"disk"}"#),
        reply(302, ""),
        Err(TransportError::new("connection refused")),
    ]);
    let agent = HttpNodeAgent {
        http: &http,
        key: &key,
        issuer: ISSUER,
        port: 8443,
        now: NOW,
    };
    let n = node(Some("127.1.0.9"));
    block_on(async {
        let stop = || agent.workspace_action(&n, WS, WorkspaceAction::Stop);
        assert_eq!(stop().await, Err(AgentError::NotFound));
        assert!(matches!(
            stop().await,
            Err(AgentError::Refused { status: 409, ref code, .. }) if code == "workspace_busy"
        ));
        assert!(matches!(stop().await, Err(AgentError::Unreachable(m)) if m.contains("500")));
        assert!(matches!(stop().await, Err(AgentError::Unreachable(m)) if m.contains("redirect")));
        assert!(matches!(stop().await, Err(AgentError::Unreachable(m)) if m.contains("refused")));
        // No request leaves for an address that is not an IP literal, or
        // for a workspace id that is not a ULID.
        let before = http.seen.borrow().len();
        for bad in [None, Some("evil.example"), Some("127.0.0.1:99/x")] {
            assert!(matches!(
                agent.delete_workspace(&node(bad), WS).await,
                Err(AgentError::Unreachable(_))
            ));
        }
        assert_eq!(
            agent.delete_workspace(&n, "../../system-info").await,
            Err(AgentError::NotFound)
        );
        assert_eq!(http.seen.borrow().len(), before);
    });
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let key = SigningKey::from_seed([7; 32]);
    let http = Scripted::new(vec![reply(204, "")]);
    let agent = HttpNodeAgent {
        http: &http,
        key: &key,
        issuer: ISSUER,
        port: 8443,
        now: NOW,
    };
    block_on(agent.delete_workspace(&node(Some("2001:db8::1")), WS)).unwrap();
    assert_eq!(
        http.seen.borrow()[0].url,
        "http://[2001:db8::1]:8443/workspaces/01JAB3C4D5E6F7G8H9J0K1M2N3"
    );
}
