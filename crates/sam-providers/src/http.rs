//! The HTTP port provider clients talk through.
//!
//! Provider code never opens a socket itself: the Worker implements
//! [`HttpClient`] with `worker::Fetch`, native tests with reqwest. Keeping the
//! port this small (one request in, one response out) is what lets the same
//! client logic run unchanged in wasm and on the host.

use std::fmt;

/// HTTP methods the provider APIs need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Delete,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One outgoing request, fully materialised (no streaming: provider API
/// bodies are small JSON documents).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// First value of a header, compared case-insensitively as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Hand-written so that logging a request can never print the bearer token:
/// credential-bearing header values are replaced, the body is shown by size.
impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if is_sensitive_header(name) {
                    (name.as_str(), "[redacted]")
                } else {
                    (name.as_str(), value.as_str())
                }
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// A complete response. Non-2xx statuses are responses, not errors: the
/// provider client decides what a status means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First value of a header, compared case-insensitively as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The request never produced a response (DNS, connect, TLS, reset, timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport error: {message}")]
pub struct TransportError {
    pub message: String,
}

impl TransportError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// The port. No `Send` bound: futures in the wasm Worker are `!Send`, and a
/// bound here would make the Worker unable to implement it.
#[allow(async_fn_in_trait)]
pub trait HttpClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Shared references forward, so a caller can lend one client to several users.
impl<T: HttpClient + ?Sized> HttpClient for &T {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(req).await
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An API root without trailing slashes, so paths can be appended as `/...`.
pub(crate) fn trim_base_url(mut base_url: String) -> String {
    while base_url.ends_with('/') {
        base_url.pop();
    }
    base_url
}

/// Query-component encoding: everything but RFC 3986 unreserved characters
/// is escaped, so `=` and `,` in a label selector reach the provider intact.
pub(crate) fn percent_encode(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

fn is_sensitive_header(name: &str) -> bool {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-auth-token",
    ]
    .iter()
    .any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_escapes_separators() {
        assert_eq!(
            percent_encode("sam/node=a b,x=y"),
            "sam%2Fnode%3Da%20b%2Cx%3Dy"
        );
        assert_eq!(percent_encode("plain-._~09"), "plain-._~09");
    }

    #[test]
    fn request_debug_redacts_authorization() {
        let req = HttpRequest {
            method: Method::Get,
            url: "https://example.test/v1/servers".into(),
            headers: vec![("Authorization".into(), "Bearer s3cret-token".into())],
            body: Some(b"{}".to_vec()),
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert_eq!(req.header("authorization"), Some("Bearer s3cret-token"));
    }
}
