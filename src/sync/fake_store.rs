//! The fake store of the pass tests: a HashMap store whose page transaction is a staged copy
//! (so a failed commit loses the page, like a crash before the commit), counting commits and
//! able to fail or cancel at the n-th one.

use super::*;

#[derive(Debug, Clone, Default)]
pub(super) struct StoreState {
    pub(super) watermarks: HashMap<Org, DateTime<Utc>>,
    pub(super) links: Vec<Link>,
    pub(super) failures: Vec<Failure>,
    pub(super) inbox: Vec<(InboxItem, bool)>,
    pub(super) next_id: i64,
}

#[derive(Default)]
pub(super) struct StoreInner {
    pub(super) state: Mutex<StoreState>,
    /// Commits to fail (a crash between the writes and the commit).
    pub(super) fail_commits: AtomicUsize,
    pub(super) commits: AtomicUsize,
    /// Cancel this token when the n-th commit succeeds.
    pub(super) cancel_after: Mutex<Option<(usize, CancellationToken)>>,
}

#[derive(Clone, Default)]
pub(super) struct FakeStore(pub(super) Arc<StoreInner>);

impl FakeStore {
    pub(super) fn state(&self) -> StoreState {
        self.0.state.lock().expect("store lock").clone()
    }

    pub(super) fn set_watermark(&self, org: Org, at: DateTime<Utc>) {
        self.0
            .state
            .lock()
            .expect("store lock")
            .watermarks
            .insert(org, at);
    }
}

pub(super) struct FakeTx {
    pub(super) store: Arc<StoreInner>,
    pub(super) staged: StoreState,
}

pub(super) fn link_side(link: &Link, org: Org) -> &str {
    match org {
        Org::A => &link.a_id,
        Org::B => &link.b_id,
    }
}

impl StorePort for FakeStore {
    type Tx = FakeTx;

    async fn watermark(
        &self,
        org: Org,
        _object: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.state().watermarks.get(&org).copied())
    }

    async fn links_by_ids(
        &self,
        org: Org,
        _object: &str,
        ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        Ok(self
            .state()
            .links
            .into_iter()
            .filter(|l| ids.iter().any(|id| id == link_side(l, org)))
            .collect())
    }

    async fn failures_for(
        &self,
        direction: Direction,
        _object: &str,
        source_ids: &[String],
    ) -> Result<Vec<Failure>, StoreError> {
        Ok(self
            .state()
            .failures
            .into_iter()
            .filter(|f| f.direction == direction && source_ids.contains(&f.source_id))
            .collect())
    }

    async fn due_failures(
        &self,
        direction: Direction,
        _object: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Failure>, StoreError> {
        Ok(self
            .state()
            .failures
            .into_iter()
            .filter(|f| {
                f.direction == direction
                    && f.state == FailureState::Pending
                    && f.next_attempt_at.is_some_and(|t| t <= now)
            })
            .take(limit as usize)
            .collect())
    }

    async fn pending_notifications(
        &self,
        org: Org,
        limit: u32,
    ) -> Result<Vec<InboxItem>, StoreError> {
        Ok(self
            .state()
            .inbox
            .into_iter()
            .filter(|(i, done)| !done && i.org == org)
            .map(|(i, _)| i)
            .take(limit as usize)
            .collect())
    }

    async fn mark_processed(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let mut s = self.0.state.lock().expect("store lock");
        for (item, done) in s.inbox.iter_mut() {
            if ids.contains(&item.id) {
                *done = true;
            }
        }
        Ok(ids.len() as u64)
    }

    async fn begin(&self) -> Result<FakeTx, StoreError> {
        Ok(FakeTx {
            store: self.0.clone(),
            staged: self.state(),
        })
    }
}

impl PageTxPort for FakeTx {
    async fn tombstone_link(&mut self, t: &crate::store::Tombstone) -> Result<bool, StoreError> {
        let found = self.staged.links.iter_mut().find(|l| {
            l.a_id == t.a_id && l.b_id == t.b_id && l.state == crate::store::LinkState::Live
        });
        let Some(link) = found else {
            return Ok(false);
        };
        link.state = crate::store::LinkState::Tombstone;
        link.deleted_at = Some(t.at);
        link.deleted_by = Some(t.by);
        match t.by {
            Org::A => link.a_modstamp = Some(t.at),
            Org::B => link.b_modstamp = Some(t.at),
        }
        Ok(true)
    }

    async fn revive_link(&mut self, link_id: i64, link: &LinkWrite) -> Result<(), StoreError> {
        let conflict = StoreError::LinkConflict {
            object: link.object.clone(),
            a_id: link.a_id.clone(),
            b_id: link.b_id.clone(),
            detail: "one of the two records is already live in another link".to_string(),
        };
        let links = &mut self.staged.links;
        if links
            .iter()
            .any(|l| l.id != link_id && l.is_live() && (l.a_id == link.a_id || l.b_id == link.b_id))
        {
            return Err(conflict);
        }
        let Some(l) = links.iter_mut().find(|l| l.id == link_id) else {
            return Err(conflict);
        };
        l.state = crate::store::LinkState::Live;
        l.deleted_at = None;
        l.deleted_by = None;
        l.a_id = link.a_id.clone();
        l.b_id = link.b_id.clone();
        l.a_modstamp = link.a_modstamp.or(l.a_modstamp);
        l.b_modstamp = link.b_modstamp.or(l.b_modstamp);
        l.snapshot = link.snapshot.clone();
        Ok(())
    }

