//! Envelope sealing, tamper detection, malformed input and key rotation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use sam_vault::{
    CredentialKeys, NONCE_LEN, VaultError, decrypt, encrypt, needs_rotation, reencrypt,
};

const OLD: [u8; 32] = [0x11; 32];
const NEW: [u8; 32] = [0x22; 32];
const AAD: &[u8] = b"cloud-credential:user-1:hetzner";

fn entry(kid: &str, key: &[u8; 32]) -> String {
    CredentialKeys::generate_spec(kid, key).expect("valid kid")
}

fn ring(entries: &[(&str, &[u8; 32])]) -> CredentialKeys {
    let spec: Vec<String> = entries.iter().map(|(kid, key)| entry(kid, key)).collect();
    CredentialKeys::parse(&spec.join(",")).expect("valid ring")
}

/// Distinct nonces per call, as a CSPRNG would give.
fn nonce(n: usize) -> [u8; NONCE_LEN] {
    let mut nonce = [0xa5; NONCE_LEN];
    nonce[..8].copy_from_slice(&(n as u64).to_le_bytes());
    nonce
}

fn parts(envelope: &str) -> Vec<String> {
    envelope.split('.').map(str::to_owned).collect()
}

/// Decodes part `i`, lets `f` alter the bytes, re-encodes it.
fn alter_part(envelope: &str, i: usize, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut parts = parts(envelope);
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[i]).expect("base64url part");
    f(&mut bytes);
    parts[i] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

#[test]
fn round_trips_many_sizes() {
    let keys = ring(&[("k1", &OLD)]);
    for (i, size) in [0usize, 1, 15, 16, 17, 255, 4096, 64 * 1024]
        .into_iter()
        .enumerate()
    {
        let plaintext: Vec<u8> = (0..=250u8).cycle().take(size).collect();
        let envelope = encrypt(&keys, &plaintext, AAD, nonce(i));
        let parts = parts(&envelope);
        assert_eq!(parts.len(), 4, "{envelope}");
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], "k1");
        assert_eq!(URL_SAFE_NO_PAD.decode(&parts[2]).expect("nonce").len(), 12);
        // Ciphertext is plaintext-sized plus the 16-byte tag.
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&parts[3]).expect("sealed").len(),
            size + 16
        );
        let opened = decrypt(&keys, &envelope, AAD).expect("opens");
        assert_eq!(opened.expose(), plaintext.as_slice(), "size {size}");
    }
}

#[test]
fn ciphertext_hides_the_plaintext_and_depends_on_the_nonce() {
    let keys = ring(&[("k1", &OLD)]);
    let secret = b"hcloud-super-secret-token";
    let a = encrypt(&keys, secret, AAD, nonce(1));
    let b = encrypt(&keys, secret, AAD, nonce(2));
    assert_ne!(a, b, "fresh nonce, fresh ciphertext");
    assert!(!a.contains("hcloud"));
    assert!(!a.contains(&URL_SAFE_NO_PAD.encode(secret)));
}

#[test]
fn text_secrets_come_back_as_text() {
    let keys = ring(&[("k1", &OLD)]);
    let envelope = encrypt(&keys, "tök€n".as_bytes(), AAD, nonce(1));
    let opened = decrypt(&keys, &envelope, AAD).expect("opens");
    assert_eq!(opened.expose_str(), Ok("tök€n"));
}

#[test]
fn flipping_any_byte_of_nonce_ciphertext_or_tag_is_tampered() {
    let keys = ring(&[("k1", &OLD)]);
    let envelope = encrypt(&keys, b"a credential of some length", AAD, nonce(1));
    let sealed_len = URL_SAFE_NO_PAD
        .decode(&parts(&envelope)[3])
        .expect("sealed")
        .len();

    for i in 0..NONCE_LEN {
        let bad = alter_part(&envelope, 2, |b| b[i] ^= 0x01);
        assert_eq!(decrypt(&keys, &bad, AAD).err(), Some(VaultError::Tampered));
    }
    // Every byte of the sealed part: ciphertext first, then the tag.
    for i in 0..sealed_len {
        let bad = alter_part(&envelope, 3, |b| b[i] ^= 0x80);
        assert_eq!(
            decrypt(&keys, &bad, AAD).err(),
            Some(VaultError::Tampered),
            "byte {i}"
        );
    }
    // Truncating or extending the sealed part is also caught.
    let shorter = alter_part(&envelope, 3, |b| {
        b.pop();
    });
    assert_eq!(
        decrypt(&keys, &shorter, AAD).err(),
        Some(VaultError::Tampered)
    );
    let longer = alter_part(&envelope, 3, |b| b.push(0));
    assert_eq!(
        decrypt(&keys, &longer, AAD).err(),
        Some(VaultError::Tampered)
    );
}

