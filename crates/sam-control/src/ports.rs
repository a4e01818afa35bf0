//! Ports the use cases need besides SQL.

use std::collections::BTreeMap;

use sam_domain::node::BootPhase;

use crate::error::ControlError;
use sam_providers::{
    CreateServer, DeleteOutcome, HetznerClient, HttpClient, ProviderError, Server,
};

/// Creates and deletes servers at a cloud provider.
#[allow(async_fn_in_trait)]
pub trait ServerProvider {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError>;
    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError>;
    /// Servers carrying all of `labels`.
    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError>;
}

/// A borrowed provider is a provider (sweeps build one per account; tests
/// hand out the same fake for every account).
impl<T: ServerProvider> ServerProvider for &T {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        T::create_server(self, req).await
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        T::delete_server(self, id).await
    }

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        T::find_servers(self, labels).await
    }
}

impl<H: HttpClient> ServerProvider for HetznerClient<H> {
    async fn create_server(&self, req: &CreateServer) -> Result<Server, ProviderError> {
        HetznerClient::create_server(self, req).await
    }

    async fn delete_server(&self, id: &str) -> Result<DeleteOutcome, ProviderError> {
        HetznerClient::delete_server(self, id).await
    }

    async fn find_servers(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Server>, ProviderError> {
        HetznerClient::list_servers(self, labels).await
    }
}

/// The node's log (the `NodeLifecycle` Durable Object in the Worker).
/// Failures to log are reported but never fail the use case: the log is
/// observability, D1 is the source of truth.
#[allow(async_fn_in_trait)]
pub trait BootLog {
    /// Something happened during the node's life.
    async fn record(
        &self,
        node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> Result<(), String>;
}

/// The per-node timer (the `NodeLifecycle` Durable Object's alarm): it
/// must wake the node's lifecycle no later than `at`. Waking early is
/// harmless (nothing is due yet, the timer is set again), so an
/// implementation may keep the earlier of two requests.
#[allow(async_fn_in_trait)]
pub trait NodeTimer {
    async fn wake_at(&self, node_id: &str, at: i64) -> Result<(), String>;
}

/// Opens a user's cloud account: the provider client acting with their
/// decrypted credential for `provider` (e.g. `hetzner`).
#[allow(async_fn_in_trait)]
pub trait CloudAccounts {
    type Provider: ServerProvider;
    async fn open(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<OpenedAccount<Self::Provider>, ControlError>;
}

/// A provider client and what identifies the account behind it (users who
/// share one cloud account are swept for orphans once). The identity is a
/// digest, never the credential.
pub struct OpenedAccount<P> {
    pub provider: P,
    pub account: String,
}

/// Waiting and randomness for retries: `setTimeout` and `crypto` in the
/// Worker, no-ops or fixed values in tests.
#[allow(async_fn_in_trait)]
pub trait RetryRuntime {
    async fn pause(&self, ms: u64);
    /// A random number in `0..=1` for backoff jitter.
    fn jitter(&self) -> f64;
}
