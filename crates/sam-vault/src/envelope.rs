//! AES-256-GCM envelopes: `v1.<kid>.<nonce>.<ciphertext+tag>`.
//!
//! Text rather than bytes so an envelope fits a TEXT column or a JSON string
//! unchanged. Each part is unpadded base64url, whose alphabet has no `.`, and
//! key ids cannot contain one either, so splitting on `.` is unambiguous.
//!
//! The version and key id are not covered by the GCM tag, and need not be:
//! altering the version makes the envelope unreadable, and altering the key
//! id selects a different key, under which the tag fails. The caller's
//! associated data *is* covered, which is what ties an envelope to its row.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keyring::{Key, valid_kid};
use crate::{CredentialKeys, Secret, VaultError};

/// Length of the per-value nonce, in bytes (GCM's standard 96 bits).
pub const NONCE_LEN: usize = 12;

const VERSION: &str = "v1";
const TAG_LEN: usize = 16;

/// Seals `plaintext` under the ring's active key.
///
/// `aad` names the value's owner and slot (e.g.
/// `b"cloud-credential:<user_id>:hetzner"`): it is not stored, and
/// [`decrypt`] must be given the same bytes. `nonce` must be fresh from a
/// CSPRNG for every call; random 96-bit nonces are safe for far more values
/// than one key will ever seal here, and rotation resets the count anyway.
///
/// # Panics
///
/// Only if `plaintext` exceeds AES-GCM's limit of about 64 GiB, which no
/// stored credential approaches (and wasm32 cannot even address).
pub fn encrypt(
    ring: &CredentialKeys,
    plaintext: &[u8],
    aad: &[u8],
    nonce: [u8; NONCE_LEN],
) -> String {
    let key = ring.active();
    let sealed = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("plaintext within AES-GCM's 64 GiB limit");
    format!(
        "{VERSION}.{kid}.{nonce}.{sealed}",
        kid = key.kid,
        nonce = URL_SAFE_NO_PAD.encode(nonce),
        sealed = URL_SAFE_NO_PAD.encode(sealed),
    )
}

/// Opens an envelope sealed by any key in the ring.
///
/// Fails with [`VaultError::Tampered`] when authentication fails, whatever
/// the reason (altered bytes, other `aad`, other key material under the same
/// id): GCM checks the tag before releasing any plaintext, so a failure
/// never yields garbage.
pub fn decrypt(ring: &CredentialKeys, envelope: &str, aad: &[u8]) -> Result<Secret, VaultError> {
    open(ring, &Parsed::from_str(envelope)?, aad)
}

/// Whether the envelope was sealed by a key other than the active one.
///
/// An envelope naming a key the ring no longer holds is
/// [`VaultError::UnknownKey`]: it can no longer be rotated, and the sweep
/// should say so rather than skip it.
pub fn needs_rotation(ring: &CredentialKeys, envelope: &str) -> Result<bool, VaultError> {
    let parsed = Parsed::from_str(envelope)?;
    if !ring.contains(parsed.kid) {
        return Err(VaultError::UnknownKey {
            kid: parsed.kid.to_owned(),
        });
    }
    Ok(parsed.kid != ring.active_kid())
}

/// Re-seals an envelope under the active key, for the rotation sweep.
///
/// The envelope is always opened first, so the sweep also proves every value
/// still authenticates against its row. One already under the active key is
/// returned unchanged (no new nonce, no write needed), which makes re-running
/// an interrupted sweep harmless.
pub fn reencrypt(
    ring: &CredentialKeys,
    envelope: &str,
    aad: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<String, VaultError> {
    let parsed = Parsed::from_str(envelope)?;
    let secret = open(ring, &parsed, aad)?;
    if parsed.kid == ring.active_kid() {
        return Ok(envelope.to_owned());
    }
    Ok(encrypt(ring, secret.expose(), aad, nonce))
}

fn open(ring: &CredentialKeys, parsed: &Parsed<'_>, aad: &[u8]) -> Result<Secret, VaultError> {
    let key = ring.get(parsed.kid).ok_or_else(|| VaultError::UnknownKey {
        kid: parsed.kid.to_owned(),
    })?;
    let plaintext = cipher(key)
        .decrypt(
            Nonce::from_slice(&parsed.nonce),
            Payload {
                msg: &parsed.sealed,
                aad,
            },
        )
        .map_err(|_| VaultError::Tampered)?;
    // Wrapped at once so the plaintext is wiped whenever it is dropped.
    Ok(Secret::new(plaintext))
}

fn cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new(key.bytes.as_ref().into())
}

/// The parts of a structurally valid envelope.
struct Parsed<'a> {
    kid: &'a str,
    nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    sealed: Vec<u8>,
}

impl<'a> Parsed<'a> {
    fn from_str(envelope: &'a str) -> Result<Self, VaultError> {
        let (version, rest) = envelope.split_once('.').ok_or(VaultError::Malformed)?;
        if version != VERSION {
            // A well-formed `vN` from a newer build is reported as such, so
            // a rollback that cannot read new values says why.
            let is_version = version.len() <= 10
                && version
                    .strip_prefix('v')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            return Err(if is_version {
                VaultError::UnsupportedVersion {
                    version: version.to_owned(),
                }
            } else {
                VaultError::Malformed
            });
        }
        let mut parts = rest.split('.');
        let (Some(kid), Some(nonce), Some(sealed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VaultError::Malformed);
        };
        if !valid_kid(kid) {
            return Err(VaultError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(VaultError::Malformed)?;
        let sealed = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| VaultError::Malformed)?;
        if sealed.len() < TAG_LEN {
            return Err(VaultError::Malformed);
        }
        Ok(Parsed { kid, nonce, sealed })
    }
}
