//! Provider failures, classified so callers can decide what to do next
//! (retry, tell the user to fix their token, pick another location) without
//! knowing each provider's error vocabulary.
//!
//! The crate never sleeps or loops: the caller owns time (Durable Object
//! alarms in the Worker). [`backoff_delay_ms`] only computes how long to wait.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};

/// Provider text echoed into errors is clipped (a proxy may answer with a whole HTML page).
const MAX_MESSAGE_CHARS: usize = 500;

/// What kind of failure a provider call ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderErrorKind {
    /// Too many requests; wait (honouring `retry_after_secs`) and retry.
    RateLimited,
    /// The provider has no room for this request right now (sold-out server
    /// type or location). Usually clears within minutes.
    Capacity,
    /// The account hit a limit (e.g. server count); needs the user to act.
    Quota,
    /// The token is missing, wrong, revoked or lacks write permission.
    Auth,
    /// The request itself is wrong (bad input, duplicate name); retrying the
    /// same request cannot succeed.
    InvalidConfig,
    NotFound,
    /// Provider-side or network trouble that is expected to pass.
    Transient,
    Unknown,
}

impl ProviderErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderErrorKind::RateLimited => "rate_limited",
            ProviderErrorKind::Capacity => "capacity",
            ProviderErrorKind::Quota => "quota",
            ProviderErrorKind::Auth => "auth",
            ProviderErrorKind::InvalidConfig => "invalid_config",
            ProviderErrorKind::NotFound => "not_found",
            ProviderErrorKind::Transient => "transient",
            ProviderErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call.
///
/// `code` is the provider's own machine-readable code when it sent one
/// (Hetzner: `uniqueness_error`, `resource_limit_exceeded`, ...), otherwise a
/// code of ours (`http_502`, `transport`, `invalid_response`). `message` never
/// contains the API token: the client scrubs it before building the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider error ({}", self.kind)?;
        if let Some(status) = self.status {
            write!(f, ", HTTP {status}")?;
        }
        write!(f, ", {}): {}", self.code, self.message)
    }
}

impl ProviderError {
    /// Whether repeating the same request later may succeed.
    ///
    /// Capacity counts as retryable because provider stock refills; callers
    /// that would rather fail fast (and suggest another location) can match
    /// on `kind` instead.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::RateLimited
                | ProviderErrorKind::Capacity
                | ProviderErrorKind::Transient
        )
    }

    pub(crate) fn new(
        kind: ProviderErrorKind,
        status: Option<u16>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            status,
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

/// Clips provider text and removes `secret` should it ever be echoed (some
/// proxies reflect request headers in error pages).
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    // Redact before clipping: a secret cut in half by the clip would no
    // longer match, and its first half would survive.
    let redacted = if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    };
    redacted.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// Sends one request to a JSON API: `auth` is the credential header, `body`
/// the payload with its media type. A request that never got a response is
/// a transient error, with `secret` scrubbed from the transport's message.
pub(crate) async fn send_json_api<H: HttpClient>(
    http: &H,
    method: Method,
    url: String,
    auth: (&str, String),
    body: Option<(&str, Vec<u8>)>,
    secret: &str,
) -> Result<HttpResponse, ProviderError> {
    let (auth_name, auth_value) = auth;
    let mut headers = vec![
        (auth_name.to_owned(), auth_value),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    let body = body.map(|(content_type, bytes)| {
        headers.push(("Content-Type".to_owned(), content_type.to_owned()));
        bytes
    });
    let req = HttpRequest {
        method,
        url,
        headers,
        body,
    };
    http.send(req).await.map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::Transient,
            None,
            "transport",
            scrub(&e.message, secret),
        )
    })
}

/// Passes 2xx through and turns anything else into the error `error_from`
/// builds (the provider's own reading of its error body).
pub(crate) fn expect_success(
    resp: HttpResponse,
    error_from: impl FnOnce(&HttpResponse) -> ProviderError,
) -> Result<HttpResponse, ProviderError> {
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    Err(error_from(&resp))
}

