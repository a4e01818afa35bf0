//! Key rings: the keys of one purpose, newest first.
//!
//! The purpose is part of the ring's type ([`CredentialKeys`],
//! [`SessionKeys`], [`WebhookKeys`]), so handing the session ring to
//! [`encrypt`](crate::encrypt) is a compile error rather than a quiet key
//! reuse across purposes.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::VaultError;

/// Length of every key, in bytes (AES-256 and HMAC-SHA256 both use 32).
pub const KEY_LEN: usize = 32;

const MAX_KID_LEN: usize = 32;

/// What a key ring is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// AES-256-GCM sealing of stored credentials.
    Credentials,
    /// HMAC-SHA256 keyed hashes of session ids and personal access tokens.
    Sessions,
    /// HMAC-SHA256 verification of GitHub webhook deliveries.
    Webhooks,
}

impl Purpose {
    /// A stable lowercase name, e.g. for naming configuration variables.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Credentials => "credentials",
            Purpose::Sessions => "sessions",
            Purpose::Webhooks => "webhooks",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A type-level [`Purpose`]; implemented only by the markers in [`purpose`].
pub trait KeyPurpose: sealed::Sealed {
    const PURPOSE: Purpose;
}

/// Type-level markers for [`KeyRing`]'s purpose parameter.
pub mod purpose {
    use super::{KeyPurpose, Purpose, sealed::Sealed};

    /// Marker for [`Purpose::Credentials`].
    #[derive(Debug, Clone, Copy)]
    pub enum Credentials {}
    /// Marker for [`Purpose::Sessions`].
    #[derive(Debug, Clone, Copy)]
    pub enum Sessions {}
    /// Marker for [`Purpose::Webhooks`].
    #[derive(Debug, Clone, Copy)]
    pub enum Webhooks {}

    impl Sealed for Credentials {}
    impl Sealed for Sessions {}
    impl Sealed for Webhooks {}

    impl KeyPurpose for Credentials {
        const PURPOSE: Purpose = Purpose::Credentials;
    }
    impl KeyPurpose for Sessions {
        const PURPOSE: Purpose = Purpose::Sessions;
    }
    impl KeyPurpose for Webhooks {
        const PURPOSE: Purpose = Purpose::Webhooks;
    }
}

/// Keys that seal stored credentials.
pub type CredentialKeys = KeyRing<purpose::Credentials>;
/// Keys that hash session ids and personal access tokens.
pub type SessionKeys = KeyRing<purpose::Sessions>;
/// Keys that sign and verify webhook deliveries.
pub type WebhookKeys = KeyRing<purpose::Webhooks>;

/// One named key. The bytes are wiped when the ring is dropped.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: String,
    pub(crate) bytes: Zeroizing<[u8; KEY_LEN]>,
}

/// The keys for one purpose: the first is active, the rest still accepted.
///
/// Parsed from `kid:base64url,kid:base64url,…` (see [`KeyRing::parse`]).
/// `Debug` lists the purpose and key ids only.
pub struct KeyRing<P: KeyPurpose> {
    /// Never empty; `keys[0]` is the active key.
    keys: Vec<Key>,
    // `fn() -> P` keeps the ring `Send + Sync` whatever the marker is.
    purpose: PhantomData<fn() -> P>,
}

impl<P: KeyPurpose> KeyRing<P> {
    /// Parses `kid:key[,kid:key…]`.
    ///
    /// Each `kid` is `[a-z0-9-]{1,32}` and unique; each `key` is exactly 32
    /// bytes in unpadded base64url (43 characters). Whitespace around entries
    /// is ignored, so the value survives a trailing newline in a secret
    /// store; anything else unexpected is an error rather than a guess.
    pub fn parse(spec: &str) -> Result<Self, VaultError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(VaultError::EmptyKeyRing);
        }
        let mut keys: Vec<Key> = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            let Some((kid, encoded)) = entry.trim().split_once(':') else {
                return Err(VaultError::BadKeyEntry { index });
            };
            if !valid_kid(kid) {
                return Err(VaultError::BadKeyId { index });
            }
            if keys.iter().any(|k| k.kid == kid) {
                return Err(VaultError::DuplicateKeyId {
                    kid: kid.to_owned(),
                });
            }
            // Decode into wiped buffers so no stray copy of the key outlives
            // parsing.
            let decoded = Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).map_err(|_| {
                VaultError::BadKeyEncoding {
                    kid: kid.to_owned(),
                }
            })?);
            if decoded.len() != KEY_LEN {
                return Err(VaultError::BadKeyLength {
                    kid: kid.to_owned(),
                    len: decoded.len(),
                });
            }
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            bytes.copy_from_slice(&decoded);
            keys.push(Key {
                kid: kid.to_owned(),
                bytes,
            });
        }
        Ok(KeyRing {
            keys,
            purpose: PhantomData,
        })
    }

    /// One configuration entry, `kid:base64url(key)`, for an operator to
    /// prepend to the ring. The returned string contains the key.
    pub fn generate_spec(kid: &str, key: &[u8; KEY_LEN]) -> Result<String, VaultError> {
        if !valid_kid(kid) {
            return Err(VaultError::BadKeyId { index: 0 });
        }
        Ok(format!("{kid}:{}", URL_SAFE_NO_PAD.encode(key)))
    }

    /// What this ring is for.
    pub fn purpose(&self) -> Purpose {
        P::PURPOSE
    }

    /// The id of the key that seals and hashes new values.
    pub fn active_kid(&self) -> &str {
        &self.active().kid
    }

    /// All key ids, active first.
    pub fn kids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// Whether the ring holds a key with this id.
    pub fn contains(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }

    pub(crate) fn active(&self) -> &Key {
        // `parse` is the only constructor and rejects an empty ring.
        &self.keys[0]
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }
}

impl<P: KeyPurpose> FromStr for KeyRing<P> {
    type Err = VaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

// Written by hand (not derived) so no future field can leak key bytes.
impl<P: KeyPurpose> fmt::Debug for KeyRing<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("purpose", &P::PURPOSE)
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

// By hand: a derive would demand `P: Clone` of the marker.
impl<P: KeyPurpose> Clone for KeyRing<P> {
    fn clone(&self) -> Self {
        KeyRing {
            keys: self.keys.clone(),
            purpose: PhantomData,
        }
    }
}

/// `[a-z0-9-]{1,32}`: safe to embed in envelopes (no `.`), in logs and in
/// error messages.
pub(crate) fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
