//! The corrections: which requests need their answer rewritten, and the rewriting of
//! READ_COMMITTED Fetch and ListOffsets answers from the log index.

use std::collections::HashSet;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{AbortedTransaction, PartitionData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProducerId,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, decode_request_header_from_buffer};

use crate::batch::{complete_batches, cut_at};
use crate::error::Error;
use crate::frame::RequestStart;
use crate::log_index::PartitionLog;
use crate::log_reader::LogReader;

/// A request whose answer the proxy rewrites, with what the rewriting needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A READ_COMMITTED Fetch.
    Fetch {
        api_version: i16,
        /// The request's `max_wait_ms`: how long the proxy may hold back an answer that
        /// its correction emptied.
        max_wait: Duration,
    },
    /// A READ_COMMITTED ListOffsets asking for some partition's latest offset.
    ListOffsets {
        api_version: i16,
        /// The (topic, partition)s asked for the latest offset (timestamp -1).
        latest: HashSet<(String, i32)>,
    },
}

/// What the answer to this request needs, or `None` when it passes unchanged.
pub fn inspect_request(start: RequestStart, body: &Bytes) -> Result<Option<Pending>, Error> {
    let Ok(api_key) = ApiKey::try_from(start.api_key) else {
        return Ok(None);
    };
    let api_version = start.api_version;
    match api_key {
        // Fetch has an isolation level from v4, ListOffsets from v2.
        ApiKey::Fetch if api_version >= 4 => {
            let request: FetchRequest = decode_request(body, "fetch request")?;
            if request.isolation_level != READ_COMMITTED {
                return Ok(None);
            }
            let max_wait_ms = u64::try_from(request.max_wait_ms).unwrap_or(0);
            Ok(Some(Pending::Fetch {
                api_version,
                max_wait: Duration::from_millis(max_wait_ms),
            }))
        }
        ApiKey::ListOffsets if api_version >= 2 => {
            let request: ListOffsetsRequest = decode_request(body, "list offsets request")?;
            if request.isolation_level != READ_COMMITTED {
                return Ok(None);
            }
            let latest: HashSet<(String, i32)> = request
                .topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .filter(|partition| partition.timestamp == LATEST_TIMESTAMP)
                        .map(|partition| (topic.name.0.to_string(), partition.partition_index))
                })
                .collect();
            if latest.is_empty() {
                return Ok(None);
            }
            Ok(Some(Pending::ListOffsets {
                api_version,
                latest,
            }))
        }
        _ => Ok(None),
    }
}

/// The answer to a pending request, corrected against the partitions' logs as they are now.
pub async fn rewrite_response(
    pending: &Pending,
    body: Bytes,
    log_reader: &LogReader,
) -> Result<Bytes, Error> {
    match pending {
        Pending::Fetch {
            api_version,
            max_wait,
        } => rewrite_fetch(*api_version, *max_wait, body, log_reader).await,
        Pending::ListOffsets {
            api_version,
            latest,
        } => rewrite_list_offsets(*api_version, latest, body, log_reader).await,
    }
}

const READ_COMMITTED: i8 = 1;
/// ListOffsets' timestamp for "the latest offset".
const LATEST_TIMESTAMP: i64 = -1;
/// The longest the proxy holds back an emptied fetch answer, whatever the client's
/// `max_wait_ms`.
const MAX_HOLD: Duration = Duration::from_secs(1);

