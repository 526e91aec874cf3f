//! The pass's store ports over the real SQLite [`Store`]: thin forwarding, no decisions.
//! (The org port over the Salesforce client is `org_adapter`.)

use chrono::{DateTime, Utc};

use super::ports::{PageTxPort, StorePort};
use crate::store::{
    Direction, Failure, FailureBackoff, InboxItem, Link, LinkWrite, NewFailure, NewNotification,
    Org, PageTx, Store, StoreError, Tombstone,
};

impl StorePort for Store {
    type Tx = PageTx;

    async fn watermark(&self, org: Org, object: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Store::watermark(self, org, object).await
    }

    async fn links_by_ids(
        &self,
        org: Org,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        match org {
            Org::A => self.links_by_a_ids(object, ids).await,
            Org::B => self.links_by_b_ids(object, ids).await,
        }
    }

    async fn failures_for(
        &self,
        direction: Direction,
        object: &str,
        source_ids: &[String],
    ) -> Result<Vec<Failure>, StoreError> {
        // One indexed point read per id on a local database: no network round trip.
        let mut found = Vec::new();
        for id in source_ids {
            if let Some(failure) = self.failure_for(direction, object, id).await? {
                found.push(failure);
            }
        }
        Ok(found)
    }

    async fn due_failures(
        &self,
        direction: Direction,
        object: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError> {
        Store::due_failures(self, direction, object, now, limit).await
    }

    async fn pending_notifications(
        &self,
        org: Org,
        limit: u32,
    ) -> Result<Vec<InboxItem>, StoreError> {
        Store::pending_notifications(self, org, limit).await
    }

    async fn mark_processed(&self, ids: &[i64]) -> Result<u64, StoreError> {
        Store::mark_processed(self, ids).await
    }

    async fn begin(&self) -> Result<PageTx, StoreError> {
        Store::begin(self).await
    }

    fn bulk(&self) -> Option<&Store> {
        Some(self)
    }
}

impl PageTxPort for PageTx {
    async fn tombstone_link(&mut self, tombstone: &Tombstone) -> Result<bool, StoreError> {
        PageTx::tombstone_link(self, tombstone).await
    }

    async fn upsert_link(&mut self, link: &LinkWrite) -> Result<(), StoreError> {
        PageTx::upsert_link(self, link).await
    }

    async fn revive_link(&mut self, link_id: i64, link: &LinkWrite) -> Result<(), StoreError> {
        PageTx::revive_link(self, link_id, link).await
    }

    async fn delete_link(&mut self, object: &str, a_id: &str) -> Result<bool, StoreError> {
        PageTx::delete_link(self, object, a_id).await
    }

    async fn record_failure(
        &mut self,
        failure: &NewFailure,
        policy: &FailureBackoff,
    ) -> Result<(), StoreError> {
        PageTx::record_failure(self, failure, policy)
            .await
            .map(|_| ())
    }

    async fn clear_failure(
        &mut self,
        direction: Direction,
        object: &str,
        source_id: &str,
    ) -> Result<(), StoreError> {
        PageTx::clear_failure(self, direction, object, source_id)
            .await
            .map(|_| ())
    }

    async fn insert_notifications(
        &mut self,
        notifications: &[NewNotification],
    ) -> Result<(), StoreError> {
        PageTx::insert_notifications(self, notifications)
            .await
            .map(|_| ())
    }

    async fn mark_processed(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        PageTx::mark_processed(self, ids).await.map(|_| ())
    }

    async fn advance_watermark(
        &mut self,
        org: Org,
        object: &str,
        value: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        PageTx::advance_watermark(self, org, object, value)
            .await
            .map(|_| ())
    }

    async fn delete_staged(
        &mut self,
        job_id: &str,
        through: (&str, &str),
    ) -> Result<(), StoreError> {
        PageTx::delete_staged(self, job_id, through).await
    }

    async fn insert_pending(
        &mut self,
        job_id: &str,
        rows: &[crate::store::PendingWrite],
    ) -> Result<(), StoreError> {
        PageTx::insert_pending(self, job_id, rows).await
    }

    async fn delete_pending(&mut self, job_id: &str, seqs: &[u64]) -> Result<(), StoreError> {
        PageTx::delete_pending(self, job_id, seqs).await
    }

    async fn commit(self) -> Result<(), StoreError> {
        PageTx::commit(self).await
    }
}
