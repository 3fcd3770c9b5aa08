//! A test-only Kafka-protocol proxy that makes `isolation.level=read_committed` correct in
//! front of tansu 0.6, so that tests of a transactional (exactly-once) producer can judge what
//! a real read_committed consumer would see.
//!
//! # What tansu 0.6 gets wrong
//!
//! Measured with rdkafka 0.39 (librdkafka 2.12.1), which speaks Fetch v16 and ListOffsets v7
//! to it, on one partition holding a committed transaction (offsets 0-2, COMMIT marker at 3),
//! an aborted one (4-6, ABORT marker at 7), an open one (8-9) and a record without a
//! transaction (10); the tests in `tests/it/` pin these down.
//!
//! - **Fetch never names aborted transactions.** Every answer carries an empty
//!   `aborted_transactions`, although the log holds the ABORT marker. A read_committed client
//!   drops an aborted transaction's records only when the answer names it, so librdkafka
//!   delivers offsets 4-6.
//! - **ListOffsets (latest, read_committed) is wrong while a transaction is open**: it answered
//!   0 where the last stable offset is 8. Once nothing is open it answers the high watermark,
//!   which is right.
//! - **An abandoned transaction is never timed out.** A producer that disappears mid-transaction
//!   (librdkafka sends no EndTxn when destroyed) leaves its transaction open well past
//!   `transaction.timeout.ms` (set to 5 s, still open 12 s later), so the last stable offset stays
//!   at its first record and read_committed sees nothing written after it. tansu aborts it
//!   (writes an ABORT marker) only when a producer with the same `transactional.id` calls
//!   InitProducerId. The proxy cannot fix this; it is the broker's coordinator's job.
//! - **A Fetch answers with what tansu found within `max_wait_ms`, which may be nothing.** The
//!   `TANSU_BIN` build (it reports 0.6.0, but its fetch path is that of tansu's main branch
//!   after v0.6.0, from commit e2a6eab "propagate max_wait into storage") stops listing a
//!   partition's batches when the wait is over. Its memory storage lists the whole partition
//!   from the start on every fetch, so on a partition of some thousands of batches a fetch
//!   with `max_wait_ms` of a few milliseconds comes back empty, with no error and the right
//!   high watermark. Clients just fetch again; a reader that takes an empty answer for the log
//!   end stops short. The proxy's own reads go by the high watermark (`log_reader`).
//!
//! What tansu gets right, in the same measurements: COMMIT and ABORT markers are written where
//! they belong, InitProducerId fences the old producer, a read_committed Fetch carries the right
//! `last_stable_offset` and returns no record at or past it, and the high watermark is right.
//!
//! # What the proxy corrects
//!
//! It forwards every request and answer unchanged, one upstream connection per client
//! connection, except the answers to READ_COMMITTED requests:
//!
//! - Fetch: per partition, `aborted_transactions` lists every aborted transaction with records
//!   in the answer, `last_stable_offset` is the first offset of the earliest open transaction
//!   (else the log end), and record batches at or past it are cut off. The last two repeat
//!   what tansu already does; they are kept so the answer is right by construction.
//! - ListOffsets with timestamp -1 (latest): the last stable offset.
//!
//! To know the markers it reads each partition's log itself, READ_UNCOMMITTED from its start
//! to the high watermark, on a connection of its own, and keeps an index per partition that
//! later reads extend (`log_index`). It reads only batch headers, which are never compressed.
//!
//! # Use
//!
//! The broker must advertise the proxy's address, or clients would follow Metadata and
//! FindCoordinator answers around it. So: [`TxnProxy::bind`], start the broker with
//! `--listener-url tcp://127.0.0.1:<broker port>` and `--advertised-listener-url
//! tcp://<proxy address>`, then [`BoundProxy::serve`] with the broker's address. Dropping the
//! [`TxnProxy`] stops it.
//!
//! # Limits
//!
//! - One upstream broker, as tansu is; nothing follows partition leaders elsewhere.
//! - Every partition a read_committed client fetches is read from its start once, then on
//!   from where the index stopped: at least one extra round trip per partition per corrected
//!   answer, more while tansu needs longer waits to get through a long partition (the wait
//!   doubles from 1 ms up to about 4 s; a partition that still answers nothing below its high
//!   watermark fails the read). Fine for tests, not for large logs.
//! - The index trusts that the log only grows. A broker replaced by an empty one under the same
//!   proxy needs a new proxy. (A log whose head was deleted is followed from its new start.)
//! - Record batches of format v2 only; an older message format is an error.
//! - Fetch v4-18 and ListOffsets v2-10 (the `kafka-protocol` crate's range); older versions
//!   have no isolation level, so there is nothing to correct.
//! - When an answer cannot be corrected (undecodable, the upstream read fails), the proxy
//!   closes the client's connection and logs a warning rather than pass an uncorrected answer.
//! - An answer that the cut left empty is held back for the request's `max_wait_ms` (at most
//!   1 s), as a broker waiting for data would, so the client does not spin.

mod batch;
mod connection;
mod error;
mod frame;
mod log_index;
mod log_reader;
mod proxy;
mod rewrite;
mod upstream;

pub use proxy::{BoundProxy, TxnProxy};
