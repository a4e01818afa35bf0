//! Cloud credentials (BYOC): put (validated against the provider first),
//! list masked, delete. The secret is sealed by the vault before it is
//! stored and never returned.

use sam_control::credentials::{
    CloudCredentialView, check_input, rotate_cloud_credentials, store_cloud_credential,
};
use sam_providers::HetznerClient;
use sam_store::{CredentialRepository, UserRecord};
use serde::{Deserialize, Serialize};
use worker::Response;

use crate::bindings::{FetchHttp, d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutCredential {
    token: String,
}

#[derive(Serialize)]
struct CredentialList {
    credentials: Vec<CloudCredentialView>,
}

fn nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    n.copy_from_slice(&random_u128().to_le_bytes()[..12]);
    n
}

/// `PUT /api/credentials/cloud/{provider}`.
pub async fn put(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let provider = ctx.id().to_owned();
    let body: PutCredential = ctx.json().await?;
    let token = body.token.trim().to_owned();
    check_input(&provider, &token)?;
    // Validate with the provider before anything is stored.
    HetznerClient::new(FetchHttp, ctx.config.hetzner_api_url.clone(), token.clone())
        .validate_token()
        .await
        .map_err(|e| {
            let (status, code) = if e.kind == sam_providers::ProviderErrorKind::Auth {
                (400, "cloud_credential_invalid")
            } else {
                (502, "provider_unavailable")
            };
            ApiError::new(
                status,
                code,
                format!("Hetzner did not accept the token ({})", e.code),
            )
        })?;
    let keys = Config::credential_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let now = now_ms();
    let view = store_cloud_credential(
        &db,
        &keys,
        &user.id,
        &provider,
        &token,
        now,
        &sam_domain::ids::new_ulid(now, random_u128()),
        nonce(),
    )
    .await?;
    Ok(json_response(200, &view))
}

pub async fn list(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    let credentials = CredentialRepository::new(&db)
        .list(&user.id)
        .await?
        .iter()
        .map(CloudCredentialView::from)
        .collect();
    Ok(json_response(200, &CredentialList { credentials }))
}

pub async fn delete(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    let db = d1(&ctx.env)?;
    if !CredentialRepository::new(&db)
        .delete(&user.id, ctx.id())
        .await?
    {
        return Err(ApiError::not_found());
    }
    Ok(json_response(200, &serde_json::json!({ "deleted": true })))
}

/// `POST /api/admin/vault/rotate` (superadmin): re-seal every credential
/// under the active key of `CREDENTIAL_KEYS` (deploy `new,old` first).
pub async fn rotate(ctx: &Ctx, user: &UserRecord) -> ApiResult<Response> {
    if user.role != "superadmin" {
        return Err(ApiError::new(
            403,
            "forbidden",
            "only the superadmin can rotate vault keys",
        ));
    }
    let keys = Config::credential_keys(&ctx.env)?;
    let db = d1(&ctx.env)?;
    let moved = rotate_cloud_credentials(&db, &keys, nonce).await?;
    Ok(json_response(
        200,
        &serde_json::json!({ "reencrypted": moved, "active_key": keys.active_kid() }),
    ))
}
