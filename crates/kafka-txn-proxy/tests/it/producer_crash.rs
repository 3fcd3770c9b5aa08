//! A producer that dies inside a transaction: what read_committed sees before and after the
//! transaction is aborted.
//!
//! The producer is dropped without committing. librdkafka sends no EndTxn when a producer is
//! destroyed, so to the broker this is the same as a killed process: the transaction stays
//! open until the coordinator aborts it.

use std::time::Duration;

use rdkafka::producer::Producer;

use crate::harness::{Cluster, Isolation, TIMEOUT, TRANSACTION_TIMEOUT, values};

const QUIET: Duration = Duration::from_secs(2);

#[test]
fn a_producer_that_dies_mid_transaction_leaves_nothing_for_read_committed() {
    let cluster = Cluster::proxied();
    cluster.create_topic("crash");
    let dying = cluster.transactional_producer("sink");
    dying.begin_transaction().expect("begin");
    let dead = cluster.send(&dying, "crash", &["dead1", "dead2"]);
    drop(dying);

    // Another producer commits after the dead transaction began.
    let other = cluster.transactional_producer("other");
    other.begin_transaction().expect("begin");
    cluster.send(&other, "crash", &["other1"]);
    other.commit_transaction(TIMEOUT).expect("commit");

    // Kafka's coordinator aborts a transaction left alone for transaction.timeout.ms. tansu
    // 0.6 does not (measured: with 5 s, still open 12 s later), so the dead
    // transaction holds the LSO at its first record, and the later commit waits behind it.
    std::thread::sleep(TRANSACTION_TIMEOUT * 2);
    assert_eq!(
        values(&cluster.read("crash", Isolation::ReadCommitted, QUIET)),
        Vec::<&str>::new(),
        "nothing is visible while the dead transaction is open"
    );
    assert_eq!(
        cluster.latest_offset("crash", Isolation::ReadCommitted),
        dead[0],
        "tansu has not aborted the dead transaction after its timeout"
    );

    // The sink restarts with its transactional.id: InitProducerId fences the dead producer
    // and tansu aborts its transaction (it writes an ABORT marker).
    let restarted = cluster.transactional_producer("sink");
    assert_eq!(
        values(&cluster.read("crash", Isolation::ReadCommitted, QUIET)),
        ["other1"],
        "the aborted records stay hidden; the later commit is released"
    );
    restarted.begin_transaction().expect("begin");
    cluster.send(&restarted, "crash", &["after-restart"]);
    restarted.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(
        values(&cluster.read("crash", Isolation::ReadCommitted, QUIET)),
        ["other1", "after-restart"]
    );
    assert_eq!(
        values(&cluster.read("crash", Isolation::ReadUncommitted, QUIET)),
        ["dead1", "dead2", "other1", "after-restart"],
        "the dead records are in the log; only read_committed skips them"
    );
}

/// The shape of the exactly-once sink's restart, on a log long enough that tansu cannot look
/// through it within a short fetch wait: one producer id commits, dies inside a transaction,
/// is fenced by its successor (same `transactional.id`: same producer id, a later epoch), and
/// the successor commits on. Every committed record stays visible to read_committed, and only
/// the dead transaction's records are hidden.
///
/// tansu (the `TANSU_BIN` build) stops listing a partition's batches once the Fetch's
/// `max_wait_ms` has passed and then answers with what it has, possibly nothing, without an
/// error. A log reader that took an empty answer for the log end stopped its index at a few
/// hundred batches, and the proxy cut every later record from read_committed answers.
#[test]
fn on_a_long_log_commits_after_a_fenced_transaction_stay_visible() {
    const PER_TRANSACTION: usize = 1_500;
    let cluster = Cluster::proxied();
    cluster.create_topic("restart");
    // One record per batch: the log is as long in batches as in records.
    let one_per_batch = [("batch.num.messages", "1")];
    let numbered = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    };
    let before = numbered("before", PER_TRANSACTION);
    let dead = numbered("dead", 50);
    let after = numbered("after", PER_TRANSACTION);

    let first = cluster.transactional_producer_with("sink", &one_per_batch);
    first.begin_transaction().expect("begin");
    cluster.send_all(&first, "restart", &before);
    first.commit_transaction(TIMEOUT).expect("commit");
    first.begin_transaction().expect("begin");
    cluster.send_all(&first, "restart", &dead);
    drop(first);

    let second = cluster.transactional_producer_with("sink", &one_per_batch);
    second.begin_transaction().expect("begin");
    let written = cluster.send_all(&second, "restart", &after);
    second.commit_transaction(TIMEOUT).expect("commit");
    let end = written.last().expect("records written") + 2; // past the COMMIT marker

    let committed = cluster.read("restart", Isolation::ReadCommitted, QUIET);
    let expected: Vec<&str> = before.iter().chain(&after).map(String::as_str).collect();
    let got = values(&committed);
    assert_eq!(
        got.len(),
        expected.len(),
        "read_committed: every committed record and nothing else (first: {:?}, last: {:?})",
        got.first(),
        got.last()
    );
    assert_eq!(got, expected);
    assert_eq!(
        cluster.latest_offset("restart", Isolation::ReadCommitted),
        end,
        "ListOffsets latest, read_committed: the log end, nothing being open"
    );
    assert_eq!(
        cluster
            .read("restart", Isolation::ReadUncommitted, QUIET)
            .len(),
        before.len() + dead.len() + after.len(),
        "the dead transaction's records are in the log"
    );
}
