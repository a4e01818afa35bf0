//! GitHub's naming rules for logins, repositories and branches.

/// Logins: 1–39 alphanumerics or single hyphens, not at either end.
pub(crate) fn login(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 39
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !raw.starts_with('-')
        && !raw.ends_with('-')
        && !raw.contains("--")
}

/// Repository names: 1–100 of `A-Za-z0-9._-`, not `.` or `..`.
pub(crate) fn repo_name(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 100
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && raw != "."
        && raw != ".."
        && !raw.to_ascii_lowercase().ends_with(".git")
}

/// Branch names, roughly `git check-ref-format --branch`.
pub(crate) fn branch_name(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 255
        && !raw.starts_with('/')
        && !raw.ends_with('/')
        && !raw.starts_with('-')
        && !std::path::Path::new(raw)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("lock"))
        && !raw.contains("..")
        && !raw.contains("//")
        && !raw.contains("@{")
        && raw.chars().all(|c| {
            !c.is_control() && !matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins() {
        for ok in ["a", "octo-cat", "A1", &"x".repeat(39)] {
            assert!(login(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_b", "a b", &"x".repeat(40)] {
            assert!(!login(bad), "{bad}");
        }
    }

    #[test]
    fn repo_names() {
        assert!(repo_name("hello-world.rs_2"));
        for bad in ["", ".", "..", "a/b", "a b", "x.git"] {
            assert!(!repo_name(bad), "{bad}");
        }
    }

    #[test]
    fn branch_names() {
        assert!(branch_name("main"));
        assert!(branch_name("feature/x-1"));
        for bad in ["", "/a", "a/", "a..b", "a b", "a:b", "x.lock", "-x"] {
            assert!(!branch_name(bad), "{bad}");
        }
    }
}
