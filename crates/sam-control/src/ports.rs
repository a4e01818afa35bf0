//! Ports the use cases need besides SQL.

use std::collections::BTreeMap;

use sam_domain::node::BootPhase;
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

/// The node's boot log and boot deadline (the `NodeLifecycle` Durable Object
/// in the Worker). Failures to log are reported but never fail the use case:
/// the boot log is observability, D1 is the source of truth.
#[allow(async_fn_in_trait)]
pub trait BootLog {
    /// The node exists in D1 and must register by `deadline`.
    async fn started(&self, node_id: &str, created_at: i64, deadline: i64) -> Result<(), String>;
    /// Something happened during the node's boot or teardown.
    async fn record(
        &self,
        node_id: &str,
        at: i64,
        phase: BootPhase,
        detail: Option<&str>,
    ) -> Result<(), String>;
}

/// Waiting and randomness for retries: `setTimeout` and `crypto` in the
/// Worker, no-ops or fixed values in tests.
#[allow(async_fn_in_trait)]
pub trait RetryRuntime {
    async fn pause(&self, ms: u64);
    /// A random number in `0..=1` for backoff jitter.
    fn jitter(&self) -> f64;
}
