//! Copying a whole SQLite state into another store (`orgsync state migrate --to URL`), table
//! by table and row by row, ids included, in one write transaction on the target: the copy
//! becomes visible whole or not at all. The tables are those of the source (every table
//! but the migrator's own), so a table a later migration adds is copied with no change here,
//! provided the target's migrations made it too. Before the commit, the rows of every table
//! are counted on both sides; any difference rolls the copy back ([`count_mismatches`]).
//!
//! Refusals, before anything is written: a source that is not SQLite, a target at other
//! migration versions than the source (one of them is older: upgrade it first), a target
//! lacking a source table (a migration not ported to its backend), and a target that already
//! holds rows, unless `force` (then its rows are deleted first, in the same transaction).

use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{AnyConnection, Row, ValueRef as _};

use super::{Backend, Store, StoreError};

/// The migrator's bookkeeping table, never copied (each store has its own).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Why a copy did not happen (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Refused(String),
    #[error("the copy's row counts differ, so it was rolled back: {}", describe(.0))]
    Mismatch(Vec<TableCount>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        CopyError::Store(StoreError::Db(e))
    }
}

/// The rows of one table in the source and, after the copy, in the target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCount {
    pub table: String,
    pub source: u64,
    pub target: u64,
}

fn describe(counts: &[TableCount]) -> String {
    counts
        .iter()
        .map(|c| {
            format!(
                "{} {} in the source, {} in the target",
                c.table, c.source, c.target
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The tables whose counts differ (empty: the copy is complete).
pub fn count_mismatches(counts: &[TableCount]) -> Vec<TableCount> {
    counts
        .iter()
        .filter(|c| c.source != c.target)
        .cloned()
        .collect()
}

/// `name` as a quoted SQL identifier (both backends quote with `"`).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One value of a row, as read from the source and bound into the target.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn cells(row: &AnyRow) -> Result<Vec<Cell>, StoreError> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            let kind = raw.type_info().kind();
            Ok(match kind {
                AnyTypeInfoKind::Bool
                | AnyTypeInfoKind::SmallInt
                | AnyTypeInfoKind::Integer
                | AnyTypeInfoKind::BigInt => Cell::Int(row.try_get(i)?),
                AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Cell::Real(row.try_get(i)?),
                AnyTypeInfoKind::Text => Cell::Text(row.try_get(i)?),
                AnyTypeInfoKind::Blob => Cell::Blob(row.try_get(i)?),
                AnyTypeInfoKind::Null => Cell::Null,
            })
        })
        .collect()
}

async fn versions(conn: &mut AnyConnection) -> Result<Vec<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *conn)
            .await?,
    )
}

async fn tables(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    let sql = match Backend::of_conn(conn) {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
             ESCAPE '\\' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             ORDER BY table_name"
        }
    };
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *conn).await?;
    Ok(names
        .into_iter()
        .filter(|n| n != MIGRATIONS_TABLE)
        .collect())
}

async fn count(conn: &mut AnyConnection, table: &str) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        quoted(table)
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

impl Store {
    /// Copies every row of this (SQLite) store into `target`, in one transaction; returns the
    /// count per table, equal on both sides. See the module doc for what is refused.
    pub async fn copy_into(
        &self,
        target: &Store,
        force: bool,
    ) -> Result<Vec<TableCount>, CopyError> {
        if self.backend() != Backend::Sqlite {
            return Err(CopyError::Refused(
                "state migrate copies a SQLite state: the configured state.url is not SQLite"
                    .into(),
            ));
        }
        // One read transaction: a consistent snapshot even if an operator command writes.
        let mut source = self.pool.begin().await?;
        let mut tx = target.begin_write().await?;
        let (from, to) = (versions(&mut source).await?, versions(&mut tx).await?);
        if from != to {
            return Err(CopyError::Refused(format!(
                "the source is at migrations {from:?} and the target at {to:?}: run the same \
                 orgsync version on both (opening a store applies its migrations)"
            )));
        }
        let names = tables(&mut source).await?;
        let present = tables(&mut tx).await?;
        if let Some(missing) = names.iter().find(|n| !present.contains(n)) {
            return Err(CopyError::Refused(format!(
                "the target has no table {missing}: its backend lacks a migration (see \
                 migrations/README.md)"
            )));
        }
        let mut filled = Vec::new();
        for table in &present {
            if count(&mut tx, table).await? > 0 {
                filled.push(table.clone());
            }
        }
        if !filled.is_empty() && !force {
            return Err(CopyError::Refused(format!(
                "the target already holds a state (rows in {}): copy into an empty store, or \
                 pass --force to replace it",
                filled.join(", ")
            )));
        }
        // Children first would matter with foreign keys; the schema has none, and the copy
        // deletes and inserts in one transaction either way.
        for table in &filled {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {}",
                quoted(table)
            )))
            .execute(&mut *tx)
            .await?;
        }
        let mut counts = Vec::new();
        for table in &names {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM {}",
                quoted(table)
            )))
            .fetch_all(&mut *source)
            .await?;
            if let Some(first) = rows.first() {
                let columns: Vec<String> = first
                    .columns()
                    .iter()
                    .map(|c| quoted(sqlx::Column::name(c)))
                    .collect();
                let placeholders: Vec<String> =
                    (1..=columns.len()).map(|i| format!("${i}")).collect();
                let insert = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quoted(table),
                    columns.join(", "),
                    placeholders.join(", ")
                );
                for row in &rows {
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
                    for cell in cells(row)? {
                        query = match cell {
                            Cell::Null => query.bind(None::<String>),
                            Cell::Int(v) => query.bind(v),
                            Cell::Real(v) => query.bind(v),
                            Cell::Text(v) => query.bind(v),
                            Cell::Blob(v) => query.bind(v),
                        };
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            if target.backend() == Backend::Postgres {
                restart_identity(&mut tx, table).await?;
            }
            counts.push(TableCount {
                table: table.clone(),
                source: u64::try_from(rows.len()).unwrap_or(u64::MAX),
                target: count(&mut tx, table).await?,
            });
        }
        let mismatches = count_mismatches(&counts);
        if !mismatches.is_empty() {
            tx.rollback().await?;
            return Err(CopyError::Mismatch(mismatches));
        }
        tx.commit().await?;
        source.rollback().await?;
        Ok(counts)
    }
}