    async fn delete_link(&mut self, object: &str, a_id: &str) -> Result<bool, StoreError> {
        let links = &mut self.staged.links;
        let before = links.len();
        links.retain(|l| !(l.object == object && l.a_id == a_id));
        Ok(links.len() < before)
    }

    async fn upsert_link(&mut self, link: &LinkWrite) -> Result<(), StoreError> {
        let conflict = |detail: &str| StoreError::LinkConflict {
            object: link.object.clone(),
            a_id: link.a_id.clone(),
            b_id: link.b_id.clone(),
            detail: detail.to_string(),
        };
        let links = &mut self.staged.links;
        if links
            .iter()
            .any(|l| l.b_id == link.b_id && l.a_id != link.a_id)
        {
            return Err(conflict("B record already linked"));
        }
        match links.iter_mut().find(|l| l.a_id == link.a_id) {
            Some(l) if l.b_id != link.b_id => return Err(conflict("A record already linked")),
            Some(l) => {
                l.a_modstamp = link.a_modstamp.or(l.a_modstamp);
                l.b_modstamp = link.b_modstamp.or(l.b_modstamp);
                l.snapshot = link.snapshot.clone();
            }
            None => links.push(Link {
                id: links.len() as i64 + 1,
                object: link.object.clone(),
                a_id: link.a_id.clone(),
                b_id: link.b_id.clone(),
                a_modstamp: link.a_modstamp,
                b_modstamp: link.b_modstamp,
                snapshot: link.snapshot.clone(),
                state: crate::store::LinkState::Live,
                deleted_at: None,
                deleted_by: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }),
        }
        Ok(())
    }

    async fn record_failure(
        &mut self,
        failure: &NewFailure,
        policy: &FailureBackoff,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let failures = &mut self.staged.failures;
        let existing = failures
            .iter()
            .position(|f| f.direction == failure.direction && f.source_id == failure.source_id);
        let attempts = match existing {
            Some(i) if failure.source_modstamp > failures[i].source_modstamp => 1,
            Some(i) => failures[i].attempts + 1,
            None => 1,
        };
        let (state, next_attempt_at) = schedule_after_failure(attempts, failure.class, policy, now);
        self.staged.next_id += 1;
        let row = Failure {
            id: existing.map_or(self.staged.next_id, |i| failures[i].id),
            direction: failure.direction,
            object: failure.object.clone(),
            source_id: failure.source_id.clone(),
            target_id: failure.target_id.clone(),
            source_modstamp: failure.source_modstamp,
            error_code: failure.error_code.clone(),
            message: failure.message.clone(),
            class: failure.class,
            sent: failure.sent.clone(),
            attempts,
            next_attempt_at,
            state,
            created_at: now,
            updated_at: now,
        };
        match existing {
            Some(i) => failures[i] = row,
            None => failures.push(row),
        }
        Ok(())
    }

    async fn clear_failure(
        &mut self,
        direction: Direction,
        _object: &str,
        source_id: &str,
    ) -> Result<(), StoreError> {
        self.staged
            .failures
            .retain(|f| !(f.direction == direction && f.source_id == source_id));
        Ok(())
    }

    async fn insert_notifications(
        &mut self,
        notifications: &[NewNotification],
    ) -> Result<(), StoreError> {
        for n in notifications {
            let known = self
                .staged
                .inbox
                .iter()
                .any(|(i, _)| i.org == n.org && i.notification_id == n.notification_id);
            if !known {
                self.staged.next_id += 1;
                let item = InboxItem {
                    id: self.staged.next_id,
                    org: n.org,
                    notification_id: n.notification_id.clone(),
                    object: n.object.clone(),
                    record_id: n.record_id.clone(),
                    received_at: Utc::now(),
                };
                self.staged.inbox.push((item, false));
            }
        }
        Ok(())
    }

    async fn mark_processed(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        for (item, done) in self.staged.inbox.iter_mut() {
            if ids.contains(&item.id) {
                *done = true;
            }
        }
        Ok(())
    }

    async fn advance_watermark(
        &mut self,
        org: Org,
        _object: &str,
        value: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let entry = self.staged.watermarks.entry(org).or_insert(value);
        *entry = (*entry).max(value);
        Ok(())
    }

    async fn commit(self) -> Result<(), StoreError> {
        let failing = self.store.fail_commits.load(Ordering::SeqCst);
        if failing > 0 {
            self.store.fail_commits.store(failing - 1, Ordering::SeqCst);
            return Err(StoreError::Corrupt("injected crash before commit".into()));
        }
        *self.store.state.lock().expect("store lock") = self.staged;
        let n = self.store.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((at, token)) = &*self.store.cancel_after.lock().expect("lock")
            && *at == n
        {
            token.cancel();
        }
        Ok(())
    }
}
