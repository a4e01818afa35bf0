//! Signing keys and their JSON Web Key form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_compact::{KeyPair, PublicKey, SecretKey, Seed};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("signing key must be 32 bytes of base64url (got {0} bytes)")]
    BadLength(usize),
    #[error("signing key is not valid base64url")]
    NotBase64,
    #[error("JWK is not an Ed25519 OKP key")]
    UnsupportedJwk,
}

/// The control plane's Ed25519 signing key.
///
/// `Debug` is written by hand so the secret can never reach a log line.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) kid: String,
    pub(crate) secret: SecretKey,
    pub(crate) public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a key from its 32-byte seed, base64url-encoded (padding optional).
    pub fn from_seed_base64(seed: &str) -> Result<Self, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(seed.trim().trim_end_matches('='))
            .map_err(|_| KeyError::NotBase64)?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadLength(bytes.len()))?;
        Ok(Self::from_seed(seed))
    }

    /// Loads a key from its raw 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = KeyPair::from_seed(Seed::new(seed));
        Self {
            kid: key_id(&pair.pk),
            secret: pair.sk,
            public: pair.pk,
        }
    }

    /// Encodes a seed the way [`Self::from_seed_base64`] reads it.
    pub fn encode_seed(seed: [u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(seed)
    }

    /// Key id: derived from the public key, so rotating the key rotates the id
    /// and verifiers holding a stale key set know to refresh.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.public.as_ref()),
            kid: self.kid.clone(),
            alg: "EdDSA".to_owned(),
            key_use: "sig".to_owned(),
        }
    }

    /// The key set published at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public_jwk()],
        }
    }
}

fn key_id(public: &PublicKey) -> String {
    let digest = Sha256::digest(public.as_ref());
    format!("ed25519-{}", hex::encode(&digest[..8]))
}

/// One public key in JWK form (RFC 8037 OKP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(default)]
    pub alg: String,
    #[serde(rename = "use", default)]
    pub key_use: String,
}

impl Jwk {
    pub(crate) fn public_key(&self) -> Result<PublicKey, KeyError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(KeyError::UnsupportedJwk);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| KeyError::NotBase64)?;
        PublicKey::from_slice(&bytes).map_err(|_| KeyError::UnsupportedJwk)
    }
}

/// A JWK set document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}
