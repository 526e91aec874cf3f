//! Leadership of a sync pair through a lease row with an epoch (issue 15, part 2; the store
//! side: the keeper is `crate::ha`, the wiring `crate::daemon`). Replicas share one store; one of them holds the
//! `sync` lease and only it syncs. A lease is:
//!
//! - **taken** ([`Store::try_acquire_lease`]) with one conditional upsert when there is none or
//!   it has expired; every take increments `epoch`, the fencing token;
//! - **renewed** ([`Store::renew_lease`]) by its holder, every [`renew_interval`] (a third of
//!   the TTL), only while it is still valid: an expired lease is never revived, its holder must
//!   take it again (and gets a new epoch, so anything it started under the old one is fenced);
//! - **released** ([`Store::release_lease`]) at a clean shutdown, so a standby takes over at
//!   once instead of after the TTL;
//! - **checked in every page commit** ([`PageTx::commit_fenced`]): the holder and epoch must
//!   still be current and unexpired in the same transaction that moves watermarks and writes
//!   links, or nothing of the page is kept. A replica that lost the lease (paused,
//!   partitioned, slow) can never move a watermark after another took over. A leader's passes
//!   write through [`Store::fenced`], whose every page commit (and inbox mark) is checked so;
//! - **seen** ([`Store::heartbeat_replica`]): every replica's keeper records itself in
//!   `replicas` at each round, so `status` lists the standbys.
//!
//! Why the check cannot race a take: every write transaction of a pair holds the pair's write
//! lock from its start (SQLite `BEGIN IMMEDIATE`, PostgreSQL the advisory transaction lock, see
//! `db`), and taking a lease is such a transaction, so a take waits for a page commit in
//! progress, and a page commit that starts after a take sees the new epoch. Times come from the
//! database's clock (`clock_timestamp()` on PostgreSQL), the one clock all replicas share, so
//! replicas' clock skew does not matter; they are stored as `store::time` text, whose order is
//! time order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::time::{format_timestamp, parse_timestamp};
use super::{Backend, PageTx, Store, StoreError};

/// The one lease a pair has today: the right to sync.
pub const SYNC_LEASE: &str = "sync";

/// Who asks for a lease: a replica, identified uniquely (`holder`, e.g. host, pid and a random
/// suffix, so a restarted process on the same host is someone else), with its host and pid for
/// `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub holder: String,
    pub host: String,
    pub pid: u32,
}

/// A stored lease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub epoch: i64,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether the lease is still in force at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// What a holder may fence its commits with: the epoch it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
}

