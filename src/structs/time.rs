//! Go's `time.Time` on the wire: RFC 3339 with nanoseconds, the zero time as
//! `0001-01-01T00:00:00Z`.

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