async fn rewrite_fetch(
    api_version: i16,
    max_wait: Duration,
    mut body: Bytes,
    log_reader: &LogReader,
) -> Result<Bytes, Error> {
    let header_version = ApiKey::Fetch.response_header_version(api_version);
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|e| Error::codec("fetch response header decoding", e))?;
    let mut response = FetchResponse::decode(&mut body, api_version)
        .map_err(|e| Error::codec("fetch response decoding", e))?;
    let mut emptied = false;
    let mut any_records = false;
    for topic in &mut response.responses {
        // An unknown topic comes back with errors and a nil id, which no metadata names: there
        // is nothing to correct and no name to look up.
        if topic
            .partitions
            .iter()
            .all(|partition| partition.error_code != 0)
        {
            continue;
        }
        // From v13 a Fetch names topics by id only.
        let name = if api_version >= 13 {
            log_reader.topic_name(topic.topic_id).await?
        } else {
            topic.topic.0.to_string()
        };
        for partition in &mut topic.partitions {
            if partition.error_code != 0 {
                continue;
            }
            let log = log_reader
                .read_to_end(&name, partition.partition_index)
                .await?;
            let had_records = partition.records.as_ref().is_some_and(|r| !r.is_empty());
            let broker_last_stable_offset = partition.last_stable_offset;
            correct_fetch_partition(partition, &log)?;
            let has_records = partition.records.as_ref().is_some_and(|r| !r.is_empty());
            tracing::debug!(
                api_version,
                topic = %name,
                partition = partition.partition_index,
                broker.last_stable_offset = broker_last_stable_offset,
                last_stable_offset = partition.last_stable_offset,
                high_watermark = partition.high_watermark,
                n_aborted = partition.aborted_transactions.as_ref().map_or(0, Vec::len),
                had_records,
                has_records,
                "Fetch answer corrected."
            );
            emptied |= had_records && !has_records;
            any_records |= has_records;
        }
    }
    if emptied && !any_records {
        // The broker answered at once because it had records, all of them past the LSO. A
        // broker that knew better would have waited for data up to `max_wait_ms`; so does the
        // proxy, instead of letting the client fetch the same records again in a tight loop.
        tokio::time::sleep(max_wait.min(MAX_HOLD)).await;
    }
    encode_response(&header, header_version, &response, api_version, "fetch")
}

async fn rewrite_list_offsets(
    api_version: i16,
    latest: &HashSet<(String, i32)>,
    mut body: Bytes,
    log_reader: &LogReader,
) -> Result<Bytes, Error> {
    let header_version = ApiKey::ListOffsets.response_header_version(api_version);
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|e| Error::codec("list offsets response header decoding", e))?;
    let mut response = ListOffsetsResponse::decode(&mut body, api_version)
        .map_err(|e| Error::codec("list offsets response decoding", e))?;
    for topic in &mut response.topics {
        let name = topic.name.0.to_string();
        for partition in &mut topic.partitions {
            let key = (name.clone(), partition.partition_index);
            if partition.error_code != 0 || !latest.contains(&key) {
                continue;
            }
            let log = log_reader
                .read_to_end(&name, partition.partition_index)
                .await?;
            tracing::debug!(
                api_version,
                topic = %name,
                partition = partition.partition_index,
                broker.offset = partition.offset,
                last_stable_offset = log.last_stable_offset(),
                "ListOffsets answer corrected."
            );
            partition.offset = log.last_stable_offset();
        }
    }
    encode_response(
        &header,
        header_version,
        &response,
        api_version,
        "list offsets",
    )
}

/// Makes one partition of a READ_COMMITTED fetch answer what a broker that honours
/// transactions would send: records only below the LSO, the LSO itself, and the aborted
/// transactions among the records left.
pub fn correct_fetch_partition(
    partition: &mut PartitionData,
    log: &PartitionLog,
) -> Result<(), Error> {
    let last_stable_offset = log.last_stable_offset();
    partition.last_stable_offset = last_stable_offset;
    // Records past the LSO are cut whatever the index knows of them, so an index that is
    // behind the answer can only withhold records, never pass undecided ones.
    let Some(records) = partition.records.take() else {
        partition.aborted_transactions = Some(Vec::new());
        return Ok(());
    };
    let records = cut_at(&records, last_stable_offset);
    let batches = complete_batches(&records)?;
    let aborted = match (batches.first(), batches.last()) {
        (Some((first, _)), Some((last, _))) => {
            log.aborted_overlapping(first.base_offset, last.last_offset)
        }
        _ => Vec::new(),
    };
    partition.aborted_transactions = Some(
        aborted
            .into_iter()
            .map(|txn| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(txn.producer_id))
                    .with_first_offset(txn.first_offset)
            })
            .collect(),
    );
    partition.records = Some(records);
    Ok(())
}

