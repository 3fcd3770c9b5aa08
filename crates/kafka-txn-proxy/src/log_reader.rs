//! The proxy's own reader of partition logs: it fetches each partition upstream with
//! `isolation_level = 0` from offset 0 and keeps a [`PartitionLog`] per partition, read on
//! incrementally, so that a client's fetch answer can be judged against the whole log.
//!
//! A read ends at the high watermark its fetch answers report, not at the first answer that
//! brings nothing: tansu stops looking through a partition's batches once the Fetch's
//! `max_wait_ms` has passed and answers with what it found by then, possibly nothing, with no
//! error. Its memory storage lists every batch object of the partition, from the first, on
//! every fetch, so a long partition needs more than a millisecond or two. Measured from offset
//! 0 of a partition of 14,442 single-record batches: nothing with `max_wait_ms` 1 or 5, 484
//! batches with 20, a full 5 MB answer with 100. So a read starts with a short wait, which is
//! all an answer at the log end costs, and doubles it whenever an answer below the high
//! watermark comes back empty.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::batch::complete_batches;
use crate::error::Error;
use crate::log_index::PartitionLog;
use crate::upstream::Upstream;

/// Reads partition logs from the upstream broker, one request at a time.
pub struct LogReader {
    upstream: SocketAddr,
    state: Mutex<ReaderState>,
}

impl LogReader {
    pub fn new(upstream: SocketAddr) -> LogReader {
        LogReader {
            upstream,
            state: Mutex::new(ReaderState::default()),
        }
    }

    /// The index of `topic`'s `partition` after reading its log to the current end.
    ///
    /// The index is read after the client's fetch was answered, so it covers at least every
    /// record that answer holds (a log only grows).
    pub async fn read_to_end(&self, topic: &str, partition: i32) -> Result<PartitionLog, Error> {
        let mut state = self.state.lock().await;
        let key = (topic.to_string(), partition);
        let mut log = state.partitions.get(&key).cloned().unwrap_or_default();
        let result = state
            .read_on(self.upstream, topic, partition, &mut log)
            .await;
        // What was read stays read, even when a later request failed.
        state.partitions.insert(key, log.clone());
        result.map(|()| log)
    }

    /// The name of the topic with id `topic_id` (Fetch v13 and later name topics by id).
    pub async fn topic_name(&self, topic_id: Uuid) -> Result<String, Error> {
        let mut state = self.state.lock().await;
        if let Some(name) = state.topic_names.get(&topic_id) {
            return Ok(name.clone());
        }
        state.learn_topic_names(self.upstream).await?;
        state
            .topic_names
            .get(&topic_id)
            .cloned()
            .ok_or(Error::UnknownTopicId(topic_id))
    }
}

/// The Fetch version of the proxy's own reads: the last that names topics by name, which
/// tansu 0.6 (Fetch 0 to 17) answers.
const FETCH_VERSION: i16 = 12;
/// The Metadata version for learning topic ids (tansu 0.6 answers 0 to 12).
const METADATA_VERSION: i16 = 12;
/// How much one of the proxy's fetches may return. Generous, so that one batch always fits.
const FETCH_MAX_BYTES: i32 = 64 * 1024 * 1024;
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// The `max_wait_ms` of a read's first fetch. tansu polls its storage for as long as time is
/// left and it has found no more than `min_bytes`, so an answer at the log end takes all of
/// it: this is what a read that finds nothing new costs.
const FIRST_WAIT: Duration = Duration::from_millis(1);
/// The longest `max_wait_ms` a read lets tansu take (below the upstream call's timeout). A
/// fetch this patient that still brings nothing below the high watermark fails the read.
const LAST_WAIT: Duration = Duration::from_millis(4096);

#[derive(Default)]
struct ReaderState {
    /// `None` until the first read and after a failed one, which may have left an answer
    /// in flight on the old connection.
    upstream: Option<Upstream>,
    partitions: HashMap<(String, i32), PartitionLog>,
    topic_names: HashMap<Uuid, String>,
}