/// Builds the error for a non-2xx `resp`.
///
/// `parsed` is the provider's `(code, message)` when its error body could
/// be read; otherwise the code is `http_{status}` and the message the raw
/// body. `classify` maps status and code to a kind. `Retry-After` is
/// honoured on 429 and 503 only; an empty message becomes `HTTP {status}`;
/// `secret` is scrubbed from code and message.
pub(crate) fn response_error(
    resp: &HttpResponse,
    parsed: Option<(String, String)>,
    classify: fn(u16, &str) -> ProviderErrorKind,
    secret: &str,
) -> ProviderError {
    let (code, message) = parsed.unwrap_or_else(|| {
        (
            format!("http_{}", resp.status),
            String::from_utf8_lossy(&resp.body).trim().to_owned(),
        )
    });
    let retry_after_secs = if matches!(resp.status, 429 | 503) {
        resp.header("retry-after").and_then(parse_retry_after)
    } else {
        None
    };
    let message = if message.is_empty() {
        format!("HTTP {}", resp.status)
    } else {
        message
    };
    ProviderError {
        kind: classify(resp.status, &code),
        status: Some(resp.status),
        code: scrub(&code, secret),
        message: scrub(&message, secret),
        retry_after_secs,
    }
}

/// Encodes a request body as JSON; a body that cannot be encoded is an
/// `invalid_request` error.
pub(crate) fn json_body(body: &impl Serialize) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::InvalidConfig,
            None,
            "invalid_request",
            e.to_string(),
        )
    })
}

/// Decodes a JSON response body; a body of the wrong shape is an
/// `invalid_response` error.
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(
    resp: &HttpResponse,
) -> Result<T, ProviderError> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::Unknown,
            Some(resp.status),
            "invalid_response",
            format!("unexpected response body: {e}"),
        )
    })
}

/// Maps an HTTP status plus Hetzner's error code to a kind.
///
/// The code wins over the status because Hetzner reuses statuses across
/// meanings: `resource_limit_exceeded` comes with 403 like `forbidden`, yet
/// one is a quota and the other a permission problem.
pub fn classify(status: u16, code: &str) -> ProviderErrorKind {
    match code {
        "rate_limit_exceeded" => return ProviderErrorKind::RateLimited,
        "resource_unavailable" | "placement_error" => return ProviderErrorKind::Capacity,
        "resource_limit_exceeded" => return ProviderErrorKind::Quota,
        "unauthorized" | "forbidden" | "token_readonly" => return ProviderErrorKind::Auth,
        "invalid_input" | "json_error" | "uniqueness_error" | "unsupported_error" | "protected" => {
            return ProviderErrorKind::InvalidConfig;
        }
        "not_found" => return ProviderErrorKind::NotFound,
        // `locked`: another action runs on the resource; `conflict`: it
        // changed under us. Both clear on their own.
        "timeout" | "service_error" | "server_error" | "maintenance" | "unavailable" | "locked"
        | "conflict" => return ProviderErrorKind::Transient,
        _ => {}
    }
    match status {
        429 => ProviderErrorKind::RateLimited,
        401 | 403 => ProviderErrorKind::Auth,
        404 => ProviderErrorKind::NotFound,
        400 | 422 => ProviderErrorKind::InvalidConfig,
        408 | 500..=599 => ProviderErrorKind::Transient,
        _ => ProviderErrorKind::Unknown,
    }
}

/// Parses a `Retry-After` value given in seconds.
///
/// The HTTP-date form is deliberately not supported: turning it into a delay
/// needs the current time, and this crate never reads clocks. Hetzner sends
/// seconds.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    value.trim().parse::<u64>().ok()
}

/// First retry waits about this long; each further attempt doubles it.
const BACKOFF_BASE_MS: u64 = 1_000;
/// Exponential growth stops here so a long outage still gets polled.
const BACKOFF_CAP_MS: u64 = 60_000;

