//! Identifiers and secrets in GitHub's shapes: prefixed tokens, OAuth codes,
//! delivery GUIDs, node ids and fake commit SHAs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Token kinds, by GitHub's documented prefixes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenKind {
    /// OAuth app user token.
    OAuth,
    /// GitHub App installation token.
    Installation,
}

/// A fresh token: prefix plus 36 alphanumerics, 40 characters in all.
pub(crate) fn token(kind: TokenKind) -> String {
    let prefix = match kind {
        TokenKind::OAuth => "gho_",
        TokenKind::Installation => "ghs_",
    };
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(36)
        .map(char::from)
        .collect();
    format!("{prefix}{body}")
}

/// A web-flow code: 20 hex characters, like GitHub's.
pub(crate) fn oauth_code() -> String {
    hex::encode(rand::rng().random::<[u8; 10]>())
}

/// A random (version 4) UUID for `X-GitHub-Delivery`.
pub(crate) fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An opaque GraphQL-style node id, stable for a `(type, id)` pair.
pub(crate) fn node_id(kind: &str, id: u64) -> String {
    let prefix = match kind {
        "Repository" => "R_",
        "User" => "U_",
        "Organization" => "O_",
        "Installation" => "MDIz",
        "Integration" => "MDExOk",
        _ => "",
    };
    format!(
        "{prefix}{}",
        STANDARD.encode(format!("devgithub:{kind}:{id}"))
    )
}

/// A 40-hex fake commit SHA, deterministic for what it is derived from.
pub(crate) fn fake_sha(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    hex::encode(&digest[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let t = token(TokenKind::OAuth);
        assert!(t.starts_with("gho_") && t.len() == 40, "{t}");
        assert!(token(TokenKind::Installation).starts_with("ghs_"));
        assert_eq!(oauth_code().len(), 20);
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let sha = fake_sha("x");
        assert_eq!(sha.len(), 40);
        assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(sha, fake_sha("x"));
        assert_ne!(token(TokenKind::OAuth), token(TokenKind::OAuth));
    }
}
