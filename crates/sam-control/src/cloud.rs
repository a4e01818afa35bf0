//! Users' cloud accounts, opened with the vault, and one provider type over
//! the clouds nodes can be created at.

use std::collections::BTreeMap;

use sam_domain::catalog::{ProviderKind, locations};
use sam_providers::{
    CreateServer, DeleteOutcome, HetznerClient, HttpClient, ProviderError, ProviderErrorKind,
    ScalewayClient, ScalewayCreateServer, ScalewayServer, Server,
};
use sam_store::SqlDatabase;
use sam_vault::CredentialKeys;
use sha2::{Digest as _, Sha256};

use crate::credentials::{ScalewayCredential, cloud_secret};
use crate::error::ControlError;
use crate::ports::{CloudAccounts, OpenedAccount, ServerProvider};

/// Where each provider's API lives (configurable so that the local
/// stand-ins can take their place).
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    pub hetzner: String,
    pub scaleway: String,
}

/// A client for whichever cloud an account is at.
///
/// Scaleway servers live in a zone and are addressed by zone and id, so
/// their ids here are `<zone>/<uuid>`; its tags (plain strings) carry our
/// labels as `key=value`.
pub enum CloudProvider<H> {
    Hetzner(HetznerClient<H>),
    Scaleway(ScalewayClient<H>),
}

impl<H: HttpClient> ServerProvider for CloudProvider<H> {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        match self {
            CloudProvider::Hetzner(client) => client.create_server(req).await,
            CloudProvider::Scaleway(client) => {
                let created = client
                    .create_server(&ScalewayCreateServer {
                        name: req.name.clone(),
                        commercial_type: req.server_type.clone(),
                        zone: req.location.clone(),
                        image: req.image.clone(),
                        tags: label_tags(&req.labels),
                        user_data: req.user_data.clone(),
                    })
                    .await?;
                Ok(scaleway_server(created))
            }
        }
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        match self {
            CloudProvider::Hetzner(client) => client.delete_server(id).await,
            CloudProvider::Scaleway(client) => {
                let (zone, uuid) = id.split_once('/').ok_or_else(|| ProviderError {
                    kind: ProviderErrorKind::InvalidConfig,
                    status: None,
                    code: "invalid_server_id".to_owned(),
                    message: "a Scaleway server id names its zone: <zone>/<uuid>".to_owned(),
                    retry_after_secs: None,
                })?;
                client.delete_server(zone, uuid).await
            }
        }
    }

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        match self {
            CloudProvider::Hetzner(client) => client.list_servers(labels).await,
            CloudProvider::Scaleway(client) => {
                let tags = label_tags(labels);
                let mut servers = Vec::new();
                for zone in locations(ProviderKind::Scaleway) {
                    servers.extend(
                        client
                            .list_servers(zone, &tags)
                            .await?
                            .into_iter()
                            .map(scaleway_server),
                    );
                }
                Ok(servers)
            }
        }
    }
}

/// Labels as Scaleway tags.
fn label_tags(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// A Scaleway server as the provider-neutral [`Server`].
fn scaleway_server(s: ScalewayServer) -> Server {
    let labels = s
        .tags
        .iter()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Server {
        id: format!("{}/{}", s.zone, s.id),
        name: s.name,
        status: s.state,
        ipv4: s.public_ip,
        labels,
        created: s.created,
    }
}

/// [`CloudAccounts`] over the stored, sealed credentials.
pub struct VaultAccounts<'a, D, H> {
    pub db: &'a D,
    pub keys: &'a CredentialKeys,
    pub http: H,
    pub urls: &'a ProviderUrls,
}

impl<D: SqlDatabase, H: HttpClient + Clone> CloudAccounts for VaultAccounts<'_, D, H> {
    type Provider = CloudProvider<H>;

    async fn open(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<OpenedAccount<Self::Provider>, ControlError> {
        let kind = ProviderKind::parse(provider)
            .ok_or_else(|| ControlError::UnknownCloudProvider(provider.to_owned()))?;
        let secret = cloud_secret(self.db, self.keys, user_id, provider).await?;
        // The account's identity is a digest of what opens it.
        let account = hex::encode(Sha256::digest(
            [provider.as_bytes(), b"\n", secret.expose()].concat(),
        ));
        let provider = match kind {
            ProviderKind::Hetzner => {
                let token = secret.expose_str().map_err(|_| {
                    ControlError::InvalidCloudCredential("the stored token is not text".into())
                })?;
                CloudProvider::Hetzner(HetznerClient::new(
                    self.http.clone(),
                    self.urls.hetzner.clone(),
                    token,
                ))
            }
            ProviderKind::Scaleway => {
                let credential = ScalewayCredential::from_opened(&secret)?;
                CloudProvider::Scaleway(ScalewayClient::new(
                    self.http.clone(),
                    self.urls.scaleway.clone(),
                    credential.secret_key,
                    credential.project_id,
                ))
            }
        };
        Ok(OpenedAccount { provider, account })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_travel_as_tags_and_back() {
        let labels = BTreeMap::from([
            ("sam-managed".to_owned(), "true".to_owned()),
            ("sam-node".to_owned(), "01ABC".to_owned()),
        ]);
        let tags = label_tags(&labels);
        assert_eq!(tags, ["sam-managed=true", "sam-node=01ABC"]);
        let server = scaleway_server(ScalewayServer {
            id: "11111111-2222-3333-4444-555555555555".into(),
            name: "sam-01abc".into(),
            state: "running".into(),
            public_ip: Some("51.15.0.1".into()),
            tags: [tags, vec!["unrelated".into()]].concat(),
            zone: "nl-ams-1".into(),
            commercial_type: "DEV1-S".into(),
            project: "p".into(),
            created: "2026-01-01T00:00:00Z".into(),
        });
        assert_eq!(server.id, "nl-ams-1/11111111-2222-3333-4444-555555555555");
        assert_eq!(server.labels, labels);
    }
}
