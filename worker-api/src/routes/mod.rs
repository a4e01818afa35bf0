//! Request dispatch: host → surface → route table → handler.

mod agent;
mod app;
mod auth;
mod health;
mod nodes;

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

    /// Decodes a JSON body: `application/json` only (which also means a
    /// browser cannot send it cross-site without a CORS preflight), bounded
    /// in size, unknown fields rejected by the target type.
    pub async fn json<T: serde::de::DeserializeOwned>(&mut self) -> ApiResult<T> {
        let content_type = self
            .req
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_default();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes =
            self.req.bytes().await.map_err(|_| {
                ApiError::new(400, "invalid_body", "could not read the request body")
            })?;
        if bytes.len() > MAX_JSON_BODY {
            return Err(ApiError::new(
                413,
                "body_too_large",
                format!("bodies are limited to {MAX_JSON_BODY} bytes"),
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                400,
                "invalid_json",
                format!("the body is not valid for this endpoint: {e}"),
            )
        })
    }
}

pub async fn handle(req: Request, env: Env) -> Response {
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let host = req.headers().get("host").ok().flatten().unwrap_or_default();
    match classify(&host, &config.base_domain) {
        HostKind::Api => api(req, env, config).await,
        HostKind::App => app::handle(req, env, config).await,
        HostKind::Workspace { .. } | HostKind::WorkspacePort { .. } => {
            ApiError::new(404, "workspace_not_found", "no such workspace").into_response()
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

async fn dispatch(id: RouteId, auth: Auth, ctx: &mut Ctx) -> ApiResult<Response> {
    // Authentication is decided by the route table, before any handler runs.
    let user = match auth {
        Auth::Session => Some(crate::session::require_user(&ctx.env, &ctx.req).await?),
        Auth::Public | Auth::NodeCallback => None,
    };
    let user = user.as_deref().unwrap_or_default();
    match id {
        RouteId::Health => health::health(ctx).await,
        RouteId::Jwks => health::jwks(ctx),
        RouteId::DevLogin => auth::dev_login(ctx).await,
        RouteId::Logout => auth::logout(ctx).await,
        RouteId::Me => auth::me(ctx, user).await,
        RouteId::ListNodes => nodes::list(ctx, user).await,
        RouteId::CreateNode => nodes::create(ctx, user).await,
        RouteId::GetNode => nodes::get(ctx, user).await,
        RouteId::DeleteNode => nodes::delete(ctx, user).await,
        RouteId::NodeEvents => nodes::events(ctx, user).await,
        RouteId::NodeReady => nodes::ready(ctx).await,
        RouteId::NodeHeartbeat => nodes::heartbeat(ctx).await,
        RouteId::AgentDownload => agent::download(ctx).await,
    }
}
