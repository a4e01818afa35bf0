//! The `app.` host: server-rendered pages and static assets.

use worker::{Env, Method, Request, Response};

use crate::config::{Config, VERSION};
use crate::error::{ApiError, ApiResult};
use crate::routes::{Ctx, auth, pages};
use crate::session;

pub async fn handle(req: Request, env: Env, config: Config) -> Response {
    let mut ctx = Ctx {
        env,
        config,
        req,
        params: Vec::new(),
    };
    match route(&mut ctx).await {
        Ok(response) => response,
        Err(e) => error_page(&e),
    }
}

async fn route(ctx: &mut Ctx) -> ApiResult<Response> {
    let path = ctx.req.path();
    let method = ctx.req.method();
    if let Some(name) = path.strip_prefix("/static/") {
        return asset(name);
    }
    // Every form on these pages posts to this host; anything else is cross-site.
    let header = |name: &str| ctx.req.headers().get(name).ok().flatten();
    if !sam_domain::accounts::same_origin_request(
        method.as_ref(),
        header("origin").as_deref(),
        header("referer").as_deref(),
        &[ctx.config.app_origin.as_str()],
    ) {
        return Err(ApiError::new(
            403,
            "csrf_origin_mismatch",
            "this form must be sent from this site",
        ));
    }
    match (method, path.as_str()) {
        (Method::Get, "/") => page(ctx, pages::dashboard).await,
        (Method::Get, "/nodes") => page(ctx, pages::nodes).await,
        (Method::Get, p) if p.starts_with("/nodes/") => page(ctx, pages::node).await,
        (Method::Get, p) if p.starts_with("/workspaces/") => workspace_page(ctx).await,
        (Method::Get, "/projects/new") => page(ctx, pages::new_project).await,
        (Method::Get, "/settings") => page(ctx, pages::settings).await,
        (Method::Get, "/admin/users") => page(ctx, pages::admin_users).await,
        (Method::Get, p) if p.starts_with("/projects/") && p.ends_with("/chat") => {
            page(ctx, pages::chat).await
        }
        (Method::Get, p) if p.starts_with("/projects/") && p.ends_with("/tasks") => {
            page(ctx, pages::tasks).await
        }
        (Method::Get, p) if p.starts_with("/projects/") => page(ctx, pages::project).await,
        (Method::Get, p) if p.starts_with("/tasks/") => page(ctx, pages::task).await,
        (Method::Get, "/login") => Ok(html(
            200,
            &sam_web::render_login_page(
                ctx.config.dev_login_enabled,
                ctx.config.github.is_some(),
                VERSION,
            )
            .map_err(render_error)?,
        )),
        (Method::Get, "/auth/github") => super::github_auth::start(ctx).await,
        (Method::Get, "/auth/github/callback") => super::github_auth::callback(ctx).await,
        (Method::Get, "/pending") => pending_page(ctx).await,
        (Method::Get, "/github/install") => match signed_in(ctx).await? {
            Ok(user) => super::github_install::start(ctx, &user).await,
            Err(redirect) => Ok(redirect),
        },
        (Method::Get, "/github/setup") => match signed_in(ctx).await? {
            Ok(user) => super::github_install::setup(ctx, &user).await,
            Err(redirect) => Ok(redirect),
        },
        (Method::Post, "/login") => login(ctx).await,
        (Method::Post, "/logout") => {
            let cookie = session::destroy(&ctx.env, &ctx.req, ctx.config.secure_cookies).await?;
            Ok(redirect("/login", Some(&cookie)))
        }
        _ => Err(ApiError::new(404, "not_found", "there is no such page")),
    }
}

/// Renders a page for the signed-in, active user (others are redirected).
async fn page<F>(ctx: &Ctx, render: F) -> ApiResult<Response>
where
    F: AsyncFnOnce(&Ctx, &sam_store::UserRecord) -> ApiResult<String>,
{
    match signed_in(ctx).await? {
        Ok(user) => Ok(html(200, &render(ctx, &user).await?)),
        Err(redirect) => Ok(redirect),
    }
}