/// How long to wait before retry number `attempt` (0 = first retry).
///
/// Exponential from 1 s, capped at 60 s, with "equal jitter": the delay lies
/// in `[half, full]` of the exponential step, picked by `jitter_fraction`
/// (a random number in `0..=1` the caller supplies, since this crate has no
/// randomness of its own). Jitter keeps many nodes that failed together from
/// retrying in lockstep. A server-sent `retry_after_secs` is a floor: waiting
/// less would just earn another 429.
pub fn backoff_delay_ms(attempt: u32, retry_after_secs: Option<u64>, jitter_fraction: f64) -> u64 {
    let step = BACKOFF_BASE_MS
        .saturating_mul(1_u64.checked_shl(attempt).unwrap_or(u64::MAX))
        .min(BACKOFF_CAP_MS);
    let jitter = if jitter_fraction.is_nan() {
        0.0
    } else {
        jitter_fraction.clamp(0.0, 1.0)
    };
    let half = step / 2;
    // `step` is at most 60 000, so the f64 round trip is exact and the
    // product fits comfortably; the result is clamped to `half` anyway.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let jittered = half + ((half as f64) * jitter).round() as u64;
    let floor = retry_after_secs.map_or(0, |s| s.saturating_mul(1_000));
    jittered.min(step).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_beats_status() {
        assert_eq!(
            classify(403, "resource_limit_exceeded"),
            ProviderErrorKind::Quota
        );
        assert_eq!(classify(403, "forbidden"), ProviderErrorKind::Auth);
        assert_eq!(
            classify(412, "placement_error"),
            ProviderErrorKind::Capacity
        );
        assert_eq!(
            classify(409, "uniqueness_error"),
            ProviderErrorKind::InvalidConfig
        );
    }

    #[test]
    fn status_is_the_fallback() {
        assert_eq!(classify(429, ""), ProviderErrorKind::RateLimited);
        assert_eq!(classify(502, ""), ProviderErrorKind::Transient);
        assert_eq!(classify(401, "whatever"), ProviderErrorKind::Auth);
        assert_eq!(classify(418, ""), ProviderErrorKind::Unknown);
    }

    #[test]
    fn retry_after_accepts_seconds_only() {
        assert_eq!(parse_retry_after(" 17 "), Some(17));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff_delay_ms(0, None, 1.0), 1_000);
        assert_eq!(backoff_delay_ms(0, None, 0.0), 500);
        assert_eq!(backoff_delay_ms(3, None, 1.0), 8_000);
        assert_eq!(backoff_delay_ms(3, None, 0.5), 6_000);
        assert_eq!(backoff_delay_ms(30, None, 1.0), 60_000);
        assert_eq!(backoff_delay_ms(u32::MAX, None, 1.0), 60_000);
        // Out-of-range jitter is clamped rather than trusted.
        assert_eq!(backoff_delay_ms(0, None, 7.0), 1_000);
        assert_eq!(backoff_delay_ms(0, None, -1.0), 500);
        assert_eq!(backoff_delay_ms(0, None, f64::NAN), 500);
    }

    #[test]
    fn retry_after_is_a_floor() {
        assert_eq!(backoff_delay_ms(0, Some(30), 0.0), 30_000);
        assert_eq!(backoff_delay_ms(10, Some(1), 1.0), 60_000);
        assert_eq!(backoff_delay_ms(0, Some(u64::MAX), 0.0), u64::MAX);
    }

    #[test]
    fn retryable_kinds() {
        let err = |kind| ProviderError::new(kind, None, "x", "y");
        assert!(err(ProviderErrorKind::RateLimited).is_retryable());
        assert!(err(ProviderErrorKind::Transient).is_retryable());
        assert!(err(ProviderErrorKind::Capacity).is_retryable());
        assert!(!err(ProviderErrorKind::Auth).is_retryable());
        assert!(!err(ProviderErrorKind::Quota).is_retryable());
        assert!(!err(ProviderErrorKind::InvalidConfig).is_retryable());
        assert!(!err(ProviderErrorKind::NotFound).is_retryable());
    }
}
