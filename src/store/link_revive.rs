//! Reviving a tombstoned link: the undelete path (`sync::undelete`) restored or recreated the
//! target of a pair one side of which had been deleted, and the pair is synced again. The
//! tombstone row becomes live in place (its id stays, so `orgsync links show` follows it),
//! with the target's id (a recreated target has a new one), the modstamps and the snapshot of
//! the values just written; `deleted_at` and `deleted_by` are cleared.
//!
//! Idempotent: reviving a link that is already live with the same two ids (a replayed page)
//! is success. A revival that would link a record already live elsewhere fails with
//! [`StoreError::LinkConflict`], as every link write does.

use chrono::Utc;
use serde_json::Value;
use sqlx::AnyConnection;

use super::time::format_timestamp;
use super::{LinkWrite, PageTx, Store, StoreError};

async fn revive(
    conn: &mut AnyConnection,
    link_id: i64,
    link: &LinkWrite,
) -> Result<(), StoreError> {
    let conflict = |detail: String| StoreError::LinkConflict {
        object: link.object.clone(),
        a_id: link.a_id.clone(),
        b_id: link.b_id.clone(),
        detail,
    };
    let snapshot = Value::Object(link.snapshot.clone()).to_string();
    let done = sqlx::query(
        "UPDATE links SET state = 'live', deleted_at = NULL, deleted_by = NULL,
             a_id = $1, b_id = $2,
             a_modstamp = coalesce($3, a_modstamp), b_modstamp = coalesce($4, b_modstamp),
             snapshot = $5, updated_at = $6
         WHERE id = $7 AND object = $8 AND state IN ('tombstone', 'live')",
    )
    .bind(&link.a_id)
    .bind(&link.b_id)
    .bind(link.a_modstamp.map(format_timestamp))
    .bind(link.b_modstamp.map(format_timestamp))
    .bind(snapshot)
    .bind(format_timestamp(Utc::now()))
    .bind(link_id)
    .bind(&link.object)
    .execute(&mut *conn)
    .await;
    match done {
        Ok(done) if done.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(conflict(format!(
            "link {link_id} is not a tombstone or live link of {} any more",
            link.object
        ))),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(conflict(
            "one of the two records is already live in another link".to_string(),
        )),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Makes tombstone link `link_id` live again with `link`'s ids, modstamps and snapshot.
    pub async fn revive_link(&self, link_id: i64, link: &LinkWrite) -> Result<(), StoreError> {
        self.in_tx(async |conn| revive(conn, link_id, link).await)
            .await
    }
}

impl PageTx {
    /// [`Store::revive_link`] inside this transaction (the page's).
    pub async fn revive_link(&mut self, link_id: i64, link: &LinkWrite) -> Result<(), StoreError> {
        revive(self.conn(), link_id, link).await
    }
}

/// Test support: turns live link `(object, a_id)` into a tombstone, as the delete path
/// (another module) does, so the undelete path can be tested on its own.
#[cfg(test)]
pub(crate) async fn tombstone_for_test(
    store: &Store,
    object: &str,
    a_id: &str,
    deleted_by: super::Org,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE links SET state = 'tombstone', deleted_at = $1, deleted_by = $2
         WHERE object = $3 AND a_id = $4 AND state = 'live'",
    )
    .bind(format_timestamp(Utc::now()))
    .bind(deleted_by.as_str())
    .bind(object)
    .bind(a_id)
    .execute(&store.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LinkState, Org};
    use serde_json::{Map, json};

    fn write(a: &str, b: &str, name: &str) -> LinkWrite {
        let mut snapshot = Map::new();
        snapshot.insert("Name".into(), json!(name));
        LinkWrite {
            object: "Opportunity".into(),
            a_id: a.into(),
            b_id: b.into(),
            a_modstamp: None,
            b_modstamp: None,
            snapshot,
        }
    }

    #[tokio::test]
    async fn a_tombstone_becomes_live_with_the_new_target_and_replay_is_harmless() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.upsert_link(&write("A1", "B1", "old")).await.unwrap();
        tombstone_for_test(&store, "Opportunity", "A1", Org::A)
            .await
            .unwrap();
        let before = store
            .links_by_a_ids("Opportunity", &["A1".to_string()])
            .await
            .unwrap();
        assert_eq!(before[0].state, LinkState::Tombstone);
        let id = before[0].id;
        store
            .revive_link(id, &write("A1", "B2", "new"))
            .await
            .unwrap();
        store
            .revive_link(id, &write("A1", "B2", "new"))
            .await
            .unwrap();
        let after = store
            .links_by_a_ids("Opportunity", &["A1".to_string()])
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].id, id);
        assert_eq!(after[0].state, LinkState::Live);
        assert_eq!((after[0].deleted_at, after[0].deleted_by), (None, None));
        assert_eq!(after[0].b_id, "B2");
        assert_eq!(after[0].snapshot["Name"], json!("new"));
    }

    #[tokio::test]
    async fn a_revival_never_links_a_record_twice() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.upsert_link(&write("A1", "B1", "x")).await.unwrap();
        tombstone_for_test(&store, "Opportunity", "A1", Org::B)
            .await
            .unwrap();
        // Meanwhile A2 got linked to B1.
        store.upsert_link(&write("A2", "B1", "y")).await.unwrap();
        let id = store
            .links_by_a_ids("Opportunity", &["A1".to_string()])
            .await
            .unwrap()[0]
            .id;
        let err = store
            .revive_link(id, &write("A1", "B1", "x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LinkConflict { .. }), "{err}");
    }
}
