//! Tokens the control plane signs and everyone else verifies.
//!
//! The API Worker holds one Ed25519 signing key (a secret) and publishes its
//! public half at `/.well-known/jwks.json`. vm-agents verify API-issued
//! tokens against that key set; the API verifies the tokens it handed out.
//!
//! Every token carries an audience (what it is for), a scope (which node it
//! is for) and an expiry; [`Verifier::verify`] checks all three plus the
//! issuer and signature, and callers additionally compare the scoped id with
//! the resource the request names.
//!
//! Time is passed in as Unix milliseconds: this crate never reads a clock.

mod keys;
mod token;

pub use keys::{Jwk, JwkSet, KeyError, SigningKey};
pub use token::{Audience, CallbackAuthError, Grant, TokenClaims, TokenError, Verifier};