/// A workspace's page, whose CSP also allows the workspace's own origin.
async fn workspace_page(ctx: &Ctx) -> ApiResult<Response> {
    match signed_in(ctx).await? {
        Ok(user) => {
            let (body, csp) = pages::workspace(ctx, &user).await?;
            Ok(html_with_csp(200, &body, &csp))
        }
        Err(redirect) => Ok(redirect),
    }
}

/// The signed-in, active user; or where to send a browser that is not one.
async fn signed_in(ctx: &Ctx) -> ApiResult<Result<sam_store::UserRecord, Response>> {
    let Some(session) = session::current(&ctx.env, &ctx.req).await? else {
        return Ok(Err(redirect("/login", None)));
    };
    if session.user.status == "pending" {
        return Ok(Err(redirect("/pending", None)));
    }
    crate::routes::require_active(&session.user)?;
    Ok(Ok(session.user))
}

/// Shown to signed-in accounts that wait for approval.
async fn pending_page(ctx: &Ctx) -> ApiResult<Response> {
    let Some(session) = session::current(&ctx.env, &ctx.req).await? else {
        return Ok(redirect("/login", None));
    };
    if session.user.status != "pending" {
        return Ok(redirect("/", None));
    }
    Ok(html(
        200,
        &sam_web::render_pending_page(&session.user.login, VERSION).map_err(render_error)?,
    ))
}

/// `POST /login` from the sign-in form (`application/x-www-form-urlencoded`).
async fn login(ctx: &mut Ctx) -> ApiResult<Response> {
    crate::routes::reject_large_body(&ctx.req, 4 * 1024)?;
    let form = ctx
        .req
        .form_data()
        .await
        .map_err(|_| ApiError::new(400, "invalid_form", "send the sign-in form"))?;
    let login = match form.get("login") {
        Some(worker::FormEntry::Field(v)) => v,
        _ => String::new(),
    };
    let (_, cookie) = auth::sign_in(ctx, login.trim()).await?;
    Ok(redirect("/", Some(&cookie)))
}

fn asset(name: &str) -> ApiResult<Response> {
    let asset = sam_web::static_asset(name)
        .ok_or_else(|| ApiError::new(404, "not_found", "no such asset"))?;
    let mut response = Response::builder()
        .with_status(200)
        .fixed(asset.body.to_vec());
    let headers = response.headers_mut();
    let _ = headers.set("content-type", asset.content_type);
    let _ = headers.set("etag", &asset.etag);
    let _ = headers.set("cache-control", "public, max-age=31536000, immutable");
    Ok(response)
}

/// The pages' Content-Security-Policy: everything from this origin only
/// (`sam_web::workspace_csp` adds a workspace's origin to it).
const CSP: &str = "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'";

fn html(status: u16, body: &str) -> Response {
    html_with_csp(status, body, CSP)
}

fn html_with_csp(status: u16, body: &str, csp: &str) -> Response {
    let mut response = Response::builder()
        .with_status(status)
        .fixed(body.as_bytes().to_vec());
    let headers = response.headers_mut();
    let _ = headers.set("content-type", "text/html; charset=utf-8");
    let _ = headers.set("x-content-type-options", "nosniff");
    let _ = headers.set("x-frame-options", "DENY");
    let _ = headers.set("content-security-policy", csp);
    response
}

pub fn redirect(location: &str, cookie: Option<&str>) -> Response {
    let mut response = Response::builder().with_status(303).empty();
    let headers = response.headers_mut();
    let _ = headers.set("location", location);
    if let Some(cookie) = cookie {
        let _ = headers.set("set-cookie", cookie);
    }
    response
}

fn render_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("page rendering", &e)
}

fn error_page(e: &ApiError) -> Response {
    match sam_web::render_error_page(e.status, e.code, &e.message, VERSION) {
        Ok(body) => html(e.status, &body),
        Err(_) => ApiError::new(e.status, e.code, e.message.clone()).into_response(),
    }
}
