//! Timestamps as the store keeps them: UTC text with milliseconds,
//! `YYYY-MM-DDTHH:MM:SS.sssZ`. One fixed width means text order is time order, so SQL `max()`
//! and comparisons work on the column directly (the watermark's `max(old, new)` relies on it).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::StoreError;

const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Formats `at` in the store's format, truncated to the millisecond (Salesforce's precision).
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.format(FORMAT).to_string()
}

/// Parses a timestamp written by [`format_timestamp`].
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, StoreError> {
    NaiveDateTime::parse_from_str(text, FORMAT)
        .map(|naive| naive.and_utc())
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

pub(crate) fn parse_opt(text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.as_deref().map(parse_timestamp).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trip_truncates_to_millis() {
        let at = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let text = format_timestamp(at);
        assert_eq!(text, "2024-02-29T23:59:58.123Z");
        let back = parse_timestamp(&text).unwrap();
        assert_eq!(back.timestamp_millis(), at.timestamp_millis());
    }

    #[test]
    fn text_order_is_time_order() {
        let early = Utc.with_ymd_and_hms(2024, 1, 1, 9, 0, 0).unwrap();
        let late = early + chrono::Duration::milliseconds(1);
        assert!(format_timestamp(early) < format_timestamp(late));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_timestamp("yesterday").is_err());
    }
}
