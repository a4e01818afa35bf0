//! `GET /health` and `GET /.well-known/jwks.json`.

use sam_wire::{BindingCheck, HealthReport};
use worker::Response;

use crate::bindings::{self, DB, KV, NODE_LIFECYCLE, R2};
use crate::config::{Config, VERSION};
use crate::error::{ApiResult, json_response};
use crate::routes::Ctx;

/// Exercises each binding for real: a D1 query, a KV read, an R2 head and a
/// query of a SQLite-backed Durable Object's storage.
pub async fn health(ctx: &Ctx) -> ApiResult<Response> {
    let env = &ctx.env;
    let d1 = async {
        env.d1(DB)?
            .prepare("SELECT 1 AS ok")
            .first::<serde_json::Value>(None)
            .await?;
        Ok::<_, worker::Error>(())
    };
    let kv = async {
        env.kv(KV)?
            .get("health:probe")
            .text()
            .await
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        Ok::<_, worker::Error>(())
    };
    let r2 = async {
        env.bucket(R2)?.head("health/probe").await?;
        Ok::<_, worker::Error>(())
    };
    let durable = async {
        let stub = bindings::lifecycle_stub(env, "health-probe")?;
        let resp = stub.fetch_with_str("https://node-lifecycle/probe").await?;
        if resp.status_code() == 200 {
            Ok(())
        } else {
            Err(worker::Error::RustError(format!(
                "probe answered {}",
                resp.status_code()
            )))
        }
    };
    let (d1, kv, r2, durable) = futures_join(d1, kv, r2, durable).await;
    let checks = vec![
        check(DB, "d1", d1),
        check(KV, "kv", kv),
        check(R2, "r2", r2),
        check(NODE_LIFECYCLE, "durable_object", durable),
    ];
    let ok = checks.iter().all(|c| c.ok);
    let report = HealthReport {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        version: VERSION.to_owned(),
        checks,
    };
    Ok(json_response(if ok { 200 } else { 503 }, &report))
}

async fn futures_join<A, B, C, D>(
    a: impl Future<Output = A>,
    b: impl Future<Output = B>,
    c: impl Future<Output = C>,
    d: impl Future<Output = D>,
) -> (A, B, C, D) {
    futures::join!(a, b, c, d)
}

/// The public report names a failing binding; the runtime's error text
/// (which can describe internals) goes to the log only.
fn check(binding: &str, kind: &str, result: Result<(), worker::Error>) -> BindingCheck {
    if let Err(e) = &result {
        worker::console_error!("health check of {binding} failed: {e}");
    }
    BindingCheck {
        binding: binding.to_owned(),
        kind: kind.to_owned(),
        ok: result.is_ok(),
        error: result
            .err()
            .map(|_| format!("the {kind} binding {binding} is not usable")),
    }
}

pub fn jwks(ctx: &Ctx) -> ApiResult<Response> {
    let key = Config::signing_key(&ctx.env)?;
    let mut response = json_response(200, &key.jwks());
    let _ = response
        .headers_mut()
        .set("cache-control", "public, max-age=300");
    Ok(response)
}
