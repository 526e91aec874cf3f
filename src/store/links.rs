//! Links: a record in A and its counterpart in B, with each side's last seen SystemModstamp
//! and a snapshot of the mapped values last synced (what lets the engine tell our own writes
//! from people's edits). Each link has a [`LinkState`]: `live` links are synced and unique on
//! both sides, so a record is never linked twice (a write that would break that fails with
//! [`StoreError::LinkConflict`]); `unlinked` and `tombstone` rows are kept so that the engine
//! never matches their two records with each other again, and do not count for uniqueness.
//! Lookups take a whole page of ids and cost one query (the ids travel as one JSON array bind,
//! read with `json_each`, or `jsonb_array_elements_text` on PostgreSQL). The operator's commands on links are in `link_admin`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection, Row};

use super::db::json_ids;
use super::time::{format_timestamp, parse_opt, parse_timestamp};
use super::{Org, PageTx, Store, StoreError};

/// What a link is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// The two records are synced with each other.
    Live,
    /// An operator unlinked them (`orgsync links unlink`): neither is synced to the other, and
    /// the engine never matches them with each other again (each may be linked elsewhere).
    Unlinked,
    /// One of them was deleted: kept, with when and by which side, so that the pair is never
    /// matched again.
    Tombstone,
}

impl LinkState {
    pub const ALL: [LinkState; 3] = [LinkState::Live, LinkState::Unlinked, LinkState::Tombstone];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Live => "live",
            LinkState::Unlinked => "unlinked",
            LinkState::Tombstone => "tombstone",
        }
    }

    pub fn parse(text: &str) -> Option<LinkState> {
        LinkState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Link {
    /// The link's id, for `orgsync links show/unlink`.
    pub id: i64,
    pub object: String,
    pub a_id: String,
    pub b_id: String,
    pub a_modstamp: Option<DateTime<Utc>>,
    pub b_modstamp: Option<DateTime<Utc>>,
    /// Mapped field values (named as in A) as last synced.
    pub snapshot: Map<String, Value>,
    pub state: LinkState,
    /// For a tombstone: when the delete was seen, and in which org.
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_by: Option<Org>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Link {
    /// Whether the two records are synced with each other.
    pub fn is_live(&self) -> bool {
        self.state == LinkState::Live
    }
}

/// `SELECT <the columns [`from_row`] reads> FROM links <rest>`, as one static string (sqlx
/// takes no SQL built at run time).
macro_rules! select_links {
    ($rest:literal) => {
        concat!(
            "SELECT id, object, a_id, b_id, a_modstamp, b_modstamp, snapshot, state, deleted_at, \
             deleted_by, created_at, updated_at FROM links ",
            $rest
        )
    };
}
pub(super) use select_links;

/// What to write for a link. A modstamp left `None` keeps the stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkWrite {
    pub object: String,
    pub a_id: String,
    pub b_id: String,
    pub a_modstamp: Option<DateTime<Utc>>,
    pub b_modstamp: Option<DateTime<Utc>>,
    pub snapshot: Map<String, Value>,
}

/// A live link becoming a tombstone: one side was deleted (by orgsync propagating a delete,
/// or found gone), at `at`, in org `by`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub object: String,
    pub a_id: String,
    pub b_id: String,
    /// The org whose delete made the tombstone (the source of the delete).
    pub by: Org,
    /// When the delete was seen (the deleted row's SystemModstamp).
    pub at: DateTime<Utc>,
}

pub(super) fn from_row(row: &AnyRow) -> Result<Link, StoreError> {
    let snapshot_text: String = row.try_get("snapshot")?;
    let snapshot = match serde_json::from_str::<Value>(&snapshot_text) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "link snapshot is not a JSON object: {snapshot_text:.80}"
            )));
        }
    };
    let state: String = row.try_get("state")?;
    let state = LinkState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("link state {state:?}")))?;
    let deleted_by = match row.try_get::<Option<String>, _>("deleted_by")? {
        None => None,
        Some(org) => Some(
            org.parse::<Org>()
                .map_err(|_| StoreError::Corrupt(format!("link deleted_by {org:?}")))?,
        ),
    };
    Ok(Link {
        id: row.try_get("id")?,
        object: row.try_get("object")?,
        a_id: row.try_get("a_id")?,
        b_id: row.try_get("b_id")?,
        a_modstamp: parse_opt(row.try_get("a_modstamp")?)?,
        b_modstamp: parse_opt(row.try_get("b_modstamp")?)?,
        snapshot,
        state,
        deleted_at: parse_opt(row.try_get("deleted_at")?)?,
        deleted_by,
        created_at: parse_timestamp(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_timestamp(&row.try_get::<String, _>("updated_at")?)?,
    })
}

