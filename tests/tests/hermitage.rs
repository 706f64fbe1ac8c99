//! Hermitage (<https://github.com/ept/hermitage>) on a real 3-node cluster:
//! each anomaly's interleaving from Hermitage's `postgres.md`, run at every
//! isolation level, with the rows of Hermitage's `test` table in different
//! ranges (row 1 | row 2 | rows 3 and 4), so every commit is a two-phase
//! commit across ranges.
//!
//! The table starts as `1 => 10, 2 => 20` (values as decimal strings); row
//! `id` is the key `{anomaly}-{level}/{id}`, so each run has rows of its
//! own. A predicate read (`where value % 3 = 0`) is a transactional scan of
//! the table's keys, filtered here.
//!
//! zdb buffers a transaction's writes at its coordinator until commit, so a
//! write never waits where PostgreSQL's blocks: the conflict, if any, comes
//! at commit (first committer wins). A zdb transaction takes its snapshot
//! at Begin, where PostgreSQL takes it at the first statement, so a
//! transaction Hermitage starts reading late (T3 of OTV) begins late here.
//!
//! | Anomaly                                   | READ_COMMITTED | SNAPSHOT  | SERIALIZABLE |
//! |-------------------------------------------|----------------|-----------|--------------|
//! | G0 (write cycles, dirty writes)           | prevented      | prevented | prevented    |
//! | G1a (aborted reads)                       | prevented      | prevented | prevented    |
//! | G1b (intermediate reads)                  | prevented      | prevented | prevented    |
//! | G1c (circular information flow)           | prevented      | prevented | prevented    |
//! | OTV (observed transaction vanishes)       | prevented      | prevented | prevented    |
//! | PMP (predicate many preceders, reads)     | possible       | prevented | prevented    |
//! | P4 (lost update)                          | possible       | prevented | prevented    |
//! | G-single (read skew)                      | possible       | prevented | prevented    |
//! | G2-item (write skew)                      | possible       | possible  | prevented    |
//! | G2 (anti-dependency cycles, predicates)   | possible       | possible  | prevented    |
//!
//! Where a level prevents an anomaly by aborting, the test names the typed
//! error: `WriteConflict` (a key it wrote was committed by another after
//! its snapshot) or `SerializationFailure` (a key it only read, or a span
//! it scanned, changed after its snapshot).
//!
//! Every test runs the three levels one after the other on one cluster and
//! reports every level whose outcome differs from the table, not only the
//! first.

use std::future::Future;
use std::time::Duration;

use zdb_client::{Client, Error, Isolation, Transaction, TxnOptions};
use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(30);

const LEVELS: [Isolation; 3] = [
    Isolation::ReadCommitted,
    Isolation::Snapshot,
    Isolation::Serializable,
];

fn level_name(level: Isolation) -> &'static str {
    match level {
        Isolation::ReadCommitted => "rc",
        Isolation::Snapshot => "si",
        Isolation::Serializable => "ser",
    }
}

/// A row as a scan shows it: (id, value).
type Row = (u32, i64);

const NO_ROWS: [Row; 0] = [];

/// Hermitage's `test` table for one anomaly at one level.
struct Table {
    prefix: String,
}

impl Table {
    /// Splits the table's rows into three ranges (1 | 2 | 3, 4) and
    /// writes `1 => 10, 2 => 20`.
    async fn create(client: &Client, anomaly: &str, level: Isolation) -> Table {
        let table = Table {
            prefix: format!("{anomaly}-{}", level_name(level)),
        };
        for id in [2, 3] {
            client.split_at(table.key(id).as_bytes()).await.unwrap();
        }
        client.put(table.key(1), "10").await.unwrap();
        client.put(table.key(2), "20").await.unwrap();
        table
    }

    fn key(&self, id: u32) -> String {
        format!("{}/{id}", self.prefix)
    }

    /// The span of the table's keys: [start, end).
    fn span(&self) -> (String, String) {
        // '0' is the byte after '/'.
        (format!("{}/", self.prefix), format!("{}0", self.prefix))
    }

