//! The OAuth web flow on the web host: the authorize page (pick or create
//! a local user, no passwords), the redirect back with `code` and `state`,
//! and the code-for-token exchange with GitHub's quirks (errors with HTTP
//! 200, form-encoded answers unless JSON is asked for).

mod authorize;
mod callback;
mod token;

pub(crate) use authorize::{authorize_page, authorize_submit};
pub(crate) use token::access_token;

/// Splits `scope` (space- or comma-separated) into distinct scopes.
pub(crate) fn parse_scopes(raw: Option<&str>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in raw
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
    {
        if !s.is_empty() && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(
            parse_scopes(Some("read:user user:email,repo  repo")),
            ["read:user", "user:email", "repo"]
        );
        assert!(parse_scopes(None).is_empty());
    }
}
