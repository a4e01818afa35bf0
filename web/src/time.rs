//! Timestamp formatting for the views.
//!
//! Pages are rendered with a `now` passed in (the Worker cannot read a clock
//! from pure code, and tests need fixed output), so "N s ago" is computed
//! here from two millisecond epoch values instead of in the browser.

/// A UTC instant ready for a `<time>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Machine-readable, e.g. `2026-03-01T10:00:00Z`.
    pub iso: String,
    /// Human-readable, e.g. `2026-03-01 10:00 UTC`.
    pub display: String,
}

pub(crate) fn stamp(epoch_ms: i64) -> Stamp {
    let secs = epoch_ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    Stamp {
        iso: format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"),
        display: format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC"),
    }
}

/// An instant shown relative to now, with the absolute time for a tooltip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct When {
    pub iso: String,
    pub display: String,
    /// "12 s ago".
    pub ago: String,
}

pub(crate) fn when(at_ms: i64, now_ms: i64) -> When {
    let Stamp { iso, display } = stamp(at_ms);
    When {
        iso,
        display,
        ago: ago(at_ms, now_ms),
    }
}

/// "12 s ago", "5 min ago", "3 h ago", "2 d ago". Seconds stay exact up to
/// two minutes because that is the range where a heartbeat's freshness
/// matters; a timestamp ahead of `now` (clock skew) reads as "0 s ago".
pub(crate) fn ago(then_ms: i64, now_ms: i64) -> String {
    let secs = now_ms.saturating_sub(then_ms).max(0) / 1000;
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7_200 => format!("{} min ago", secs / 60),
        7_200..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// Time of day, to the second: `10:00:07 UTC`. For events close together
/// (a node's boot phases), where [`Stamp::display`]'s minutes are too coarse.
pub(crate) fn clock(epoch_ms: i64) -> String {
    let of_day = epoch_ms.div_euclid(1000).rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    format!("{hour:02}:{minute:02}:{second:02} UTC")
}

/// A signed offset between two instants: `+0.8 s`, `+42.0 s`, `+3 min 12 s`,
/// `+2 h 5 min`. Tenths of a second below a minute, because boot phases
/// follow each other that closely.
pub(crate) fn offset(delta_ms: i64) -> String {
    let sign = if delta_ms < 0 { '-' } else { '+' };
    let ms = delta_ms.unsigned_abs();
    if ms < 60_000 {
        // Rounded to the nearest tenth; 59.96 s reads as 60.0 s, not 1 min.
        let tenths = (ms + 50) / 100;
        format!("{sign}{}.{} s", tenths / 10, tenths % 10)
    } else {
        format!("{sign}{}", duration(ms / 1000))
    }
}

/// A duration in whole seconds, in its two largest units: `45 s`,
/// `3 min 12 s`, `2 h 5 min`, `4 d 3 h`.
pub(crate) fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min {} s", secs / 60, secs % 60),
        3_600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Works in 400-year eras (146 097 days each) counted from 0000-03-01, so
/// leap days fall at the end of each shifted year and need no special case.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // 719 468 days separate 0000-03-01 from 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, each 5-month block spanning 153 days.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(stamp(0).iso, "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(stamp(951_827_696_000).iso, "2000-02-29T12:34:56Z");
        assert_eq!(stamp(1_772_359_200_000).display, "2026-03-01 10:00 UTC");
        // Before the epoch rounds toward the past, not toward zero.
        assert_eq!(stamp(-1).iso, "1969-12-31T23:59:59Z");
    }

    #[test]
    fn clocks_offsets_and_durations() {
        assert_eq!(clock(1_772_359_207_900), "10:00:07 UTC");
        assert_eq!(clock(-1), "23:59:59 UTC");
        assert_eq!(offset(0), "+0.0 s");
        assert_eq!(offset(800), "+0.8 s");
        assert_eq!(offset(849), "+0.8 s");
        assert_eq!(offset(850), "+0.9 s");
        assert_eq!(offset(42_049), "+42.0 s");
        assert_eq!(offset(-200), "-0.2 s");
        assert_eq!(offset(192_000), "+3 min 12 s");
        assert_eq!(offset(7_500_000), "+2 h 5 min");
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59), "3 d 4 h");
    }

    #[test]
    fn relative_times() {
        let now = 1_000_000_000;
        assert_eq!(ago(now - 12_400, now), "12 s ago");
        assert_eq!(ago(now - 119_999, now), "119 s ago");
        assert_eq!(ago(now - 300_000, now), "5 min ago");
        assert_eq!(ago(now - 3 * 3_600_000, now), "3 h ago");
        assert_eq!(ago(now - 3 * 86_400_000, now), "3 d ago");
        assert_eq!(ago(now + 5_000, now), "0 s ago");
    }
}