/// After ids were inserted explicitly, the identity of `table`'s `id` column (if it has one)
/// continues after the largest, so the next row the daemon writes gets a fresh id.
async fn restart_identity(conn: &mut AnyConnection, table: &str) -> Result<(), StoreError> {
    // Asked first: pg_get_serial_sequence fails on a table without an `id` column, and a
    // failed statement would abort the copy's transaction.
    let has_id: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'id'",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await?;
    if has_id == 0 {
        return Ok(());
    }
    let sequence: Option<String> =
        sqlx::query_scalar("SELECT CAST(pg_get_serial_sequence($1, 'id') AS TEXT)")
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
    if let Some(sequence) = sequence {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval($1, coalesce((SELECT max(id) FROM {}), 0) + 1, false)",
            quoted(table)
        )))
        .bind(sequence)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Direction, FailureBackoff, FailureClass, LinkWrite, NewFailure, Org};
    use chrono::Utc;

    /// A SQLite state with a link, a failure, a watermark and a cycle.
    async fn source() -> Store {
        let store = Store::open("sqlite::memory:").await.expect("source");
        store
            .upsert_link(&LinkWrite {
                object: "Opportunity".into(),
                a_id: "006A1".into(),
                b_id: "006B1".into(),
                a_modstamp: Some(Utc::now()),
                b_modstamp: None,
                snapshot: serde_json::Map::new(),
            })
            .await
            .expect("link");
        store
            .record_failure(
                &NewFailure {
                    direction: Direction::AToB,
                    object: "Opportunity".into(),
                    source_id: "006A2".into(),
                    target_id: None,
                    source_modstamp: Some(Utc::now()),
                    error_code: "UNABLE_TO_LOCK_ROW".into(),
                    message: "locked".into(),
                    class: FailureClass::Transient,
                    sent: None,
                },
                &FailureBackoff {
                    max_attempts: 3,
                    initial_delay: std::time::Duration::from_secs(60),
                    max_delay: std::time::Duration::from_secs(600),
                },
            )
            .await
            .expect("failure");
        store
            .advance_watermark(Org::A, "Opportunity", Utc::now())
            .await
            .expect("watermark");
        store.begin_cycle(Direction::AToB).await.expect("cycle");
        store
    }

    fn rows_of(counts: &[TableCount], table: &str) -> u64 {
        counts
            .iter()
            .find(|c| c.table == table)
            .map_or(0, |c| c.target)
    }

    crate::both_backends!(
        async fn a_copy_holds_every_row_and_a_filled_target_needs_force(store) {
            let from = source().await;
            let counts = from.copy_into(&store, false).await.expect("copy");
            assert!(count_mismatches(&counts).is_empty(), "{counts:?}");
            for table in ["links", "failures", "watermarks", "cycles"] {
                assert_eq!(rows_of(&counts, table), 1, "{table}: {counts:?}");
            }
            let links = store.links_where(None, None).await.expect("links");
            assert_eq!(links.len(), 1);
            assert_eq!(links[0].b_id, "006B1");
            // Ids continue after the copied ones.
            let next = store.begin_cycle(Direction::BToA).await.expect("cycle");
            let copied = from
                .last_cycle(Direction::AToB)
                .await
                .expect("read")
                .expect("cycle");
            assert!(next > copied.id, "{next} after {}", copied.id);

            let again = from.copy_into(&store, false).await.expect_err("refused");
            assert!(matches!(&again, CopyError::Refused(m) if m.contains("already holds")), "{again}");
            let counts = from.copy_into(&store, true).await.expect("forced");
            assert_eq!(rows_of(&counts, "cycles"), 1, "replaced, not added: {counts:?}");
        }
    );

    fn c(table: &str, source: u64, target: u64) -> TableCount {
        TableCount {
            table: table.into(),
            source,
            target,
        }
    }

    #[test]
    fn only_tables_whose_counts_differ_are_mismatches() {
        let counts = [c("links", 3, 3), c("failures", 2, 1), c("inbox", 0, 0)];
        assert_eq!(count_mismatches(&counts), vec![c("failures", 2, 1)]);
        assert!(count_mismatches(&[c("links", 3, 3)]).is_empty());
        let text = CopyError::Mismatch(count_mismatches(&counts)).to_string();
        assert!(
            text.contains("failures 2 in the source, 1 in the target"),
            "{text}"
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quoted("links"), "\"links\"");
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }
}
