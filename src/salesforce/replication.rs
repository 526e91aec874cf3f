//! getDeleted: the ids of `object`'s records deleted in a window, from the org's delete log,
//! which still lists records that `queryAll` no longer returns (recycle bin emptied, hard
//! deletes). The engine's safety net (`sync::deleted_check`) calls it once per
//! `sync.deleted_check_frequency`.
//!
//! The call is REST's `GET sobjects/{object}/deleted/?start=&end=` (REST API Developer Guide,
//! "sObject Get Deleted", `resources_getdeleted`, API 29.0+), the same replication call as the
//! Partner API's `getDeleted(sObjectType, startDate, endDate)` with the same result
//! (`GetDeletedResult`: `deletedRecords[] {id, deletedDate}`, `earliestDateAvailable`,
//! `latestDateCovered`; SOAP API, `sforce_api_calls_getdeleted_getdeletedresult.htm`) and the
//! same cost, one API call. REST rather than SOAP: it is JSON through the client's usual
//! request path (gates, retries, re-login, `Sforce-Limit-Info`), and sfsim serves getDeleted
//! over REST only. Rules (SOAP `getDeleted()`): the seconds of both dates are ignored; `start`
//! must precede `end` (by more than a minute, newer docs) and be at most 15 days back, or
//! the call fails with `INVALID_REPLICATION_DATE`; at most 600,000 ids (`EXCEEDED_ID_LIMIT`).
//! The window's arithmetic is the engine's (`sync::deleted_check`), not this file's.
//!
//! Parsing is strict: a reply missing a field, or with a date or id that does not parse, is a
//! `BAD_RESPONSE` error naming what was wrong.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::client::{ApiRequest, Client, Target};
use super::error::{ErrorClass, SalesforceError};
use super::usage::CallKind;

/// One entry of the delete log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedRecord {
    pub id: String,
    pub deleted_date: DateTime<Utc>,
}

/// A getDeleted reply (`GetDeletedResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedWindow {
    pub deleted: Vec<DeletedRecord>,
    /// How far back the delete log reaches for this object: a start before it may have
    /// missed deletes (a hole).
    pub earliest_date_available: DateTime<Utc>,
    /// The end of what this reply covers (at most `end`): the next call's start.
    pub latest_date_covered: DateTime<Utc>,
}

impl Client {
    /// getDeleted of `object` from `start` to `end` (one API call, counted as `other`).
    pub async fn get_deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedWindow, SalesforceError> {
        let org = self.org_name();
        if !object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || object.is_empty()
        {
            return Err(SalesforceError::client(
                org,
                "INVALID_TYPE",
                format!("{object:?} is not an object name"),
                ErrorClass::Permanent,
            ));
        }
        let path = format!("sobjects/{object}/deleted/");
        let mut req = ApiRequest::get(CallKind::Other, Target::Data(&path));
        req.query = vec![
            ("start", start.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ("end", end.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ];
        let body = self.send(&req).await?;
        parse_get_deleted(&body).map_err(|detail| {
            SalesforceError::client(
                org,
                "BAD_RESPONSE",
                format!("unexpected getDeleted reply for {object}: {detail}"),
                ErrorClass::Transient,
            )
        })
    }
}

/// Parses a getDeleted reply; `Err` says what is wrong.
pub fn parse_get_deleted(body: &str) -> Result<DeletedWindow, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let date = |v: Option<&Value>, what: &str| -> Result<DateTime<Utc>, String> {
        let text = v
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{what} is missing or not a string"))?;
        parse_sf_datetime(text).ok_or_else(|| format!("{what} is not a dateTime: {text:?}"))
    };
    let records = obj
        .get("deletedRecords")
        .and_then(Value::as_array)
        .ok_or("deletedRecords is missing or not an array")?;
    let deleted = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| {
                    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
                })
                .ok_or_else(|| format!("deletedRecords[{i}].id is missing or not a record id"))?;
            Ok(DeletedRecord {
                id: id.to_string(),
                deleted_date: date(
                    r.get("deletedDate"),
                    &format!("deletedRecords[{i}].deletedDate"),
                )?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(DeletedWindow {
        deleted,
        earliest_date_available: date(obj.get("earliestDateAvailable"), "earliestDateAvailable")?,
        latest_date_covered: date(obj.get("latestDateCovered"), "latestDateCovered")?,
    })
}

/// A Salesforce dateTime: `2013-05-07T22:07:19.000+0000` (REST) or RFC 3339.
fn parse_sf_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The documented example (REST API Developer Guide, `resources_getdeleted`).
    const DOC_REPLY: &str = r#"{"deletedRecords":[{"id":"a00D0000008pQRAIA2","deletedDate":"2013-05-07T22:07:19.000+0000"}],
        "earliestDateAvailable":"2013-05-03T15:57:00.000+0000","latestDateCovered":"2013-05-08T21:20:00.000+0000"}"#;

    #[test]
    fn parses_the_documented_reply() {
        let w = parse_get_deleted(DOC_REPLY).unwrap();
        assert_eq!(w.deleted.len(), 1);
        assert_eq!(w.deleted[0].id, "a00D0000008pQRAIA2");
        assert_eq!(
            w.deleted[0].deleted_date,
            Utc.with_ymd_and_hms(2013, 5, 7, 22, 7, 19).unwrap()
        );
        assert_eq!(
            w.earliest_date_available,
            Utc.with_ymd_and_hms(2013, 5, 3, 15, 57, 0).unwrap()
        );
        assert_eq!(
            w.latest_date_covered,
            Utc.with_ymd_and_hms(2013, 5, 8, 21, 20, 0).unwrap()
        );
        let empty = parse_get_deleted(
            r#"{"deletedRecords":[],"earliestDateAvailable":"2013-05-03T15:57:00Z","latestDateCovered":"2013-05-08T21:20:00Z"}"#,
        )
        .unwrap();
        assert!(empty.deleted.is_empty());
    }

    #[test]
    fn malformed_replies_say_what_is_wrong() {
        for (body, says) in [
            ("[", "not JSON"),
            ("[]", "not a JSON object"),
            (
                r#"{"earliestDateAvailable":"2013-05-03T15:57:00Z","latestDateCovered":"2013-05-08T21:20:00Z"}"#,
                "deletedRecords",
            ),
            (
                r#"{"deletedRecords":[{"id":"x","deletedDate":"2013-05-07T22:07:19Z"}],"earliestDateAvailable":"2013-05-03T15:57:00Z","latestDateCovered":"2013-05-08T21:20:00Z"}"#,
                "deletedRecords[0].id",
            ),
            (
                r#"{"deletedRecords":[{"id":"a00D0000008pQRAIA2","deletedDate":"yesterday"}],"earliestDateAvailable":"2013-05-03T15:57:00Z","latestDateCovered":"2013-05-08T21:20:00Z"}"#,
                "deletedRecords[0].deletedDate",
            ),
            (
                r#"{"deletedRecords":[],"latestDateCovered":"2013-05-08T21:20:00Z"}"#,
                "earliestDateAvailable",
            ),
            (
                r#"{"deletedRecords":[],"earliestDateAvailable":"2013-05-03T15:57:00Z","latestDateCovered":5}"#,
                "latestDateCovered",
            ),
        ] {
            let err = parse_get_deleted(body).unwrap_err();
            assert!(err.contains(says), "{body}: {err}");
        }
    }
}
