//! GitHub webhook signatures: `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the raw request body keyed with the webhook secret.
//!
//! GitHub keys the HMAC with the secret *as typed into its settings*, so the
//! secret to configure there is the base64url text after `kid:` in the ring
//! entry, not the 32 bytes it decodes to. Rotation works like the other
//! purposes: deploy `new,old`, change the secret on GitHub, drop `old`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use zeroize::Zeroizing;

use crate::hash::mac;
use crate::keyring::Key;
use crate::{VaultError, WebhookKeys};

/// The request header GitHub puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &str = "sha256=";
const MAC_LEN: usize = 32;

/// The header value GitHub would send for `body` under the active key.
pub fn sign_webhook(ring: &WebhookKeys, body: &[u8]) -> String {
    sign_webhook_with_secret(github_secret(ring.active()).as_bytes(), body)
}

/// The header value for `body` under an arbitrary secret, for stand-ins and
/// tests that play GitHub.
pub fn sign_webhook_with_secret(secret: &[u8], body: &[u8]) -> String {
    let tag = mac(secret).chain_update(body).finalize().into_bytes();
    format!("{PREFIX}{}", hex::encode(tag))
}

/// Checks a delivery's signature header against every key in the ring.
///
/// Every key is tried, without stopping at the first match, and each
/// comparison is constant-time, so timing reveals neither the expected MAC
/// nor which key matched.
pub fn verify_webhook_signature(
    ring: &WebhookKeys,
    body: &[u8],
    header: &str,
) -> Result<(), VaultError> {
    let presented = header
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .filter(|mac| mac.len() == MAC_LEN)
        .ok_or(VaultError::MalformedSignature)?;
    let mut matched = false;
    for key in ring.keys() {
        let secret = github_secret(key);
        // `|=`, not `||`: evaluate every key regardless of earlier matches.
        matched |= mac(secret.as_bytes())
            .chain_update(body)
            .verify_slice(&presented)
            .is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(VaultError::BadSignature)
    }
}

/// The secret as configured on GitHub. `parse` only accepts canonical
/// unpadded base64url, so re-encoding reproduces the configured text exactly.
fn github_secret(key: &Key) -> Zeroizing<String> {
    Zeroizing::new(URL_SAFE_NO_PAD.encode(&key.bytes[..]))
}
