//! What the daemon knows of each org that another process must be able to show: a login
//! refused for its credentials (Salesforce's code and message, how many refusals, when the next
//! attempt is due). The daemon writes it when it changes; `status` reads it. The row is cleared
//! when a login succeeds, so a stale "auth failed" never outlives its cause.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::time::{format_timestamp, parse_opt};
use super::{Org, Store, StoreError};

/// A login refused for its credentials, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuthFailed {
    /// Salesforce's code (`INVALID_LOGIN`, `invalid_grant`, ...).
    pub code: String,
    /// Salesforce's message; never a secret.
    pub message: String,
    /// Refused logins in a row.
    pub attempts: u32,
    pub since: Option<DateTime<Utc>>,
    pub next_attempt: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores `org`'s login state: `Some` while its logins are refused, `None` once one
    /// succeeded.
    pub async fn set_auth_failed(
        &self,
        org: Org,
        failed: Option<&AuthFailed>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO org_state (org, auth_code, auth_message, auth_attempts, auth_since,
                 auth_next_attempt, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (org) DO UPDATE SET auth_code = excluded.auth_code,
                 auth_message = excluded.auth_message, auth_attempts = excluded.auth_attempts,
                 auth_since = excluded.auth_since,
                 auth_next_attempt = excluded.auth_next_attempt,
                 updated_at = excluded.updated_at",
        )
        .bind(org.as_str())
        .bind(failed.map(|f| f.code.as_str()))
        .bind(failed.map(|f| f.message.as_str()))
        .bind(failed.map_or(0, |f| i64::from(f.attempts)))
        .bind(failed.and_then(|f| f.since).map(format_timestamp))
        .bind(failed.and_then(|f| f.next_attempt).map(format_timestamp))
        .bind(format_timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `org`'s refused login, if the daemon last saw one.
    pub async fn auth_failed(&self, org: Org) -> Result<Option<AuthFailed>, StoreError> {
        let row = sqlx::query(
            "SELECT auth_code, auth_message, auth_attempts, auth_since, auth_next_attempt
             FROM org_state WHERE org = $1 AND auth_code IS NOT NULL",
        )
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let attempts: i64 = row.try_get("auth_attempts")?;
        Ok(Some(AuthFailed {
            code: row.try_get("auth_code")?,
            message: row
                .try_get::<Option<String>, _>("auth_message")?
                .unwrap_or_default(),
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            since: parse_opt(row.try_get("auth_since")?)?,
            next_attempt: parse_opt(row.try_get("auth_next_attempt")?)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::both_backends!(
    async fn a_refused_login_is_kept_until_a_login_succeeds(store) {
        assert_eq!(store.auth_failed(Org::A).await.expect("read"), None);
        let failed = AuthFailed {
            code: "INVALID_LOGIN".into(),
            message: "Invalid username, password, security token; or user locked out.".into(),
            attempts: 2,
            since: Some(Utc::now()),
            next_attempt: None,
        };
        store
            .set_auth_failed(Org::A, Some(&failed))
            .await
            .expect("write");
        let read = store.auth_failed(Org::A).await.expect("read").expect("row");
        assert_eq!(read.code, "INVALID_LOGIN");
        assert_eq!(read.attempts, 2);
        assert_eq!(store.auth_failed(Org::B).await.expect("read"), None);
        store.set_auth_failed(Org::A, None).await.expect("clear");
        assert_eq!(store.auth_failed(Org::A).await.expect("read"), None);
    });
}
