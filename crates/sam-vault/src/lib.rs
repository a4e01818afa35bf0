//! The credential vault: everything the control plane keeps secret at rest.
//!
//! Three purposes, each with its own key ring so that one leaked key never
//! unlocks another kind of secret:
//!
//! - **Credentials** ([`CredentialKeys`]): cloud-provider tokens and other
//!   stored secrets are sealed with AES-256-GCM into a text envelope
//!   (`v1.<kid>.<nonce>.<ciphertext+tag>`) that records which key sealed it.
//!   The caller's associated data binds each envelope to its row, so a
//!   ciphertext copied to another row does not open.
//! - **Sessions** ([`SessionKeys`]): session ids and personal access tokens are
//!   stored only as HMAC-SHA256 keyed hashes (`<kid>.<hex>`), so a database
//!   dump does not hand out live sessions.
//! - **Webhooks** ([`WebhookKeys`]): GitHub's `X-Hub-Signature-256` header is
//!   checked against every key in the ring in constant time.
//!
//! A ring is configured as `kid:base64url-key,kid:base64url-key,…`; the first
//! key is active (seals and hashes new values), the rest are only accepted.
//! Rotating without downtime is therefore: deploy `new,old`, run the
//! rotation sweep ([`needs_rotation`] + [`reencrypt`], or [`rehash_needed`]
//! for hashes), then deploy `new` alone.
//!
//! A ring's purpose is part of its type, so keys cannot cross purposes by
//! mistake:
//!
//! ```compile_fail
//! let sessions = sam_vault::SessionKeys::parse(
//!     "s1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
//! ).unwrap();
//! // A session key cannot seal credentials.
//! sam_vault::encrypt(&sessions, b"token", b"row", [0; 12]);
//! ```
//!
//! ```
//! let credentials = sam_vault::CredentialKeys::parse(
//!     "c1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
//! )?;
//! let sealed = sam_vault::encrypt(&credentials, b"token", b"row", [0; 12]);
//! assert_eq!(sam_vault::decrypt(&credentials, &sealed, b"row")?.expose(), b"token");
//! # Ok::<(), sam_vault::VaultError>(())
//! ```
//!
//! The crate is pure: it never reads clocks, the environment or a random
//! number generator. Nonces come from the caller (the Worker fills them from
//! `crypto.getRandomValues`), which keeps it deterministic under test and
//! free of platform glue on wasm32. Failures are typed [`VaultError`]s; a
//! wrong key, a wrong row or a flipped bit is an error, never garbage, and no
//! error or `Debug` output carries key or secret bytes.

mod envelope;
mod error;
mod hash;
mod keyring;
mod secret;
mod webhook;

pub use envelope::{NONCE_LEN, decrypt, encrypt, needs_rotation, reencrypt};
pub use error::VaultError;
pub use hash::{keyed_hash, keyed_hashes, rehash_needed, verify_keyed_hash};
pub use keyring::{
    CredentialKeys, KEY_LEN, KeyPurpose, KeyRing, Purpose, SessionKeys, WebhookKeys, purpose,
};
pub use secret::{Secret, mask};
pub use webhook::{
    SIGNATURE_HEADER, sign_webhook, sign_webhook_with_secret, verify_webhook_signature,
};