    fn rows_of(&self, pairs: Vec<zdb_client::KeyValue>) -> Vec<Row> {
        pairs
            .into_iter()
            .map(|kv| {
                let key = String::from_utf8(kv.key).unwrap();
                let id = key
                    .strip_prefix(&format!("{}/", self.prefix))
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("a key outside the table: {key}"));
                let value = String::from_utf8(kv.value).unwrap();
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("row {id} holds {value:?}, not a number"));
                (id, value)
            })
            .collect()
    }

    /// `select * from test`: every row as `txn` sees it.
    async fn select_all(&self, txn: &mut Transaction) -> Vec<Row> {
        let (start, end) = self.span();
        self.rows_of(txn.scan(start, end, 0).await.unwrap())
    }

    /// `select * from test where <predicate on value>` as `txn` sees it.
    async fn select_where(&self, txn: &mut Transaction, predicate: fn(i64) -> bool) -> Vec<Row> {
        let mut rows = self.select_all(txn).await;
        rows.retain(|(_, value)| predicate(*value));
        rows
    }

    /// `select * from test where id = <id>`: the row's value as a string.
    /// Reads row `id` in `txn` and checks it holds `expected`.
    async fn expect(&self, txn: &mut Transaction, id: u32, expected: Option<&str>, what: String) {
        assert_eq!(self.get(txn, id).await.as_deref(), expected, "{what}");
    }

    async fn get(&self, txn: &mut Transaction, id: u32) -> Option<String> {
        txn.get(self.key(id))
            .await
            .unwrap()
            .map(|value| String::from_utf8(value).unwrap())
    }

    /// The committed rows, as a reader after everything sees them.
    async fn committed(&self, client: &Client) -> Vec<Row> {
        let (start, end) = self.span();
        self.rows_of(client.scan(start, end, 0, false).await.unwrap())
    }
}

async fn begin(client: &Client, level: Isolation) -> Transaction {
    client.begin(TxnOptions::new(level)).await.unwrap()
}

/// Commits a transaction that wrote something: its commit timestamp.
async fn commits(txn: Transaction, what: &str) -> u64 {
    match txn.commit().await {
        Ok(commit_ts) => {
            assert!(
                commit_ts > 0,
                "{what}: a writer commits at a timestamp, got 0"
            );
            commit_ts
        }
        Err(error) => panic!("{what}: expected a commit, got {error:?}"),
    }
}

/// Commits a transaction that only read.
async fn commits_read_only(txn: Transaction, what: &str) {
    match txn.commit().await {
        Ok(commit_ts) => assert_eq!(commit_ts, 0, "{what}: a read-only commit writes nothing"),
        Err(error) => panic!("{what}: expected a commit, got {error:?}"),
    }
}

/// The commit fails with WriteConflict on one of `keys`.
async fn fails_with_write_conflict(txn: Transaction, keys: &[String], what: &str) {
    let snapshot = txn.start_ts();
    match txn.commit().await {
        Err(Error::WriteConflict { key, start_ts, .. }) => {
            let key = String::from_utf8(key).unwrap();
            assert!(
                keys.contains(&key),
                "{what}: a write conflict on {key}, expected one of {keys:?}"
            );
            assert_eq!(
                start_ts, snapshot,
                "{what}: the conflict names the transaction's snapshot"
            );
        }
        other => panic!("{what}: expected a WriteConflict on one of {keys:?}, got {other:?}"),
    }
}

/// The commit fails with SerializationFailure on `expected`.
async fn fails_with_serialization_failure(txn: Transaction, expected: &str, what: &str) {
    let snapshot = txn.start_ts();
    match txn.commit().await {
        Err(Error::SerializationFailure { key, start_ts }) => {
            let key = String::from_utf8(key).unwrap();
            assert_eq!(
                key, expected,
                "{what}: the serialization failure names the key that changed"
            );
            assert_eq!(
                start_ts, snapshot,
                "{what}: the failure names the transaction's snapshot"
            );
        }
        other => panic!("{what}: expected a SerializationFailure on {expected}, got {other:?}"),
    }
}

