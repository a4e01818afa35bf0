//! Installing the GitHub App, on the `app.` host: off to GitHub's install
//! page with a one-time state, back through the setup URL.

use sam_control::projects::{begin_installation, link_installation};
use sam_store::UserRecord;
use worker::Response;

use crate::bindings::{d1, now_ms, random_hex};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::routes::Ctx;

/// `GET /github/install`.
pub async fn start(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let app = ctx
        .config
        .github_app
        .as_ref()
        .ok_or_else(crate::github_app::unconfigured)?;
    let keys = Config::session_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let state = random_hex(32);
    begin_installation(&db, &keys, &user.id, &state, now_ms()).await?;
    let mut url = worker::Url::parse(&format!(
        "{}/apps/{}/installations/new",
        app.web_url.trim_end_matches('/'),
        app.slug
    ))
    .map_err(|e| ApiError::internal("the GitHub install URL", &e))?;
    url.query_pairs_mut().append_pair("state", &state);
    Ok(super::app::redirect(url.as_str(), None))
}

/// `GET /github/setup?installation_id&setup_action&state`: GitHub sends the
/// browser here after an install or a change of repository access.
pub async fn setup(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let url = ctx.req.url()?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty() && v.len() <= 128)
    };
    let (Some(installation), Some(state)) = (param("installation_id"), param("state")) else {
        return Err(ApiError::new(
            400,
            "install_invalid_request",
            "GitHub's redirect is incomplete; install the app again from New project",
        ));
    };
    let installation: u64 = installation.parse().map_err(|_| ApiError::not_found())?;
    let keys = Config::session_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let github = crate::github_app::from_env(&ctx.env, &ctx.config)?;
    link_installation(&db, &keys, &github, user, &state, installation, now_ms()).await?;
    Ok(super::app::redirect("/projects/new", None))
}
