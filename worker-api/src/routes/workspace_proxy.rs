//! The `ws-<id>.` and `ws-<id>--<port>.` hosts: HTTP and WebSocket traffic
//! forwarded to the workspace's vm-agent (docs/workspaces.md, "Browser
//! access").
//!
//! The vm-agent authorises every request itself (its workspace cookie, a
//! single-use ticket, or for a public port the port-access token added
//! here), so this adapter only decides where a request may go
//! (`sam_control::workspace_access::proxy_target`) and passes it on:
//! method, headers, a streaming body, and the answer as it comes,
//! including a WebSocket (workerd joins both sockets when the vm-agent
//! answers the upgrade with 101). Redirects are passed to the browser,
//! never followed here.

use sam_control::workspace_access::{
    PORT_ACCESS_HEADER, anonymous_refusal, forwards_path, passes_on, proxy_target,
};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use crate::bindings::{d1, now_ms};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};

pub async fn handle(
    req: Request,
    env: Env,
    config: Config,
    id: &str,
    port: Option<u16>,
) -> Response {
    forward(req, &env, &config, id, port)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn forward(
    req: Request,
    env: &Env,
    config: &Config,
    id: &str,
    port: Option<u16>,
) -> ApiResult<Response> {
    let path = req.path();
    if !forwards_path(&path, port) {
        return Err(ApiError::not_found());
    }
    // The workspace host's root is the workspace's page in the app.
    if port.is_none() && path == "/" {
        let location = format!(
            "{}/workspaces/{}",
            config.app_origin,
            id.to_ascii_uppercase()
        );
        let headers = Headers::new();
        headers.set("location", &location)?;
        return Ok(Response::empty()?.with_status(302).with_headers(headers));
    }
    let db = d1(env)?;
    let key = Config::signing_key(env)?;
    let target = proxy_target(
        &db,
        &key,
        &config.workspace_settings(),
        config.nodes.vm_agent_port,
        id,
        port,
        now_ms(),
    )
    .await
    .map_err(anonymous_refusal)?;
    let url = req.url()?;
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();

    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        if passes_on(&name) {
            headers.append(&name, &value)?;
        }
    }
    if let Some(host) = url.host_str() {
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        headers.set("x-forwarded-host", &host)?;
    }
    headers.set("x-forwarded-proto", url.scheme())?;
    if let Some(token) = &target.port_access {
        headers.set(PORT_ACCESS_HEADER, token)?;
    }

    let method = req.method();
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let upstream = Request::new_with_init(&target.url(&path, &query), &init)?;
    Fetch::Request(upstream).send().await.map_err(|e| {
        worker::console_error!("workspace proxy: the vm-agent did not answer: {e}");
        ApiError::new(
            502,
            "vm_agent_unreachable",
            "the workspace's vm-agent did not answer",
        )
    })
}
