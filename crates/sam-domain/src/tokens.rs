//! Personal access tokens: their shape and the rules for creating them.

/// Every token starts with this, so scanners (and people) recognise one.
pub const PREFIX: &str = "sam_pat_";

/// Why a token request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRequestError {
    #[error("token names are 1-64 printable characters")]
    InvalidName,
    #[error("tokens expire after 1 to 365 days")]
    InvalidExpiry,
}

impl TokenRequestError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRequestError::InvalidName => "invalid_token_name",
            TokenRequestError::InvalidExpiry => "invalid_token_expiry",
        }
    }
}

/// Validates a new token's name and lifetime; returns the expiry time.
pub fn validate_request(
    name: &str,
    expires_in_days: Option<u32>,
    now: i64,
) -> Result<Option<i64>, TokenRequestError> {
    let name_ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(char::is_control);
    if !name_ok {
        return Err(TokenRequestError::InvalidName);
    }
    match expires_in_days {
        None => Ok(None),
        Some(days @ 1..=365) => Ok(Some(now.saturating_add(i64::from(days) * 86_400_000))),
        Some(_) => Err(TokenRequestError::InvalidExpiry),
    }
}

/// Renders a token from 32 random bytes: prefix plus 64 hex characters.
pub fn format_token(random: &[u8; 32]) -> String {
    let mut token = String::with_capacity(PREFIX.len() + 64);
    token.push_str(PREFIX);
    for b in random {
        token.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        token.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    token
}

/// Whether `raw` has a token's shape (cheap check before any lookup).
pub fn looks_like_token(raw: &str) -> bool {
    raw.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A fixed-window rate limit: the counter key for `client` at `now` and
/// the seconds until that window ends.
pub fn rate_limit_window(scope: &str, client: &str, now: i64, window_secs: i64) -> (String, i64) {
    let window_ms = window_secs.max(1) * 1000;
    let window = now.div_euclid(window_ms);
    let retry_after = ((window + 1) * window_ms - now + 999) / 1000;
    (format!("ratelimit:{scope}:{client}:{window}"), retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_recognisable_shape() {
        let t = format_token(&[0xab; 32]);
        assert!(t.starts_with("sam_pat_abab"));
        assert!(looks_like_token(&t));
        for bad in ["", "sam_pat_", "sam_pat_xyz", &t[1..], &format!("{t}0")] {
            assert!(!looks_like_token(bad), "{bad}");
        }
    }

    #[test]
    fn requests_are_validated() {
        assert_eq!(validate_request("cli", None, 0), Ok(None));
        assert_eq!(validate_request("cli", Some(1), 0), Ok(Some(86_400_000)));
        assert_eq!(
            validate_request("", None, 0),
            Err(TokenRequestError::InvalidName)
        );
        assert_eq!(
            validate_request("a\nb", None, 0),
            Err(TokenRequestError::InvalidName)
        );
        assert_eq!(
            validate_request(&"x".repeat(65), None, 0),
            Err(TokenRequestError::InvalidName)
        );
        assert_eq!(
            validate_request("cli", Some(0), 0),
            Err(TokenRequestError::InvalidExpiry)
        );
        assert_eq!(
            validate_request("cli", Some(366), 0),
            Err(TokenRequestError::InvalidExpiry)
        );
    }

    #[test]
    fn rate_limit_windows_roll_over() {
        let (a, retry) = rate_limit_window("login", "1.2.3.4", 60_500, 60);
        assert_eq!(a, "ratelimit:login:1.2.3.4:1");
        assert_eq!(retry, 60);
        let (b, _) = rate_limit_window("login", "1.2.3.4", 119_999, 60);
        assert_eq!(a, b);
        let (c, _) = rate_limit_window("login", "1.2.3.4", 120_000, 60);
        assert_ne!(a, c);
    }
}
