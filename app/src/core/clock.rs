//! Time, injected. Domain code asks its `Clock`; tests move a `ManualClock` by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An instant, in microseconds since the Unix epoch (UTC). Stored as `BIGINT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The monthly billing period this instant falls in, e.g. `2026-11` (UTC).
    pub fn month_key(self) -> String {
        let d = self.datetime();
        format!("{:04}-{:02}", d.year(), u8::from(d.month()))
    }

    /// The day this instant falls in, e.g. `2026-11-24` (UTC).
    pub fn day_key(self) -> String {
        let d = self.datetime();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    }

    /// The first instant of this instant's day (UTC).
    pub fn day_start(self) -> Timestamp {
        const DAY: i64 = 86_400_000_000;
        Timestamp(self.0 - self.0.rem_euclid(DAY))
    }

    /// The first instant of this instant's monthly period (UTC).
    pub fn month_start(self) -> Timestamp {
        let d = self.datetime();
        time::Date::from_calendar_date(d.year(), d.month(), 1)
            .map(|date| {
                let nanos = date.midnight().assume_utc().unix_timestamp_nanos();
                Timestamp((nanos / 1_000) as i64)
            })
            .unwrap_or(Timestamp(0))
    }

    /// The first instant of the next monthly period (UTC).
    pub fn next_month_start(self) -> Timestamp {
        let d = self.datetime();
        let (year, month) = match d.month() {
            time::Month::December => (d.year() + 1, time::Month::January),
            m => (d.year(), m.next()),
        };
        time::Date::from_calendar_date(year, month, 1)
            .map(|date| {
                let nanos = date.midnight().assume_utc().unix_timestamp_nanos();
                Timestamp((nanos / 1_000) as i64)
            })
            .unwrap_or(Timestamp(i64::MAX))
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-24T23:50:05.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "invalid-time".to_string())
    }

    /// Parses RFC 3339 (any offset), keeping microsecond precision.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let micros = t.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros).ok().map(Timestamp)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000) as i64)
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(start.micros())))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::from_micros(1_795_000_000_123_456);
        let text = t.to_rfc3339();
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(Timestamp::parse_rfc3339(&text), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Timestamp::parse_rfc3339("2026-01-01T00:00:00Z")
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
        let t = Timestamp::parse_rfc3339("2026-12-31T23:59:59Z").unwrap();
        assert_eq!(t.month_key(), "2026-12");
        assert_eq!(t.day_key(), "2026-12-31");
        assert_eq!(
            t.next_month_start(),
            Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap()
        );
    }
}
