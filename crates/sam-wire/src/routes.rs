//! The API's route table, as data.
//!
//! The Worker dispatches on [`RouteId`]; because the table is data, tests can
//! enumerate every route (for example to check that each one authenticates)
//! without a hand-maintained list drifting from the code.

/// How a route authenticates its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Public: health, JWKS, sign-in.
    Public,
    /// A signed-in, active user's session cookie.
    Session,
    /// A session of any account status (pending and suspended users can
    /// still see who they are and sign out).
    AnySession,
    /// A node callback token scoped to the `{id}` in the path.
    NodeCallback,
    /// A workspace callback token scoped to the workspace `{id}` in the path.
    WorkspaceCallback,
}

/// Every API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Health,
    Jwks,
    DevLogin,
    Logout,
    Me,
    ListNodes,
    CreateNode,
    GetNode,
    DeleteNode,
    NodeEvents,
    NodeEventStream,
    StopNode,
    ReleaseNode,
    ClaimNode,
    NodeLogs,
    NodeLogStream,
    ListWorkspaces,
    CreateWorkspace,
    GetWorkspace,
    RenameWorkspace,
    DeleteWorkspace,
    StopWorkspace,
    RestartWorkspace,
    RebuildWorkspace,
    SetWorkspacePorts,
    WorkspaceEvents,
    WorkspaceTerminalTicket,
    WorkspacePortTicket,
    WorkspaceReady,
    WorkspaceProvisioningFailed,
    WorkspaceBootLog,
    WorkspaceGitToken,
    NodeReady,
    NodeHeartbeat,
    AgentDownload,
    AdminListUsers,
    AdminUserAction,
    CreateToken,
    ListTokens,
    RevokeToken,
    TokenLogin,
    PutCloudCredential,
    ListCloudCredentials,
    DeleteCloudCredential,
    RotateVault,
    PutAgentCredential,
    ListAgentCredentials,
    DeleteAgentCredential,
    ListProjects,
    CreateProject,
    GetProject,
    UpdateProject,
    DeleteProject,
    ListProjectAgentCredentials,
    PutProjectAgentCredential,
    DeleteProjectAgentCredential,
    ListInstallations,
    ListInstallationRepositories,
    ListRepositoryBranches,
    GithubWebhook,
    SubmitTask,
    ListTasks,
    GetTask,
    CancelTask,
    ListChatSessions,
    GetChatMessages,
    ChatSessionStream,
    IngestSessionMessages,
    StartSession,
    SessionPrompt,
    SessionCancel,
    SessionStop,
    SessionPermission,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct RouteDef {
    pub id: RouteId,
    pub method: &'static str,
    /// Path with `{name}` placeholders, each matching exactly one segment.
    pub pattern: &'static str,
    pub auth: Auth,
}

const fn r(id: RouteId, method: &'static str, pattern: &'static str, auth: Auth) -> RouteDef {
    RouteDef {
        id,
        method,
        pattern,
        auth,
    }
}

