//! The page gate: how the pages of one pipeline, in flight together (`batch.in_flight`),
//! take turns so that overlapping them changes nothing of what one page at a time would do.
//!
//! Contract (DESIGN §2): every page reads its links, triages and looks up on its own; from
//! the decision on, page `i` waits until pages `0..i` have decided ([`Turn::Decided`]) and,
//! when its lookup found candidates for unlinked rows, until they have also written
//! ([`Turn::Written`]: a candidate may be a record an earlier page just created). A target
//! claimed by a page (linked, updated or created) is never taken by a later page, though the
//! store does not show it until that page commits. Pages commit in page order, so the
//! watermark never passes a page that is not durable. With `syncAccount`, pages go one at a
//! time from their start ([`pages_one_at_a_time`]): a page reads the parent-account links
//! that earlier pages store.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::accounts::AccountMode;

/// What a page waits for before it decides (see [`PageGate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Earlier pages have decided: the targets they link or update are claimed.
    Decided,
    /// Earlier pages have also written: the targets they created are claimed too. Needed when
    /// the page's lookup found candidates for unlinked rows, since a candidate may be a
    /// record an earlier page has just created.
    Written,
}

/// The turn a page waits for before deciding: [`Turn::Written`] when its lookup found a
/// candidate for some unlinked row, else [`Turn::Decided`].
pub(super) fn turn_for(has_candidates: bool) -> Turn {
    if has_candidates {
        Turn::Written
    } else {
        Turn::Decided
    }
}

/// Whether pages must go one at a time from their start (after the previous page's commit):
/// with `syncAccount`, a page reads the parent-account links that earlier pages store.
pub(super) fn pages_one_at_a_time(account: &AccountMode) -> bool {
    matches!(account, AccountMode::SyncByName { .. })
}

/// Progress of the pages in flight, in page order.
#[derive(Debug, Default)]
struct GateState {
    /// Pages `0..decided` have decided.
    decided: usize,
    /// Pages `0..committed` have committed.
    committed: usize,
    /// `written[i]`: page `i` has made its writes.
    written: Vec<bool>,
}

impl GateState {
    fn ready(&self, index: usize, turn: Turn) -> bool {
        self.decided >= index
            && match turn {
                Turn::Decided => true,
                Turn::Written => (0..index).all(|i| self.written.get(i).copied().unwrap_or(false)),
            }
    }
}

/// How the pages of one pipeline, in flight together, take turns: each decides after the
/// pages before it (and, when its lookup found candidates, after their writes), and no page
/// takes a target another page of the pass has claimed (linked, updated or created), which
/// the store does not show until that page commits.
pub(super) struct PageGate {
    state: watch::Sender<GateState>,
    /// Each claimed target and the page that claimed it. A page's claims go when it commits:
    /// from then on the store shows its links, which every later page reads after the gate
    /// (a claim is in this map or durable in the store, never neither); so the map holds the
    /// pages in flight, not the whole pass (a pass of 1,000,000 updates would hold every id).
    claims: Mutex<HashMap<String, usize>>,
}

impl PageGate {
    pub(super) fn new() -> PageGate {
        PageGate {
            state: watch::Sender::new(GateState::default()),
            claims: Mutex::new(HashMap::new()),
        }
    }

    async fn wait(&self, ready: impl FnMut(&GateState) -> bool) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as the gate: waiting cannot fail.
        let _ = rx.wait_for(ready).await;
    }

    pub(super) async fn wait_turn(&self, index: usize, turn: Turn) {
        self.wait(|s| s.ready(index, turn)).await;
    }

    pub(super) async fn wait_committed(&self, index: usize) {
        self.wait(|s| s.committed >= index).await;
    }

    pub(super) fn decided(&self, index: usize) {
        self.state
            .send_modify(|s| s.decided = s.decided.max(index + 1));
    }

    pub(super) fn written(&self, index: usize) {
        self.state.send_modify(|s| {
            if s.written.len() <= index {
                s.written.resize(index + 1, false);
            }
            s.written[index] = true;
        });
    }

    /// Page `index` has committed: its claims are in the store now, and leave the gate.
    pub(super) fn committed(&self, index: usize) {
        {
            let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            claims.retain(|_, page| *page > index);
        }
        self.state
            .send_modify(|s| s.committed = s.committed.max(index + 1));
    }

    /// Page `index` claims these targets.
    pub(super) fn claim<'i>(&self, index: usize, ids: impl IntoIterator<Item = &'i str>) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            claims.insert(id.to_string(), index);
        }
    }

    pub(super) fn is_claimed(&self, id: &str) -> bool {
        let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.contains_key(id)
    }

    /// How many targets are claimed now.
    #[cfg(test)]
    pub(super) fn claimed(&self) -> usize {
        self.claims.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
