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

/// A fetch of the key set takes at most this long; requests waiting on the
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

struct Cached {
    verifier: Option<Arc<Verifier>>,
    /// When the last fetch was attempted, successful or not.
    last_fetch: Option<Instant>,
}

/// A cached, self-refreshing JWKS verifier.
pub struct KeyCache {
    client: reqwest::Client,
    jwks_url: String,
    issuer: String,
    min_refresh: Duration,
    /// Held across a fetch: that is what makes concurrent refreshes share one.
    state: Mutex<Cached>,
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
            state: Mutex::new(Cached {
                verifier: None,
                last_fetch: None,
            }),
        }
    }

    /// Verifies `token` for `audience` at `now_ms`, fetching or refreshing
    /// the key set when needed.
    pub async fn verify(
        &self,
        token: &str,
        audience: Audience,
        now_ms: i64,
    ) -> Result<TokenClaims, VerifyError> {
        let kid = Verifier::kid_of(token);
        let verifier = self.verifier_for(kid.as_deref()).await?;
        match verifier.verify(token, audience, now_ms) {
            Err(TokenError::UnknownKey { kid: Some(kid) }) => {
                let verifier = self.refresh_for(&kid).await?;
                Ok(verifier.verify(token, audience, now_ms)?)
            }
            other => Ok(other?),
        }
    }

    /// The current verifier, fetching the key set if there is none yet.
    async fn verifier_for(&self, kid: Option<&str>) -> Result<Arc<Verifier>, VerifyError> {
        let mut state = self.state.lock().await;
        if let Some(verifier) = &state.verifier {
            return Ok(Arc::clone(verifier));
        }
        self.fetch_locked(&mut state, kid).await
    }

    /// Refreshes the key set because a token names `kid`, unless another
    /// request already brought it in or the last fetch was too recent.
    async fn refresh_for(&self, kid: &str) -> Result<Arc<Verifier>, VerifyError> {
        let mut state = self.state.lock().await;
        if let Some(verifier) = &state.verifier
            && verifier.knows_kid(kid)
        {
            return Ok(Arc::clone(verifier));
        }
        self.fetch_locked(&mut state, Some(kid)).await
    }

    /// Fetches the key set with the lock held, honouring the rate limit.
    /// When rate-limited or failing, the old verifier (if any) stays in use.
    async fn fetch_locked(
        &self,
        state: &mut Cached,
        kid: Option<&str>,
    ) -> Result<Arc<Verifier>, VerifyError> {
        let too_soon = state
            .last_fetch
            .is_some_and(|at| at.elapsed() < self.min_refresh);
        if too_soon {
            tracing::debug!(kid, "key set refresh skipped: rate-limited");
        } else {
            // Failed attempts count too: a control plane in trouble should
            // not see more traffic because of it.
            state.last_fetch = Some(Instant::now());
            match self.fetch().await {
                Ok(jwks) => {
                    tracing::info!(
                        keys = jwks.keys.len(),
                        kid,
                        "fetched the control plane key set"
                    );
                    state.verifier = Some(Arc::new(Verifier::new(&self.issuer, &jwks)));
                }
                Err(err) => {
                    tracing::warn!(url = %self.jwks_url, %err, "cannot fetch the control plane key set");
                }
            }
        }
        state
            .verifier
            .as_ref()
            .map(Arc::clone)
            .ok_or(VerifyError::KeysUnavailable)
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
