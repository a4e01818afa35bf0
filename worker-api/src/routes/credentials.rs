//! Cloud credentials (BYOC): put (validated against the provider first),
//! list masked, delete. The secret is sealed by the vault before it is
//! stored and never returned.

use sam_control::agent_credentials::rotate_agent_credentials;
use sam_control::credentials::ScalewayCredential;
use sam_control::credentials::{
    CloudCredentialView, check_input, rotate_cloud_credentials, store_cloud_credential,
};
use sam_providers::{HetznerClient, ScalewayClient, check_secret_shape};
use sam_store::{CredentialRepository, UserRecord};
use serde::{Deserialize, Serialize};
use worker::Response;

use crate::bindings::{FetchHttp, d1, now_ms, random_u128};
use crate::config::Config;
use crate::error::{ApiError, ApiResult, json_response};
use crate::routes::Ctx;

/// Hetzner takes `{token}`; Scaleway `{secret_key, project_id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutCredential {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

fn provider_refused(provider: &str, e: &sam_providers::ProviderError) -> ApiError {
    let (status, code) = if matches!(
        e.kind,
        sam_providers::ProviderErrorKind::Auth | sam_providers::ProviderErrorKind::InvalidConfig
    ) {
        (400, "cloud_credential_invalid")
    } else {
        (502, "provider_unavailable")
    };
    ApiError::new(
        status,
        code,
        format!("{provider} did not accept the credential ({})", e.code),
    )
}

fn missing(field: &str, provider: &str) -> ApiError {
    ApiError::new(
        400,
        "invalid_json",
        format!("a {provider} credential needs `{field}`"),
    )
}

#[derive(Serialize)]
struct CredentialList {
    credentials: Vec<CloudCredentialView>,
}

/// A fresh random AES-GCM nonce.
pub fn nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    n.copy_from_slice(&random_u128().to_le_bytes()[..12]);
    n
}

/// A Scaleway key pair, checked for shape and then with Scaleway; returns what to seal.
async fn scaleway_secret(ctx: &Ctx, body: PutCredential) -> ApiResult<String> {
    let credential = ScalewayCredential {
        secret_key: body
            .secret_key
            .ok_or_else(|| missing("secret_key", "Scaleway"))?
            .trim()
            .to_owned(),
        project_id: body
            .project_id
            .ok_or_else(|| missing("project_id", "Scaleway"))?
            .trim()
            .to_owned(),
    };
    check_secret_shape(&credential.secret_key, &credential.project_id)
        .map_err(|e| ApiError::new(400, "cloud_credential_invalid", e.message.clone()))?;
    ScalewayClient::new(
        FetchHttp,
        ctx.config.scaleway_api_url.clone(),
        credential.secret_key.clone(),
        credential.project_id.clone(),
    )
    .validate_token()
    .await
    .map_err(|e| provider_refused("Scaleway", &e))?;
    Ok(credential.to_sealable())
}

/// A Hetzner API token (or an unknown provider's secret, refused by
/// `check_input`), checked with Hetzner; returns what to seal.
async fn hetzner_secret(ctx: &Ctx, provider: &str, body: PutCredential) -> ApiResult<String> {
    let token = body
        .token
        .ok_or_else(|| missing("token", "Hetzner"))?
        .trim()
        .to_owned();
    check_input(provider, &token)?;
    HetznerClient::new(FetchHttp, ctx.config.hetzner_api_url.clone(), token.clone())
        .validate_token()
        .await
        .map_err(|e| provider_refused("Hetzner", &e))?;
    Ok(token)
}

/// `PUT /api/credentials/cloud/{provider}`.
pub async fn put(ctx: &mut Ctx, user: &UserRecord) -> ApiResult<Response> {
    let provider = ctx.id().to_owned();
    let body: PutCredential = ctx.json().await?;
    // Validate the shape, then with the provider, before anything is stored.
    let token = if provider == "scaleway" {
        scaleway_secret(ctx, body).await?
    } else {
        hetzner_secret(ctx, &provider, body).await?
    };
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
    sam_control::credentials::delete_cloud_credential(&db, &user.id, ctx.id()).await?;
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
    let cloud = rotate_cloud_credentials(&db, &keys, nonce).await?;
    let agents = rotate_agent_credentials(&db, &keys, nonce).await?;
    Ok(json_response(
        200,
        &serde_json::json!({
            "reencrypted": cloud + agents,
            "cloud_credentials": cloud,
            "agent_credentials": agents,
            "active_key": keys.active_kid(),
        }),
    ))
}
