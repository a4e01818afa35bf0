//! Request dispatch: host → surface → route table → handler.

mod admin;
mod agent;
mod agent_credentials;
mod app;
mod auth;
mod credentials;
mod github_auth;
mod github_install;
mod health;
mod nodes;
mod pages;
mod projects;
mod tasks;
mod tokens;
mod webhooks;
mod workspace_proxy;
mod workspaces;

use sam_domain::hosts::{HostKind, classify};
use sam_wire::routes::{API_ROUTES, Auth, RouteId, RouteMatch, match_route};
use worker::{Env, Request, Response};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};

/// Largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Everything a handler needs.
pub struct Ctx {
    pub env: Env,
    pub config: Config,
    pub req: Request,
    pub params: Vec<String>,
}

impl Ctx {
    /// The first path parameter (`{id}`).
    pub fn id(&self) -> &str {
        self.params.first().map_or("", String::as_str)
    }

    /// The request's query string with its `?`, or empty.
    pub fn query_string(&self) -> String {
        self.req
            .url()
            .ok()
            .and_then(|u| u.query().map(|q| format!("?{q}")))
            .unwrap_or_default()
    }

    /// Like [`Self::json`], but an empty body means `T::default()`. The
    /// content type is still required, so a cross-site form cannot post.
    pub async fn json_or_default<T: serde::de::DeserializeOwned + Default>(
        &mut self,
    ) -> ApiResult<T> {
        let declared_empty = self
            .req
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .is_some_and(|v| v.trim() == "0");
        if declared_empty {
            self.require_json_type()?;
            return Ok(T::default());
        }
        let body: Option<T> = self.json_allowing_empty().await?;
        Ok(body.unwrap_or_default())
    }

    fn require_json_type(&self) -> ApiResult<()> {
        let content_type = self
            .req
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_default();
        if content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            Ok(())
        } else {
            Err(ApiError::new(
                415,
                "unsupported_media_type",
                "send the body as application/json",
            ))
        }
    }

    async fn json_allowing_empty<T: serde::de::DeserializeOwned>(
        &mut self,
    ) -> ApiResult<Option<T>> {
        reject_large_body(&self.req, MAX_JSON_BODY)?;
        self.require_json_type()?;
        let bytes =
            self.req.bytes().await.map_err(|_| {
                ApiError::new(400, "invalid_body", "could not read the request body")
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        decode_json(&bytes).map(Some)
    }

    /// Decodes a JSON body: `application/json` only (which also means a
    /// browser cannot send it cross-site without a CORS preflight), bounded
    /// in size, unknown fields rejected by the target type.
    pub async fn json<T: serde::de::DeserializeOwned>(&mut self) -> ApiResult<T> {
        self.json_up_to(MAX_JSON_BODY).await
    }

    /// [`Self::json`] with its own size limit (the vm-agent's message
    /// deliveries carry up to a megabyte).
    pub async fn json_up_to<T: serde::de::DeserializeOwned>(
        &mut self,
        limit: usize,
    ) -> ApiResult<T> {
        reject_large_body(&self.req, limit)?;
        self.require_json_type()?;
        let bytes =
            self.req.bytes().await.map_err(|_| {
                ApiError::new(400, "invalid_body", "could not read the request body")
            })?;
        decode_json_up_to(&bytes, limit)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    decode_json_up_to(bytes, MAX_JSON_BODY)
}

fn decode_json_up_to<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: usize) -> ApiResult<T> {
    if bytes.len() > limit {
        return Err(ApiError::new(
            413,
            "body_too_large",
            format!("bodies are limited to {limit} bytes"),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("the body is not valid for this endpoint: {e}"),
        )
    })
}

/// Refuses a body whose declared length is over `limit` before reading it,
/// so an anonymous client cannot make the isolate buffer megabytes.
pub fn reject_large_body(req: &Request, limit: usize) -> ApiResult<()> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<usize>().ok());
    match declared {
        Some(len) if len > limit => Err(ApiError::new(
            413,
            "body_too_large",
            format!("bodies are limited to {limit} bytes"),
        )),
        _ => Ok(()),
    }
}

/// Who is calling, as established by the route's `Auth` before its handler runs.
pub enum Principal {
    Anonymous,
    /// A signed-in user.
    User(sam_store::UserRecord),
    /// A vm-agent, with its verified node callback token.
    Node(sam_auth::TokenClaims),
    /// A vm-agent acting for one workspace, with its verified workspace
    /// callback token.
    Workspace(sam_auth::TokenClaims),
}

