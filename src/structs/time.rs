//! Go's `time.Time` on the wire (RFC 3339 with nanoseconds, the zero time as
//! `0001-01-01T00:00:00Z`) and `time.Duration`'s text (`1m30s`).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

/// Go's zero time, which Nomad emits for "never".
pub fn zero_time() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// True for Go's zero time.
pub fn is_zero(t: &DateTime<Utc>) -> bool {
    *t == zero_time()
}

/// Now as Unix nanoseconds, the form Nomad uses for CreateTime, event Time and the like.
pub fn now_nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// Formats a duration the way Go's `time.Duration.String()` does (`5s`, `1m30s`, `24h0m0s`,
/// `1.5ms`), because Nomad puts these strings into task events, restart reasons and variable locks.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", frac(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", frac(nanos, 1_000_000));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let mins = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || mins > 0 {
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&frac(secs * 1_000_000_000 + sub, 1_000_000_000));
    out.push('s');
    out
}

/// `value / unit` with the fraction's trailing zeros trimmed, like Go's fmtFrac.
fn frac(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rem = value % unit;
    if rem == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
