//! Why a pass stops, with its kind kept to the end.
//!
//! Contract:
//! - Every stage returns `Result<_, Stop>`. A port error becomes a [`Stop`] in one place,
//!   [`Stop::port`] (or `.at(org)?` through [`AtOrg`]): an API limit ([`ErrorKind::Limit`])
//!   pauses the pass ([`Stop::Paused`]: nothing of the page in flight is recorded, the next
//!   cycle resumes), any other error fails it ([`Stop::Failed`]). No stage matches
//!   `ErrorKind::Limit` by hand.
//! - A store error always fails the pass (`?` converts it).
//! - Only the pass's entry points turn a pause into [`super::PassOutcome::Paused`] of the
//!   report (the pages committed before it stay counted); a failure stays a [`PassError`],
//!   whose [`PassError::kind`] says what it needs.

use super::ports::{ErrorKind, PortError};
use crate::store::{Org, StoreError};

/// The pass could not go on. Committed pages stay committed; the page in flight recorded
/// nothing, so the next cycle reads it again.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("query in org {org} failed: {source}")]
    Query {
        org: Org,
        #[source]
        source: PortError,
    },
    #[error("org {org} returned a row orgsync cannot read: {message}")]
    BadRow { org: Org, message: String },
    #[error(transparent)]
    Store(StoreError),
    /// A fenced commit was refused: this replica lost the sync lease (issue 15). Nothing of
    /// the page is kept; the pass stops at once and the replica becomes a standby.
    #[error("lost the sync lease (epoch {epoch}): another replica took over; the pass stops")]
    LeaseLost { epoch: i64 },
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> PassError {
        match e {
            StoreError::LeaseLost { epoch } => PassError::LeaseLost { epoch },
            e => PassError::Store(e),
        }
    }
}

impl PassError {
    /// What the failure needs: an org's error keeps its own kind; a row orgsync cannot read
    /// and a store that refuses a write or holds a value it cannot read need an operator; a
    /// database call that failed (busy, I/O) may succeed next cycle.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PassError::Query { source, .. } => source.kind,
            PassError::BadRow { .. } => ErrorKind::NeedsOperator,
            PassError::Store(e) => store_error_kind(e),
            PassError::LeaseLost { .. } => ErrorKind::Transient,
        }
    }

    /// The epoch of the lease this pass lost, when that is why it stopped.
    pub fn lease_lost(&self) -> Option<i64> {
        match self {
            PassError::LeaseLost { epoch } => Some(*epoch),
            _ => None,
        }
    }
}

/// What a store error needs: a database call that failed (busy, I/O) or a database that did
/// not open may succeed next cycle; a store that refuses a write or holds a value it cannot
/// read needs an operator.
pub fn store_error_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::Db(_) | StoreError::Open { .. } | StoreError::LeaseLost { .. } => {
            ErrorKind::Transient
        }
        _ => ErrorKind::NeedsOperator,
    }
}

/// Why a stage stopped the page (and the pass).
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// An org's API limit was reached: nothing of the page in flight is recorded.
    #[error("org {org} is at its API limit: {error}")]
    Paused { org: Org, error: PortError },
    #[error(transparent)]
    Failed(#[from] PassError),
}

impl Stop {
    /// The one conversion of an error of `org`'s port: a limit pauses, anything else fails.
    pub fn port(org: Org, error: PortError) -> Stop {
        if error.kind == ErrorKind::Limit {
            Stop::Paused { org, error }
        } else {
            Stop::Failed(PassError::Query { org, source: error })
        }
    }

    /// The pause an error of a write call means, when it is a limit. Any other error of a
    /// write call does not stop the page: it fails the call's records (which go to the
    /// failure queue), so the caller keeps the error for them.
    pub fn pause(org: Org, error: &PortError) -> Option<Stop> {
        match Stop::port(org, error.clone()) {
            stop @ Stop::Paused { .. } => Some(stop),
            Stop::Failed(_) => None,
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Failed(PassError::from(e))
    }
}

/// `.at(org)?`: a port call's result, its error converted by [`Stop::port`].
pub trait AtOrg<T> {
    fn at(self, org: Org) -> Result<T, Stop>;
}

impl<T> AtOrg<T> for Result<T, PortError> {
    fn at(self, org: Org) -> Result<T, Stop> {
        self.map_err(|e| Stop::port(org, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: ErrorKind, code: &str) -> PortError {
        PortError {
            kind,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn a_refused_fenced_commit_is_a_lease_lost_stop_not_a_store_error() {
        let stop = Stop::from(StoreError::LeaseLost { epoch: 3 });
        let Stop::Failed(e) = stop else {
            panic!("a lost lease fails the pass")
        };
        assert!(matches!(e, PassError::LeaseLost { epoch: 3 }), "{e}");
        assert_eq!(e.lease_lost(), Some(3));
        assert_eq!(e.kind(), ErrorKind::Transient);
        let other = PassError::from(StoreError::Corrupt("x".into()));
        assert_eq!(other.lease_lost(), None);
    }

    #[test]
    fn a_limit_pauses_and_anything_else_fails() {
        let limit = Err::<(), _>(error(ErrorKind::Limit, "REQUEST_LIMIT_EXCEEDED")).at(Org::B);
        assert!(matches!(limit, Err(Stop::Paused { org: Org::B, .. })));
        for kind in [
            ErrorKind::Transient,
            ErrorKind::NeedsEdit,
            ErrorKind::NeedsOperator,
            ErrorKind::Auth,
        ] {
            let stop = Err::<(), _>(error(kind, "X")).at(Org::A);
            match stop {
                Err(Stop::Failed(e @ PassError::Query { org: Org::A, .. })) => {
                    assert_eq!(e.kind(), kind);
                }
                other => panic!("{kind:?}: {other:?}"),
            }
        }
        assert!(Ok::<u8, PortError>(1).at(Org::A).is_ok());
        let limit = error(ErrorKind::Limit, "REQUEST_LIMIT_EXCEEDED");
        assert!(matches!(
            Stop::pause(Org::B, &limit),
            Some(Stop::Paused { org: Org::B, .. })
        ));
        assert!(Stop::pause(Org::B, &error(ErrorKind::Transient, "SERVER_UNAVAILABLE")).is_none());
    }

    #[test]
    fn pass_errors_keep_their_kind() {
        let bad_row = PassError::BadRow {
            org: Org::A,
            message: "a row has no Id".into(),
        };
        assert_eq!(bad_row.kind(), ErrorKind::NeedsOperator);
        let corrupt = PassError::Store(StoreError::Corrupt("x".into()));
        assert_eq!(corrupt.kind(), ErrorKind::NeedsOperator);
        let db = PassError::Store(StoreError::Db(sqlx::Error::PoolTimedOut));
        assert_eq!(db.kind(), ErrorKind::Transient);
        let stop: Stop = StoreError::Corrupt("x".into()).into();
        assert!(matches!(stop, Stop::Failed(PassError::Store(_))));
    }
}
