//! Input checks for `POST /workspaces`. Everything here ends up as an
//! argument of `git` (never through a shell) or in a file, so the rules are
//! strict: what git itself would refuse is refused before git runs.

/// Why a value was refused: a stable code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

const MAX_URL_BYTES: usize = 2048;
const MAX_BRANCH_BYTES: usize = 255;
const MAX_IDENTITY_CHARS: usize = 256;
const MAX_TOKEN_BYTES: usize = 8192;

/// A clone URL: `http` or `https`, with a host, without credentials or a
/// fragment. Returns the URL in its normal form, which is what git is given.
pub(crate) fn clone_url(raw: &str) -> Result<url::Url, Invalid> {
    let bad = |why: &str| invalid("invalid_clone_url", format!("clone_url {why}"));
    if raw.len() > MAX_URL_BYTES {
        return Err(bad("is too long"));
    }
    // The URL parser silently drops tabs and newlines; refuse them instead.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain whitespace or control characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials (git gets them from the agent)",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    Ok(url)
}

/// A branch name git accepts (`git check-ref-format --branch` rules for
/// `refs/heads/<name>`), minus what would read as an option.
pub(crate) fn branch_name(field: &str, name: &str) -> Result<(), Invalid> {
    let bad = |why: &str| invalid("invalid_branch", format!("{field} {why}"));
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_BRANCH_BYTES {
        return Err(bad("is too long"));
    }
    if name == "@" || name == "HEAD" {
        return Err(bad("is a reserved name"));
    }
    if name.starts_with('-') {
        return Err(bad("must not start with `-`"));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(bad("must not start or end with `/` or contain `//`"));
    }
    if name.ends_with('.') {
        return Err(bad("must not end with `.`"));
    }
    if name.contains("..") || name.contains("@{") {
        return Err(bad("must not contain `..` or `@{`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err(bad(&format!("must not contain {c:?}")));
    }
    if name.split('/').any(|part| {
        part.starts_with('.') || part.rsplit_once('.').is_some_and(|(_, ext)| ext == "lock")
    }) {
        return Err(bad(
            "must not have a component starting with `.` or ending with `.lock`",
        ));
    }
    Ok(())
}

/// `user.name` / `user.email`: one line of text git can store.
pub(crate) fn identity_part(field: &str, value: &str) -> Result<(), Invalid> {
    let bad = |why: &str| {
        invalid(
            "invalid_git_identity",
            format!("git_identity.{field} {why}"),
        )
    };
    if value.trim().is_empty() {
        return Err(bad("is empty"));
    }
    if value.chars().count() > MAX_IDENTITY_CHARS {
        return Err(bad("is too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("must not contain newlines or control characters"));
    }
    if value.contains(['<', '>']) {
        return Err(bad("must not contain `<` or `>`"));
    }
    Ok(())
}

/// A dev container configuration name: a directory under `.devcontainer/`.
pub(crate) fn devcontainer_config(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_devcontainer_config",
            "devcontainer_config must be a directory name under .devcontainer/ (letters, digits, `.`, `_`, `-`)",
        ))
    }
}

/// The callback token: a compact JWS (three base64url parts).
pub(crate) fn callback_token(token: &str) -> Result<(), Invalid> {
    let ok = !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token.split('.').count() == 3
        && token.split('.').all(|part| !part.is_empty())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_callback_token",
            "callback_token must be a signed token",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_urls_are_http_without_credentials() {
        assert_eq!(
            clone_url("https://github.com/acme/app.git")
                .unwrap()
                .as_str(),
            "https://github.com/acme/app.git"
        );
        assert!(clone_url("http://127.0.0.1:8080/repo.git").is_ok());
        for bad in [
            "",
            "github.com/acme/app",
            "file:///etc/passwd",
            "ssh://git@github.com/acme/app",
            "git@github.com:acme/app.git",
            "ext::sh -c touch% /tmp/pwned",
            "https://user:pass@github.com/acme/app.git",
            "https://x-access-token@github.com/acme/app.git",
            "https://github.com/acme/app.git#frag",
            "https://github.com/acme/\napp.git",
            "https://github.com/acme/ app.git",
            "https://",
            "http://:80/x",
        ] {
            let err = clone_url(bad).unwrap_err();
            assert_eq!(err.code, "invalid_clone_url", "{bad:?}");
        }
        assert!(clone_url(&format!("https://h/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn branch_names_follow_git_rules() {
        for good in [
            "main",
            "feature/login",
            "sam/01JAB3C4D5E6F7G8H9J0K1M2N3",
            "fix-1.2",
            "release/v1.0_rc",
            "ünïcode",
            "a@b",
        ] {
            assert_eq!(branch_name("branch", good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "@",
            "HEAD",
            "-rf",
            "--upload-pack=evil",
            "/lead",
            "trail/",
            "a//b",
            "dot.",
            "a..b",
            "a@{1}",
            "sp ace",
            "tab\there",
            "new\nline",
            "til~de",
            "car^et",
            "co:lon",
            "que?ry",
            "st*ar",
            "br[acket",
            "back\\slash",
            ".hidden",
            "a/.hidden",
            "x.lock",
            "a/b.lock/c",
            "del\u{7f}",
        ] {
            let err = branch_name("branch", bad).unwrap_err();
            assert_eq!(err.code, "invalid_branch", "{bad:?}");
            assert!(err.message.starts_with("branch "), "{}", err.message);
        }
        assert!(branch_name("branch", &"a".repeat(256)).is_err());
    }

    #[test]
    fn identities_are_single_lines() {
        assert_eq!(identity_part("name", "Ada Lovelace"), Ok(()));
        assert_eq!(identity_part("email", "ada@example.com"), Ok(()));
        for bad in [
            "",
            "   ",
            "Ada\nLovelace",
            "Ada\r",
            "a\u{0}b",
            "Ada <ada@x>",
            "\u{85}",
        ] {
            assert_eq!(
                identity_part("name", bad).unwrap_err().code,
                "invalid_git_identity",
                "{bad:?}"
            );
        }
        assert!(identity_part("name", &"a".repeat(257)).is_err());
    }

    #[test]
    fn devcontainer_config_names_are_plain_directory_names() {
        assert!(devcontainer_config("python").is_ok());
        assert!(devcontainer_config("node-20_lts.v2").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(devcontainer_config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn callback_tokens_look_like_jws() {
        assert!(callback_token("aGVhZA.Ym9keQ.c2ln").is_ok());
        for bad in ["", "a.b", "a..c", "a.b.c.d", "a.b.c\n", "a b.c.d"] {
            assert!(callback_token(bad).is_err(), "{bad:?}");
        }
    }
}
