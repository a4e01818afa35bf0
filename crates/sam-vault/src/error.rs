//! The vault's one error type.
//!
//! Variants carry only what is safe to log: entry positions and key ids
//! (validated to `[a-z0-9-]{1,32}` before they are echoed), never key
//! material, plaintext or the offending input itself.

/// Why a vault operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The key ring configuration holds no keys.
    #[error("key ring is empty")]
    EmptyKeyRing,
    /// A key ring entry is not `kid:key`.
    #[error("key ring entry {index} is not `kid:base64url-key`")]
    BadKeyEntry { index: usize },
    /// A key id is not `[a-z0-9-]{1,32}`. The id itself is not echoed: a
    /// mangled entry may have put key material where the id belongs.
    #[error("key ring entry {index} has an invalid key id (want [a-z0-9-]{{1,32}})")]
    BadKeyId { index: usize },
    /// Two entries share a key id, so envelopes naming it would be ambiguous.
    #[error("key id `{kid}` appears more than once in the key ring")]
    DuplicateKeyId { kid: String },
    /// The key is not unpadded base64url.
    #[error("key `{kid}` is not unpadded base64url")]
    BadKeyEncoding { kid: String },
    /// The key does not decode to exactly 32 bytes.
    #[error("key `{kid}` is {len} bytes, want 32")]
    BadKeyLength { kid: String, len: usize },
    /// The envelope or keyed hash is not in the expected shape.
    #[error("malformed envelope")]
    Malformed,
    /// The envelope names a format version this build does not read.
    #[error("unsupported envelope version `{version}`")]
    UnsupportedVersion { version: String },
    /// The envelope names a key id the ring does not hold.
    #[error("no key `{kid}` in the key ring")]
    UnknownKey { kid: String },
    /// Authentication failed: the ciphertext, nonce or tag was altered, the
    /// associated data (owner/row binding) differs, or the key under this id
    /// is not the one that sealed it.
    #[error("envelope failed authentication")]
    Tampered,
    /// The decrypted secret was asked for as text but is not UTF-8.
    #[error("secret is not UTF-8 text")]
    NotUtf8,
    /// The webhook signature header is not `sha256=<64 hex digits>`.
    #[error("malformed webhook signature header")]
    MalformedSignature,
    /// No key in the ring produced the webhook signature.
    #[error("webhook signature does not match")]
    BadSignature,
}

impl VaultError {
    /// A stable machine-readable code for logs and API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::EmptyKeyRing => "vault_keyring_empty",
            VaultError::BadKeyEntry { .. } => "vault_key_entry_malformed",
            VaultError::BadKeyId { .. } => "vault_key_id_invalid",
            VaultError::DuplicateKeyId { .. } => "vault_key_id_duplicate",
            VaultError::BadKeyEncoding { .. } => "vault_key_encoding_invalid",
            VaultError::BadKeyLength { .. } => "vault_key_length_invalid",
            VaultError::Malformed => "vault_malformed",
            VaultError::UnsupportedVersion { .. } => "vault_unsupported_version",
            VaultError::UnknownKey { .. } => "vault_unknown_key",
            VaultError::Tampered => "vault_tampered",
            VaultError::NotUtf8 => "vault_not_utf8",
            VaultError::MalformedSignature => "webhook_signature_malformed",
            VaultError::BadSignature => "webhook_signature_invalid",
        }
    }
}
