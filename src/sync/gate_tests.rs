//! Pages in flight (`batch.in_flight`): the page gate keeps them equal to one page at a time.

use super::parents::sync_account_world;
use super::*;

// ---------------------------------------------------------------------------------------------
// Pages in flight (`batch.in_flight`)
// ---------------------------------------------------------------------------------------------

/// Calls in flight across both orgs of a pass, and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// An org whose every call takes `delay` (tokio time), counted in a shared [`InFlight`].
struct Slow<'o> {
    org: &'o FakeOrg,
    delay: Duration,
    in_flight: &'o InFlight,
}

impl Slow<'_> {
    async fn around<R>(&self, call: impl Future<Output = R>) -> R {
        let now = self.in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.in_flight.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let result = call.await;
        self.in_flight.now.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl OrgPort for Slow<'_> {
    async fn query(&self, query: &RecordQuery) -> Result<Batch, PortError> {
        self.around(self.org.query(query)).await
    }
    async fn query_more(&self, cursor: &str) -> Result<Batch, PortError> {
        self.around(self.org.query_more(cursor)).await
    }
    async fn create(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(self.org.create(object, records)).await
    }
    async fn update(
        &self,
        object: &str,
        records: &[(String, Map<String, Value>)],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(self.org.update(object, records)).await
    }
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(self.org.upsert(object, external_id_field, records))
            .await
    }
    async fn delete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(OrgPort::delete(self.org, ids)).await
    }
    async fn undelete(&self, ids: &[String]) -> Result<Vec<WriteOutcome>, PortError> {
        self.around(OrgPort::undelete(self.org, ids)).await
    }
    async fn count_deleted(&self, query: &RecordQuery) -> Result<u64, PortError> {
        self.around(OrgPort::count_deleted(self.org, query)).await
    }
}

impl World {
    /// A pass A -> B whose calls take 10 ms each (tokio time); returns the report and the
    /// most calls that were in flight at once.
    async fn run_slow(&self, cfg: &PassConfig) -> (PassReport, usize) {
        let in_flight = InFlight::default();
        let slow = |org| Slow {
            org,
            delay: Duration::from_millis(10),
            in_flight: &in_flight,
        };
        let (a, b) = (slow(&self.a), slow(&self.b));
        let report = Pass::new(cfg, &self.mapping, &a, &b, &self.store, &self.metrics)
            .run(&CancellationToken::new())
            .await
            .expect("pass succeeds");
        (report, in_flight.peak.load(Ordering::SeqCst))
    }
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_stay_within_batch_in_flight_and_cost_no_extra_call() {
    let mut peaks = Vec::new();
    for in_flight in [1, 4] {
        let w = World::new();
        w.a.state().batch_size = 1000;
        for chunk in 0..5 {
            w.a.human_create(
                (0..1000)
                    .map(|i| opp(&format!("P{chunk}-{i}"), i))
                    .collect(),
            );
        }
        let cfg = PassConfig {
            in_flight,
            ..config(Direction::AToB)
        };
        let (report, peak) = w.run_slow(&cfg).await;
        assert_eq!(report.created, 5000);
        assert_eq!(report.failed, 0);
        assert_eq!(report.pages, 25);
        assert_eq!(w.b.len(), 5000);
        assert_eq!(w.store.state().links.len(), 5000);
        // As many calls as one page at a time: 5 reads, 25 lookups, 25 creates.
        assert_eq!(w.a.calls().total(), 5, "in_flight = {in_flight}");
        assert_eq!(w.b.calls().query, 25, "in_flight = {in_flight}");
        assert_eq!(w.b.calls().create, 25, "in_flight = {in_flight}");
        assert_eq!(report.api_calls, 55);
        assert!(
            peak <= in_flight,
            "{peak} calls at once, in_flight = {in_flight}"
        );
        peaks.push(peak);
    }
    assert_eq!(
        peaks,
        vec![1, 4],
        "reads, lookups and writes of pages overlap"
    );
}

#[tokio::test(start_paused = true)]
async fn namesakes_in_pages_in_flight_never_share_a_target() {
    // Six "Acme" in A, one page each, four pages in flight; B holds one unlinked "Acme" with
    // an older amount. One page at a time, the first takes it (an update) and the five
    // others create theirs. Pages in flight must do the same: while the first page is still
    // writing, the others must not take that record too.
    for in_flight in [1, 4] {
        let w = World::new();
        w.b.human_create(vec![opp("Acme", 8)]);
        // A's edits come later than B's (each fake org has its own clock).
        w.a.human_create(Vec::new());
        w.a.human_create((0..6).map(|_| opp("Acme", 7)).collect());
        let cfg = PassConfig {
            in_flight,
            page_size: 1,
            ..config(Direction::AToB)
        };
        let (report, _) = w.run_slow(&cfg).await;
        assert_eq!(
            (report.updated, report.created, report.failed),
            (1, 5, 0),
            "in_flight = {in_flight}: {report:?} {:?}",
            w.store.state().failures
        );
        let state = w.store.state();
        let b_ids: HashSet<&str> = state.links.iter().map(|l| l.b_id.as_str()).collect();
        assert_eq!(state.links.len(), 6);
        assert_eq!(b_ids.len(), 6, "links are unique on the B side");
        let acmes = w.b.find_by_name("Acme");
        assert_eq!(acmes.len(), 6);
        assert!(acmes.iter().all(|r| r["Amount"] == json!(7)), "{acmes:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_parent_account_named_in_several_pages_in_flight_is_created_once() {
    let (w, mut cfg) = sync_account_world();
    cfg.page_size = 2;
    cfg.in_flight = 4;
    let globex =
        w.a.human_create_in("Account", vec![json!({"Name": "Globex"})]);
    let initech =
        w.a.human_create_in("Account", vec![json!({"Name": "Initech"})]);
    w.a.human_create(
        (0..12)
            .map(|i| {
                let parent = if i % 2 == 0 { &globex[0] } else { &initech[0] };
                json!({"Name": format!("O{i}"), "AccountId": parent})
            })
            .collect(),
    );
    let (report, _) = w.run_slow(&cfg).await;
    assert_eq!((report.created, report.failed), (12, 0));
    let accounts = w.b.accounts();
    assert_eq!(accounts.len(), 2, "each parent created once: {accounts:?}");
}

/// A page's claims leave the gate when it commits (the store shows its links from then on),
/// so a pass of a million updates does not hold a million ids; a later page's claims stay.
#[test]
fn claims_leave_the_gate_with_their_page_s_commit() {
    let gate = crate::sync::gate::PageGate::new();
    gate.claim(0, ["b1", "b2"]);
    gate.claim(1, ["b3"]);
    assert!(gate.is_claimed("b1") && gate.is_claimed("b3"));
    gate.committed(0);
    assert!(!gate.is_claimed("b1"));
    assert!(gate.is_claimed("b3"));
    assert_eq!(gate.claimed(), 1);
    gate.committed(1);
    assert_eq!(gate.claimed(), 0);
}
