//! `git http-backend` as a CGI program: the request becomes its
//! environment and stdin, its stdout a CGI response (headers, a blank
//! line, the body).
//!
//! The request body is streamed into stdin as it arrives; a
//! `Content-Encoding: gzip` body goes through untouched as
//! `HTTP_CONTENT_ENCODING`, which http-backend inflates itself, and
//! `Git-Protocol` goes through as `HTTP_GIT_PROTOCOL` (protocol v2). The
//! response body is either streamed back ([`Running::respond`]) or, for
//! pushes, collected so the caller can act on the new refs before the
//! client hears back ([`Running::finish`]). stderr goes to the log.

use std::path::Path;
use std::process::Stdio;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};

use super::bare::{GitError, command};

/// Most header bytes a CGI response may start with.
const MAX_HEAD: usize = 64 * 1024;

/// What http-backend needs to know about a request.
#[derive(Debug)]
pub(crate) struct CgiRequest<'a> {
    /// `/{id}.git/info/refs` and such, under `GIT_PROJECT_ROOT`.
    pub path_info: String,
    pub query: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub remote_user: Option<&'a str>,
}

/// The parsed CGI header block, and what was read past it.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub rest: Vec<u8>,
}

/// A running http-backend whose stdout has not been read yet.
pub(crate) struct Running {
    child: Child,
    stdout: ChildStdout,
}

/// Starts http-backend for `request`, feeding it `body` in the background.
pub(crate) fn spawn(
    root: &Path,
    request: &CgiRequest<'_>,
    body: Body,
) -> Result<Running, GitError> {
    let mut cmd = command(root);
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", request.method.as_str())
        .env("PATH_INFO", &request.path_info)
        .env("QUERY_STRING", request.query)
        .stdin(Stdio::piped());
    let passed: [(&HeaderName, &str); 4] = [
        (&CONTENT_TYPE, "CONTENT_TYPE"),
        (&CONTENT_LENGTH, "CONTENT_LENGTH"),
        (&CONTENT_ENCODING, "HTTP_CONTENT_ENCODING"),
        (&GIT_PROTOCOL, "HTTP_GIT_PROTOCOL"),
    ];
    for (header, var) in passed {
        if let Some(value) = request.headers.get(header).and_then(|v| v.to_str().ok()) {
            cmd.env(var, value);
        }
    }
    if let Some(user) = request.remote_user {
        cmd.env("REMOTE_USER", user);
    }
    let mut child = cmd.spawn().map_err(|source| GitError::Spawn {
        args: "http-backend".into(),
        source,
    })?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(GitError::Cgi("stdio not piped".into()));
    };

    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => {
                    // http-backend may stop reading early (it answered an
                    // error); the rest of the body is not needed then.
                    if stdin.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading a git request body");
                    return;
                }
            }
        }
        let _ = stdin.shutdown().await;
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!("git http-backend: {line}");
        }
    });
    Ok(Running { child, stdout })
}

static GIT_PROTOCOL: HeaderName = HeaderName::from_static("git-protocol");

/// Where the header block ends: the index after its blank line.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses CGI headers: `Status: 404 Not Found` sets the status (200
/// without it); the others become response headers.
pub(crate) fn parse_head(block: &[u8]) -> Result<(StatusCode, HeaderMap), GitError> {
    let text = std::str::from_utf8(block).map_err(|_| GitError::Cgi("non-UTF-8 headers".into()))?;
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| GitError::Cgi(format!("bad header line {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split(' ')
                .next()
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| GitError::Cgi(format!("bad status {value:?}")))?;
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    Ok((status, headers))
}

fn respond_with(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

impl Running {
    async fn head(&mut self) -> Result<Head, GitError> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = head_end(&buf) {
                let (status, headers) = parse_head(&buf[..end])?;
                return Ok(Head {
                    status,
                    headers,
                    rest: buf.split_off(end),
                });
            }
            if buf.len() > MAX_HEAD {
                return Err(GitError::Cgi("headers too long".into()));
            }
            let n = self
                .stdout
                .read(&mut chunk)
                .await
                .map_err(|e| GitError::Cgi(e.to_string()))?;
            if n == 0 {
                let status = self.child.wait().await.ok();
                return Err(GitError::Cgi(format!(
                    "exited ({status:?}) before sending headers"
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Streams the response as http-backend writes it. The process is
    /// killed if the client goes away, and reaped at the end of the body.
    pub(crate) async fn respond(mut self) -> Result<Response, GitError> {
        struct Tail {
            first: Option<Vec<u8>>,
            stdout: ChildStdout,
            /// `None` once the body has ended (or failed).
            child: Option<Child>,
        }
        let head = self.head().await?;
        let tail = Tail {
            first: Some(head.rest),
            stdout: self.stdout,
            child: Some(self.child),
        };
        let stream = futures::stream::unfold(tail, |mut tail| async move {
            if let Some(first) = tail.first.take().filter(|f| !f.is_empty()) {
                return Some((Ok(Bytes::from(first)), tail));
            }
            let mut child = tail.child.take()?;
            let mut chunk = vec![0u8; 32 * 1024];
            match tail.stdout.read(&mut chunk).await {
                Ok(0) => {
                    match child.wait().await {
                        Ok(status) if !status.success() => {
                            tracing::warn!(%status, "git http-backend exited");
                        }
                        Err(e) => tracing::warn!(error = %e, "reaping git http-backend"),
                        Ok(_) => {}
                    }
                    None
                }
                Ok(n) => {
                    chunk.truncate(n);
                    tail.child = Some(child);
                    Some((Ok(Bytes::from(chunk)), tail))
                }
                // The child is dropped (and killed); the stream ends here.
                Err(e) => Some((Err(e), tail)),
            }
        });
        Ok(respond_with(
            head.status,
            head.headers,
            Body::from_stream(stream),
        ))
    }

    /// Reads the whole response and waits for http-backend to exit.
    pub(crate) async fn finish(mut self) -> Result<(Head, Vec<u8>), GitError> {
        let mut head = self.head().await?;
        let mut body = std::mem::take(&mut head.rest);
        self.stdout
            .read_to_end(&mut body)
            .await
            .map_err(|e| GitError::Cgi(e.to_string()))?;
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| GitError::Cgi(e.to_string()))?;
        if !status.success() {
            tracing::warn!(%status, "git http-backend exited");
        }
        Ok((head, body))
    }
}

/// Builds the response for a [`Running::finish`] result.
pub(crate) fn buffered_response(head: Head, body: Vec<u8>) -> Response {
    respond_with(head.status, head.headers, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_headers_parse() {
        let raw = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\r\nbody";
        let end = head_end(raw).unwrap();
        assert_eq!(&raw[end..], b"body");
        let (status, headers) = parse_head(&raw[..end]).unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers.len(), 2);

        let raw = b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e";
        let end = head_end(raw).unwrap();
        let (status, headers) = parse_head(&raw[..end]).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/x-git-upload-pack-advertisement"
        );
        assert!(head_end(b"Content-Type: x\r\n").is_none());
        assert!(parse_head(b"Status: nope\r\n\r\n").is_err());
    }
}
