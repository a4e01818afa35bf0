//! `GET /api/agent/download?arch=` — the vm-agent binary, from R2.
//!
//! cloud-init on a new node fetches the agent from here; releases are
//! uploaded to R2 under `vm-agent/<arch>/vm-agent` (locally by `cargo xtask`).

use worker::Response;

use crate::bindings::R2;
use crate::error::{ApiError, ApiResult};
use crate::routes::Ctx;

const ARCHES: &[&str] = &["x86_64", "aarch64"];

pub async fn download(ctx: &Ctx) -> ApiResult<Response> {
    let url = ctx.req.url()?;
    let arch = url
        .query_pairs()
        .find(|(k, _)| k == "arch")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !ARCHES.contains(&arch.as_str()) {
        return Err(ApiError::new(
            400,
            "unknown_arch",
            "arch must be x86_64 or aarch64",
        ));
    }
    let object = ctx
        .env
        .bucket(R2)?
        .get(format!("vm-agent/{arch}/vm-agent"))
        .execute()
        .await?
        .ok_or_else(|| {
            ApiError::new(
                404,
                "agent_not_published",
                format!("no vm-agent build for {arch} has been uploaded"),
            )
        })?;
    let body = object
        .body()
        .ok_or_else(|| ApiError::new(404, "agent_not_published", "the vm-agent object is empty"))?;
    let mut response = Response::builder()
        .with_status(200)
        .body(body.response_body()?);
    let _ = response
        .headers_mut()
        .set("content-type", "application/octet-stream");
    Ok(response)
}
