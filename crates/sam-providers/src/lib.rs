//! Cloud provider clients (Hetzner Cloud first), written against a tiny HTTP
//! port so the same code runs in the wasm Worker and natively in tests.
//!
//! The crate is pure: no runtime, no clock, no environment, no sleeping.
//! Callers own time; they get classified errors ([`ProviderError`]) and a
//! backoff calculator ([`backoff_delay_ms`]) to schedule retries themselves.

mod error;
mod hetzner;
mod http;
mod scaleway;

pub mod github;
pub mod github_app;
pub mod github_webhook;

pub use error::{ProviderError, ProviderErrorKind, backoff_delay_ms, classify, parse_retry_after};
pub use github_app::{
    GithubApp, GithubAppKey, InstallationClient, InstallationToken, NewPullRequest, PullRequest,
};
pub use github_webhook::{WebhookError, WebhookEvent};
pub use hetzner::{
    CreateServer, DeleteOutcome, HetznerClient, LocationInfo, PowerAction, Server, ServerTypeInfo,
};
pub use http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
pub use scaleway::{
    SCALEWAY_API_BASE, ScalewayClient, ScalewayCreateServer, ScalewayServer, check_secret_shape,
    classify_scaleway,
};

/// Hetzner's public API root.
pub const HETZNER_API_BASE: &str = "https://api.hetzner.cloud/v1";