#[test]
fn a_ciphertext_moved_to_another_row_does_not_open() {
    let keys = ring(&[("k1", &OLD)]);
    let envelope = encrypt(&keys, b"token", AAD, nonce(1));
    for other in [
        b"cloud-credential:user-2:hetzner".as_slice(),
        b"cloud-credential:user-1:scaleway",
        b"",
    ] {
        assert_eq!(
            decrypt(&keys, &envelope, other).err(),
            Some(VaultError::Tampered)
        );
    }
}

#[test]
fn an_unknown_key_id_is_reported_by_name() {
    let sealer = ring(&[("k1", &OLD)]);
    let other = ring(&[("k2", &OLD)]);
    let envelope = encrypt(&sealer, b"token", AAD, nonce(1));
    assert_eq!(
        decrypt(&other, &envelope, AAD).err(),
        Some(VaultError::UnknownKey { kid: "k1".into() })
    );
}

#[test]
fn other_key_material_under_the_same_id_is_tampered() {
    let sealer = ring(&[("k1", &OLD)]);
    let impostor = ring(&[("k1", &NEW)]);
    let envelope = encrypt(&sealer, b"token", AAD, nonce(1));
    assert_eq!(
        decrypt(&impostor, &envelope, AAD).err(),
        Some(VaultError::Tampered)
    );
}

#[test]
fn relabelling_the_key_id_is_tampered() {
    let keys = ring(&[("k2", &NEW), ("k1", &OLD)]);
    let envelope = encrypt(&keys, b"token", AAD, nonce(1));
    let relabelled = envelope.replacen(".k2.", ".k1.", 1);
    assert_ne!(envelope, relabelled);
    assert_eq!(
        decrypt(&keys, &relabelled, AAD).err(),
        Some(VaultError::Tampered)
    );
}

#[test]
fn malformed_envelopes_are_typed_errors() {
    let keys = ring(&[("k1", &OLD)]);
    let good = encrypt(&keys, b"token", AAD, nonce(1));
    let p = parts(&good);
    let nonce11 = URL_SAFE_NO_PAD.encode([0u8; 11]);
    let nonce13 = URL_SAFE_NO_PAD.encode([0u8; 13]);
    let short_tag = URL_SAFE_NO_PAD.encode([0u8; 15]);
    let malformed = [
        String::new(),
        "v1".into(),
        "v1.".into(),
        "garbage".into(),
        format!("v1.{}.{}", p[1], p[2]), // three parts
        format!("{good}.extra"),         // five parts
        format!("v1.{}.{}.{}", p[1], p[2], "!!notb64!!"), // bad base64 sealed
        format!("v1.{}.{}.{}", p[1], "@@@", p[3]), // bad base64 nonce
        format!("v1.{}.{}=.{}", p[1], p[2], p[3]), // padded nonce
        format!("v1.{}.{nonce11}.{}", p[1], p[3]), // 11-byte nonce
        format!("v1.{}.{nonce13}.{}", p[1], p[3]), // 13-byte nonce
        format!("v1.{}.{}.{short_tag}", p[1], p[2]), // shorter than a tag
        format!("v1.{}.{}.", p[1], p[2]), // empty sealed part
        format!("v1..{}.{}", p[2], p[3]), // empty kid
        format!("v1.K1.{}.{}", p[2], p[3]), // kid out of alphabet
        format!("V1.{}.{}.{}", p[1], p[2], p[3]), // not a version
        format!(" {good}"),
        format!("{good}\n"),
    ];
    for bad in &malformed {
        assert_eq!(
            decrypt(&keys, bad, AAD).err(),
            Some(VaultError::Malformed),
            "{bad:?}"
        );
        assert_eq!(
            needs_rotation(&keys, bad).err(),
            Some(VaultError::Malformed)
        );
    }
    let future = format!("v2.{}.{}.{}", p[1], p[2], p[3]);
    let err = decrypt(&keys, &future, AAD).err();
    assert_eq!(
        err,
        Some(VaultError::UnsupportedVersion {
            version: "v2".into()
        })
    );
    assert_eq!(err.map(|e| e.code()), Some("vault_unsupported_version"));
}