async fn upsert(
    conn: &mut AnyConnection,
    link: &LinkWrite,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let conflict = |detail: String| StoreError::LinkConflict {
        object: link.object.clone(),
        a_id: link.a_id.clone(),
        b_id: link.b_id.clone(),
        detail,
    };
    let now = format_timestamp(now);
    let snapshot = Value::Object(link.snapshot.clone()).to_string();
    // On PostgreSQL the insert runs in a savepoint: a failed statement aborts the whole
    // transaction, so without it a conflict would poison the page's other writes. SQLite only
    // undoes the failed statement (its ABORT conflict resolution), so there it runs as it is:
    // one statement per link instead of three, which a commit of 1,000,000 links feels.
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");
    let query = sqlx::query(
        "INSERT INTO links (object, a_id, b_id, a_modstamp, b_modstamp, snapshot, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (object, a_id) WHERE state = 'live' DO UPDATE SET
             a_modstamp = coalesce(excluded.a_modstamp, links.a_modstamp),
             b_modstamp = coalesce(excluded.b_modstamp, links.b_modstamp),
             snapshot = excluded.snapshot,
             updated_at = excluded.updated_at
         WHERE links.b_id = excluded.b_id",
    )
    .bind(&link.object)
    .bind(&link.a_id)
    .bind(&link.b_id)
    .bind(link.a_modstamp.map(format_timestamp))
    .bind(link.b_modstamp.map(format_timestamp))
    .bind(snapshot)
    .bind(&now)
    .bind(&now);
    let result = if postgres {
        let mut savepoint = conn.begin().await?;
        let result = query.execute(&mut *savepoint).await;
        match result {
            Ok(_) => savepoint.commit().await?,
            Err(_) => savepoint.rollback().await?,
        }
        result
    } else {
        query.execute(&mut *conn).await
    };
    match result {
        Ok(done) if done.rows_affected() == 0 => {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT b_id FROM links WHERE object = $1 AND a_id = $2 AND state = 'live'",
            )
            .bind(&link.object)
            .bind(&link.a_id)
            .fetch_optional(&mut *conn)
            .await?;
            Err(conflict(format!(
                "A {} is already linked to B {}",
                link.a_id,
                existing.unwrap_or_default()
            )))
        }
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT a_id FROM links WHERE object = $1 AND b_id = $2 AND state = 'live'",
            )
            .bind(&link.object)
            .bind(&link.b_id)
            .fetch_optional(&mut *conn)
            .await?;
            Err(conflict(match existing {
                Some(a_id) => format!("B {} is already linked to A {a_id}", link.b_id),
                // The same pair as an unlinked or tombstoned row (never matched again).
                None => format!(
                    "A {} and B {} were unlinked; `orgsync links unlink {} --forget` lets them \
                     be linked again",
                    link.a_id, link.b_id, link.a_id
                ),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

async fn by_ids(
    conn: &mut AnyConnection,
    object: &str,
    ids: &[String],
    side_a: bool,
) -> Result<Vec<Link>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids_json = serde_json::to_string(ids)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode ids: {e}")))?;
    // Two static statements rather than one built at run time: nothing but binds varies.
    let sql = if side_a {
        json_ids!(
            conn,
            select_links!("WHERE object = $1 AND a_id IN "),
            "$2",
            " ORDER BY a_id, id"
        )
    } else {
        json_ids!(
            conn,
            select_links!("WHERE object = $1 AND b_id IN "),
            "$2",
            " ORDER BY b_id, id"
        )
    };
    let rows = sqlx::query(sql)
        .bind(object)
        .bind(ids_json)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

async fn delete(conn: &mut AnyConnection, object: &str, a_id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM links WHERE object = $1 AND a_id = $2 AND state = 'live'")
        .bind(object)
        .bind(a_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The deleting side's modstamp moves to the delete's time; the other side's stays. Portable
/// SQL ($n placeholders, no SQLite-only function).
async fn tombstone(conn: &mut AnyConnection, t: &Tombstone) -> Result<bool, StoreError> {
    let at = format_timestamp(t.at);
    let now = format_timestamp(Utc::now());
    let sql = match t.by {
        Org::A => {
            "UPDATE links SET state = 'tombstone', deleted_at = $1, deleted_by = $2, \
             a_modstamp = $1, updated_at = $3 \
             WHERE object = $4 AND a_id = $5 AND b_id = $6 AND state = 'live'"
        }
        Org::B => {
            "UPDATE links SET state = 'tombstone', deleted_at = $1, deleted_by = $2, \
             b_modstamp = $1, updated_at = $3 \
             WHERE object = $4 AND a_id = $5 AND b_id = $6 AND state = 'live'"
        }
    };
    let done = sqlx::query(sql)
        .bind(&at)
        .bind(t.by.as_str())
        .bind(&now)
        .bind(&t.object)
        .bind(&t.a_id)
        .bind(&t.b_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// Makes a live link a tombstone (see [`Tombstone`]); whether there was such a live link.
    pub async fn tombstone_link(&self, t: &Tombstone) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        tombstone(&mut conn, t).await
    }

    /// Creates or refreshes a link (idempotent). Fails with [`StoreError::LinkConflict`] if
    /// either id is already linked to a different record.
    pub async fn upsert_link(&self, link: &LinkWrite) -> Result<(), StoreError> {
        self.in_tx(async |conn| upsert(conn, link, Utc::now()).await)
            .await
    }

    /// The links of the given A ids, in every state (one query; ids without a link are simply
    /// absent). Only [`Link::is_live`] ones are synced.
    pub async fn links_by_a_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        by_ids(&mut conn, object, ids, true).await
    }

    /// The links of the given B ids, in every state (one query).
    pub async fn links_by_b_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        by_ids(&mut conn, object, ids, false).await
    }

    /// Removes the live link of A record `a_id`; returns whether there was one.
    pub async fn delete_link(&self, object: &str, a_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        delete(&mut conn, object, a_id).await
    }
}

impl PageTx {
    /// [`Store::upsert_link`] inside this transaction. On a conflict the transaction is
    /// still usable (only the failed statement is undone).
    pub async fn upsert_link(&mut self, link: &LinkWrite) -> Result<(), StoreError> {
        upsert(self.conn(), link, Utc::now()).await
    }

    /// [`Store::links_by_a_ids`] inside this transaction.
    pub async fn links_by_a_ids(
        &mut self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        by_ids(self.conn(), object, ids, true).await
    }

    /// [`Store::links_by_b_ids`] inside this transaction.
    pub async fn links_by_b_ids(
        &mut self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        by_ids(self.conn(), object, ids, false).await
    }

    /// [`Store::tombstone_link`] inside this transaction.
    pub async fn tombstone_link(&mut self, t: &Tombstone) -> Result<bool, StoreError> {
        tombstone(self.conn(), t).await
    }

    /// [`Store::delete_link`] inside this transaction.
    pub async fn delete_link(&mut self, object: &str, a_id: &str) -> Result<bool, StoreError> {
        delete(self.conn(), object, a_id).await
    }
}

#[cfg(test)]
mod conflict_tests {
    use super::*;

    fn write(a: &str, b: &str) -> LinkWrite {
        LinkWrite {
            object: "Opportunity".into(),
            a_id: a.into(),
            b_id: b.into(),
            a_modstamp: None,
            b_modstamp: None,
            snapshot: Default::default(),
        }
    }

    // A conflict inside a page's transaction undoes only its own insert (a savepoint on
    // PostgreSQL, the statement on SQLite): the page's other links commit.
    crate::both_backends! {
        async fn a_conflict_in_a_page_leaves_the_rest_of_it_to_commit(store) {
            let mut tx = store.begin().await.unwrap();
            tx.upsert_link(&write("A1", "B1")).await.unwrap();
            let clash = tx.upsert_link(&write("A2", "B1")).await;
            assert!(matches!(clash, Err(StoreError::LinkConflict { .. })), "{clash:?}");
            tx.upsert_link(&write("A3", "B3")).await.unwrap();
            tx.commit().await.unwrap();
            let ids: Vec<String> = ["A1", "A2", "A3"].iter().map(|s| s.to_string()).collect();
            let links = store.links_by_a_ids("Opportunity", &ids).await.unwrap();
            let mut pairs: Vec<(String, String)> =
                links.iter().map(|l| (l.a_id.clone(), l.b_id.clone())).collect();
            pairs.sort();
            assert_eq!(
                pairs,
                [("A1".to_string(), "B1".to_string()), ("A3".to_string(), "B3".to_string())]
            );
        }
    }
}
