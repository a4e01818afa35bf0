//! Wall-clock timestamps in the RFC 3339 form Hetzner uses (`+00:00` offset).

use chrono::{SecondsFormat, Utc};

/// Now, formatted like `2016-01-30T23:55:00+00:00`.
pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false)
}
