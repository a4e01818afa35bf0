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
mod sweep;

pub use sam_durable_objects::{NodeLifecycle, ProjectData, TaskRunner};

use worker::{Context, Env, Request, Response, ScheduleContext, ScheduledEvent, event};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(routes::handle(req, env).await)
}

/// The cron trigger: the orphan, boot-deadline and lifetime sweep.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    match sweep::run(&env).await {
        Ok(report) => worker::console_log!(
            "sweep: {}",
            serde_json::to_string(&report).unwrap_or_default()
        ),
        Err(e) => worker::console_error!("sweep failed: {} {}", e.code, e.message),
    }
}