/// The `api.` host's routes.
pub const API_ROUTES: &[RouteDef] = &[
    r(RouteId::Health, "GET", "/health", Auth::Public),
    r(RouteId::Jwks, "GET", "/.well-known/jwks.json", Auth::Public),
    r(
        RouteId::DevLogin,
        "POST",
        "/api/auth/dev-login",
        Auth::Public,
    ),
    r(
        RouteId::Logout,
        "POST",
        "/api/auth/logout",
        Auth::AnySession,
    ),
    r(RouteId::Me, "GET", "/api/auth/me", Auth::AnySession),
    r(RouteId::ListNodes, "GET", "/api/nodes", Auth::Session),
    r(RouteId::CreateNode, "POST", "/api/nodes", Auth::Session),
    r(RouteId::GetNode, "GET", "/api/nodes/{id}", Auth::Session),
    r(
        RouteId::DeleteNode,
        "DELETE",
        "/api/nodes/{id}",
        Auth::Session,
    ),
    r(
        RouteId::NodeEvents,
        "GET",
        "/api/nodes/{id}/events",
        Auth::Session,
    ),
    r(
        RouteId::NodeEventStream,
        "GET",
        "/api/nodes/{id}/events/ws",
        Auth::Session,
    ),
    r(
        RouteId::StopNode,
        "POST",
        "/api/nodes/{id}/stop",
        Auth::Session,
    ),
    r(
        RouteId::ReleaseNode,
        "POST",
        "/api/nodes/{id}/release",
        Auth::Session,
    ),
    r(
        RouteId::ClaimNode,
        "POST",
        "/api/nodes/claim",
        Auth::Session,
    ),
    r(
        RouteId::NodeLogs,
        "GET",
        "/api/nodes/{id}/logs",
        Auth::Session,
    ),
    r(
        RouteId::NodeLogStream,
        "GET",
        "/api/nodes/{id}/logs/stream",
        Auth::Session,
    ),
    r(
        RouteId::ListWorkspaces,
        "GET",
        "/api/workspaces",
        Auth::Session,
    ),
    r(
        RouteId::CreateWorkspace,
        "POST",
        "/api/workspaces",
        Auth::Session,
    ),
    r(
        RouteId::GetWorkspace,
        "GET",
        "/api/workspaces/{id}",
        Auth::Session,
    ),
    r(
        RouteId::RenameWorkspace,
        "PATCH",
        "/api/workspaces/{id}",
        Auth::Session,
    ),
    r(
        RouteId::DeleteWorkspace,
        "DELETE",
        "/api/workspaces/{id}",
        Auth::Session,
    ),
    r(
        RouteId::StopWorkspace,
        "POST",
        "/api/workspaces/{id}/stop",
        Auth::Session,
    ),
    r(
        RouteId::RestartWorkspace,
        "POST",
        "/api/workspaces/{id}/restart",
        Auth::Session,
    ),
    r(
        RouteId::RebuildWorkspace,
        "POST",
        "/api/workspaces/{id}/rebuild",
        Auth::Session,
    ),
    r(
        RouteId::SetWorkspacePorts,
        "POST",
        "/api/workspaces/{id}/ports",
        Auth::Session,
    ),
    r(
        RouteId::WorkspaceEvents,
        "GET",
        "/api/workspaces/{id}/events",
        Auth::Session,
    ),
    r(
        RouteId::WorkspaceTerminalTicket,
        "POST",
        "/api/workspaces/{id}/terminal-ticket",
        Auth::Session,
    ),
    r(
        RouteId::WorkspacePortTicket,
        "POST",
        "/api/workspaces/{id}/port-ticket",
        Auth::Session,
    ),
    r(
        RouteId::WorkspaceReady,
        "POST",
        "/api/workspaces/{id}/ready",
        Auth::WorkspaceCallback,
    ),
    r(
        RouteId::WorkspaceProvisioningFailed,
        "POST",
        "/api/workspaces/{id}/provisioning-failed",
        Auth::WorkspaceCallback,
    ),
    r(
        RouteId::WorkspaceBootLog,
        "POST",
        "/api/workspaces/{id}/boot-log",
        Auth::WorkspaceCallback,
    ),
    r(
        RouteId::WorkspaceGitToken,
        "POST",
        "/api/workspaces/{id}/git-token",
        Auth::WorkspaceCallback,
    ),
    r(
        RouteId::NodeReady,
        "POST",
        "/api/nodes/{id}/ready",
        Auth::NodeCallback,
    ),
    r(
        RouteId::NodeHeartbeat,
        "POST",
        "/api/nodes/{id}/heartbeat",
        Auth::NodeCallback,
    ),
    r(
        RouteId::AgentDownload,
        "GET",
        "/api/agent/download",
        Auth::Public,
    ),
    r(
        RouteId::AdminListUsers,
        "GET",
        "/api/admin/users",
        Auth::Session,
    ),
    r(
        RouteId::AdminUserAction,
        "POST",
        "/api/admin/users/{id}/{action}",
        Auth::Session,
    ),
    r(
        RouteId::CreateToken,
        "POST",
        "/api/auth/tokens",
        Auth::Session,
    ),
    r(
        RouteId::ListTokens,
        "GET",
        "/api/auth/tokens",
        Auth::Session,
    ),
    r(
        RouteId::RevokeToken,
        "DELETE",
        "/api/auth/tokens/{id}",
        Auth::Session,
    ),
    r(
        RouteId::TokenLogin,
        "POST",
        "/api/auth/token-login",
        Auth::Public,
    ),
    // `{provider}` is not a resource id: each user has their own credential per provider.
    r(
        RouteId::PutCloudCredential,
        "PUT",
        "/api/credentials/cloud/{provider}",
        Auth::Session,
    ),
    r(
        RouteId::ListCloudCredentials,
        "GET",
        "/api/credentials/cloud",
        Auth::Session,
    ),
    r(
        RouteId::DeleteCloudCredential,
        "DELETE",
        "/api/credentials/cloud/{provider}",
        Auth::Session,
    ),
    r(
        RouteId::RotateVault,
        "POST",
        "/api/admin/vault/rotate",
        Auth::Session,
    ),
    r(
        RouteId::PutAgentCredential,
        "PUT",
        "/api/credentials/agents/{agent}",
        Auth::Session,
    ),
    r(
        RouteId::ListAgentCredentials,
        "GET",
        "/api/credentials/agents",
        Auth::Session,
    ),
    r(
        RouteId::DeleteAgentCredential,
        "DELETE",
        "/api/credentials/agents/{agent}",
        Auth::Session,
    ),
    r(RouteId::ListProjects, "GET", "/api/projects", Auth::Session),
    r(
        RouteId::CreateProject,
        "POST",
        "/api/projects",
        Auth::Session,
    ),
    r(
        RouteId::GetProject,
        "GET",
        "/api/projects/{id}",
        Auth::Session,
    ),
    r(
        RouteId::UpdateProject,
        "PATCH",
        "/api/projects/{id}",
        Auth::Session,
    ),
    r(
        RouteId::DeleteProject,
        "DELETE",
        "/api/projects/{id}",
        Auth::Session,
    ),
    r(
        RouteId::ListProjectAgentCredentials,
        "GET",
        "/api/projects/{id}/agent-credentials",
        Auth::Session,
    ),
    r(
        RouteId::PutProjectAgentCredential,
        "PUT",
        "/api/projects/{id}/agent-credentials/{agent}",
        Auth::Session,
    ),
    r(
        RouteId::DeleteProjectAgentCredential,
        "DELETE",
        "/api/projects/{id}/agent-credentials/{agent}",
        Auth::Session,
    ),
    r(
        RouteId::ListInstallations,
        "GET",
        "/api/github/installations",
        Auth::Session,
    ),
    // `{id}` is GitHub's installation id; only installations linked to the caller resolve.
    r(
        RouteId::ListInstallationRepositories,
        "GET",
        "/api/github/installations/{id}/repositories",
        Auth::Session,
    ),
    r(
        RouteId::ListRepositoryBranches,
        "GET",
        "/api/github/installations/{id}/repositories/{repository}/branches",
        Auth::Session,
    ),
    // Authenticated by its `X-Hub-Signature-256` HMAC, not a session.
    r(
        RouteId::GithubWebhook,
        "POST",
        "/api/github/webhook",
        Auth::Public,
    ),
    r(
        RouteId::SubmitTask,
        "POST",
        "/api/projects/{id}/tasks",
        Auth::Session,
    ),
    r(
        RouteId::ListTasks,
        "GET",
        "/api/projects/{id}/tasks",
        Auth::Session,
    ),
    r(RouteId::GetTask, "GET", "/api/tasks/{id}", Auth::Session),
    r(
        RouteId::CancelTask,
        "POST",
        "/api/tasks/{id}/cancel",
        Auth::Session,
    ),
    r(
        RouteId::ListChatSessions,
        "GET",
        "/api/projects/{id}/sessions",
        Auth::Session,
    ),
    r(
        RouteId::GetChatMessages,
        "GET",
        "/api/projects/{id}/sessions/{session}/messages",
        Auth::Session,
    ),
    r(
        RouteId::ChatSessionStream,
        "GET",
        "/api/projects/{id}/sessions/{session}/ws",
        Auth::Session,
    ),
    r(
        RouteId::IngestSessionMessages,
        "POST",
        "/api/workspaces/{id}/sessions/{session}/messages",
        Auth::WorkspaceCallback,
    ),
    r(
        RouteId::StartSession,
        "POST",
        "/api/workspaces/{id}/sessions",
        Auth::Session,
    ),
    r(
        RouteId::SessionPrompt,
        "POST",
        "/api/projects/{id}/sessions/{session}/prompts",
        Auth::Session,
    ),
    r(
        RouteId::SessionCancel,
        "POST",
        "/api/projects/{id}/sessions/{session}/cancel",
        Auth::Session,
    ),
    r(
        RouteId::SessionStop,
        "POST",
        "/api/projects/{id}/sessions/{session}/stop",
        Auth::Session,
    ),
    r(
        RouteId::SessionPermission,
        "POST",
        "/api/projects/{id}/sessions/{session}/permissions/{request}",
        Auth::Session,
    ),
];