pub async fn handle(req: Request, env: Env) -> Response {
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let host = req.headers().get("host").ok().flatten().unwrap_or_default();
    match classify(&host, &config.base_domain) {
        HostKind::Api => api(req, env, config).await,
        // The web app reaches the API on its own origin too, so its session
        // cookie (host-only, never shared with workspace subdomains) works.
        HostKind::App if is_api_path(&req.path()) => api(req, env, config).await,
        HostKind::App => app::handle(req, env, config).await,
        HostKind::Workspace { id } => workspace_proxy::handle(req, env, config, &id, None).await,
        HostKind::WorkspacePort { id, port } => {
            workspace_proxy::handle(req, env, config, &id, Some(port)).await
        }
        HostKind::Unknown => ApiError::new(
            404,
            "unknown_host",
            format!(
                "this server answers for api.{0} and app.{0}",
                config.base_domain
            ),
        )
        .into_response(),
    }
}

fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/health" || path.starts_with("/.well-known/")
}

async fn api(req: Request, env: Env, config: Config) -> Response {
    let path = req.path();
    let method = req.method().to_string();
    let (id, auth, params) = match match_route(API_ROUTES, &method, &path) {
        RouteMatch::Found { id, auth, params } => (id, auth, params),
        RouteMatch::MethodNotAllowed => {
            return ApiError::new(
                405,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            )
            .into_response();
        }
        RouteMatch::NotFound => {
            return ApiError::new(404, "not_found", format!("no route for {method} {path}"))
                .into_response();
        }
    };
    let mut ctx = Ctx {
        env,
        config,
        req,
        params,
    };
    let result = dispatch(id, auth, &mut ctx).await;
    result.unwrap_or_else(ApiError::into_response)
}

async fn authenticate(auth: Auth, ctx: &Ctx) -> ApiResult<Principal> {
    Ok(match auth {
        Auth::Public => Principal::Anonymous,
        Auth::Session | Auth::AnySession => {
            let session = crate::session::require(&ctx.env, &ctx.req).await?;
            if auth == Auth::Session {
                require_active(&session.user)?;
            }
            // Cookies ride along on cross-site requests; a state change must
            // come from one of our own pages (or a client that says so).
            let header = |name: &str| ctx.req.headers().get(name).ok().flatten();
            let method = ctx.req.method().to_string();
            let allowed = [
                ctx.config.app_origin.as_str(),
                ctx.config.api_origin.as_str(),
            ];
            if !sam_domain::accounts::same_origin_request(
                &method,
                header("origin").as_deref(),
                header("referer").as_deref(),
                &allowed,
            ) {
                return Err(ApiError::new(
                    403,
                    "csrf_origin_mismatch",
                    "state-changing requests must come from this site (send an Origin header)",
                ));
            }
            Principal::User(session.user)
        }
        Auth::NodeCallback => {
            // An id that is not a node id cannot name any node: 404, like any unknown resource.
            let node =
                sam_domain::ids::NodeId::parse(ctx.id()).map_err(|_| ApiError::not_found())?;
            let key = Config::signing_key(&ctx.env)?;
            let header = ctx.req.headers().get("authorization").ok().flatten();
            let claims = sam_auth::Verifier::for_key(&ctx.config.api_origin, &key)
                .authorize_node_callback(
                    header.as_deref(),
                    node.as_str(),
                    crate::bindings::now_ms(),
                )
                .map_err(|e| ApiError::new(e.status(), e.code(), e.to_string()))?;
            Principal::Node(claims)
        }
        Auth::WorkspaceCallback => {
            // An id that is not a ULID cannot name any workspace.
            let workspace =
                sam_domain::ids::parse_ulid(ctx.id()).map_err(|_| ApiError::not_found())?;
            let key = Config::signing_key(&ctx.env)?;
            let header = ctx.req.headers().get("authorization").ok().flatten();
            let claims = sam_auth::Verifier::for_key(&ctx.config.api_origin, &key)
                .authorize_workspace_callback(
                    header.as_deref(),
                    &workspace,
                    crate::bindings::now_ms(),
                )
                .map_err(|e| ApiError::new(e.status(), e.code(), e.to_string()))?;
            Principal::Workspace(claims)
        }
    })
}

/// A WebSocket upgrade opened by one of our own pages. Browsers always
/// name the page that opens a socket, and cookies ride along from any
/// same-site page (workspace hosts serve user content): only SAM's own
/// pages may open a live stream.
pub fn require_own_page_websocket(ctx: &Ctx, what: &str) -> ApiResult<()> {
    let upgrade = ctx.req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(ApiError::new(
            426,
            "websocket_required",
            "this endpoint streams over a WebSocket; send an Upgrade: websocket request",
        ));
    }
    let origin = ctx.req.headers().get("Origin")?.unwrap_or_default();
    if origin != ctx.config.app_origin && origin != ctx.config.api_origin {
        return Err(ApiError::new(
            403,
            "csrf_origin_mismatch",
            format!("{what} can only be opened from SAM's own pages"),
        ));
    }
    Ok(())
}

