//! Replication windows: getDeleted (15 days) and getUpdated (30 days) with Salesforce's
//! checks and the 600,000-id limit.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value as Json, json};

use super::OrgDb;
use crate::error::ApiError;
use crate::value::format_datetime;

/// getDeleted reaches back 15 days, getUpdated 30 (reference §6).
pub const DELETED_WINDOW_DAYS: i64 = 15;
pub const UPDATED_WINDOW_DAYS: i64 = 30;
/// getDeleted / getUpdated return at most this many ids.
pub const REPLICATION_ID_LIMIT: usize = 600_000;
/// getDeleted and getUpdated ignore the seconds of their dates (SOAP getDeleted docs): every
/// bound is cut down to its minute.
pub(super) fn truncate_to_minute(d: DateTime<Utc>) -> DateTime<Utc> {
    let secs = d.timestamp();
    Utc.timestamp_opt(secs - secs.rem_euclid(60), 0)
        .single()
        .unwrap_or(d)
}
impl OrgDb {
    /// sobjects/{object}/deleted/?start&end (15-day window, INVALID_REPLICATION_DATE).
    pub fn deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let mut window = replication_window(start, end, now, DELETED_WINDOW_DAYS)?;
        let table = &self.tables[oi];
        // After a purge the log reaches back less far; a start before this is a hole.
        if let Some(floor) = table.earliest_available {
            window.earliest = window.earliest.max(truncate_to_minute(floor));
        }
        let id_field = self.schema.objects[oi].system.id;
        let mut out = Vec::new();
        for (slot, when) in &table.deletions {
            let rec = &table.records[*slot as usize];
            if rec.deleted && *when >= window.start && *when < window.latest {
                let id = rec.values[id_field].as_str().unwrap_or_default();
                out.push(json!({"id": id, "deletedDate": format_datetime(*when)}));
                if out.len() > REPLICATION_ID_LIMIT {
                    return Err(exceeded_id_limit());
                }
            }
        }
        Ok(json!({
            "deletedRecords": out,
            "earliestDateAvailable": format_datetime(window.earliest),
            "latestDateCovered": format_datetime(window.latest),
        }))
    }

    /// sobjects/{object}/updated/?start&end (30-day window, by SystemModstamp).
    pub fn updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Json, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let window = replication_window(start, end, now, UPDATED_WINDOW_DAYS)?;
        let table = &self.tables[oi];
        let id_field = self.schema.objects[oi].system.id;
        let lo = (window.start.timestamp_millis(), 0u32);
        let hi = (window.latest.timestamp_millis(), 0u32);
        let mut ids_out = Vec::new();
        if lo < hi {
            for (_, slot) in table.by_modstamp.range(lo..hi) {
                let rec = &table.records[*slot as usize];
                if !rec.deleted {
                    ids_out.push(Json::String(
                        rec.values[id_field]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ));
                    if ids_out.len() > REPLICATION_ID_LIMIT {
                        return Err(exceeded_id_limit());
                    }
                }
            }
        }
        Ok(json!({"ids": ids_out, "latestDateCovered": format_datetime(window.latest)}))
    }
}

/// The checked, minute-truncated bounds of a getDeleted / getUpdated call.
struct ReplicationWindow {
    start: DateTime<Utc>,
    latest: DateTime<Utc>,
    earliest: DateTime<Utc>,
}

fn replication_window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    days: i64,
) -> Result<ReplicationWindow, ApiError> {
    let start = truncate_to_minute(start);
    let end = truncate_to_minute(end);
    let now = truncate_to_minute(now);
    let earliest = now - Duration::days(days);
    if start >= end {
        // Newer docs: start must precede end "by more than one minute"; with both cut to
        // their minute, that is any start before end.
        return Err(ApiError::new(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate by more than one minute",
        ));
    }
    if start < earliest {
        return Err(ApiError::new(
            400,
            "INVALID_REPLICATION_DATE",
            format!("startDate cannot be more than {days} days ago"),
        ));
    }
    Ok(ReplicationWindow {
        start,
        latest: end.min(now),
        earliest,
    })
}

fn exceeded_id_limit() -> ApiError {
    ApiError::new(
        400,
        "EXCEEDED_ID_LIMIT",
        format!("record limit reached. cannot submit more than {REPLICATION_ID_LIMIT} records"),
    )
}

#[cfg(test)]
mod tests {
    use crate::db::test_support::*;
    use serde_json::json;

    #[test]
    fn replication_windows_are_checked() {
        let mut f = Fixture::new();
        let id = f.create_ok("Opportunity", opp("a"), "2024-03-10T10:00:30.400Z");
        let now = t("2024-03-10T12:00:00Z");
        // The seconds of start and end are ignored: 10:00:45..10:01:10 is 10:00..10:01.
        let u =
            f.db.updated(
                "Opportunity",
                t("2024-03-10T10:00:45Z"),
                t("2024-03-10T10:01:10Z"),
                now,
            )
            .expect("updated");
        assert_eq!(u["ids"], json!([id]));
        assert_eq!(u["latestDateCovered"], "2024-03-10T10:01:00.000+0000");
        // Within one minute, start does not precede end.
        let e =
            f.db.updated(
                "Opportunity",
                t("2024-03-10T10:00:10Z"),
                t("2024-03-10T10:00:50Z"),
                now,
            )
            .expect_err("same minute");
        assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
        // latestDateCovered is the minute of `now` when end is later.
        let u =
            f.db.updated(
                "Opportunity",
                t("2024-03-10T10:00:00Z"),
                t("2024-03-10T13:00:00Z"),
                t("2024-03-10T12:34:56.789Z"),
            )
            .expect("updated");
        assert_eq!(u["latestDateCovered"], "2024-03-10T12:34:00.000+0000");
        let e =
            f.db.updated("Opportunity", t("2024-01-01T00:00:00Z"), now, now)
                .expect_err("too old");
        assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
        assert!(
            f.db.updated("Opportunity", t("2024-02-15T00:00:00Z"), now, now)
                .is_ok()
        );
        assert!(
            f.db.deleted("Opportunity", t("2024-02-15T00:00:00Z"), now, now)
                .is_err()
        );
        assert_eq!(
            f.db.updated("Foo", now, now, now)
                .expect_err("object")
                .status,
            404
        );
    }
}