impl ReaderState {
    async fn connection(&mut self, addr: SocketAddr) -> Result<&mut Upstream, Error> {
        if self.upstream.is_none() {
            self.upstream = Some(Upstream::connect(addr).await?);
        }
        Ok(self.upstream.as_mut().expect("connected above"))
    }

    /// Reads on from `log.next_offset()` to the high watermark.
    async fn read_on(
        &mut self,
        addr: SocketAddr,
        topic: &str,
        partition: i32,
        log: &mut PartitionLog,
    ) -> Result<(), Error> {
        let mut wait = FIRST_WAIT;
        loop {
            let offset = log.next_offset();
            let answer = match self.fetch(addr, topic, partition, offset, wait).await {
                Ok(answer) => answer,
                Err(error) => {
                    self.upstream = None;
                    return Err(error);
                }
            };
            match answer.error_code {
                0 => {}
                // The log starts later than the index (the broker deleted its head): the index
                // starts over there.
                OFFSET_OUT_OF_RANGE if answer.log_start_offset > log.next_offset() => {
                    *log = PartitionLog::starting_at(answer.log_start_offset);
                    continue;
                }
                code => {
                    return Err(Error::Upstream {
                        what: "fetch",
                        code,
                    });
                }
            }
            let records = answer.records.unwrap_or_default();
            for (header, _) in complete_batches(&records)? {
                log.apply(&header);
            }
            let progressed = log.next_offset() > offset;
            match next_step(progressed, log.next_offset(), answer.high_watermark, wait) {
                Step::Done => return Ok(()),
                Step::Fetch(next_wait) => {
                    if next_wait > wait {
                        tracing::debug!(
                            topic,
                            partition,
                            offset,
                            high_watermark = answer.high_watermark,
                            ?wait,
                            ?next_wait,
                            "An empty fetch answer below the high watermark; fetching again with a longer wait."
                        );
                    }
                    wait = next_wait;
                }
                Step::GiveUp => {
                    return Err(Error::UpstreamBehind {
                        topic: topic.to_string(),
                        partition,
                        offset,
                        high_watermark: answer.high_watermark,
                        waited: wait,
                    });
                }
            }
        }
    }

    async fn fetch(
        &mut self,
        addr: SocketAddr,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait: Duration,
    ) -> Result<PartitionData, Error> {
        let mut fetch_partition = FetchPartition::default();
        fetch_partition.partition = partition;
        fetch_partition.fetch_offset = offset;
        fetch_partition.partition_max_bytes = FETCH_MAX_BYTES;
        let mut fetch_topic = FetchTopic::default();
        fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_string()));
        fetch_topic.partitions = vec![fetch_partition];
        let mut request = FetchRequest::default();
        // Not 0: tansu gives its storage only what is left of `max_wait_ms` to look, so
        // `max_wait_ms = 0` never finds anything.
        request.max_wait_ms = i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX);
        request.min_bytes = 1;
        request.max_bytes = FETCH_MAX_BYTES;
        request.isolation_level = 0;
        request.topics = vec![fetch_topic];
        let response: FetchResponse = self
            .connection(addr)
            .await?
            .call(ApiKey::Fetch, FETCH_VERSION, &request)
            .await?;
        if response.error_code != 0 {
            return Err(Error::Upstream {
                what: "fetch",
                code: response.error_code,
            });
        }
        response
            .responses
            .into_iter()
            .filter(|answer| answer.topic.0.as_str() == topic)
            .flat_map(|answer| answer.partitions)
            .find(|answer| answer.partition_index == partition)
            .ok_or_else(|| {
                Error::codec(
                    "fetch answer",
                    format!("no partition {topic}/{partition} in the proxy's own fetch answer"),
                )
            })
    }

    /// Asks the broker for every topic's id and name.
    async fn learn_topic_names(&mut self, addr: SocketAddr) -> Result<(), Error> {
        let mut request = MetadataRequest::default();
        request.topics = None; // all topics
        request.allow_auto_topic_creation = false;
        let call = self
            .connection(addr)
            .await?
            .call::<_, MetadataResponse>(ApiKey::Metadata, METADATA_VERSION, &request)
            .await;
        let response = call.inspect_err(|_| self.upstream = None)?;
        for topic in response.topics {
            if let Some(name) = topic.name {
                self.topic_names.insert(topic.topic_id, name.0.to_string());
            }
        }
        Ok(())
    }
}