/// Result of matching a request against a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        id: RouteId,
        auth: Auth,
        params: Vec<String>,
    },
    /// The path exists but not with this method.
    MethodNotAllowed,
    NotFound,
}

/// Matches `method` and `path` (no query string) against `table`.
pub fn match_route(table: &[RouteDef], method: &str, path: &str) -> RouteMatch {
    let mut path_matched = false;
    for def in table {
        if let Some(params) = match_pattern(def.pattern, path) {
            if def.method.eq_ignore_ascii_case(method) {
                return RouteMatch::Found {
                    id: def.id,
                    auth: def.auth,
                    params,
                };
            }
            path_matched = true;
        }
    }
    if path_matched {
        RouteMatch::MethodNotAllowed
    } else {
        RouteMatch::NotFound
    }
}

fn match_pattern(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return None;
                }
                params.push(g.to_owned());
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_params_and_methods() {
        assert_eq!(
            match_route(API_ROUTES, "GET", "/api/nodes/ABC"),
            RouteMatch::Found {
                id: RouteId::GetNode,
                auth: Auth::Session,
                params: vec!["ABC".into()]
            }
        );
        assert_eq!(
            match_route(API_ROUTES, "PUT", "/api/nodes/ABC"),
            RouteMatch::MethodNotAllowed
        );
        for missing in [
            "/api/nodes/",
            "/api/nodes/A/B/C",
            "/nope",
            "",
            "/api/nodes//ready",
        ] {
            assert!(
                matches!(
                    match_route(API_ROUTES, "GET", missing),
                    RouteMatch::NotFound | RouteMatch::MethodNotAllowed
                ),
                "{missing}"
            );
        }
    }

    /// Every `RouteId` has a row: the match below fails to compile when a
    /// variant is added, and the assertion fails when its row is missing.
    #[test]
    fn every_route_id_is_in_the_table() {
        let all = [
            RouteId::Health,
            RouteId::Jwks,
            RouteId::DevLogin,
            RouteId::Logout,
            RouteId::Me,
            RouteId::ListNodes,
            RouteId::CreateNode,
            RouteId::GetNode,
            RouteId::DeleteNode,
            RouteId::NodeEvents,
            RouteId::NodeEventStream,
            RouteId::StopNode,
            RouteId::ReleaseNode,
            RouteId::ClaimNode,
            RouteId::NodeLogs,
            RouteId::NodeLogStream,
            RouteId::ListWorkspaces,
            RouteId::CreateWorkspace,
            RouteId::GetWorkspace,
            RouteId::RenameWorkspace,
            RouteId::DeleteWorkspace,
            RouteId::StopWorkspace,
            RouteId::RestartWorkspace,
            RouteId::RebuildWorkspace,
            RouteId::SetWorkspacePorts,
            RouteId::WorkspaceEvents,
            RouteId::WorkspaceTerminalTicket,
            RouteId::WorkspacePortTicket,
            RouteId::WorkspaceReady,
            RouteId::WorkspaceProvisioningFailed,
            RouteId::WorkspaceBootLog,
            RouteId::WorkspaceGitToken,
            RouteId::NodeReady,
            RouteId::NodeHeartbeat,
            RouteId::AgentDownload,
            RouteId::AdminListUsers,
            RouteId::AdminUserAction,
            RouteId::CreateToken,
            RouteId::ListTokens,
            RouteId::RevokeToken,
            RouteId::TokenLogin,
            RouteId::PutCloudCredential,
            RouteId::ListCloudCredentials,
            RouteId::DeleteCloudCredential,
            RouteId::RotateVault,
            RouteId::PutAgentCredential,
            RouteId::ListAgentCredentials,
            RouteId::DeleteAgentCredential,
            RouteId::ListProjects,
            RouteId::CreateProject,
            RouteId::GetProject,
            RouteId::UpdateProject,
            RouteId::DeleteProject,
            RouteId::ListProjectAgentCredentials,
            RouteId::PutProjectAgentCredential,
            RouteId::DeleteProjectAgentCredential,
            RouteId::ListInstallations,
            RouteId::ListInstallationRepositories,
            RouteId::ListRepositoryBranches,
            RouteId::GithubWebhook,
            RouteId::SubmitTask,
            RouteId::ListTasks,
            RouteId::GetTask,
            RouteId::CancelTask,
            RouteId::ListChatSessions,
            RouteId::GetChatMessages,
            RouteId::ChatSessionStream,
            RouteId::IngestSessionMessages,
            RouteId::StartSession,
            RouteId::SessionPrompt,
            RouteId::SessionCancel,
            RouteId::SessionStop,
            RouteId::SessionPermission,
        ];
        for id in all {
            match id {
                RouteId::Health
                | RouteId::Jwks
                | RouteId::DevLogin
                | RouteId::Logout
                | RouteId::Me
                | RouteId::ListNodes
                | RouteId::CreateNode
                | RouteId::GetNode
                | RouteId::DeleteNode
                | RouteId::NodeEvents
                | RouteId::NodeEventStream
                | RouteId::StopNode
                | RouteId::ReleaseNode
                | RouteId::ClaimNode
                | RouteId::NodeLogs
                | RouteId::NodeLogStream
                | RouteId::ListWorkspaces
                | RouteId::CreateWorkspace
                | RouteId::GetWorkspace
                | RouteId::RenameWorkspace
                | RouteId::DeleteWorkspace
                | RouteId::StopWorkspace
                | RouteId::RestartWorkspace
                | RouteId::RebuildWorkspace
                | RouteId::SetWorkspacePorts
                | RouteId::WorkspaceEvents
                | RouteId::WorkspaceTerminalTicket
                | RouteId::WorkspacePortTicket
                | RouteId::WorkspaceReady
                | RouteId::WorkspaceProvisioningFailed
                | RouteId::WorkspaceBootLog
                | RouteId::WorkspaceGitToken
                | RouteId::NodeReady
                | RouteId::NodeHeartbeat
                | RouteId::AgentDownload
                | RouteId::AdminListUsers
                | RouteId::AdminUserAction
                | RouteId::CreateToken
                | RouteId::ListTokens
                | RouteId::RevokeToken
                | RouteId::TokenLogin
                | RouteId::PutCloudCredential
                | RouteId::ListCloudCredentials
                | RouteId::DeleteCloudCredential
                | RouteId::RotateVault
                | RouteId::PutAgentCredential
                | RouteId::ListAgentCredentials
                | RouteId::DeleteAgentCredential
                | RouteId::ListProjects
                | RouteId::CreateProject
                | RouteId::GetProject
                | RouteId::UpdateProject
                | RouteId::DeleteProject
                | RouteId::ListProjectAgentCredentials
                | RouteId::PutProjectAgentCredential
                | RouteId::DeleteProjectAgentCredential
                | RouteId::ListInstallations
                | RouteId::ListInstallationRepositories
                | RouteId::ListRepositoryBranches
                | RouteId::GithubWebhook
                | RouteId::SubmitTask
                | RouteId::ListTasks
                | RouteId::GetTask
                | RouteId::CancelTask
                | RouteId::ListChatSessions
                | RouteId::GetChatMessages
                | RouteId::ChatSessionStream
                | RouteId::IngestSessionMessages
                | RouteId::StartSession
                | RouteId::SessionPrompt
                | RouteId::SessionCancel
                | RouteId::SessionStop
                | RouteId::SessionPermission => {}
            }
            assert!(API_ROUTES.iter().any(|r| r.id == id), "{id:?} has no route");
        }
        assert_eq!(API_ROUTES.len(), all.len());
    }

    #[test]
    fn every_route_is_reachable_and_unique() {
        for def in API_ROUTES {
            let path = def
                .pattern
                .replace("{id}", "X")
                .replace("{action}", "approve")
                .replace("{agent}", "claude-code")
                .replace("{repository}", "42")
                .replace("{session}", "S")
                .replace("{request}", "R");
            match match_route(API_ROUTES, def.method, &path) {
                RouteMatch::Found { id, .. } => assert_eq!(id, def.id, "{}", def.pattern),
                other => panic!("{} unreachable: {other:?}", def.pattern),
            }
        }
    }
}
