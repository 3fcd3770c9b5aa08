//! The transaction state of one partition's log, built from its batch headers in offset order:
//! which transactions are still open, which were aborted, and so the last stable offset.

use std::collections::BTreeMap;

use crate::batch::{BatchHeader, BatchKind, ControlType};

/// One partition's transactions, as far as its log has been read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionLog {
    /// The offset after the last batch read: where reading continues, and the log end as far
    /// as this index knows.
    next_offset: i64,
    /// Producer id to the first offset of its transaction that has no marker yet.
    open: BTreeMap<i64, i64>,
    /// Every aborted transaction read so far, in the order of their markers.
    aborted: Vec<AbortedTxn>,
}

/// A transaction that ended with an ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// The offset of its first record.
    pub first_offset: i64,
    /// The offset of its ABORT marker.
    pub marker_offset: i64,
}

impl PartitionLog {
    /// An index of an empty log that starts at `log_start_offset`.
    pub fn starting_at(log_start_offset: i64) -> PartitionLog {
        PartitionLog {
            next_offset: log_start_offset,
            ..PartitionLog::default()
        }
    }

    /// Where reading the log continues.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Takes in the next batch of the log. A batch that ends before [`Self::next_offset`] was
    /// read already (a fetch answers from the start of the batch holding the fetch offset)
    /// and changes nothing.
    pub fn apply(&mut self, batch: &BatchHeader) {
        if batch.last_offset < self.next_offset {
            return;
        }
        self.next_offset = batch.last_offset + 1;
        match batch.kind {
            BatchKind::Plain => {}
            BatchKind::Transactional => {
                self.open
                    .entry(batch.producer_id)
                    .or_insert(batch.base_offset);
            }
            BatchKind::Control(control_type) => {
                // A marker with no open transaction ends an empty one: nothing to hide.
                let Some(first_offset) = self.open.remove(&batch.producer_id) else {
                    return;
                };
                if control_type == ControlType::Abort {
                    self.aborted.push(AbortedTxn {
                        producer_id: batch.producer_id,
                        first_offset,
                        marker_offset: batch.base_offset,
                    });
                }
            }
        }
    }

    /// The offset below which every transaction is decided: the first offset of the earliest
    /// open transaction, or the log end when none is open.
    pub fn last_stable_offset(&self) -> i64 {
        self.open
            .values()
            .copied()
            .min()
            .unwrap_or(self.next_offset)
    }

    /// The aborted transactions with records in `first..=last`, as a broker lists them in a
    /// Fetch answer: started at or before `last` and not ended before `first`.
    pub fn aborted_overlapping(&self, first: i64, last: i64) -> Vec<AbortedTxn> {
        let mut overlapping: Vec<AbortedTxn> = self
            .aborted
            .iter()
            .filter(|txn| txn.first_offset <= last && txn.marker_offset >= first)
            .copied()
            .collect();
        overlapping.sort_by_key(|txn| txn.first_offset);
        overlapping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABORT: BatchKind = BatchKind::Control(ControlType::Abort);
    const COMMIT: BatchKind = BatchKind::Control(ControlType::Commit);
    const TXN: BatchKind = BatchKind::Transactional;

    fn batch(base_offset: i64, count: i64, producer_id: i64, kind: BatchKind) -> BatchHeader {
        BatchHeader {
            base_offset,
            last_offset: base_offset + count - 1,
            producer_id,
            kind,
        }
    }

    fn log_of(batches: &[BatchHeader]) -> PartitionLog {
        let mut log = PartitionLog::starting_at(0);
        for batch in batches {
            log.apply(batch);
        }
        log
    }

    fn aborted(producer_id: i64, first_offset: i64, marker_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            marker_offset,
        }
    }

    #[test]
    fn last_stable_offset_stops_at_the_earliest_open_transaction() {
        fn check(batches: &[BatchHeader], expected: i64) {
            assert_eq!(
                log_of(batches).last_stable_offset(),
                expected,
                "{batches:?}"
            );
        }
        check(&[], 0);
        check(&[batch(0, 3, -1, BatchKind::Plain)], 3);
        check(&[batch(0, 2, 7, TXN)], 0);
        check(&[batch(0, 2, 7, TXN), batch(2, 1, 7, COMMIT)], 3);
        check(&[batch(0, 2, 7, TXN), batch(2, 1, 7, ABORT)], 3);
        // Two producers interleaved: the earlier open one bounds the LSO.
        check(&[batch(0, 2, 7, TXN), batch(2, 2, 8, TXN)], 0);
        check(
            &[
                batch(0, 2, 7, TXN),
                batch(2, 2, 8, TXN),
                batch(4, 1, 7, COMMIT),
            ],
            2,
        );
        check(
            &[
                batch(0, 2, 7, TXN),
                batch(2, 2, 8, TXN),
                batch(4, 1, 8, ABORT),
                batch(5, 1, 7, TXN),
            ],
            0,
        );
        // A later batch of an open transaction does not move its start.
        check(
            &[
                batch(0, 1, -1, BatchKind::Plain),
                batch(1, 2, 7, TXN),
                batch(3, 2, 7, TXN),
            ],
            1,
        );
    }

    #[test]
    fn aborted_transactions_are_listed_where_their_records_are() {
        let log = log_of(&[
            batch(0, 2, 7, TXN),
            batch(2, 1, 7, ABORT),
            batch(3, 2, 8, TXN),
            batch(5, 1, 8, COMMIT),
            batch(6, 2, 7, TXN),
            batch(8, 2, 9, TXN),
            batch(10, 1, 7, ABORT),
            batch(11, 1, 9, ABORT),
        ]);
        fn check(log: &PartitionLog, first: i64, last: i64, expected: &[AbortedTxn]) {
            assert_eq!(
                log.aborted_overlapping(first, last),
                expected,
                "{first}..={last}"
            );
        }
        check(&log, 0, 1, &[aborted(7, 0, 2)]);
        check(&log, 3, 5, &[]);
        check(&log, 2, 6, &[aborted(7, 0, 2), aborted(7, 6, 10)]);
        check(&log, 9, 20, &[aborted(7, 6, 10), aborted(9, 8, 11)]);
        check(&log, 12, 20, &[]);
    }

    #[test]
    fn a_marker_without_records_aborts_nothing() {
        let log = log_of(&[batch(0, 1, 7, ABORT), batch(1, 1, 7, COMMIT)]);
        assert_eq!(log.aborted_overlapping(0, 10), vec![]);
        assert_eq!(log.last_stable_offset(), 2);
    }

    #[test]
    fn batches_read_twice_count_once() {
        let mut log = log_of(&[batch(0, 2, 7, TXN), batch(2, 1, 7, ABORT)]);
        let before = log.clone();
        log.apply(&batch(0, 2, 7, TXN));
        log.apply(&batch(2, 1, 7, ABORT));
        assert_eq!(log, before);
    }
}