/// Runs `scenario` at every level on one cluster, each on a fresh table;
/// fails naming every level whose outcome was not the expected one.
async fn at_every_level<F, Fut>(anomaly: &'static str, scenario: F)
where
    F: Fn(Client, Table, Isolation) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    let mut differs = Vec::new();
    for level in LEVELS {
        let table = Table::create(&client, anomaly, level).await;
        // On a task of its own, so a failed level's panic is caught and the
        // next level still runs; the steps of a scenario are sequential.
        if tokio::spawn(scenario(client.clone(), table, level))
            .await
            .is_err()
        {
            differs.push(level);
        }
    }
    assert!(
        differs.is_empty(),
        "{anomaly}: the outcome differs from the expected one at {differs:?} (see the panics above)"
    );
}

/// G0: T1 and T2 both write rows 1 and 2. PostgreSQL blocks T2's first
/// write until T1 commits; zdb buffers both and decides at T2's commit.
async fn g0(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G0 at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    t1.put(test.key(1), "11").await.unwrap();
    t2.put(test.key(1), "12").await.unwrap();
    t1.put(test.key(2), "21").await.unwrap();
    commits(t1, &what("T1's commit")).await;
    assert_eq!(
        test.committed(&client).await,
        [(1, 11), (2, 21)],
        "{}",
        what("after T1's commit")
    );
    t2.put(test.key(2), "22").await.unwrap();
    match level {
        Isolation::ReadCommitted => {
            commits(t2, &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 12), (2, 22)],
                "{}",
                what("all of T2")
            );
        }
        Isolation::Snapshot | Isolation::Serializable => {
            fails_with_write_conflict(t2, &[test.key(1), test.key(2)], &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 11), (2, 21)],
                "{}",
                what("all of T1")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g0_dirty_writes_are_prevented_at_every_level() {
    at_every_level("g0", g0).await;
}

