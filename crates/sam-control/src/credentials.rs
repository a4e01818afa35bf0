//! Cloud credentials (BYOC): sealed with the credential vault, bound by
//! associated data to their owner and provider, listed only masked.

use sam_store::{CloudCredentialRecord, CredentialRepository, SqlDatabase};
use sam_vault::{CredentialKeys, Secret};
use serde::Serialize;

use crate::error::ControlError;
use crate::reseal::{SealedRow, reseal_all};

/// Providers a user can bring a credential for.
pub const CLOUD_PROVIDERS: &[&str] = &["hetzner", "scaleway"];

/// A Scaleway credential: the API secret key and the project nodes go in.
/// Sealed as one value, so the pair can never be mixed up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScalewayCredential {
    pub project_id: String,
    pub secret_key: String,
}

impl ScalewayCredential {
    /// The plaintext the vault seals.
    pub fn to_sealable(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an opened Scaleway credential.
    pub fn from_opened(secret: &Secret) -> Result<Self, ControlError> {
        serde_json::from_slice(secret.expose()).map_err(|_| {
            ControlError::InvalidCloudCredential(
                "the stored Scaleway credential is malformed".into(),
            )
        })
    }
}

/// What lists show: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudCredentialView {
    pub provider: String,
    pub masked: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&CloudCredentialRecord> for CloudCredentialView {
    fn from(c: &CloudCredentialRecord) -> Self {
        Self {
            provider: c.provider.clone(),
            masked: c.masked.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// What lists show: the secret's tail (for Scaleway, the secret key's).
fn masked(provider: &str, secret: &str) -> String {
    if provider == "scaleway"
        && let Ok(c) = serde_json::from_str::<ScalewayCredential>(secret)
    {
        return format!(
            "{} (project {})",
            sam_vault::mask(&c.secret_key),
            c.project_id
        );
    }
    sam_vault::mask(secret)
}

/// Associated data binding a cloud credential's envelope to its row
/// (public for tools that audit the vault, such as the leak test).
pub fn cloud_credential_aad(user_id: &str, provider: &str) -> Vec<u8> {
    format!("cloud-credential:{user_id}:{provider}").into_bytes()
}

/// Validates the shape of a provider and secret before anything is sent anywhere.
pub fn check_input(provider: &str, secret: &str) -> Result<(), ControlError> {
    if !CLOUD_PROVIDERS.contains(&provider) {
        return Err(ControlError::UnknownCloudProvider(
            provider.chars().take(40).collect(),
        ));
    }
    let ok =
        !secret.is_empty() && secret.len() <= 512 && secret.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ControlError::InvalidCloudCredential(
            "the secret must be 1-512 printable characters".into(),
        ))
    }
}

/// Seals and stores `secret` (already validated against the provider).
#[allow(clippy::too_many_arguments)]
pub async fn store_cloud_credential(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    user_id: &str,
    provider: &str,
    secret: &str,
    now: i64,
    new_id: &str,
    nonce: [u8; 12],
) -> Result<CloudCredentialView, ControlError> {
    check_input(provider, secret)?;
    let record = CloudCredentialRecord {
        id: new_id.to_owned(),
        user_id: user_id.to_owned(),
        provider: provider.to_owned(),
        secret_envelope: sam_vault::encrypt(
            keys,
            secret.as_bytes(),
            &cloud_credential_aad(user_id, provider),
            nonce,
        ),
        masked: masked(provider, secret),
        created_at: now,
        updated_at: now,
    };
    let repo = CredentialRepository::new(db);
    repo.put(&record).await?;
    let stored = repo
        .get(user_id, provider)
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(CloudCredentialView::from(&stored))
}

/// Deletes the user's credential for `provider`, unless nodes there still
/// need it: a node can only be destroyed with its owner's credential, so
/// deleting it first would leave servers nobody can remove.
pub async fn delete_cloud_credential(
    db: &impl SqlDatabase,
    user_id: &str,
    provider: &str,
) -> Result<(), ControlError> {
    let nodes = sam_store::NodeRepository::new(db)
        .count_live_at(user_id, provider)
        .await?;
    if nodes > 0 {
        return Err(ControlError::CredentialInUse {
            provider: provider.to_owned(),
            nodes,
        });
    }
    if CredentialRepository::new(db)
        .delete(user_id, provider)
        .await?
    {
        Ok(())
    } else {
        Err(ControlError::NotFound)
    }
}

/// The user's decrypted credential for `provider`, or a clear error saying what to add.
pub async fn cloud_secret(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    user_id: &str,
    provider: &str,
) -> Result<Secret, ControlError> {
    let stored = CredentialRepository::new(db)
        .get(user_id, provider)
        .await?
        .ok_or_else(|| ControlError::CloudCredentialsMissing(provider.to_owned()))?;
    sam_vault::decrypt(
        keys,
        &stored.secret_envelope,
        &cloud_credential_aad(user_id, provider),
    )
    .map_err(ControlError::Vault)
}

/// Re-seals every stored credential under the active key (after a key
/// ring change `new,old`); returns how many moved. Safe to run while the
/// platform serves requests: each row is swapped only if unchanged.
pub async fn rotate_cloud_credentials(
    db: &impl SqlDatabase,
    keys: &CredentialKeys,
    mut nonce: impl FnMut() -> [u8; 12],
) -> Result<usize, ControlError> {
    let repo = CredentialRepository::new(db);
    reseal_all(
        keys,
        &mut nonce,
        async |after: &str| {
            Ok(repo
                .page_after(after, 100)
                .await?
                .into_iter()
                .map(|c| SealedRow {
                    aad: cloud_credential_aad(&c.user_id, &c.provider),
                    id: c.id,
                    envelope: c.secret_envelope,
                })
                .collect())
        },
        async |id: &str, old: &str, new: &str| repo.replace_envelope(id, old, new).await,
    )
    .await
}