#[test]
fn rotation_moves_every_value_to_the_new_key_without_downtime() {
    let aads: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("cloud-credential:user-{i}:hetzner").into_bytes())
        .collect();
    let secrets: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("secret-number-{i}").into_bytes())
        .collect();

    // Before: only `old`.
    let before = ring(&[("old", &OLD)]);
    let stored: Vec<String> = (0..5)
        .map(|i| encrypt(&before, &secrets[i], &aads[i], nonce(i)))
        .collect();

    // During: `new,old`. Everything old still opens, new writes use `new`.
    let during = ring(&[("new", &NEW), ("old", &OLD)]);
    assert_eq!(during.active_kid(), "new");
    for i in 0..5 {
        assert_eq!(
            decrypt(&during, &stored[i], &aads[i])
                .expect("opens")
                .expose(),
            secrets[i]
        );
        assert_eq!(needs_rotation(&during, &stored[i]), Ok(true));
    }
    let fresh = encrypt(&during, b"written mid-rotation", b"row-x", nonce(99));
    assert!(fresh.starts_with("v1.new."));
    assert_eq!(needs_rotation(&during, &fresh), Ok(false));

    // The sweep: leave one value behind to prove the final ring rejects it.
    let (swept, left_behind) = stored.split_at(4);
    let rotated: Vec<String> = swept
        .iter()
        .enumerate()
        .map(|(i, env)| reencrypt(&during, env, &aads[i], nonce(100 + i)).expect("rotates"))
        .collect();
    for (i, env) in rotated.iter().enumerate() {
        assert!(env.starts_with("v1.new."), "{env}");
        assert_eq!(needs_rotation(&during, env), Ok(false));
        assert_eq!(
            decrypt(&during, env, &aads[i]).expect("opens").expose(),
            secrets[i]
        );
        // Rotation keeps the row binding.
        assert_eq!(
            decrypt(&during, env, b"some-other-row").err(),
            Some(VaultError::Tampered)
        );
        // Re-running the sweep is a no-op.
        assert_eq!(
            reencrypt(&during, env, &aads[i], nonce(200)).as_deref(),
            Ok(env.as_str())
        );
    }
    // Rotating with the wrong row binding fails instead of re-sealing.
    assert_eq!(
        reencrypt(&during, &left_behind[0], b"wrong-row", nonce(201)).err(),
        Some(VaultError::Tampered)
    );

    // After: `new` only. Rotated values open; the straggler is UnknownKey.
    let after = ring(&[("new", &NEW)]);
    for (i, env) in rotated.iter().enumerate() {
        assert_eq!(
            decrypt(&after, env, &aads[i]).expect("opens").expose(),
            secrets[i]
        );
    }
    let old_kid = Some(VaultError::UnknownKey { kid: "old".into() });
    assert_eq!(decrypt(&after, &left_behind[0], &aads[4]).err(), old_kid);
    assert_eq!(needs_rotation(&after, &left_behind[0]).err(), old_kid);
    assert_eq!(
        reencrypt(&after, &left_behind[0], &aads[4], nonce(202)).err(),
        old_kid
    );
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(VaultError::Malformed.code(), "vault_malformed");
    assert_eq!(VaultError::Tampered.code(), "vault_tampered");
    assert_eq!(
        VaultError::UnknownKey { kid: "k".into() }.code(),
        "vault_unknown_key"
    );
}

proptest! {
    #[test]
    fn random_strings_never_panic_and_never_open(s in ".{0,200}") {
        let keys = ring(&[("k1", &OLD)]);
        prop_assert!(decrypt(&keys, &s, AAD).is_err());
        let _ = needs_rotation(&keys, &s);
        prop_assert!(reencrypt(&keys, &s, AAD, nonce(0)).is_err());
    }

    #[test]
    fn well_shaped_random_envelopes_never_open(
        kid in "k1|k2|[a-z0-9-]{1,32}",
        nonce_bytes in proptest::collection::vec(any::<u8>(), 0..20),
        sealed in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let keys = ring(&[("k1", &OLD), ("k2", &NEW)]);
        let envelope = format!(
            "v1.{kid}.{}.{}",
            URL_SAFE_NO_PAD.encode(&nonce_bytes),
            URL_SAFE_NO_PAD.encode(&sealed)
        );
        let err = decrypt(&keys, &envelope, AAD).err();
        prop_assert!(matches!(
            err,
            Some(VaultError::Malformed | VaultError::UnknownKey { .. } | VaultError::Tampered)
        ), "{err:?}");
    }

    #[test]
    fn any_plaintext_and_aad_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        n in any::<[u8; 12]>(),
    ) {
        let keys = ring(&[("k1", &OLD)]);
        let envelope = encrypt(&keys, &plaintext, &aad, n);
        let opened = decrypt(&keys, &envelope, &aad).expect("opens");
        prop_assert_eq!(opened.expose(), plaintext.as_slice());
    }
}
