//! The operator's commands on links (`orgsync links ...`), as store operations: list and find
//! links, link two records by hand, unlink (or forget) a pair. They run in another process
//! beside a running daemon, so each write is one short immediate transaction and none takes the
//! state lock. Linking and forgetting also make the two records' queued failures due and put
//! the records in the inbox, so that the next cycle (poll or push) reads them again and acts on
//! the new link state without waiting for an edit.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::inbox::{self, NewNotification};
use super::links::{Link, LinkState, from_row, select_links};
use super::time::format_timestamp;
use super::{Direction, Org, Store, StoreError};

/// Why a link command was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkAdminError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `record_id` (15 or 18 characters) names `stored` (an 18-character id, or a
/// 15-character one as some callers store it): ids are compared case-sensitively on their first
/// 15 characters, the 18-character suffix being only a case-insensitive checksum of those.
pub fn same_record(stored: &str, record_id: &str) -> bool {
    match (stored.get(..15), record_id.get(..15)) {
        (Some(a), Some(b)) => {
            a == b && (record_id.len() == 15 || stored.len() == 15 || stored == record_id)
        }
        _ => stored == record_id,
    }
}

async fn by_record(conn: &mut AnyConnection, record_id: &str) -> Result<Vec<Link>, StoreError> {
    let prefix: String = record_id.chars().take(15).collect();
    let sql =
        select_links!("WHERE substr(a_id, 1, 15) = $1 OR substr(b_id, 1, 15) = $1 ORDER BY id");
    let rows = sqlx::query(sql).bind(&prefix).fetch_all(&mut *conn).await?;
    let links: Vec<Link> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(links
        .into_iter()
        .filter(|l| same_record(&l.a_id, record_id) || same_record(&l.b_id, record_id))
        .collect())
}

