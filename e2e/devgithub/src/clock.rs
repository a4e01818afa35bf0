//! Wall-clock time: milliseconds for expiry checks, and the RFC 3339 form
//! GitHub uses in JSON (`2011-01-26T19:01:12Z`).

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// Now, formatted like `2011-01-26T19:01:12Z`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339_ms(now_ms())
}

/// A millisecond timestamp formatted like `2011-01-26T19:01:12Z`.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_github() {
        assert_eq!(rfc3339_ms(1_296_068_472_000), "2011-01-26T19:01:12Z");
    }
}
