//! [`NodeAgent`] over HTTP: the control plane calling a node's vm-agent.
//!
//! Each call carries a fresh `node-management` token scoped to that node,
//! valid for minutes. The node is user territory, so nothing it answers is
//! trusted: its address must be an IP literal (no name to resolve
//! elsewhere), a redirect is a failure rather than a new destination, and
//! its reply only decides success or one of [`AgentError`]'s kinds.

use std::net::IpAddr;

use sam_auth::{Audience, Grant, SigningKey};
use sam_providers::{HttpClient, HttpRequest, Method};
use sam_store::NodeRecord;
use sam_wire::{
    AgentPrompt, AgentSessionRequest, AgentWorkspaceRequest, PublishBranchRequest, PublishedBranch,
};

use crate::ports::{AgentError, NodeAgent, SessionAgent, WorkspaceAction};

/// Lifetime of the token each call carries.
const MANAGEMENT_TOKEN_TTL_SECS: i64 = 300;

/// A node's vm-agent at `http://<node ip>:<port>`.
pub struct HttpNodeAgent<'a, H> {
    pub http: H,
    pub key: &'a SigningKey,
    /// The control plane's URL (tokens' issuer).
    pub issuer: &'a str,
    /// The vm-agent's port on every node.
    pub port: u16,
    pub now: i64,
}

impl<H: HttpClient> HttpNodeAgent<'_, H> {
    /// The vm-agent's base URL on `node`.
    fn base_url(&self, node: &NodeRecord) -> Result<String, AgentError> {
        vm_agent_url(node, self.port)
    }

    async fn call(
        &self,
        node: &NodeRecord,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(), AgentError> {
        self.call_for_body(node, method, path, body)
            .await
            .map(|_| ())
    }

    /// [`Self::call`] with a JSON body encoded from `body`.
    async fn call_json<T: serde::Serialize>(
        &self,
        node: &NodeRecord,
        path: &str,
        body: &T,
    ) -> Result<Vec<u8>, AgentError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| AgentError::Unreachable(format!("encoding the request: {e}")))?;
        self.call_for_body(node, Method::Post, path, Some(body))
            .await
    }

    /// Calls the vm-agent; a 2xx answer's body.
    async fn call_for_body(
        &self,
        node: &NodeRecord,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, AgentError> {
        let url = format!("{}{path}", self.base_url(node)?);
        let token = self.key.issue(
            self.issuer,
            &Grant::node(
                Audience::NodeManagement,
                &node.id,
                MANAGEMENT_TOKEN_TTL_SECS,
            ),
            self.now,
        );
        let mut headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let reply = self
            .http
            .send(HttpRequest {
                method,
                url,
                headers,
                body,
            })
            .await
            .map_err(|e| AgentError::Unreachable(e.to_string()))?;
        if (300..400).contains(&reply.status) {
            return Err(AgentError::Unreachable(format!(
                "the vm-agent answered with a redirect ({})",
                reply.status
            )));
        }
        match AgentError::from_reply(reply.status, &reply.body) {
            None => Ok(reply.body),
            Some(e) => Err(e),
        }
    }
}

impl<H: HttpClient> NodeAgent for HttpNodeAgent<'_, H> {
    async fn create_workspace(
        &self,
        node: &NodeRecord,
        req: &AgentWorkspaceRequest,
    ) -> Result<(), AgentError> {
        let body = serde_json::to_vec(req)
            .map_err(|e| AgentError::Unreachable(format!("encoding the request: {e}")))?;
        self.call(node, Method::Post, "/workspaces", Some(body))
            .await
    }

    async fn workspace_action(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        action: WorkspaceAction,
    ) -> Result<(), AgentError> {
        let path = format!("/workspaces/{}/{}", path_id(workspace_id)?, action.as_str());
        self.call(node, Method::Post, &path, Some(b"{}".to_vec()))
            .await
    }

    async fn delete_workspace(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
    ) -> Result<(), AgentError> {
        let path = format!("/workspaces/{}", path_id(workspace_id)?);
        self.call(node, Method::Delete, &path, None).await
    }
}

impl<H: HttpClient> SessionAgent for HttpNodeAgent<'_, H> {
    async fn start_session(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        req: &AgentSessionRequest,
    ) -> Result<(), AgentError> {
        let path = format!("/workspaces/{}/sessions", path_id(workspace_id)?);
        self.call_json(node, &path, req).await.map(|_| ())
    }

    async fn send_prompt(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
        prompt: &AgentPrompt,
    ) -> Result<(), AgentError> {
        let path = format!("{}/prompts", session_path(workspace_id, session_id)?);
        self.call_json(node, &path, prompt).await.map(|_| ())
    }

    async fn cancel_turn(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
    ) -> Result<(), AgentError> {
        let path = format!("{}/cancel", session_path(workspace_id, session_id)?);
        self.call_json(node, &path, &serde_json::json!({}))
            .await
            .map(|_| ())
    }

    async fn answer_permission(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
        request_id: &str,
        option_id: &str,
    ) -> Result<(), AgentError> {
        // Request ids are the agent's (numbers or strings): only plain
        // characters reach the URL.
        if request_id.is_empty()
            || request_id.len() > 64
            || !request_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AgentError::NotFound);
        }
        let path = format!(
            "{}/permissions/{request_id}",
            session_path(workspace_id, session_id)?
        );
        self.call_json(node, &path, &serde_json::json!({ "option_id": option_id }))
            .await
            .map(|_| ())
    }

    async fn stop_session(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        session_id: &str,
    ) -> Result<(), AgentError> {
        let path = session_path(workspace_id, session_id)?;
        self.call(node, Method::Delete, &path, None).await
    }

    async fn publish_branch(
        &self,
        node: &NodeRecord,
        workspace_id: &str,
        req: &PublishBranchRequest,
    ) -> Result<PublishedBranch, AgentError> {
        let path = format!("/workspaces/{}/git/publish", path_id(workspace_id)?);
        let body = self.call_json(node, &path, req).await?;
        serde_json::from_slice(&body).map_err(|_| {
            AgentError::Unreachable("the vm-agent's publish answer is not usable".into())
        })
    }
}

fn session_path(workspace_id: &str, session_id: &str) -> Result<String, AgentError> {
    Ok(format!(
        "/workspaces/{}/sessions/{}",
        path_id(workspace_id)?,
        path_id(session_id)?
    ))
}

/// A workspace id is a ULID: nothing in it needs escaping, and anything
/// else never reaches a URL.
/// `http://<node ip>:<port>`: the vm-agent on `node`. Only an IP literal
/// is accepted, so a node can never name a host for the control plane to
/// resolve and call.
pub fn vm_agent_url(node: &NodeRecord, port: u16) -> Result<String, AgentError> {
    let ip = node
        .ip_address
        .as_deref()
        .ok_or_else(|| AgentError::Unreachable("the node has no address yet".into()))?;
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Ok(format!("http://{v4}:{port}")),
        Ok(IpAddr::V6(v6)) => Ok(format!("http://[{v6}]:{port}")),
        Err(_) => Err(AgentError::Unreachable(
            "the node's address is not an IP address".into(),
        )),
    }
}

fn path_id(id: &str) -> Result<&str, AgentError> {
    sam_domain::ids::parse_ulid(id)
        .map(|_| id)
        .map_err(|_| AgentError::NotFound)
}