/// G1a: T2 never sees a write of T1, which rolls back.
async fn g1a(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G1a at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    t1.put(test.key(1), "101").await.unwrap();
    assert_eq!(
        test.select_all(&mut t2).await,
        [(1, 10), (2, 20)],
        "{}",
        what("T2's first read")
    );
    t1.rollback().await.unwrap();
    assert_eq!(
        test.select_all(&mut t2).await,
        [(1, 10), (2, 20)],
        "{}",
        what("T2's read after T1's rollback")
    );
    commits_read_only(t2, &what("T2's commit")).await;
    assert_eq!(
        test.committed(&client).await,
        [(1, 10), (2, 20)],
        "{}",
        what("the end")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1a_aborted_reads_are_prevented_at_every_level() {
    at_every_level("g1a", g1a).await;
}

/// G1b: T2 never sees T1's intermediate value 101, only 10 or the final 11.
async fn g1b(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G1b at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    t1.put(test.key(1), "101").await.unwrap();
    assert_eq!(
        test.select_all(&mut t2).await,
        [(1, 10), (2, 20)],
        "{}",
        what("T2's read before T1's commit")
    );
    t1.put(test.key(1), "11").await.unwrap();
    commits(t1, &what("T1's commit")).await;
    let expected = match level {
        Isolation::ReadCommitted => [(1, 11), (2, 20)],
        Isolation::Snapshot | Isolation::Serializable => [(1, 10), (2, 20)],
    };
    assert_eq!(
        test.select_all(&mut t2).await,
        expected,
        "{}",
        what("T2's read after T1's commit")
    );
    commits_read_only(t2, &what("T2's commit")).await;
    assert_eq!(
        test.committed(&client).await,
        [(1, 11), (2, 20)],
        "{}",
        what("the end")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1b_intermediate_reads_are_prevented_at_every_level() {
    at_every_level("g1b", g1b).await;
}

/// G1c: neither sees the other's uncommitted write. At SERIALIZABLE each
/// read a key the other wrote, so the second committer (T2, whose read of
/// row 1 T1's commit changed) fails.
async fn g1c(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G1c at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    t1.put(test.key(1), "11").await.unwrap();
    t2.put(test.key(2), "22").await.unwrap();
    test.expect(&mut t1, 2, Some("20"), what("T1 reads row 2"))
        .await;
    test.expect(&mut t2, 1, Some("10"), what("T2 reads row 1"))
        .await;
    commits(t1, &what("T1's commit")).await;
    match level {
        Isolation::ReadCommitted | Isolation::Snapshot => {
            commits(t2, &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 11), (2, 22)],
                "{}",
                what("the end")
            );
        }
        Isolation::Serializable => {
            fails_with_serialization_failure(t2, &test.key(1), &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 11), (2, 20)],
                "{}",
                what("the end")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1c_circular_information_flow_is_prevented_at_every_level() {
    at_every_level("g1c", g1c).await;
}

/// OTV: once T3 saw T1's row 1, it never sees T1's row 2 vanish under it
/// while row 1 stays T1's. T3 begins after T1's commit (PostgreSQL's T3
/// takes its snapshot at its first read, after that commit).
async fn otv(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("OTV at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    t1.put(test.key(1), "11").await.unwrap();
    t1.put(test.key(2), "19").await.unwrap();
    t2.put(test.key(1), "12").await.unwrap();
    commits(t1, &what("T1's commit")).await;
    let mut t3 = begin(&client, level).await;
    test.expect(&mut t3, 1, Some("11"), what("T3 reads row 1"))
        .await;
    t2.put(test.key(2), "18").await.unwrap();
    test.expect(
        &mut t3,
        2,
        Some("19"),
        what("T3 reads row 2 before T2's commit"),
    )
    .await;
    match level {
        Isolation::ReadCommitted => {
            commits(t2, &what("T2's commit")).await;
            // All of T2 now: row 2 and row 1 both moved on.
            test.expect(
                &mut t3,
                2,
                Some("18"),
                what("T3 reads row 2 after T2's commit"),
            )
            .await;
            test.expect(
                &mut t3,
                1,
                Some("12"),
                what("T3 reads row 1 after T2's commit"),
            )
            .await;
            commits_read_only(t3, &what("T3's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 12), (2, 18)],
                "{}",
                what("the end")
            );
        }
        Isolation::Snapshot | Isolation::Serializable => {
            fails_with_write_conflict(t2, &[test.key(1), test.key(2)], &what("T2's commit")).await;
            test.expect(
                &mut t3,
                2,
                Some("19"),
                what("T3 reads row 2 after T2's commit"),
            )
            .await;
            test.expect(
                &mut t3,
                1,
                Some("11"),
                what("T3 reads row 1 after T2's commit"),
            )
            .await;
            commits_read_only(t3, &what("T3's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 11), (2, 19)],
                "{}",
                what("the end")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otv_observed_transaction_vanishes_is_prevented_at_every_level() {
    at_every_level("otv", otv).await;
}

/// PMP (read predicates): T2 inserts a row T1's predicate matches; T1's
/// second predicate read sees it at READ_COMMITTED only.
async fn pmp(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("PMP at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    assert_eq!(
        test.select_where(&mut t1, |value| value == 30).await,
        NO_ROWS,
        "{}",
        what("T1: value = 30")
    );
    t2.put(test.key(3), "30").await.unwrap();
    commits(t2, &what("T2's commit")).await;
    let expected: &[Row] = match level {
        Isolation::ReadCommitted => &[(3, 30)],
        Isolation::Snapshot | Isolation::Serializable => &NO_ROWS,
    };
    assert_eq!(
        test.select_where(&mut t1, |value| value % 3 == 0).await,
        expected,
        "{}",
        what("T1: value % 3 = 0")
    );
    commits_read_only(t1, &what("T1's commit")).await;
    assert_eq!(
        test.committed(&client).await,
        [(1, 10), (2, 20), (3, 30)],
        "{}",
        what("the end")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmp_predicate_many_preceders_is_possible_only_at_read_committed() {
    at_every_level("pmp", pmp).await;
}

/// P4: T1 and T2 both read row 1 and write it; at READ_COMMITTED both
/// commit (T1's update is lost), above it the second committer fails.
async fn p4(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("P4 at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    test.expect(&mut t1, 1, Some("10"), what("T1 reads row 1"))
        .await;
    test.expect(&mut t2, 1, Some("10"), what("T2 reads row 1"))
        .await;
    t1.put(test.key(1), "11").await.unwrap();
    t2.put(test.key(1), "11").await.unwrap();
    commits(t1, &what("T1's commit")).await;
    match level {
        Isolation::ReadCommitted => {
            commits(t2, &what("T2's commit")).await;
        }
        Isolation::Snapshot | Isolation::Serializable => {
            fails_with_write_conflict(t2, &[test.key(1)], &what("T2's commit")).await;
        }
    }
    assert_eq!(
        test.committed(&client).await,
        [(1, 11), (2, 20)],
        "{}",
        what("the end")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_lost_update_is_possible_only_at_read_committed() {
    at_every_level("p4", p4).await;
}

/// G-single (read skew): T1 reads row 1 before T2 moves 2 from row 2 to
/// row 1, and row 2 after: at READ_COMMITTED it sees 10 + 18.
async fn g_single(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G-single at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    test.expect(&mut t1, 1, Some("10"), what("T1 reads row 1"))
        .await;
    test.expect(&mut t2, 1, Some("10"), what("T2 reads row 1"))
        .await;
    test.expect(&mut t2, 2, Some("20"), what("T2 reads row 2"))
        .await;
    t2.put(test.key(1), "12").await.unwrap();
    t2.put(test.key(2), "18").await.unwrap();
    commits(t2, &what("T2's commit")).await;
    let expected = match level {
        Isolation::ReadCommitted => "18",
        Isolation::Snapshot | Isolation::Serializable => "20",
    };
    test.expect(&mut t1, 2, Some(expected), what("T1 reads row 2"))
        .await;
    commits_read_only(t1, &what("T1's commit")).await;
    assert_eq!(
        test.committed(&client).await,
        [(1, 12), (2, 18)],
        "{}",
        what("the end")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_single_read_skew_is_possible_only_at_read_committed() {
    at_every_level("gsingle", g_single).await;
}

/// G2-item (write skew): both read both rows, each writes a different one.
/// Only SERIALIZABLE fails the second committer, whose read of row 1 the
/// first's commit changed.
async fn g2_item(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G2-item at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    for (name, txn) in [("T1", &mut t1), ("T2", &mut t2)] {
        assert_eq!(
            test.get(txn, 1).await.as_deref(),
            Some("10"),
            "{}",
            what(&format!("{name} reads row 1"))
        );
        assert_eq!(
            test.get(txn, 2).await.as_deref(),
            Some("20"),
            "{}",
            what(&format!("{name} reads row 2"))
        );
    }
    t1.put(test.key(1), "11").await.unwrap();
    t2.put(test.key(2), "21").await.unwrap();
    commits(t1, &what("T1's commit")).await;
    match level {
        Isolation::ReadCommitted | Isolation::Snapshot => {
            commits(t2, &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 11), (2, 21)],
                "{}",
                what("the end")
            );
        }
        Isolation::Serializable => {
            fails_with_serialization_failure(t2, &test.key(1), &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 11), (2, 20)],
                "{}",
                what("the end")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_item_write_skew_is_prevented_only_at_serializable() {
    at_every_level("g2item", g2_item).await;
}

/// G2 (anti-dependency cycles over a predicate): both find no row with
/// value % 3 = 0 and each inserts one. Only SERIALIZABLE fails the second
/// committer, whose scanned span the first's row 3 changed.
async fn g2(client: Client, test: Table, level: Isolation) {
    let what = |step: &str| format!("G2 at {level:?}: {step}");
    let mut t1 = begin(&client, level).await;
    let mut t2 = begin(&client, level).await;
    assert_eq!(
        test.select_where(&mut t1, |value| value % 3 == 0).await,
        NO_ROWS,
        "{}",
        what("T1: value % 3 = 0")
    );
    assert_eq!(
        test.select_where(&mut t2, |value| value % 3 == 0).await,
        NO_ROWS,
        "{}",
        what("T2: value % 3 = 0")
    );
    t1.put(test.key(3), "30").await.unwrap();
    t2.put(test.key(4), "42").await.unwrap();
    commits(t1, &what("T1's commit")).await;
    match level {
        Isolation::ReadCommitted | Isolation::Snapshot => {
            commits(t2, &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 10), (2, 20), (3, 30), (4, 42)],
                "{}",
                what("the end")
            );
        }
        Isolation::Serializable => {
            fails_with_serialization_failure(t2, &test.key(3), &what("T2's commit")).await;
            assert_eq!(
                test.committed(&client).await,
                [(1, 10), (2, 20), (3, 30)],
                "{}",
                what("the end")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_anti_dependency_cycles_are_prevented_only_at_serializable() {
    at_every_level("g2", g2).await;
}
