//! Durations as the configuration spells them: `"10s"`, `"15min"`, `"1h 30min"`, or a bare
//! integer of milliseconds (the template's unit).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration as written: `"10s"`, `"15min"` (humantime) or a bare integer of milliseconds
/// (the template's unit; from the environment, a string of digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawDuration(pub(super) Duration);

/// As milliseconds: only used to list the keys (`keys`), never read back.
impl Serialize for RawDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX))
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"10s\" or \"15min\", or an integer of milliseconds",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(Duration::from_millis(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawDuration, E> {
                u64::try_from(v)
                    .map(|ms| RawDuration(Duration::from_millis(ms)))
                    .map_err(|_| E::custom(format!("a duration cannot be negative, got {v}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDuration, E> {
                parse_duration(v).map(RawDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses `"10s"`, `"1h 30min"`, or a bare integer of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("invalid duration {text:?}: {e}"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}): write e.g. \"10s\", \"15min\", or milliseconds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_both_forms() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("15min"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("10000"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("").is_err());
    }
}
