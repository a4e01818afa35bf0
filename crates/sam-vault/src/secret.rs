//! Decrypted secrets and how to show them without showing them.

use std::fmt;

use zeroize::Zeroizing;

use crate::VaultError;

/// Decrypted secret bytes.
///
/// Wiped from memory on drop. `Debug` is redacted and there is no `Display`,
/// so a secret cannot slip into a log line or a response through
/// formatting; reading it takes an explicit [`Secret::expose`].
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes that are already secret (e.g. a token a user submitted).
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The secret bytes. Callers must not log or return them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text; credentials are normally UTF-8 tokens.
    pub fn expose_str(&self) -> Result<&str, VaultError> {
        std::str::from_utf8(&self.0).map_err(|_| VaultError::NotUtf8)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Secret::new(bytes)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret::new(text.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not even the length: it narrows down what kind of token this is.
        f.write_str("Secret(<redacted>)")
    }
}

/// Shorter than this, showing a tail would reveal too large a share of the
/// secret, so only the bullets are shown.
const MASK_MIN_CHARS: usize = 12;
const MASK_TAIL_CHARS: usize = 4;
const BULLETS: &str = "••••";

/// A listing-safe rendering of a secret: `••••` plus at most its last four
/// characters, and nothing of it at all when it is shorter than twelve.
///
/// The bullet count is fixed so the mask does not reveal the length either.
pub fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    if count < MASK_MIN_CHARS {
        return BULLETS.to_owned();
    }
    // Count in chars, not bytes, so a multi-byte character is never split.
    let tail: String = secret.chars().skip(count - MASK_TAIL_CHARS).collect();
    format!("{BULLETS}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_shows_at_most_the_last_four_chars() {
        assert_eq!(mask("hcloud-token-abcd"), "••••abcd");
        assert_eq!(mask("123456789012"), "••••9012");
        assert_eq!(mask("12345678901"), "••••");
        assert_eq!(mask("abc"), "••••");
        assert_eq!(mask(""), "••••");
        // Multi-byte characters count as one each and are never split.
        assert_eq!(mask("ééééééééééé€€€€"), "••••€€€€");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::from("hunter2-hunter2".to_owned());
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.expose(), b"hunter2-hunter2");
        assert_eq!(s.expose_str(), Ok("hunter2-hunter2"));
        assert_eq!(s.len(), 15);
        assert!(!s.is_empty());
    }

    #[test]
    fn non_utf8_secret_is_a_typed_error() {
        let s = Secret::new(vec![0xff, 0xfe]);
        assert_eq!(s.expose_str(), Err(VaultError::NotUtf8));
    }
}
