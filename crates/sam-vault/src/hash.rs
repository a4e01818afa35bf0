//! Keyed hashes (`<kid>.<hex HMAC-SHA256>`) of session ids and personal
//! access tokens.
//!
//! The database stores only these, so reading it does not yield a usable
//! session. A plain SHA-256 would let anyone holding a dump test guesses
//! offline; keying it means they also need the session key.
//!
//! Rows are found by hash, so after a rotation a lookup must try the hash
//! under every key in the ring ([`keyed_hashes`]) and then rewrite a row
//! found under an old key ([`rehash_needed`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::SessionKeys;
use crate::keyring::Key;

pub(crate) type HmacSha256 = Hmac<Sha256>;

const MAC_LEN: usize = 32;

/// `<kid>.<hex>` under the active key: what to store for new data.
pub fn keyed_hash(ring: &SessionKeys, data: &[u8]) -> String {
    hash_with(ring.active(), data)
}

/// The keyed hash under every key in the ring, active first: the candidates
/// to look a presented token up by (`WHERE token_hash IN (…)`).
pub fn keyed_hashes(ring: &SessionKeys, data: &[u8]) -> Vec<String> {
    ring.keys().iter().map(|key| hash_with(key, data)).collect()
}

/// Whether `stored` is the keyed hash of `data` under the key it names.
///
/// Any key in the ring is accepted, so tokens issued before a rotation keep
/// working. The comparison is constant-time; anything malformed, or naming
/// a key the ring lacks, is simply `false`.
pub fn verify_keyed_hash(ring: &SessionKeys, data: &[u8], stored: &str) -> bool {
    let Some((kid, hex_mac)) = stored.split_once('.') else {
        return false;
    };
    let Some(key) = ring.get(kid) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_mac) else {
        return false;
    };
    mac(&key.bytes[..])
        .chain_update(data)
        .verify_slice(&expected)
        .is_ok()
}

/// Whether `stored` should be replaced by [`keyed_hash`]: true unless it was
/// made with the active key (malformed values included, so they get fixed).
pub fn rehash_needed(ring: &SessionKeys, stored: &str) -> bool {
    stored.split_once('.').is_none_or(|(kid, mac)| {
        kid != ring.active_kid()
            || mac.len() != 2 * MAC_LEN
            || !mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn hash_with(key: &Key, data: &[u8]) -> String {
    let tag = mac(&key.bytes[..])
        .chain_update(data)
        .finalize()
        .into_bytes();
    format!("{}.{}", key.kid, hex::encode(tag))
}

pub(crate) fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long ones are hashed first).
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}