/// What a read does after a fetch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The index has reached the high watermark (or the answer brought nothing and the index
    /// is there already): the read is done.
    Done,
    /// Fetch on, letting the broker take this long.
    Fetch(Duration),
    /// Even the longest wait brought nothing below the high watermark.
    GiveUp,
}

/// The step after an answer that took the index to `next_offset` (`progressed`: past where
/// the fetch started) and reported `high_watermark`, fetched with `max_wait_ms = wait`.
///
/// An empty answer below the high watermark is tansu having run out of time, not the log end:
/// the next fetch gets twice the time. A wait that worked is kept for the rest of the read,
/// since tansu's listing from the partition's start only gets longer as the read goes on.
fn next_step(progressed: bool, next_offset: i64, high_watermark: i64, wait: Duration) -> Step {
    if next_offset >= high_watermark {
        Step::Done
    } else if progressed {
        Step::Fetch(wait)
    } else if wait >= LAST_WAIT {
        Step::GiveUp
    } else {
        Step::Fetch((wait * 2).min(LAST_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex, PoisonError};

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
    use kafka_protocol::protocol::{Decodable, Encodable, decode_request_header_from_buffer};
    use tokio::net::TcpListener;

    use super::*;
    use crate::batch::tests::batch;
    use crate::batch::{BatchKind, ControlType};
    use crate::frame::{read_frame, write_frame};
    use crate::log_index::AbortedTxn;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_empty_answer_below_the_high_watermark_is_not_the_end() {
        // At or past the high watermark: done, whether or not this answer brought anything.
        assert_eq!(next_step(true, 10, 10, MS), Step::Done);
        assert_eq!(next_step(false, 10, 10, MS), Step::Done);
        assert_eq!(next_step(false, 10, 0, MS), Step::Done);
        // Below it: on with the same wait after progress, with twice the wait after none.
        assert_eq!(next_step(true, 5, 10, 8 * MS), Step::Fetch(8 * MS));
        assert_eq!(next_step(false, 5, 10, MS), Step::Fetch(2 * MS));
        assert_eq!(next_step(false, 5, 10, 3000 * MS), Step::Fetch(LAST_WAIT));
        assert_eq!(next_step(false, 5, 10, LAST_WAIT), Step::GiveUp);
    }

    /// A broker whose Fetch answers are what the `TANSU_BIN` build gives on a long partition:
    /// nothing unless `max_wait_ms` is at least `needed_wait_ms`, and then at most
    /// `per_answer` batches from the fetch offset; always the right high watermark. Returns its
    /// address and the `max_wait_ms` of every fetch it answered.
    async fn time_boxed_broker(
        log: Vec<Vec<u8>>,
        needed_wait_ms: i32,
        per_answer: usize,
    ) -> (SocketAddr, Arc<StdMutex<Vec<i32>>>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let waits = Arc::new(StdMutex::new(Vec::new()));
        let seen = Arc::clone(&waits);
        let records = log.concat();
        let batches: Vec<(i64, i64, Bytes)> = {
            let mut start = 0;
            complete_batches(&records)
                .expect("valid batches")
                .into_iter()
                .map(|(header, end)| {
                    let bytes = Bytes::copy_from_slice(&records[start..end]);
                    start = end;
                    (header.base_offset, header.last_offset, bytes)
                })
                .collect()
        };
        let high_watermark = batches.last().map_or(0, |(_, last, _)| last + 1);
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            while let Some(body) = read_frame(&mut stream).await.expect("a request") {
                let mut buf = body.clone();
                let header = decode_request_header_from_buffer(&mut buf).expect("header");
                let version = header.request_api_version;
                assert_eq!(header.request_api_key, ApiKey::Fetch as i16, "only fetches");
                let request = FetchRequest::decode(&mut buf, version).expect("fetch request");
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request.max_wait_ms);
                let fetch_offset = request.topics[0].partitions[0].fetch_offset;
                let found: Vec<u8> = if request.max_wait_ms >= needed_wait_ms {
                    batches
                        .iter()
                        .filter(|(_, last, _)| *last >= fetch_offset)
                        .take(per_answer)
                        .flat_map(|(_, _, bytes)| bytes.iter().copied())
                        .collect()
                } else {
                    Vec::new()
                };
                let mut partition = PartitionData::default();
                partition.partition_index = request.topics[0].partitions[0].partition;
                partition.high_watermark = high_watermark;
                partition.last_stable_offset = high_watermark;
                partition.records = (!found.is_empty()).then(|| Bytes::from(found));
                let mut topic = FetchableTopicResponse::default();
                topic.topic = request.topics[0].topic.clone();
                topic.partitions = vec![partition];
                let mut response = FetchResponse::default();
                response.responses = vec![topic];
                let mut out = BytesMut::new();
                ResponseHeader::default()
                    .with_correlation_id(header.correlation_id)
                    .encode(&mut out, ApiKey::Fetch.response_header_version(version))
                    .expect("response header");
                response.encode(&mut out, version).expect("response");
                write_frame(&mut stream, &out)
                    .await
                    .expect("answer written");
            }
        });
        (addr, waits)
    }

    fn waits_so_far(waits: &StdMutex<Vec<i32>>) -> Vec<i32> {
        std::mem::take(&mut *waits.lock().unwrap_or_else(PoisonError::into_inner))
    }

    #[tokio::test]
    async fn a_read_goes_on_to_the_high_watermark_through_empty_answers() {
        const TXN: BatchKind = BatchKind::Transactional;
        let mut log = Vec::new();
        for offset in 0..100 {
            log.push(batch(offset, 1, 1, TXN));
        }
        log.push(batch(100, 1, 1, BatchKind::Control(ControlType::Commit)));
        for offset in 101..110 {
            log.push(batch(offset, 1, 1, TXN));
        }
        log.push(batch(110, 1, 1, BatchKind::Control(ControlType::Abort)));
        for offset in 111..200 {
            log.push(batch(offset, 1, 1, TXN));
        }
        log.push(batch(200, 1, 1, BatchKind::Control(ControlType::Commit)));
        let (addr, waits) = time_boxed_broker(log, 8, 50).await;
        let reader = LogReader::new(addr);

        let index = reader.read_to_end("t", 0).await.expect("read");
        assert_eq!(index.next_offset(), 201, "read to the end");
        assert_eq!(index.last_stable_offset(), 201);
        assert_eq!(
            index.aborted_overlapping(0, 200),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 101,
                marker_offset: 110,
            }]
        );
        // 1, 2 and 4 ms bring nothing; 8 ms brings 50 batches an answer, and the read stops
        // at the high watermark without another fetch.
        assert_eq!(waits_so_far(&waits), [1, 2, 4, 8, 8, 8, 8, 8]);

        // At the end, one short fetch.
        let again = reader.read_to_end("t", 0).await.expect("read");
        assert_eq!(again, index);
        assert_eq!(waits_so_far(&waits), [1]);
    }

    #[tokio::test]
    async fn a_broker_that_never_answers_below_its_high_watermark_fails_the_read() {
        let log = vec![batch(0, 1, -1, BatchKind::Plain)];
        let (addr, waits) = time_boxed_broker(log, i32::MAX, 1).await;
        let reader = LogReader::new(addr);
        let error = reader.read_to_end("t", 0).await.expect_err("no read");
        assert!(
            matches!(
                error,
                Error::UpstreamBehind {
                    offset: 0,
                    high_watermark: 1,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(waits_so_far(&waits).last(), Some(&4096));
    }
}
