//! Scrubbing of text that leaves the agent (failure reasons, boot log
//! details): tool output is not trusted to be free of secrets.

const REDACTED: &str = "[redacted]";
/// Longest reason or detail sent to the control plane, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 1000;

/// `text` with every known secret, URL credentials and anything that looks
/// like a token replaced by `[redacted]`, cut to [`MAX_REASON_CHARS`].
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        // A very short "secret" would shred ordinary words.
        if secret.len() >= 8 {
            out = out.replace(secret, REDACTED);
        }
    }
    let out = redact_token_words(&redact_userinfo(&out));
    truncate(&out, MAX_REASON_CHARS)
}

/// `scheme://user:pass@host` → `scheme://[redacted]@host`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push_str(REDACTED);
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Replaces words that look like credentials: GitHub tokens (`ghp_…`,
/// `ghs_…`, `github_pat_…`) and JWTs (three long base64url parts).
fn redact_token_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (is_token_char(c) && i < text.len(), word_start) {
            (true, None) => word_start = Some(i),
            (true, Some(_)) => {}
            (false, start) => {
                if let Some(start) = start {
                    let word = &text[start..i];
                    // A sentence's full stop is not part of the token.
                    let core = word.trim_end_matches('.');
                    if looks_like_token(core) {
                        out.push_str(REDACTED);
                        out.push_str(&word[core.len()..]);
                    } else {
                        out.push_str(word);
                    }
                    word_start = None;
                }
                if i < text.len() {
                    out.push(c);
                }
            }
        }
    }
    out
}

fn looks_like_token(word: &str) -> bool {
    let github = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]
        .iter()
        .any(|prefix| word.starts_with(prefix) && word.len() >= prefix.len() + 16);
    let parts: Vec<&str> = word.split('.').collect();
    let jwt = parts.len() == 3
        && word.len() >= 40
        && parts.iter().all(|p| {
            p.len() >= 8
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        });
    github || jwt
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_are_replaced() {
        assert_eq!(
            scrub("token s3cr3t-value-123 was refused", &["s3cr3t-value-123"]),
            "token [redacted] was refused"
        );
        // Short strings are not treated as secrets.
        assert_eq!(scrub("a b c", &["b"]), "a b c");
    }

    #[test]
    fn url_credentials_are_replaced() {
        assert_eq!(
            scrub(
                "fatal: unable to access 'https://x-access-token:abc@github.com/a/b.git/': 403",
                &[]
            ),
            "fatal: unable to access 'https://[redacted]@github.com/a/b.git/': 403"
        );
        assert_eq!(
            scrub("see http://host:8080/path and https://u@h", &[]),
            "see http://host:8080/path and https://[redacted]@h"
        );
    }

    #[test]
    fn token_shaped_words_are_replaced() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ3b3Jrc3BhY2UifQ.c2lnbmF0dXJlLWJ5dGVz";
        assert_eq!(
            scrub(
                &format!("bad token {jwt}, also ghs_0123456789abcdefXYZ."),
                &[]
            ),
            "bad token [redacted], also [redacted]."
        );
        // Ordinary text, versions, paths and commit ids survive.
        let plain = "fatal: Remote branch feature/x not found in upstream origin (git 2.47.3, 0123456789abcdef0123456789abcdef01234567)";
        assert_eq!(scrub(plain, &[]), plain);
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(MAX_REASON_CHARS + 10);
        let cut = scrub(&long, &[]);
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