async fn by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<Link>, StoreError> {
    let row = sqlx::query(select_links!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The link id `text` is, when it is one: digits, shorter than a record id (15 or 18
/// characters, which may be all digits).
fn link_id(text: &str) -> Option<i64> {
    if text.len() < 15 {
        text.parse().ok()
    } else {
        None
    }
}

async fn find(conn: &mut AnyConnection, id_or_record_id: &str) -> Result<Vec<Link>, StoreError> {
    match link_id(id_or_record_id) {
        Some(id) => Ok(by_id(conn, id).await?.into_iter().collect()),
        None => by_record(conn, id_or_record_id).await,
    }
}

/// Makes the queued failures of both records due now, and puts both records in the inbox,
/// so that the next cycle reads them again.
async fn requeue(
    conn: &mut AnyConnection,
    link: &Link,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = format_timestamp(now);
    for (direction, source_id) in [(Direction::AToB, &link.a_id), (Direction::BToA, &link.b_id)] {
        sqlx::query(
            "UPDATE failures SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $2
             WHERE direction = $3 AND object = $4 AND source_id = $5",
        )
        .bind(&at)
        .bind(&at)
        .bind(direction.as_str())
        .bind(&link.object)
        .bind(source_id)
        .execute(&mut *conn)
        .await?;
    }
    let notifications: Vec<NewNotification> = [(Org::A, &link.a_id), (Org::B, &link.b_id)]
        .into_iter()
        .map(|(org, record_id)| NewNotification {
            org,
            notification_id: format!("orgsync-links-{why}-{}-{at}", link.id),
            object: link.object.clone(),
            record_id: record_id.clone(),
        })
        .collect();
    inbox::insert(conn, &notifications, now).await?;
    Ok(())
}

impl Store {
    /// Links of `object` (all objects when `None`) in `state` (all states when `None`), by id.
    pub async fn links_where(
        &self,
        object: Option<&str>,
        state: Option<LinkState>,
    ) -> Result<Vec<Link>, StoreError> {
        let sql = select_links!(
            "WHERE ($1 IS NULL OR object = $1) AND ($2 IS NULL OR state = $2) ORDER BY id"
        );
        let rows = sqlx::query(sql)
            .bind(object)
            .bind(state.map(LinkState::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The link with this id (digits, shorter than a record id), or every link of this record id (15 or 18
    /// characters, in either org, any object and state).
    pub async fn find_links(&self, id_or_record_id: &str) -> Result<Vec<Link>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        find(&mut conn, id_or_record_id).await
    }

    /// Links A record `a_id` and B record `b_id` of `object` by hand: a live link with an
    /// empty snapshot (the next cycle merges the pair field by field, every differing field a
    /// conflict resolved by `sync.conflict`). Refused when either record has a live link. An
    /// unlinked or tombstoned row of the same pair becomes this live link. The records' queued
    /// failures become due and both records are queued for the next cycle.
    pub async fn link_by_hand(
        &self,
        object: &str,
        a_id: &str,
        b_id: &str,
    ) -> Result<Link, LinkAdminError> {
        let mut tx = self.begin_write().await?;
        let conn: &mut AnyConnection = &mut tx;
        for (org, id) in [(Org::A, a_id), (Org::B, b_id)] {
            let linked = by_record(conn, id)
                .await?
                .into_iter()
                .find(|l| l.is_live() && l.object == object);
            if let Some(l) = linked {
                let other = match org {
                    Org::A => &l.b_id,
                    Org::B => &l.a_id,
                };
                return Err(LinkAdminError::Refused(format!(
                    "{} record {id} is already linked to {other} (link {}); unlink it first: \
                     `orgsync links unlink {id}`",
                    org.as_str().to_ascii_uppercase(),
                    l.id
                )));
            }
        }
        let now = Utc::now();
        let at = format_timestamp(now);
        sqlx::query(
            "INSERT INTO links (object, a_id, b_id, a_modstamp, b_modstamp, snapshot, state,
                                created_at, updated_at)
             VALUES ($1, $2, $3, NULL, NULL, '{}', 'live', $4, $5)
             ON CONFLICT (object, a_id, b_id) DO UPDATE SET
                 a_modstamp = NULL, b_modstamp = NULL, snapshot = '{}', state = 'live',
                 deleted_at = NULL, deleted_by = NULL, updated_at = excluded.updated_at",
        )
        .bind(object)
        .bind(a_id)
        .bind(b_id)
        .bind(&at)
        .bind(&at)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let sql = select_links!("WHERE object = $1 AND a_id = $2 AND b_id = $3");
        let row = sqlx::query(sql)
            .bind(object)
            .bind(a_id)
            .bind(b_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from)?;
        let link = from_row(&row)?;
        requeue(conn, &link, "link", now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(link)
    }

    /// Unlinks the link `id_or_record_id` names (its id, or a record id: then its live link).
    /// Without `forget` the link becomes `unlinked`: the two records are no longer synced with
    /// each other and never matched with each other again. With `forget` the row is removed
    /// (from any state): the next cycle may match the records again, and both are queued for
    /// it. Returns the link as it was.
    pub async fn unlink(
        &self,
        id_or_record_id: &str,
        forget: bool,
    ) -> Result<Link, LinkAdminError> {
        let mut tx = self.begin_write().await?;
        let conn: &mut AnyConnection = &mut tx;
        let found = find(conn, id_or_record_id).await?;
        let by_link_id = link_id(id_or_record_id).is_some();
        let live: Vec<&Link> = found.iter().filter(|l| l.is_live()).collect();
        let link = match (found.as_slice(), live.as_slice()) {
            ([], _) => {
                return Err(LinkAdminError::Refused(format!(
                    "no link has {} {id_or_record_id} (see `orgsync links list`)",
                    if by_link_id { "id" } else { "the record" }
                )));
            }
            ([one], _) if by_link_id => one.clone(),
            (_, [one]) => (*one).clone(),
            (_, []) if forget && found.len() == 1 => found[0].clone(),
            (_, []) => {
                return Err(LinkAdminError::Refused(format!(
                    "{id_or_record_id} has no live link; name the link by its id (`orgsync \
                     links show {id_or_record_id}` lists them)"
                )));
            }
            _ => {
                return Err(LinkAdminError::Refused(format!(
                    "{id_or_record_id} has more than one live link; name the link by its id \
                     (`orgsync links show {id_or_record_id}` lists them)"
                )));
            }
        };
        if !forget && link.object == "Account" {
            return Err(LinkAdminError::Refused(format!(
                "link {} is an Account link: those are remade by matching the parents' names, so \
                 only `orgsync links unlink {} --forget` can change one",
                link.id, link.id
            )));
        }
        if !forget && !link.is_live() {
            return Err(LinkAdminError::Refused(format!(
                "link {} is {} already; `--forget` removes it",
                link.id,
                link.state.as_str()
            )));
        }
        let now = Utc::now();
        if forget {
            sqlx::query("DELETE FROM links WHERE id = $1")
                .bind(link.id)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)?;
            requeue(conn, &link, "forget", now).await?;
        } else {
            sqlx::query("UPDATE links SET state = 'unlinked', updated_at = $1 WHERE id = $2")
                .bind(format_timestamp(now))
                .bind(link.id)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Map, json};

    use super::*;
    use crate::store::{FailureBackoff, FailureClass, FailureState, LinkWrite, NewFailure};

    const A1: &str = "006000000000001AAA";
    const A2: &str = "006000000000002AAA";
    const B1: &str = "006000000000001BBB";
    const B2: &str = "006000000000002BBB";

    fn write(a_id: &str, b_id: &str) -> LinkWrite {
        let mut snapshot = Map::new();
        snapshot.insert("Name".into(), json!("x"));
        LinkWrite {
            object: "Opportunity".into(),
            a_id: a_id.into(),
            b_id: b_id.into(),
            a_modstamp: None,
            b_modstamp: None,
            snapshot,
        }
    }

    fn refused(result: Result<Link, LinkAdminError>) -> String {
        match result {
            Err(LinkAdminError::Refused(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn record_ids_compare_on_their_first_15_characters() {
        assert!(same_record(A1, A1));
        assert!(same_record(A1, &A1[..15]));
        assert!(same_record(&A1[..15], A1));
        assert!(!same_record(A1, "006000000000001AAB"));
        assert!(!same_record(A1, &A2[..15]));
        // Case matters in the 15 characters.
        assert!(!same_record(A1, "006000000000001aAA"));
    }

    crate::both_backends!(
    async fn link_by_hand_refuses_a_linked_record_and_writes_an_empty_snapshot(store) {
        store.upsert_link(&write(A1, B1)).await.expect("link");
        let message = refused(store.link_by_hand("Opportunity", A1, B2).await);
        assert!(
            message.contains(&format!("`orgsync links unlink {A1}`")),
            "{message}"
        );
        let message = refused(store.link_by_hand("Opportunity", A2, B1).await);
        assert!(message.contains("already linked"), "{message}");

        let link = store
            .link_by_hand("Opportunity", A2, B2)
            .await
            .expect("link");
        assert_eq!(link.state, LinkState::Live);
        assert!(link.snapshot.is_empty());
        assert_eq!((link.a_modstamp, link.b_modstamp), (None, None));
        // Both records are queued for the next cycle.
        let pending = store
            .pending_notifications(Org::A, 10)
            .await
            .expect("inbox");
        assert_eq!(
            pending
                .iter()
                .map(|n| n.record_id.as_str())
                .collect::<Vec<_>>(),
            [A2]
        );
        let pending = store
            .pending_notifications(Org::B, 10)
            .await
            .expect("inbox");
        assert_eq!(
            pending
                .iter()
                .map(|n| n.record_id.as_str())
                .collect::<Vec<_>>(),
            [B2]
        );
    });

    crate::both_backends!(
    async fn link_by_hand_makes_the_records_failures_due(store) {
        let backoff = FailureBackoff::new(Duration::from_secs(60), Duration::from_secs(60), 1);
        let failure = NewFailure {
            direction: Direction::AToB,
            object: "Opportunity".into(),
            source_id: A1.into(),
            target_id: None,
            source_modstamp: None,
            error_code: "AMBIGUOUS_MATCH".into(),
            message: "two match".into(),
            class: FailureClass::NeedsOperator,
            sent: None,
        };
        store
            .record_failure(&failure, &backoff)
            .await
            .expect("failure");
        let before = store
            .failure_for(Direction::AToB, "Opportunity", A1)
            .await
            .expect("read")
            .expect("queued");
        assert_eq!(before.state, FailureState::Dead);
        store
            .link_by_hand("Opportunity", A1, B1)
            .await
            .expect("link");
        let after = store
            .failure_for(Direction::AToB, "Opportunity", A1)
            .await
            .expect("read")
            .expect("queued");
        assert_eq!(after.state, FailureState::Pending);
        assert!(after.next_attempt_at.is_some_and(|t| t <= Utc::now()));
    });

    crate::both_backends!(
    async fn unlink_keeps_the_pair_apart_and_frees_both_records(store) {
        store.upsert_link(&write(A1, B1)).await.expect("link");
        // By a 15-character record id of either side.
        let was = store.unlink(&B1[..15], false).await.expect("unlink");
        assert_eq!(was.state, LinkState::Live);
        let now = store.find_links(A1).await.expect("find");
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].state, LinkState::Unlinked);
        // Not live any more: the engine reads it but does not sync it; plain unlink queues nothing.
        let by_a = store
            .links_by_a_ids("Opportunity", &[A1.to_string()])
            .await
            .expect("read");
        assert!(by_a.iter().all(|l| !l.is_live()));
        assert!(
            store
                .pending_notifications(Org::A, 10)
                .await
                .expect("inbox")
                .is_empty()
        );
        // Each record can be linked to another one (uniqueness holds among live links only).
        store
            .upsert_link(&write(A1, B2))
            .await
            .expect("A1 elsewhere");
        store
            .upsert_link(&write(A2, B1))
            .await
            .expect("B1 elsewhere");
        // ... but live uniqueness still holds.
        assert!(matches!(
            store.upsert_link(&write(A1, B1)).await,
            Err(StoreError::LinkConflict { .. })
        ));
        // Unlinking twice is refused; forgetting the unlinked row removes it.
        let message = refused(store.unlink(&was.id.to_string(), false).await);
        assert!(message.contains("--forget"), "{message}");
        store
            .unlink(&was.id.to_string(), true)
            .await
            .expect("forget");
        assert!(
            store
                .find_links(&was.id.to_string())
                .await
                .expect("find")
                .is_empty()
        );
    });

    crate::both_backends!(
    async fn forget_removes_the_link_and_queues_both_records(store) {
        store.upsert_link(&write(A1, B1)).await.expect("link");
        store.unlink(A1, true).await.expect("forget");
        assert!(store.find_links(A1).await.expect("find").is_empty());
        let a = store
            .pending_notifications(Org::A, 10)
            .await
            .expect("inbox");
        let b = store
            .pending_notifications(Org::B, 10)
            .await
            .expect("inbox");
        assert_eq!((a.len(), b.len()), (1, 1));
        // The same pair can be linked again, by the engine or by hand.
        store
            .link_by_hand("Opportunity", A1, B1)
            .await
            .expect("relink");
    });

    crate::both_backends!(
    async fn an_unlinked_pair_linked_by_hand_is_live_again_with_an_empty_snapshot(store) {
        store.upsert_link(&write(A1, B1)).await.expect("link");
        let was = store.unlink(A1, false).await.expect("unlink");
        let link = store
            .link_by_hand("Opportunity", A1, B1)
            .await
            .expect("relink");
        assert_eq!(link.id, was.id);
        assert_eq!(link.state, LinkState::Live);
        assert!(link.snapshot.is_empty());
        let listed = store
            .links_where(Some("Opportunity"), Some(LinkState::Live))
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert!(
            store
                .links_where(None, Some(LinkState::Unlinked))
                .await
                .expect("list")
                .is_empty()
        );
    });

    crate::both_backends!(
    async fn counts_links_by_state(store) {
        store.upsert_link(&write(A1, B1)).await.expect("link");
        store.upsert_link(&write(A2, B2)).await.expect("link");
        store.unlink(A2, false).await.expect("unlink");
        let counts = store.counts().await.expect("counts");
        assert_eq!(counts.links.get("Opportunity"), Some(&1));
        assert_eq!(counts.links_by_state.get("live"), Some(&1));
        assert_eq!(counts.links_by_state.get("unlinked"), Some(&1));
        assert_eq!(counts.links_by_state.get("tombstone"), Some(&0));
    });
}
