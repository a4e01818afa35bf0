//! Where the browser goes back to: the registered callback URL, and the
//! rule a `redirect_uri` must follow against it (same scheme, host and
//! port; path equal or below).

use url::Url;

/// Whether `candidate` is acceptable for a registered `callback`.
pub(crate) fn is_under(callback: &Url, candidate: &Url) -> bool {
    if callback.scheme() != candidate.scheme()
        || callback.host_str() != candidate.host_str()
        || callback.port_or_known_default() != candidate.port_or_known_default()
    {
        return false;
    }
    let base = callback.path().trim_end_matches('/');
    let path = candidate.path();
    path == base || path.starts_with(&format!("{base}/"))
}

/// Parses an absolute http(s) URL.
pub(crate) fn parse_http_url(raw: &str) -> Option<Url> {
    Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `target` with query parameters appended (existing ones kept).
pub(crate) fn with_params(target: &Url, params: &[(&str, &str)]) -> String {
    let mut url = target.clone();
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redirect_rules() {
        let cb = u("http://app.localhost:8787/auth/callback");
        assert!(is_under(&cb, &u("http://app.localhost:8787/auth/callback")));
        assert!(is_under(
            &cb,
            &u("http://app.localhost:8787/auth/callback/x?y=1")
        ));
        assert!(!is_under(
            &cb,
            &u("http://app.localhost:8787/auth/callbackx")
        ));
        assert!(!is_under(
            &cb,
            &u("http://app.localhost:8788/auth/callback")
        ));
        assert!(!is_under(
            &cb,
            &u("https://app.localhost:8787/auth/callback")
        ));
        assert!(!is_under(
            &cb,
            &u("http://evil.localhost:8787/auth/callback")
        ));
    }

    #[test]
    fn params_are_appended_and_encoded() {
        let url = with_params(&u("http://a/cb?x=1"), &[("code", "c"), ("state", "a b&c")]);
        assert_eq!(url, "http://a/cb?x=1&code=c&state=a+b%26c");
        assert!(parse_http_url("/relative").is_none());
        assert!(parse_http_url("javascript:alert(1)").is_none());
    }
}