fn decode_request<T: Decodable>(body: &Bytes, what: &'static str) -> Result<T, Error> {
    let mut buf = body.clone();
    decode_request_header_from_buffer(&mut buf).map_err(|e| Error::codec(what, e))?;
    let version = i16::from_be_bytes([body[2], body[3]]);
    let request = T::decode(&mut buf, version).map_err(|e| Error::codec(what, e))?;
    if buf.remaining() != 0 {
        return Err(Error::codec(
            what,
            format!("{} bytes left over after decoding", buf.remaining()),
        ));
    }
    Ok(request)
}

fn encode_response<T: Encodable>(
    header: &ResponseHeader,
    header_version: i16,
    response: &T,
    api_version: i16,
    what: &'static str,
) -> Result<Bytes, Error> {
    let mut out = BytesMut::new();
    header
        .encode(&mut out, header_version)
        .map_err(|e| Error::codec(what, e))?;
    response
        .encode(&mut out, api_version)
        .map_err(|e| Error::codec(what, e))?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::batch::tests::{batch, batch_of_epoch};
    use crate::batch::{BatchKind, ControlType};
    use crate::frame::request_start;

    const TXN: BatchKind = BatchKind::Transactional;
    const ABORT: BatchKind = BatchKind::Control(ControlType::Abort);
    const COMMIT: BatchKind = BatchKind::Control(ControlType::Commit);

    fn log_of(parts: &[Vec<u8>]) -> PartitionLog {
        let mut log = PartitionLog::starting_at(0);
        for (header, _) in complete_batches(&parts.concat()).expect("valid batches") {
            log.apply(&header);
        }
        log
    }

    fn aborted_pairs(partition: &PartitionData) -> Vec<(i64, i64)> {
        partition
            .aborted_transactions
            .as_ref()
            .expect("a list")
            .iter()
            .map(|txn| (txn.producer_id.0, txn.first_offset))
            .collect()
    }

    #[test]
    fn a_fetch_answer_loses_undecided_records_and_names_aborted_ones() {
        // 0-1 aborted (pid 7), 3-4 committed (pid 8), 6-7 open (pid 9), 8 plain.
        let parts = [
            batch(0, 2, 7, TXN),
            batch(2, 1, 7, ABORT),
            batch(3, 2, 8, TXN),
            batch(5, 1, 8, COMMIT),
            batch(6, 2, 9, TXN),
            batch(8, 1, -1, BatchKind::Plain),
        ];
        let log = log_of(&parts);
        let mut partition = PartitionData::default();
        partition.high_watermark = 9;
        partition.last_stable_offset = 9;
        partition.records = Some(Bytes::from(parts.concat()));
        correct_fetch_partition(&mut partition, &log).expect("corrected");
        assert_eq!(partition.last_stable_offset, 6);
        assert_eq!(partition.high_watermark, 9, "the high watermark is kept");
        assert_eq!(
            partition.records.as_deref(),
            Some(&parts[..4].concat()[..]),
            "batches from the LSO on are cut"
        );
        assert_eq!(aborted_pairs(&partition), vec![(7, 0)]);
    }

    #[test]
    fn an_aborted_transaction_whose_marker_is_past_the_answer_is_still_named() {
        let parts = [
            batch(0, 2, 7, TXN),
            batch(2, 2, 7, TXN),
            batch(4, 1, 7, ABORT),
        ];
        let log = log_of(&parts);
        let mut partition = PartitionData::default();
        partition.records = Some(Bytes::from(parts[1].clone()));
        correct_fetch_partition(&mut partition, &log).expect("corrected");
        assert_eq!(aborted_pairs(&partition), vec![(7, 0)]);
        assert_eq!(partition.last_stable_offset, 5);
    }

    /// The log of an exactly-once sink that was killed inside a transaction and restarted with
    /// its `transactional.id`, as tansu wrote it (measured): one record per batch, all by
    /// producer id 1; epoch 0 commits; the killed process's transaction (epoch 9) ends with an
    /// ABORT marker of epoch 9 when its successor's InitProducerId fences it; the successor
    /// (epoch 10) commits on. Only the aborted transaction is named, and only to answers that
    /// hold its records.
    fn restarted_sink_log() -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        let mut offset = 0;
        let mut transaction = |epoch: i16, records: i64, end: BatchKind| {
            for _ in 0..records {
                parts.push(batch_of_epoch(offset, 1, 1, epoch, TXN));
                offset += 1;
            }
            parts.push(batch_of_epoch(offset, 1, 1, epoch, end));
            offset += 1;
        };
        transaction(0, 4, COMMIT); // 0-3, marker 4
        transaction(0, 3, COMMIT); // 5-7, marker 8
        transaction(9, 3, ABORT); // 9-11, marker 12
        transaction(10, 3, COMMIT); // 13-15, marker 16
        transaction(10, 2, COMMIT); // 17-18, marker 19
        parts
    }

    #[test]
    fn after_a_fenced_transaction_the_same_producer_ids_commits_are_not_aborted() {
        let parts = restarted_sink_log();
        let log = log_of(&parts);
        assert_eq!(log.last_stable_offset(), 20);
        let answer_from = |first_part: usize| {
            let mut partition = PartitionData::default();
            partition.high_watermark = 20;
            partition.last_stable_offset = 20;
            partition.records = Some(Bytes::from(parts[first_part..].concat()));
            correct_fetch_partition(&mut partition, &log).expect("corrected");
            assert_eq!(partition.last_stable_offset, 20);
            assert_eq!(
                partition.records.as_deref(),
                Some(&parts[first_part..].concat()[..]),
                "nothing is cut: nothing is open"
            );
            aborted_pairs(&partition)
        };
        assert_eq!(answer_from(0), vec![(1, 9)], "an answer from the start");
        assert_eq!(answer_from(10), vec![(1, 9)], "an answer from inside it");
        assert_eq!(answer_from(12), vec![(1, 9)], "an answer from its marker");
        assert_eq!(answer_from(13), vec![], "an answer after its marker");
    }

    #[test]
    fn null_records_stay_null() {
        let mut partition = PartitionData::default();
        partition.records = None;
        correct_fetch_partition(&mut partition, &PartitionLog::starting_at(0)).expect("ok");
        assert_eq!(partition.records, None);
        assert_eq!(partition.last_stable_offset, 0);
        assert_eq!(aborted_pairs(&partition), vec![]);
    }

    fn request_body<T: Encodable>(api_key: ApiKey, api_version: i16, request: &T) -> Bytes {
        let mut header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(api_version)
            .with_correlation_id(42);
        header.client_id = Some(StrBytes::from_static_str("test"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api_key.request_header_version(api_version))
            .expect("header");
        request.encode(&mut body, api_version).expect("request");
        body.freeze()
    }

    fn inspect(body: &Bytes) -> Option<Pending> {
        inspect_request(request_start(body).expect("a request"), body).expect("decodes")
    }

    #[test]
    fn only_read_committed_requests_are_rewritten() {
        for api_version in [4, 11, 12, 16, 17] {
            let mut fetch = FetchRequest::default();
            fetch.max_wait_ms = 500;
            fetch.isolation_level = 1;
            assert_eq!(
                inspect(&request_body(ApiKey::Fetch, api_version, &fetch)),
                Some(Pending::Fetch {
                    api_version,
                    max_wait: Duration::from_millis(500)
                }),
                "fetch v{api_version}"
            );
            fetch.isolation_level = 0;
            assert_eq!(
                inspect(&request_body(ApiKey::Fetch, api_version, &fetch)),
                None
            );
        }
        let mut partition = ListOffsetsPartition::default();
        partition.partition_index = 3;
        partition.timestamp = -1;
        let mut earliest = partition.clone();
        earliest.partition_index = 4;
        earliest.timestamp = -2;
        let mut topic = ListOffsetsTopic::default();
        topic.name = TopicName(StrBytes::from_static_str("t"));
        topic.partitions = vec![partition, earliest];
        let mut list = ListOffsetsRequest::default();
        list.isolation_level = 1;
        list.topics = vec![topic];
        for api_version in [2, 5, 7, 9] {
            assert_eq!(
                inspect(&request_body(ApiKey::ListOffsets, api_version, &list)),
                Some(Pending::ListOffsets {
                    api_version,
                    latest: HashSet::from([("t".to_string(), 3)]),
                }),
                "list offsets v{api_version}"
            );
        }
        list.isolation_level = 0;
        assert_eq!(inspect(&request_body(ApiKey::ListOffsets, 7, &list)), None);
    }
}
