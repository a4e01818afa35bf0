//! Users' cloud accounts, opened with the vault.

use sam_providers::{HetznerClient, HttpClient};
use sam_store::SqlDatabase;
use sam_vault::CredentialKeys;
use sha2::{Digest as _, Sha256};

use crate::credentials::cloud_secret;
use crate::error::ControlError;
use crate::ports::{CloudAccounts, OpenedAccount};

/// Where each provider's API lives (configurable so that the local
/// stand-ins can take their place).
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    pub hetzner: String,
}

/// [`CloudAccounts`] over the stored, sealed credentials.
pub struct VaultAccounts<'a, D, H> {
    pub db: &'a D,
    pub keys: &'a CredentialKeys,
    pub http: H,
    pub urls: &'a ProviderUrls,
}

impl<D: SqlDatabase, H: HttpClient + Clone> CloudAccounts for VaultAccounts<'_, D, H> {
    type Provider = HetznerClient<H>;

    async fn open(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<OpenedAccount<Self::Provider>, ControlError> {
        if provider != "hetzner" {
            // Nodes are created at Hetzner only so far (the catalogue
            // offers nothing else), so no node can need another provider.
            return Err(ControlError::UnknownCloudProvider(provider.to_owned()));
        }
        let secret = cloud_secret(self.db, self.keys, user_id, provider).await?;
        let token = secret
            .expose_str()
            .map_err(|_| {
                ControlError::InvalidCloudCredential("the stored token is not text".into())
            })?
            .to_owned();
        let account = hex::encode(Sha256::digest(format!("{provider}\n{token}")));
        Ok(OpenedAccount {
            provider: HetznerClient::new(self.http.clone(), self.urls.hetzner.clone(), token),
            account,
        })
    }
}
