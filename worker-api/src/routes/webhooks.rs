//! `POST /api/github/webhook`: GitHub's signed deliveries keep
//! installations and projects in sync.

use sam_control::github::apply_github_event;
use sam_providers::WebhookEvent;
use worker::Response;

use crate::bindings::{d1, now_ms};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::{Ctx, reject_large_body};

/// Deliveries we act on are a few KiB; GitHub caps payloads at 25 MiB.
const MAX_DELIVERY_BYTES: usize = 1024 * 1024;

pub async fn github(ctx: &mut Ctx) -> ApiResult<Response> {
    reject_large_body(&ctx.req, MAX_DELIVERY_BYTES)?;
    let header = |name: &str| ctx.req.headers().get(name).ok().flatten();
    let signature = header(sam_vault::SIGNATURE_HEADER).unwrap_or_default();
    let event = header("x-github-event").unwrap_or_default();
    let body = ctx
        .req
        .bytes()
        .await
        .map_err(|_| ApiError::new(400, "invalid_body", "could not read the request body"))?;
    if body.len() > MAX_DELIVERY_BYTES {
        return Err(ApiError::new(
            413,
            "body_too_large",
            "webhook deliveries are limited to 1 MiB",
        ));
    }
    // Nothing in an unsigned or mis-signed body is looked at.
    let keys = Config::webhook_keys(&ctx.env)?;
    sam_vault::verify_webhook_signature(&keys, &body, &signature).map_err(|_| {
        ApiError::new(
            401,
            "webhook_signature_invalid",
            "the X-Hub-Signature-256 header does not match this delivery",
        )
    })?;
    let parsed = WebhookEvent::parse(&event, &body)
        .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let db = d1(&ctx.env)?;
    let outcome = apply_github_event(&db, &parsed, now_ms()).await?;
    worker::console_log!(
        "github webhook {}: {} installation(s), {} project(s) changed",
        outcome.event,
        outcome.installations_changed,
        outcome.projects_changed
    );
    Ok(json_response(200, &outcome))
}
