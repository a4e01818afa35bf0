//! The SAM API Worker.
//!
//! One wasm module serves every hostname under `BASE_DOMAIN`: `api.` (JSON
//! API), `app.` (server-rendered pages) and, later, the `ws-<id>.` workspace
//! proxy. It also exports the Durable Object classes linked in from
//! `sam-durable-objects`.
//!
//! Handlers here are adapters: they decode the request, authenticate, call
//! a use case in `sam-control` with ports implemented over Worker bindings,
//! and encode the result. All JS/`worker::Error` conversion stays in this
//! crate and `sam-durable-objects`.

mod bindings;
mod config;
mod error;
mod github_app;
mod routes;
mod session;

pub use sam_durable_objects::NodeLifecycle;

use worker::{Context, Env, Request, Response, event};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(routes::handle(req, env).await)
}
