//! Key ring configuration parsing and redaction.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use sam_vault::{CredentialKeys, KeyRing, Purpose, SessionKeys, VaultError, WebhookKeys, purpose};

const KEY_A: [u8; 32] = [0xab; 32];
const KEY_B: [u8; 32] = [0xcd; 32];

fn b64(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

#[test]
fn first_key_is_active_and_all_are_listed() {
    let spec = format!("k-2:{},k-1:{}", b64(&KEY_A), b64(&KEY_B));
    let ring = CredentialKeys::parse(&spec).expect("valid");
    assert_eq!(ring.active_kid(), "k-2");
    assert_eq!(ring.kids().collect::<Vec<_>>(), ["k-2", "k-1"]);
    assert!(ring.contains("k-1"));
    assert!(!ring.contains("k-3"));
    assert_eq!(ring.purpose(), Purpose::Credentials);
    // FromStr agrees with parse.
    let via_from_str: CredentialKeys = spec.parse().expect("valid");
    assert_eq!(via_from_str.active_kid(), "k-2");
}

#[test]
fn whitespace_around_entries_is_tolerated() {
    let spec = format!("  a:{} ,\n b:{}\n", b64(&KEY_A), b64(&KEY_B));
    let ring = SessionKeys::parse(&spec).expect("valid");
    assert_eq!(ring.kids().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn generate_spec_round_trips() {
    let entry = WebhookKeys::generate_spec("2025-01", &KEY_A).expect("valid kid");
    assert_eq!(entry, format!("2025-01:{}", b64(&KEY_A)));
    let ring = WebhookKeys::parse(&entry).expect("valid");
    assert_eq!(ring.active_kid(), "2025-01");
    assert_eq!(
        WebhookKeys::generate_spec("Bad.Kid", &KEY_A),
        Err(VaultError::BadKeyId { index: 0 })
    );
}

#[test]
fn parse_errors_are_typed() {
    let a = b64(&KEY_A);
    let cases: Vec<(String, VaultError)> = vec![
        (String::new(), VaultError::EmptyKeyRing),
        ("   \n".into(), VaultError::EmptyKeyRing),
        (a.clone(), VaultError::BadKeyEntry { index: 0 }),
        (format!("k1:{a},"), VaultError::BadKeyEntry { index: 1 }),
        (
            format!("k1:{a},,k2:{a}"),
            VaultError::BadKeyEntry { index: 1 },
        ),
        (format!(":{a}"), VaultError::BadKeyId { index: 0 }),
        (format!("K1:{a}"), VaultError::BadKeyId { index: 0 }),
        (format!("k.1:{a}"), VaultError::BadKeyId { index: 0 }),
        (format!("k_1:{a}"), VaultError::BadKeyId { index: 0 }),
        (
            format!("k1:{a},{}:{a}", "x".repeat(33)),
            VaultError::BadKeyId { index: 1 },
        ),
        (
            format!("k1:{a},k1:{}", b64(&KEY_B)),
            VaultError::DuplicateKeyId { kid: "k1".into() },
        ),
        (
            "k1:not base64!".into(),
            VaultError::BadKeyEncoding { kid: "k1".into() },
        ),
        // Padded base64 is refused: the webhook secret is the exact text.
        (
            format!("k1:{}", URL_SAFE.encode(KEY_A)),
            VaultError::BadKeyEncoding { kid: "k1".into() },
        ),
        // Standard-alphabet base64 (`+`/`/`) is refused too.
        (
            "k1:++++++++++++++++++++++++++++++++++++++++++8".into(),
            VaultError::BadKeyEncoding { kid: "k1".into() },
        ),
        (
            format!("k1:{}", b64(&[1; 31])),
            VaultError::BadKeyLength {
                kid: "k1".into(),
                len: 31,
            },
        ),
        (
            format!("k1:{}", b64(&[1; 33])),
            VaultError::BadKeyLength {
                kid: "k1".into(),
                len: 33,
            },
        ),
        (
            "k1:".into(),
            VaultError::BadKeyLength {
                kid: "k1".into(),
                len: 0,
            },
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(CredentialKeys::parse(&spec).err(), Some(want), "{spec:?}");
    }
    // A 32-character id is the longest allowed.
    assert!(CredentialKeys::parse(&format!("{}:{a}", "x".repeat(32))).is_ok());
}

#[test]
fn non_canonical_base64_is_refused() {
    // 43 characters carry 258 bits for a 256-bit key: the last character's
    // two low bits must be zero. Setting one gives text that decodes to the
    // same key in lax decoders, which would make the webhook secret (the
    // text) ambiguous, so it is refused.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let canonical = b64(&KEY_A);
    let mut text = canonical.into_bytes();
    let last = text.last_mut().expect("non-empty");
    let index = ALPHABET
        .iter()
        .position(|c| c == last)
        .expect("in alphabet");
    assert_eq!(index & 0b11, 0, "canonical encoding has zero trailing bits");
    *last = ALPHABET[index | 1];
    let text = String::from_utf8(text).expect("ascii");
    assert_eq!(
        CredentialKeys::parse(&format!("k1:{text}")).err(),
        Some(VaultError::BadKeyEncoding { kid: "k1".into() })
    );
}

#[test]
fn debug_never_shows_key_material() {
    let spec = format!("new:{},old:{}", b64(&KEY_A), b64(&KEY_B));
    let ring = CredentialKeys::parse(&spec).expect("valid");
    let shown = format!("{ring:?} {ring:#?} {:?}", ring.clone());
    assert!(shown.contains("new") && shown.contains("old"), "{shown}");
    assert!(shown.contains("Credentials"), "{shown}");
    for needle in [
        b64(&KEY_A),
        b64(&KEY_B),
        "171".into(),
        "ab, ab".into(),
        "0xab".into(),
        "abab".into(),
    ] {
        assert!(!shown.contains(&needle), "{needle} in {shown}");
    }
}

#[test]
fn errors_never_echo_key_material() {
    // An entry missing its `kid:` puts the key where the id belongs.
    let a = b64(&KEY_A);
    for spec in [a.clone(), format!("{a}:{a}"), format!("k1:{a}x")] {
        let err = CredentialKeys::parse(&spec).expect_err("invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&a[..20]), "{shown}");
    }
}

#[test]
fn purposes_have_stable_names() {
    assert_eq!(
        KeyRing::<purpose::Sessions>::parse(&format!("s:{}", b64(&KEY_A)))
            .expect("valid")
            .purpose(),
        Purpose::Sessions
    );
    assert_eq!(Purpose::Credentials.as_str(), "credentials");
    assert_eq!(Purpose::Sessions.to_string(), "sessions");
    assert_eq!(Purpose::Webhooks.as_str(), "webhooks");
}
