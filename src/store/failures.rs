//! The failed-record queue: records whose write was rejected or could not be attempted, one
//! row per (direction, object, source record), with the error, its [`FailureClass`] and the
//! values that were sent. The class decides the state: a `transient` failure is `pending`,
//! retried on a timer with exponential backoff up to `max_attempts`, then `dead`; a
//! `needs_edit` one is `waiting` for the source record to change (or an operator's retry),
//! never for a timer; a `needs_operator` one is `dead` until an operator retries or discards
//! it. A newer version of the source record, read by a pass, replaces the failure and is tried
//! at once, whatever its state. The schedule itself is the pure [`schedule_after_failure`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::time::{format_timestamp, parse_opt, parse_timestamp};
use super::{Direction, FailureClass, PageTx, Store, StoreError};

/// Where a failure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureState {
    /// Transient: will be retried at `next_attempt_at`.
    Pending,
    /// Needs an edit: retried when the source record changes, or by `failures retry`.
    Waiting,
    /// Needs an operator, or a transient failure out of attempts: waits for `failures retry`
    /// or `failures discard`.
    Dead,
}

impl FailureState {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureState::Pending => "pending",
            FailureState::Waiting => "waiting",
            FailureState::Dead => "dead",
        }
    }

    /// `pending`, `waiting` or `dead`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(FailureState::Pending),
            "waiting" => Some(FailureState::Waiting),
            "dead" => Some(FailureState::Dead),
            _ => None,
        }
    }
}

/// A stored failure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    pub id: i64,
    pub direction: Direction,
    pub object: String,
    pub source_id: String,
    pub target_id: Option<String>,
    pub source_modstamp: Option<DateTime<Utc>>,
    /// Salesforce's `errorCode`/`statusCode`, or orgsync's own code (e.g. `AMBIGUOUS_MATCH`).
    pub error_code: String,
    pub message: String,
    /// What the record needs before it can succeed (decides `state`).
    pub class: FailureClass,
    /// The record as written to the target, when a write was tried (the last attempt's).
    pub sent: Option<Map<String, Value>>,
    /// Attempts made in the current series (reset by an operator's retry).
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub state: FailureState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A failed attempt to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFailure {
    pub direction: Direction,
    pub object: String,
    pub source_id: String,
    pub target_id: Option<String>,
    /// SystemModstamp of the source version that failed.
    pub source_modstamp: Option<DateTime<Utc>>,
    pub error_code: String,
    pub message: String,
    /// What the record needs (usually [`FailureClass::of_code`] of `error_code`).
    pub class: FailureClass,
    /// The record as written to the target, when a write was tried.
    pub sent: Option<Map<String, Value>>,
}

/// The failure queue's backoff: how failed records are retried (`sync.max_attempts`,
/// `sync.retry_*_delay`; the sync layer builds it from the settings, the store does not read
/// configuration). Not the retry of one call (`salesforce::CallRetry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBackoff {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl FailureBackoff {
    /// Retries after `initial_delay`, doubling up to `max_delay`, until `max_attempts`.
    pub fn new(initial_delay: Duration, max_delay: Duration, max_attempts: u32) -> FailureBackoff {
        FailureBackoff {
            max_attempts,
            initial_delay,
            max_delay,
        }
    }
}

/// After the `attempts`-th failed attempt (1 = the first) of a failure of `class`: the new
/// state and when to try again. Only a transient failure is retried on a timer: delay =
/// initial * 2^(attempts-1), capped at `max_delay`, until `max_attempts` makes it dead. A
/// needs_edit failure waits (for an edit or an operator), a needs_operator one is dead.
pub fn schedule_after_failure(
    attempts: u32,
    class: FailureClass,
    policy: &FailureBackoff,
    now: DateTime<Utc>,
) -> (FailureState, Option<DateTime<Utc>>) {
    match class {
        FailureClass::Transient => {}
        FailureClass::NeedsEdit => return (FailureState::Waiting, None),
        FailureClass::NeedsOperator => return (FailureState::Dead, None),
    }
    if attempts >= policy.max_attempts {
        return (FailureState::Dead, None);
    }
    let exponent = attempts.saturating_sub(1).min(30);
    let delay = policy
        .initial_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay);
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    let at = now
        .checked_add_signed(delay)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (FailureState::Pending, Some(at))
}

fn from_row(row: &AnyRow) -> Result<Failure, StoreError> {
    let direction: String = row.try_get("direction")?;
    let attempts: i64 = row.try_get("attempts")?;
    let state: String = row.try_get("state")?;
    let class: String = row.try_get("class")?;
    let sent = match row.try_get::<Option<String>, _>("sent")? {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("failure values sent: {e}")))?,
        ),
    };
    Ok(Failure {
        id: row.try_get("id")?,
        direction: direction.parse().map_err(StoreError::Corrupt)?,
        object: row.try_get("object")?,
        source_id: row.try_get("source_id")?,
        target_id: row.try_get("target_id")?,
        source_modstamp: parse_opt(row.try_get("source_modstamp")?)?,
        error_code: row.try_get("error_code")?,
        message: row.try_get("message")?,
        class: class.parse().map_err(StoreError::Corrupt)?,
        sent,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("failure attempts {attempts}")))?,
        next_attempt_at: parse_opt(row.try_get("next_attempt_at")?)?,
        state: FailureState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("failure state {state:?}")))?,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_timestamp(&row.try_get::<String, _>("updated_at")?)?,
    })
}

