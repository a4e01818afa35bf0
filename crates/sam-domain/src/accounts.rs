//! Rules about user accounts.

/// Whether `login` is a valid account name (GitHub's rules: 1-39
/// alphanumerics or single hyphens, not at either end).
pub fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 39
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The temporary developer sign-in exists only for local development: it
/// signs anyone in as any account, so it is refused unless the platform
/// runs under `localhost` *and* the deployment turned it on.
pub fn dev_login_allowed(enabled: bool, base_domain: &str) -> bool {
    enabled && base_domain.eq_ignore_ascii_case("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_follow_github_rules() {
        for ok in ["a", "dev", "ui-user", "A1-b2", &"x".repeat(39)] {
            assert!(valid_login(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a b", "ä", "a_b", &"x".repeat(40)] {
            assert!(!valid_login(bad), "{bad}");
        }
    }

    #[test]
    fn dev_login_only_on_localhost() {
        assert!(dev_login_allowed(true, "localhost"));
        assert!(!dev_login_allowed(true, "example.com"));
        assert!(!dev_login_allowed(false, "localhost"));
    }
}