/// Pending and suspended accounts cannot use the platform.
pub fn require_active(user: &sam_store::UserRecord) -> ApiResult<()> {
    match sam_domain::accounts::AccountStatus::parse(&user.status) {
        Some(sam_domain::accounts::AccountStatus::Active) => Ok(()),
        Some(sam_domain::accounts::AccountStatus::Pending) => Err(ApiError::new(
            403,
            "account_pending",
            "your account is waiting for an administrator's approval",
        )),
        _ => Err(ApiError::new(
            403,
            "account_suspended",
            "your account is suspended",
        )),
    }
}

async fn dispatch(id: RouteId, auth: Auth, ctx: &mut Ctx) -> ApiResult<Response> {
    // Authentication is decided by the route table, before any handler runs;
    // each handler receives exactly the principal its route requires.
    let principal = authenticate(auth, ctx).await?;
    match (id, principal) {
        (RouteId::Health, _) => health::health(ctx).await,
        (RouteId::Jwks, _) => health::jwks(ctx),
        (RouteId::DevLogin, _) => auth::dev_login(ctx).await,
        (RouteId::Logout, _) => auth::logout(ctx).await,
        (RouteId::AgentDownload, _) => agent::download(ctx).await,
        (RouteId::Me, Principal::User(user)) => Ok(auth::me(&user)),
        (RouteId::ListNodes, Principal::User(user)) => nodes::list(ctx, &user.id).await,
        (RouteId::CreateNode, Principal::User(user)) => nodes::create(ctx, &user.id).await,
        (RouteId::GetNode, Principal::User(user)) => nodes::get(ctx, &user.id).await,
        (RouteId::DeleteNode, Principal::User(user)) => {
            nodes::end(ctx, &user.id, nodes::End::Delete).await
        }
        (RouteId::NodeEvents, Principal::User(user)) => nodes::events(ctx, &user.id).await,
        (RouteId::NodeEventStream, Principal::User(user)) => {
            nodes::event_stream(ctx, &user.id).await
        }
        (RouteId::StopNode, Principal::User(user)) => {
            nodes::end(ctx, &user.id, nodes::End::Stop).await
        }
        (RouteId::ReleaseNode, Principal::User(user)) => nodes::release(ctx, &user.id).await,
        (RouteId::ClaimNode, Principal::User(user)) => nodes::claim(ctx, &user.id).await,
        (RouteId::NodeLogs, Principal::User(user)) => nodes::agent_logs(ctx, &user.id).await,
        (RouteId::NodeLogStream, Principal::User(user)) => {
            nodes::agent_log_stream(ctx, &user.id).await
        }
        (RouteId::NodeReady, Principal::Node(claims)) => nodes::ready(ctx, &claims).await,
        (RouteId::ListWorkspaces, Principal::User(user)) => workspaces::list(ctx, &user).await,
        (RouteId::CreateWorkspace, Principal::User(user)) => workspaces::create(ctx, &user).await,
        (RouteId::GetWorkspace, Principal::User(user)) => workspaces::get(ctx, &user).await,
        (RouteId::RenameWorkspace, Principal::User(user)) => workspaces::rename(ctx, &user).await,
        (RouteId::SetWorkspacePorts, Principal::User(user)) => workspaces::ports(ctx, &user).await,
        (RouteId::StopWorkspace, Principal::User(user)) => {
            workspaces::act(ctx, &user, workspaces::Action::Stop).await
        }
        (RouteId::RestartWorkspace, Principal::User(user)) => {
            workspaces::act(ctx, &user, workspaces::Action::Restart).await
        }
        (RouteId::RebuildWorkspace, Principal::User(user)) => {
            workspaces::act(ctx, &user, workspaces::Action::Rebuild).await
        }
        (RouteId::DeleteWorkspace, Principal::User(user)) => {
            workspaces::act(ctx, &user, workspaces::Action::Delete).await
        }
        (RouteId::WorkspaceEvents, Principal::User(user)) => workspaces::events(ctx, &user).await,
        (RouteId::WorkspaceTerminalTicket, Principal::User(user)) => {
            workspaces::ticket(ctx, &user).await
        }
        (RouteId::WorkspacePortTicket, Principal::User(user)) => {
            workspaces::port_ticket(ctx, &user).await
        }
        (RouteId::WorkspaceReady, Principal::Workspace(claims)) => {
            workspaces::ready(ctx, &claims).await
        }
        (RouteId::WorkspaceProvisioningFailed, Principal::Workspace(claims)) => {
            workspaces::provisioning_failed(ctx, &claims).await
        }
        (RouteId::WorkspaceBootLog, Principal::Workspace(claims)) => {
            workspaces::boot_log(ctx, &claims).await
        }
        (RouteId::WorkspaceGitToken, Principal::Workspace(claims)) => {
            workspaces::git_token(ctx, &claims).await
        }
        (RouteId::NodeHeartbeat, Principal::Node(claims)) => nodes::heartbeat(ctx, &claims).await,
        (RouteId::AdminListUsers, Principal::User(user)) => admin::list_users(ctx, &user).await,
        (RouteId::CreateToken, Principal::User(user)) => tokens::create(ctx, &user).await,
        (RouteId::ListTokens, Principal::User(user)) => tokens::list(ctx, &user).await,
        (RouteId::RevokeToken, Principal::User(user)) => tokens::revoke(ctx, &user).await,
        (RouteId::TokenLogin, _) => tokens::login(ctx).await,
        (RouteId::PutCloudCredential, Principal::User(user)) => credentials::put(ctx, &user).await,
        (RouteId::ListCloudCredentials, Principal::User(user)) => {
            credentials::list(ctx, &user).await
        }
        (RouteId::DeleteCloudCredential, Principal::User(user)) => {
            credentials::delete(ctx, &user).await
        }
        (RouteId::RotateVault, Principal::User(user)) => credentials::rotate(ctx, &user).await,
        (RouteId::AdminUserAction, Principal::User(user)) => admin::user_action(ctx, &user).await,
        (RouteId::ListProjects, Principal::User(user)) => projects::list(ctx, &user).await,
        (RouteId::CreateProject, Principal::User(user)) => projects::create(ctx, &user).await,
        (RouteId::GetProject, Principal::User(user)) => projects::get(ctx, &user).await,
        (RouteId::UpdateProject, Principal::User(user)) => projects::update(ctx, &user).await,
        (RouteId::DeleteProject, Principal::User(user)) => projects::delete(ctx, &user).await,
        (RouteId::ListInstallations, Principal::User(user)) => {
            projects::installations(ctx, &user).await
        }
        (RouteId::ListInstallationRepositories, Principal::User(user)) => {
            projects::repositories(ctx, &user).await
        }
        (RouteId::ListRepositoryBranches, Principal::User(user)) => {
            projects::branches(ctx, &user).await
        }
        (RouteId::GithubWebhook, _) => webhooks::github(ctx).await,
        (RouteId::PutAgentCredential, Principal::User(user)) => {
            agent_credentials::put(ctx, &user, None).await
        }
        (RouteId::ListAgentCredentials, Principal::User(user)) => {
            agent_credentials::list(ctx, &user).await
        }
        (RouteId::DeleteAgentCredential, Principal::User(user)) => {
            agent_credentials::delete(ctx, &user, None).await
        }
        (RouteId::ListProjectAgentCredentials, Principal::User(user)) => {
            agent_credentials::list_for_project(ctx, &user).await
        }
        (RouteId::PutProjectAgentCredential, Principal::User(user)) => {
            let project = ctx.id().to_owned();
            agent_credentials::put(ctx, &user, Some(&project)).await
        }
        (RouteId::DeleteProjectAgentCredential, Principal::User(user)) => {
            let project = ctx.id().to_owned();
            agent_credentials::delete(ctx, &user, Some(&project)).await
        }
        (RouteId::SubmitTask, Principal::User(user)) => tasks::submit(ctx, &user).await,
        (RouteId::ListTasks, Principal::User(user)) => tasks::list(ctx, &user).await,
        (RouteId::GetTask, Principal::User(user)) => tasks::get(ctx, &user).await,
        (RouteId::CancelTask, Principal::User(user)) => tasks::cancel(ctx, &user).await,
        (RouteId::ListChatSessions, Principal::User(user)) => tasks::sessions(ctx, &user).await,
        (RouteId::GetChatMessages, Principal::User(user)) => tasks::messages(ctx, &user).await,
        (RouteId::ChatSessionStream, Principal::User(user)) => tasks::stream(ctx, &user).await,
        (RouteId::IngestSessionMessages, Principal::Workspace(claims)) => {
            tasks::ingest(ctx, &claims).await
        }
        (RouteId::StartSession, Principal::User(user)) => tasks::start_session(ctx, &user).await,
        (RouteId::SessionPrompt, Principal::User(user)) => {
            tasks::command(ctx, &user, tasks::Command::Prompt).await
        }
        (RouteId::SessionCancel, Principal::User(user)) => {
            tasks::command(ctx, &user, tasks::Command::Cancel).await
        }
        (RouteId::SessionStop, Principal::User(user)) => {
            tasks::command(ctx, &user, tasks::Command::Stop).await
        }
        (RouteId::SessionPermission, Principal::User(user)) => {
            tasks::command(ctx, &user, tasks::Command::Permission).await
        }
        // The route table pairs each route with its principal; a mismatch is
        // a bug in that table, never something a client can cause.
        _ => Err(ApiError::unauthenticated()),
    }
}
