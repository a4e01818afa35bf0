//! The control plane's public keys, fetched lazily and cached.
//!
//! The key set is fetched on the first token that needs it. A token naming a
//! key id the cache does not know triggers one refresh (the control plane may
//! have rotated its key) and a single retry. Refreshes are rate-limited, so a
//! stream of tokens with made-up key ids cannot turn the agent into a traffic
//! amplifier against the control plane, and concurrent requests wait for the
//! one refresh in flight instead of starting their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sam_auth::{Audience, JwkSet, TokenClaims, TokenError, Verifier};
use tokio::sync::Mutex;

/// A fetch of the key set takes at most this long; requests waiting on a
/// refresh are held for that time at worst.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a token could not be checked or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// No key set could be obtained at all; this is the agent's problem, not
    /// the caller's.
    #[error("the control plane's key set is unavailable")]
    KeysUnavailable,
}

/// A cached, self-refreshing JWKS verifier.
pub struct KeyCache {
    client: reqwest::Client,
    jwks_url: String,
    issuer: String,
    min_refresh: Duration,
    /// The verifier in use. Only ever locked briefly to clone or swap the
    /// `Arc`, so requests with known keys never wait for a refresh.
    current: std::sync::Mutex<Option<Arc<Verifier>>>,
    /// When the last fetch was attempted, successful or not. Held across a
    /// fetch: that is what makes concurrent refreshes share one.
    last_fetch: Mutex<Option<Instant>>,
}

impl KeyCache {
    pub fn new(
        client: reqwest::Client,
        jwks_url: &str,
        issuer: &str,
        min_refresh: Duration,
    ) -> Self {
        Self {
            client,
            jwks_url: jwks_url.to_owned(),
            issuer: issuer.to_owned(),
            min_refresh,
            current: std::sync::Mutex::new(None),
            last_fetch: Mutex::new(None),
        }
    }

    /// Verifies `token` for `audience` at `now_ms`, fetching or refreshing
    /// the key set when the token names a key the cache does not know.
    pub async fn verify(
        &self,
        token: &str,
        audience: Audience,
        now_ms: i64,
    ) -> Result<TokenClaims, VerifyError> {
        let verifier = match (Verifier::kid_of(token), self.current()) {
            (Some(kid), Some(current)) if current.knows_kid(&kid) => current,
            (Some(kid), _) => self.refresh(&kid).await?,
            // Without a key id no key set can help; an empty one still
            // yields the precise error (malformed, unknown key) for free.
            (None, current) => current.unwrap_or_else(|| {
                Arc::new(Verifier::new(&self.issuer, &JwkSet { keys: Vec::new() }))
            }),
        };
        Ok(verifier.verify(token, audience, now_ms)?)
    }

    fn current(&self) -> Option<Arc<Verifier>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches the key set because a token names `kid`, unless a request
    /// that got here first already brought it in or the last fetch was too
    /// recent. Returns the verifier to use, which may still lack `kid`.
    async fn refresh(&self, kid: &str) -> Result<Arc<Verifier>, VerifyError> {
        let mut last_fetch = self.last_fetch.lock().await;
        if let Some(current) = self.current()
            && current.knows_kid(kid)
        {
            return Ok(current);
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.min_refresh) {
            tracing::debug!(kid, "key set refresh skipped: rate-limited");
            return self.current().ok_or(VerifyError::KeysUnavailable);
        }
        // Failed attempts count too: a control plane in trouble should not
        // see more traffic because of it.
        *last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok(jwks) => {
                tracing::info!(
                    keys = jwks.keys.len(),
                    kid,
                    "fetched the control plane key set"
                );
                let verifier = Arc::new(Verifier::new(&self.issuer, &jwks));
                *self
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Arc::clone(&verifier));
                Ok(verifier)
            }
            Err(err) => {
                tracing::warn!(url = %self.jwks_url, %err, "cannot fetch the control plane key set");
                self.current().ok_or(VerifyError::KeysUnavailable)
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.client
            .get(&self.jwks_url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await?
            .error_for_status()?
            .json::<JwkSet>()
            .await
    }
}
