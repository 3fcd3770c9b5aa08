//! A committed, an aborted and an open transaction, read with `read_committed` through the
//! proxy and straight from tansu.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};

use crate::harness::{Cluster, Isolation, TIMEOUT, values};

/// How long a reader waits for nothing new before it takes the topic as read.
const QUIET: Duration = Duration::from_secs(2);

/// The offsets the scenario wrote, and the producer whose transaction it left open.
struct Written {
    /// The first offset of the open transaction: the true last stable offset.
    open_first: i64,
    /// The offset after the last record written (the high watermark).
    end: i64,
    holder: FutureProducer,
}

/// Writes, in this order: `c1 c2 c3` committed, `a1 a2 a3` aborted, `o1 o2` in a
/// transaction left open, and `p1` without a transaction (after the open one, so only the
/// LSO keeps it from read_committed).
fn write_scenario(cluster: &Cluster, topic: &str) -> Written {
    cluster.create_topic(topic);
    let committer = cluster.transactional_producer(&format!("{topic}-committer"));
    committer.begin_transaction().expect("begin");
    cluster.send(&committer, topic, &["c1", "c2", "c3"]);
    committer.commit_transaction(TIMEOUT).expect("commit");

    let aborter = cluster.transactional_producer(&format!("{topic}-aborter"));
    aborter.begin_transaction().expect("begin");
    cluster.send(&aborter, topic, &["a1", "a2", "a3"]);
    aborter.abort_transaction(TIMEOUT).expect("abort");

    let holder = cluster.transactional_producer(&format!("{topic}-holder"));
    holder.begin_transaction().expect("begin");
    let open = cluster.send(&holder, topic, &["o1", "o2"]);

    let plain = cluster.send(&cluster.plain_producer(), topic, &["p1"]);
    Written {
        open_first: open[0],
        end: plain[0] + 1,
        holder,
    }
}

#[test]
fn through_the_proxy_read_committed_sees_only_committed_records() {
    let cluster = Cluster::proxied();
    let written = write_scenario(&cluster, "scenario");

    let committed = cluster.read("scenario", Isolation::ReadCommitted, QUIET);
    assert_eq!(
        values(&committed),
        ["c1", "c2", "c3"],
        "read_committed through the proxy: neither the aborted records nor anything from the \
         open transaction on"
    );
    assert_eq!(
        cluster.latest_offset("scenario", Isolation::ReadCommitted),
        written.open_first,
        "ListOffsets latest, read_committed: the first offset of the open transaction"
    );
    let everything = cluster.read("scenario", Isolation::ReadUncommitted, QUIET);
    assert_eq!(
        values(&everything),
        ["c1", "c2", "c3", "a1", "a2", "a3", "o1", "o2", "p1"],
        "read_uncommitted passes through unchanged"
    );
    assert_eq!(
        cluster.latest_offset("scenario", Isolation::ReadUncommitted),
        written.end
    );

    written.holder.commit_transaction(TIMEOUT).expect("commit");
    let committed = cluster.read("scenario", Isolation::ReadCommitted, QUIET);
    assert_eq!(
        values(&committed),
        ["c1", "c2", "c3", "o1", "o2", "p1"],
        "once the open transaction commits, its records and the plain one after it are visible"
    );
    assert_eq!(
        cluster.latest_offset("scenario", Isolation::ReadCommitted),
        written.end + 1,
        "with nothing open the LSO is the high watermark (past the COMMIT marker)"
    );
}

/// Documents what the proxy is for. If tansu is fixed this test fails, and the proxy may
/// have become unnecessary.
#[test]
fn tansu_alone_hands_aborted_records_to_read_committed() {
    let cluster = Cluster::direct();
    let written = write_scenario(&cluster, "scenario");

    let committed = cluster.read("scenario", Isolation::ReadCommitted, QUIET);
    assert_eq!(
        values(&committed),
        ["c1", "c2", "c3", "a1", "a2", "a3"],
        "tansu 0.6 answers read_committed fetches with no aborted transactions, so the aborted \
         records are delivered; it does stop at the open transaction (its fetch LSO is right)"
    );
    let latest = cluster.latest_offset("scenario", Isolation::ReadCommitted);
    assert_ne!(
        latest, written.open_first,
        "tansu 0.6 answers ListOffsets latest read_committed wrongly while a transaction is \
         open (0 was measured)"
    );
}
