//! Keyed hashes for sessions and webhook signatures.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sam_vault::{
    SIGNATURE_HEADER, SessionKeys, VaultError, WebhookKeys, keyed_hash, keyed_hashes,
    rehash_needed, sign_webhook, sign_webhook_with_secret, verify_keyed_hash,
    verify_webhook_signature,
};
use sha2::Sha256;

const OLD: [u8; 32] = [0x33; 32];
const NEW: [u8; 32] = [0x44; 32];

fn spec(entries: &[(&str, &[u8; 32])]) -> String {
    entries
        .iter()
        .map(|(kid, key)| format!("{kid}:{}", URL_SAFE_NO_PAD.encode(key)))
        .collect::<Vec<_>>()
        .join(",")
}

/// HMAC-SHA256 computed here with the `hmac` crate directly, independently
/// of the vault's own code path.
fn reference_hmac(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn keyed_hash_is_kid_dot_hex_hmac() {
    let ring = SessionKeys::parse(&spec(&[("s1", &OLD)])).expect("valid");
    let token = b"sam_pat_0123456789";
    let stored = keyed_hash(&ring, token);
    assert_eq!(stored, format!("s1.{}", reference_hmac(&OLD, token)));
    assert!(!stored.contains("sam_pat"));
    assert!(verify_keyed_hash(&ring, token, &stored));
    assert!(!verify_keyed_hash(&ring, b"sam_pat_0123456780", &stored));
    assert!(!rehash_needed(&ring, &stored));
}

#[test]
fn keyed_hash_matches_rfc_4231_case_2() {
    // RFC 4231 test case 2 checks the HMAC primitive itself; the ring cannot
    // hold the 4-byte key "Jefe", so this exercises the shared primitive via
    // the webhook signer, which takes arbitrary keys.
    assert_eq!(
        sign_webhook_with_secret(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn keyed_hashes_verify_across_rotation() {
    let before = SessionKeys::parse(&spec(&[("old", &OLD)])).expect("valid");
    let during = SessionKeys::parse(&spec(&[("new", &NEW), ("old", &OLD)])).expect("valid");
    let after = SessionKeys::parse(&spec(&[("new", &NEW)])).expect("valid");
    let session = b"session-id-abc";

    let issued_before = keyed_hash(&before, session);
    // Still accepted mid-rotation, and flagged for rewriting.
    assert!(verify_keyed_hash(&during, session, &issued_before));
    assert!(rehash_needed(&during, &issued_before));
    // The lookup candidates include it, active key first.
    let candidates = keyed_hashes(&during, session);
    assert_eq!(candidates.len(), 2);
    assert!(candidates[0].starts_with("new."));
    assert_eq!(candidates[1], issued_before);

    let rehashed = keyed_hash(&during, session);
    assert_eq!(rehashed, candidates[0]);
    assert!(!rehash_needed(&during, &rehashed));
    assert!(verify_keyed_hash(&after, session, &rehashed));
    // Once `old` is gone, un-rewritten hashes stop working.
    assert!(!verify_keyed_hash(&after, session, &issued_before));
}

#[test]
fn malformed_or_forged_stored_hashes_do_not_verify() {
    let ring = SessionKeys::parse(&spec(&[("s1", &OLD)])).expect("valid");
    let data = b"token";
    let good = keyed_hash(&ring, data);
    let hex_part = good.split_once('.').expect("kid.hex").1.to_owned();
    let same_key_other_kid = SessionKeys::parse(&spec(&[("s2", &OLD)])).expect("valid");
    for bad in [
        String::new(),
        hex_part.clone(),
        format!("s2.{hex_part}"),
        format!("S1.{hex_part}"),
        format!("s1.{}", &hex_part[..62]),
        format!("s1.{hex_part}00"),
        format!("s1.{}", "0".repeat(64)),
        format!("s1.{}zz", &hex_part[..62]),
        format!("{good}.x"),
    ] {
        assert!(!verify_keyed_hash(&ring, data, &bad), "{bad}");
        // Anything not a well-formed hash under the active key is due a
        // rewrite; a well-formed but wrong one simply never verifies.
        let well_formed_under_active = bad == format!("s1.{}", "0".repeat(64));
        assert_eq!(
            rehash_needed(&ring, &bad),
            !well_formed_under_active,
            "{bad}"
        );
    }
    // Another purpose's key of the same bytes under another id still does
    // not verify: the id selects the key.
    assert!(!verify_keyed_hash(&same_key_other_kid, data, &good));
}

#[test]
fn github_published_webhook_vector() {
    // From GitHub's "Validating webhook deliveries" documentation.
    assert_eq!(
        sign_webhook_with_secret(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    assert_eq!(SIGNATURE_HEADER, "X-Hub-Signature-256");
}

#[test]
fn webhook_secret_is_the_configured_base64url_text() {
    let ring = WebhookKeys::parse(&spec(&[("w1", &OLD)])).expect("valid");
    let body = br#"{"action":"opened","number":1}"#;
    let github_secret = URL_SAFE_NO_PAD.encode(OLD);
    let expected = format!("sha256={}", reference_hmac(github_secret.as_bytes(), body));
    assert_eq!(sign_webhook(&ring, body), expected);
    assert_eq!(verify_webhook_signature(&ring, body, &expected), Ok(()));
    // Uppercase hex and surrounding whitespace are accepted.
    let upper = format!("sha256={}", expected["sha256=".len()..].to_uppercase());
    assert_eq!(verify_webhook_signature(&ring, body, &upper), Ok(()));
    assert_eq!(
        verify_webhook_signature(&ring, body, &format!(" {expected}\n")),
        Ok(())
    );
}

#[test]
fn webhook_verification_tries_every_key() {
    let old = WebhookKeys::parse(&spec(&[("old", &OLD)])).expect("valid");
    let new = WebhookKeys::parse(&spec(&[("new", &NEW)])).expect("valid");
    let both = WebhookKeys::parse(&spec(&[("new", &NEW), ("old", &OLD)])).expect("valid");
    let body = b"payload";
    // GitHub may still sign with the old secret, or already with the new.
    assert_eq!(
        verify_webhook_signature(&both, body, &sign_webhook(&old, body)),
        Ok(())
    );
    assert_eq!(
        verify_webhook_signature(&both, body, &sign_webhook(&new, body)),
        Ok(())
    );
    assert_eq!(
        verify_webhook_signature(&new, body, &sign_webhook(&old, body)),
        Err(VaultError::BadSignature)
    );
}

#[test]
fn webhook_signature_errors_are_typed() {
    let ring = WebhookKeys::parse(&spec(&[("w1", &OLD)])).expect("valid");
    let body = b"payload";
    let good = sign_webhook(&ring, body);
    let hex_part = &good["sha256=".len()..];

    // Altered body or signature: a well-formed header that does not match.
    assert_eq!(
        verify_webhook_signature(&ring, b"payload!", &good),
        Err(VaultError::BadSignature)
    );
    let mut flipped = hex_part.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = format!("sha256={}", String::from_utf8(flipped).expect("ascii"));
    assert_eq!(
        verify_webhook_signature(&ring, body, &flipped),
        Err(VaultError::BadSignature)
    );

    for bad in [
        String::new(),
        hex_part.to_owned(),
        format!("sha1={hex_part}"),
        format!("SHA256={hex_part}"),
        format!("sha256={}", &hex_part[..62]),
        format!("sha256={hex_part}00"),
        format!("sha256={}zz", &hex_part[..62]),
        "sha256=".into(),
    ] {
        let err = verify_webhook_signature(&ring, body, &bad);
        assert_eq!(err, Err(VaultError::MalformedSignature), "{bad:?}");
        assert_eq!(
            err.map_err(|e| e.code()),
            Err("webhook_signature_malformed")
        );
    }
    assert_eq!(VaultError::BadSignature.code(), "webhook_signature_invalid");
}