/// `SELECT <every column> FROM failures <tail>`, as a `&'static str` (no SQL built at run time).
macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, direction, object, source_id, target_id, source_modstamp, error_code, ",
            "message, class, sent, attempts, next_attempt_at, state, created_at, updated_at ",
            "FROM failures ",
            $tail
        )
    };
}

async fn find(
    conn: &mut AnyConnection,
    direction: Direction,
    object: &str,
    source_id: &str,
) -> Result<Option<Failure>, StoreError> {
    let row = sqlx::query(select!(
        "WHERE direction = $1 AND object = $2 AND source_id = $3"
    ))
    .bind(direction.as_str())
    .bind(object)
    .bind(source_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

async fn get(conn: &mut AnyConnection, id: i64) -> Result<Option<Failure>, StoreError> {
    let row = sqlx::query(select!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

async fn record(
    conn: &mut AnyConnection,
    new: &NewFailure,
    policy: &FailureBackoff,
    now: DateTime<Utc>,
) -> Result<Failure, StoreError> {
    let existing = find(conn, new.direction, &new.object, &new.source_id).await?;
    let attempts = match &existing {
        // A newer version of the record failed: a fresh series of attempts.
        Some(old) if is_newer(new.source_modstamp, old.source_modstamp) => 1,
        Some(old) => old.attempts.saturating_add(1),
        None => 1,
    };
    let (state, next_attempt_at) = schedule_after_failure(attempts, new.class, policy, now);
    let now_text = format_timestamp(now);
    let sent = new
        .sent
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("failure values sent: {e}")))?;
    sqlx::query(
        "INSERT INTO failures (direction, object, source_id, target_id, source_modstamp, error_code,
             message, class, sent, attempts, next_attempt_at, state, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (direction, object, source_id) DO UPDATE SET
             target_id = coalesce(excluded.target_id, failures.target_id),
             source_modstamp = excluded.source_modstamp,
             error_code = excluded.error_code,
             message = excluded.message,
             class = excluded.class,
             sent = excluded.sent,
             attempts = excluded.attempts,
             next_attempt_at = excluded.next_attempt_at,
             state = excluded.state,
             updated_at = excluded.updated_at",
    )
    .bind(new.direction.as_str())
    .bind(&new.object)
    .bind(&new.source_id)
    .bind(&new.target_id)
    .bind(new.source_modstamp.map(format_timestamp))
    .bind(&new.error_code)
    .bind(&new.message)
    .bind(new.class.as_str())
    .bind(sent)
    .bind(i64::from(attempts))
    .bind(next_attempt_at.map(format_timestamp))
    .bind(state.as_str())
    .bind(&now_text)
    .bind(&now_text)
    .execute(&mut *conn)
    .await?;
    find(conn, new.direction, &new.object, &new.source_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("failure vanished after being written".into()))
}

fn is_newer(new: Option<DateTime<Utc>>, old: Option<DateTime<Utc>>) -> bool {
    matches!((new, old), (Some(n), Some(o)) if n > o)
}

async fn clear(
    conn: &mut AnyConnection,
    direction: Direction,
    object: &str,
    source_id: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("DELETE FROM failures WHERE direction = $1 AND object = $2 AND source_id = $3")
            .bind(direction.as_str())
            .bind(object)
            .bind(source_id)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// Records a failed attempt: inserts the failure, or counts one more attempt of a known
    /// one, and schedules the next try per `policy` (see [`schedule_after_failure`]).
    pub async fn record_failure(
        &self,
        failure: &NewFailure,
        policy: &FailureBackoff,
    ) -> Result<Failure, StoreError> {
        self.in_tx(async |conn| record(conn, failure, policy, Utc::now()).await)
            .await
    }

    /// Forgets the failure of a record that has now been synced; returns whether there was one.
    pub async fn clear_failure(
        &self,
        direction: Direction,
        object: &str,
        source_id: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        clear(&mut conn, direction, object, source_id).await
    }

    /// The failure with this id.
    pub async fn failure(&self, id: i64) -> Result<Option<Failure>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        get(&mut conn, id).await
    }

    /// The failure of one source record, if any.
    pub async fn failure_for(
        &self,
        direction: Direction,
        object: &str,
        source_id: &str,
    ) -> Result<Option<Failure>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        find(&mut conn, direction, object, source_id).await
    }

    /// All failures, or those in `state`, oldest first.
    pub async fn failures(&self, state: Option<FailureState>) -> Result<Vec<Failure>, StoreError> {
        self.failures_where(state, None).await
    }

    /// The failures in `state` (any when `None`) with error code `code` (any when `None`),
    /// oldest first.
    pub async fn failures_where(
        &self,
        state: Option<FailureState>,
        code: Option<&str>,
    ) -> Result<Vec<Failure>, StoreError> {
        let rows = sqlx::query(select!(
            "WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR error_code = $2) ORDER BY id"
        ))
        .bind(state.map(FailureState::as_str))
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Pending failures of `direction` and `object` due at `now`, oldest due first.
    pub async fn due_failures(
        &self,
        direction: Direction,
        object: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError> {
        let rows = sqlx::query(select!(
            "WHERE state = 'pending' AND direction = $1 AND object = $2
               AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4"
        ))
        .bind(direction.as_str())
        .bind(object)
        .bind(format_timestamp(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Operator's retry: the failure becomes pending, due now, with a fresh series of
    /// attempts. Returns whether the id exists.
    pub async fn retry_failure(&self, id: i64) -> Result<bool, StoreError> {
        let now = format_timestamp(Utc::now());
        let done = sqlx::query(
            "UPDATE failures SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $2
             WHERE id = $3",
        )
        .bind(&now)
        .bind(&now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Operator's `retry --all`: every failure, pending, waiting or dead, is due now with a fresh
    /// series of attempts. Returns how many.
    pub async fn retry_all_failures(&self) -> Result<u64, StoreError> {
        let now = format_timestamp(Utc::now());
        let done = sqlx::query(
            "UPDATE failures SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $2",
        )
        .bind(&now)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Operator's `retry --code CODE`: every failure with this error code (e.g. `DELETE_HELD`)
    /// is due now with a fresh series of attempts. Returns how many.
    pub async fn retry_failures_with_code(&self, code: &str) -> Result<u64, StoreError> {
        let now = format_timestamp(Utc::now());
        let done = sqlx::query(
            "UPDATE failures SET state = 'pending', attempts = 0, next_attempt_at = $1, \
             updated_at = $1 WHERE error_code = $2",
        )
        .bind(&now)
        .bind(code)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Operator's discard: forgets the failure (the record syncs again when next edited).
    /// Returns whether the id existed.
    pub async fn discard_failure(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM failures WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl PageTx {
    /// [`Store::record_failure`] inside this transaction.
    pub async fn record_failure(
        &mut self,
        failure: &NewFailure,
        policy: &FailureBackoff,
    ) -> Result<Failure, StoreError> {
        record(self.conn(), failure, policy, Utc::now()).await
    }

    /// [`Store::clear_failure`] inside this transaction.
    pub async fn clear_failure(
        &mut self,
        direction: Direction,
        object: &str,
        source_id: &str,
    ) -> Result<bool, StoreError> {
        clear(self.conn(), direction, object, source_id).await
    }

    /// [`Store::failure_for`] inside this transaction.
    pub async fn failure_for(
        &mut self,
        direction: Direction,
        object: &str,
        source_id: &str,
    ) -> Result<Option<Failure>, StoreError> {
        find(self.conn(), direction, object, source_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> FailureBackoff {
        FailureBackoff {
            max_attempts: 4,
            initial_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(150),
        }
    }

    #[test]
    fn backoff_doubles_then_caps_then_dies() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let at = |secs| Some(now + chrono::Duration::seconds(secs));
        let p = policy();
        let t = FailureClass::Transient;
        assert_eq!(
            schedule_after_failure(1, t, &p, now),
            (FailureState::Pending, at(60))
        );
        assert_eq!(
            schedule_after_failure(2, t, &p, now),
            (FailureState::Pending, at(120))
        );
        assert_eq!(
            schedule_after_failure(3, t, &p, now),
            (FailureState::Pending, at(150))
        );
        assert_eq!(
            schedule_after_failure(4, t, &p, now),
            (FailureState::Dead, None)
        );
    }

    #[test]
    fn only_transient_failures_wait_for_a_timer() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        // Needs an edit: waits for the source record to change, on no timer.
        assert_eq!(
            schedule_after_failure(1, FailureClass::NeedsEdit, &policy(), now),
            (FailureState::Waiting, None)
        );
        // Needs an operator: dead at once.
        assert_eq!(
            schedule_after_failure(1, FailureClass::NeedsOperator, &policy(), now),
            (FailureState::Dead, None)
        );
        for state in [
            FailureState::Pending,
            FailureState::Waiting,
            FailureState::Dead,
        ] {
            assert_eq!(FailureState::parse(state.as_str()), Some(state));
        }
        assert_eq!(FailureState::parse("done"), None);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let p = FailureBackoff {
            max_attempts: u32::MAX,
            initial_delay: Duration::from_secs(u64::MAX / 4),
            max_delay: Duration::from_secs(u64::MAX / 2),
        };
        let (state, at) = schedule_after_failure(1000, FailureClass::Transient, &p, now);
        assert_eq!(state, FailureState::Pending);
        assert!(at.is_some());
    }
}