/// A page commit refused because its holder no longer holds the lease.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(
        "lost the {SYNC_LEASE} lease (epoch {epoch}): another replica took over, so this \
         page is not committed"
    )]
    Lost { epoch: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often a holder renews: a third of the TTL, so two renewals can fail (a slow query, a
/// failover of the database) before the lease expires.
pub fn renew_interval(ttl: Duration) -> Duration {
    ttl / 3
}

/// The database's clock, in the store's timestamp precision.
pub(crate) async fn db_now(conn: &mut AnyConnection) -> Result<DateTime<Utc>, StoreError> {
    let sql = match Backend::of_conn(conn) {
        Backend::Sqlite => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        Backend::Postgres => {
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        }
    };
    let text: String = sqlx::query_scalar(sql).fetch_one(&mut *conn).await?;
    parse_timestamp(&text)
}

fn ttl_after(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Lease, StoreError> {
    let pid: i64 = row.try_get("pid")?;
    Ok(Lease {
        name: row.try_get("name")?,
        holder: row.try_get("holder")?,
        host: row.try_get("host")?,
        pid: u32::try_from(pid).unwrap_or(0),
        epoch: row.try_get("epoch")?,
        acquired_at: parse_timestamp(&row.try_get::<String, _>("acquired_at")?)?,
        renewed_at: parse_timestamp(&row.try_get::<String, _>("renewed_at")?)?,
        expires_at: parse_timestamp(&row.try_get::<String, _>("expires_at")?)?,
    })
}

async fn get(conn: &mut AnyConnection, name: &str) -> Result<Option<Lease>, StoreError> {
    let row = sqlx::query(
        "SELECT name, holder, host, pid, epoch, acquired_at, renewed_at, expires_at
         FROM leases WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Whether `fence` is the current, unexpired holder of the sync lease.
async fn holds(conn: &mut AnyConnection, fence: &Fence) -> Result<bool, StoreError> {
    let now = format_timestamp(db_now(conn).await?);
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM leases
         WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > $4",
    )
    .bind(SYNC_LEASE)
    .bind(&fence.holder)
    .bind(fence.epoch)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

impl Store {
    /// Takes the sync lease for `replica` if nobody holds it or it has expired; returns the
    /// lease as it now stands (held by `replica`, with a new epoch, or by someone else). A
    /// holder whose lease is still valid gets it back unchanged (same epoch).
    pub async fn try_acquire_lease(
        &self,
        replica: &Replica,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        self.in_tx(async |conn| {
            let now = db_now(conn).await?;
            let (at, until) = (format_timestamp(now), format_timestamp(ttl_after(now, ttl)));
            sqlx::query(
                "INSERT INTO leases (name, holder, host, pid, epoch, acquired_at, renewed_at,
                                     expires_at)
                 VALUES ($1, $2, $3, $4, 1, $5, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET
                     holder = excluded.holder, host = excluded.host, pid = excluded.pid,
                     epoch = leases.epoch + 1, acquired_at = excluded.acquired_at,
                     renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
                 WHERE leases.expires_at <= excluded.acquired_at",
            )
            .bind(SYNC_LEASE)
            .bind(&replica.holder)
            .bind(&replica.host)
            .bind(i64::from(replica.pid))
            .bind(&at)
            .bind(&until)
            .execute(&mut *conn)
            .await?;
            get(conn, SYNC_LEASE)
                .await?
                .ok_or_else(|| StoreError::Corrupt("the sync lease vanished".into()))
        })
        .await
    }

    /// Extends `fence`'s lease by `ttl` from now, if it is still its holder's and unexpired;
    /// `Ok(false)` when it was lost (the holder must stop syncing at once).
    pub async fn renew_lease(&self, fence: &Fence, ttl: Duration) -> Result<bool, StoreError> {
        self.in_tx(async |conn| {
            let now = db_now(conn).await?;
            let done = sqlx::query(
                "UPDATE leases SET renewed_at = $1, expires_at = $2
                 WHERE name = $3 AND holder = $4 AND epoch = $5 AND expires_at > $1",
            )
            .bind(format_timestamp(now))
            .bind(format_timestamp(ttl_after(now, ttl)))
            .bind(SYNC_LEASE)
            .bind(&fence.holder)
            .bind(fence.epoch)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// Gives the lease up (a clean shutdown): it expires now, so a standby takes it at its
    /// next try. Returns whether `fence` still held it.
    pub async fn release_lease(&self, fence: &Fence) -> Result<bool, StoreError> {
        self.in_tx(async |conn| {
            let now = format_timestamp(db_now(conn).await?);
            let done = sqlx::query(
                "UPDATE leases SET expires_at = $1
                 WHERE name = $2 AND holder = $3 AND epoch = $4 AND expires_at > $1",
            )
            .bind(now)
            .bind(SYNC_LEASE)
            .bind(&fence.holder)
            .bind(fence.epoch)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// The sync lease as stored (for `status`), and the database's clock to judge it by.
    pub async fn sync_lease(&self) -> Result<(Option<Lease>, DateTime<Utc>), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let lease = get(&mut conn, SYNC_LEASE).await?;
        Ok((lease, db_now(&mut conn).await?))
    }
}

/// A replica as last seen (the `replicas` table).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeenReplica {
    pub holder: String,
    pub host: String,
    pub pid: u32,
    /// `leader` or `standby`, as it said when last seen.
    pub role: String,
    pub seen_at: DateTime<Utc>,
}

/// How long a replica's row is kept after it was last seen.
const KEEP_REPLICAS: chrono::Duration = chrono::Duration::days(1);

impl Store {
    /// Records that `replica` is alive with this role (now, by the database's clock), and
    /// forgets replicas not seen for a day.
    pub async fn heartbeat_replica(
        &self,
        replica: &Replica,
        leader: bool,
    ) -> Result<(), StoreError> {
        self.in_tx(async |conn| {
            let now = db_now(conn).await?;
            sqlx::query(
                "INSERT INTO replicas (holder, host, pid, role, seen_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (holder) DO UPDATE SET
                     host = excluded.host, pid = excluded.pid, role = excluded.role,
                     seen_at = excluded.seen_at",
            )
            .bind(&replica.holder)
            .bind(&replica.host)
            .bind(i64::from(replica.pid))
            .bind(if leader { "leader" } else { "standby" })
            .bind(format_timestamp(now))
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM replicas WHERE seen_at < $1")
                .bind(format_timestamp(now - KEEP_REPLICAS))
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// The replicas seen since `since` ago by the database's clock, the latest first; and
    /// that clock.
    pub async fn replicas_seen(
        &self,
        since: Duration,
    ) -> Result<(Vec<SeenReplica>, DateTime<Utc>), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = db_now(&mut conn).await?;
        let from = now - chrono::Duration::from_std(since).unwrap_or(KEEP_REPLICAS);
        let rows = sqlx::query(
            "SELECT holder, host, pid, role, seen_at FROM replicas WHERE seen_at >= $1
             ORDER BY seen_at DESC, holder",
        )
        .bind(format_timestamp(from))
        .fetch_all(&mut *conn)
        .await?;
        let seen = rows
            .iter()
            .map(|row| {
                let pid: i64 = row.try_get("pid")?;
                Ok(SeenReplica {
                    holder: row.try_get("holder")?,
                    host: row.try_get("host")?,
                    pid: u32::try_from(pid).unwrap_or(0),
                    role: row.try_get("role")?,
                    seen_at: parse_timestamp(&row.try_get::<String, _>("seen_at")?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((seen, now))
    }
}

impl From<FenceError> for StoreError {
    fn from(e: FenceError) -> StoreError {
        match e {
            FenceError::Lost { epoch } => StoreError::LeaseLost { epoch },
            FenceError::Store(e) => e,
        }
    }
}

impl Store {
    /// This store with its progress writes fenced by `fence`: every page ([`Store::begin`])
    /// commits only while `fence` holds the sync lease, and so does the inbox's set-aside
    /// mark (`mark_processed`). What a leader's passes write through. On PostgreSQL a page's
    /// transaction left idle longer than `ttl` (its process paused or stalled mid-page) has its
    /// session ended by the server: it held the pair's write lock, which a standby's take of
    /// the lease waits for, so a paused leader would otherwise block the take-over.
    pub fn fenced(&self, fence: Fence, ttl: Duration) -> Store {
        let mut store = self.clone();
        store.fence = Some(fence);
        store.fence_idle_limit = Some(ttl);
        store
    }

    /// The fence this store's progress writes carry, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
}

impl PageTx {
    /// Whether `fence` still holds the sync lease, inside this transaction.
    pub async fn holds_lease(&mut self, fence: &Fence) -> Result<bool, StoreError> {
        holds(self.conn(), fence).await
    }

    /// Commits the page only if `fence` still holds the sync lease (checked in this
    /// transaction, under the pair's write lock); otherwise rolls everything back and fails
    /// with [`FenceError::Lost`].
    pub async fn commit_fenced(mut self, fence: &Fence) -> Result<(), FenceError> {
        if !holds(self.conn(), fence).await? {
            self.rollback().await?;
            return Err(FenceError::Lost { epoch: fence.epoch });
        }
        self.tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Org;

    const TTL: Duration = Duration::from_secs(60);
    /// Short enough that a test waits it out.
    const SHORT: Duration = Duration::from_millis(40);

    fn replica(name: &str) -> Replica {
        Replica {
            holder: format!("{name}-1234-abcd"),
            host: name.to_string(),
            pid: 1234,
        }
    }

    fn fence(lease: &Lease) -> Fence {
        Fence {
            holder: lease.holder.clone(),
            epoch: lease.epoch,
        }
    }

    async fn expire() {
        tokio::time::sleep(SHORT * 3).await;
    }

    #[test]
    fn a_holder_renews_three_times_per_ttl() {
        assert_eq!(
            renew_interval(Duration::from_secs(15)),
            Duration::from_secs(5)
        );
    }

    crate::both_backends!(
        async fn one_holder_at_a_time_and_each_take_is_a_new_epoch(store) {
            let first = store.try_acquire_lease(&replica("a"), SHORT).await.expect("take");
            assert_eq!(first.holder, replica("a").holder);
            assert_eq!(first.epoch, 1);
            // While it is valid, another replica gets the holder's lease back, not its own.
            let other = store
                .try_acquire_lease(&replica("b"), TTL)
                .await
                .expect("try");
            assert_eq!(other.holder, replica("a").holder);
            assert_eq!(other.epoch, 1);
            expire().await;
            let taken = store
                .try_acquire_lease(&replica("b"), TTL)
                .await
                .expect("take over");
            assert_eq!(taken.holder, replica("b").holder);
            assert_eq!(taken.epoch, 2);
            assert_eq!(taken.host, "b");
            let (stored, now) = store.sync_lease().await.expect("read");
            assert!(stored.as_ref().is_some_and(|l| l.is_valid_at(now)));
            assert_eq!(stored, Some(taken));
        }
    );

    crate::both_backends!(
        async fn a_deposed_holder_can_neither_renew_nor_commit_a_page(store) {
            let old = fence(&store.try_acquire_lease(&replica("a"), SHORT).await.expect("take"));
            assert!(store.renew_lease(&old, SHORT).await.expect("renew"));
            expire().await;
            // Expired: no renewal revives it, even before anyone else takes it.
            assert!(!store.renew_lease(&old, TTL).await.expect("renew"));
            let new = fence(&store.try_acquire_lease(&replica("b"), TTL).await.expect("take"));
            assert_eq!(new.epoch, old.epoch + 1);

            // The old holder's page (begun after the take-over) is refused whole.
            let mut page = store.begin().await.expect("begin");
            page.advance_watermark(Org::A, "Opportunity", Utc::now())
                .await
                .expect("write");
            let err = page.commit_fenced(&old).await.expect_err("fenced");
            assert!(matches!(err, FenceError::Lost { epoch } if epoch == old.epoch), "{err}");
            assert_eq!(
                store.watermark(Org::A, "Opportunity").await.expect("read"),
                None
            );

            // The new holder's page commits.
            let mut page = store.begin().await.expect("begin");
            assert!(page.holds_lease(&new).await.expect("check"));
            page.advance_watermark(Org::A, "Opportunity", Utc::now())
                .await
                .expect("write");
            page.commit_fenced(&new).await.expect("commit");
            assert!(
                store
                    .watermark(Org::A, "Opportunity")
                    .await
                    .expect("read")
                    .is_some()
            );
        }
    );

    crate::both_backends!(
        async fn a_released_lease_is_taken_at_once(store) {
            let held = fence(&store.try_acquire_lease(&replica("a"), TTL).await.expect("take"));
            assert!(store.release_lease(&held).await.expect("release"));
            assert!(!store.release_lease(&held).await.expect("twice"));
            let taken = store
                .try_acquire_lease(&replica("b"), TTL)
                .await
                .expect("take");
            assert_eq!(taken.holder, replica("b").holder);
            assert_eq!(taken.epoch, held.epoch + 1);
            assert!(!store.renew_lease(&held, TTL).await.expect("renew"));
        }
    );

    crate::both_backends!(
        async fn a_fenced_store_keeps_nothing_of_a_deposed_holder(store) {
            use crate::store::NewNotification;
            let old = fence(&store.try_acquire_lease(&replica("a"), SHORT).await.expect("take"));
            store
                .insert_notifications(&[NewNotification {
                    org: Org::A,
                    notification_id: "n1".into(),
                    object: "Opportunity".into(),
                    record_id: "006000000000001AAA".into(),
                }])
                .await
                .expect("an unfenced inbox write (the listener's) needs no lease");
            let deposed = store.fenced(old.clone(), TTL);
            expire().await;
            let new = fence(&store.try_acquire_lease(&replica("b"), TTL).await.expect("take"));

            // A page begun on the deposed holder's store: its plain commit is refused.
            let mut page = deposed.begin().await.expect("begin");
            page.advance_watermark(Org::A, "Opportunity", Utc::now())
                .await
                .expect("write");
            let err = page.commit().await.expect_err("fenced");
            assert!(matches!(err, StoreError::LeaseLost { epoch } if epoch == old.epoch), "{err}");
            assert_eq!(store.watermark(Org::A, "Opportunity").await.expect("read"), None);
            // So is its inbox mark outside a page.
            let pending = store.pending_notifications(Org::A, 10).await.expect("read");
            let ids: Vec<i64> = pending.iter().map(|i| i.id).collect();
            let err = deposed.mark_processed(&ids).await.expect_err("fenced");
            assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
            assert_eq!(store.pending_notifications(Org::A, 10).await.expect("read").len(), 1);

            // The new holder's store commits both.
            let current = store.fenced(new, TTL);
            let mut page = current.begin().await.expect("begin");
            page.advance_watermark(Org::A, "Opportunity", Utc::now())
                .await
                .expect("write");
            page.commit().await.expect("commit");
            assert_eq!(current.mark_processed(&ids).await.expect("mark"), 1);
            assert!(store.watermark(Org::A, "Opportunity").await.expect("read").is_some());
            assert!(store.pending_notifications(Org::A, 10).await.expect("read").is_empty());
        }
    );

    crate::both_backends!(
        async fn replicas_seen_recently_are_listed_with_their_role(store) {
            store.heartbeat_replica(&replica("a"), true).await.expect("beat");
            store.heartbeat_replica(&replica("b"), false).await.expect("beat");
            store.heartbeat_replica(&replica("b"), false).await.expect("again");
            let (seen, _) = store.replicas_seen(TTL).await.expect("read");
            let mut roles: Vec<(String, String)> =
                seen.iter().map(|r| (r.host.clone(), r.role.clone())).collect();
            roles.sort();
            assert_eq!(
                roles,
                [("a".into(), "leader".into()), ("b".into(), "standby".into())]
            );
            expire().await;
            store.heartbeat_replica(&replica("a"), true).await.expect("beat");
            let (seen, _) = store.replicas_seen(SHORT).await.expect("read");
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(seen[0].host, "a");
        }
    );
}
