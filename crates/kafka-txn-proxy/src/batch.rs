//! Raw record-batch headers: enough of the v2 batch format to tell data from control batches,
//! see which producer wrote a batch, and cut a records blob at a batch boundary.
//!
//! Only headers are read. A data batch's records may be compressed, but the 61-byte header in
//! front of them never is, and control batches are never compressed, so nothing here needs a
//! codec.

use std::fmt;

use bytes::Bytes;

/// What a batch header says about one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The offset of the batch's first record.
    pub base_offset: i64,
    /// The offset of the batch's last record (`base_offset + lastOffsetDelta`).
    pub last_offset: i64,
    /// The producer id; -1 for a producer without idempotence.
    pub producer_id: i64,
    /// Data or control, transactional or not.
    pub kind: BatchKind,
}

/// The kinds of batch that matter to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Records written outside any transaction.
    Plain,
    /// Records written inside a transaction of `producer_id`.
    Transactional,
    /// A transaction marker of `producer_id`.
    Control(ControlType),
}

/// The type of a control record (the key's second int16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// A control type the proxy does not know; it ends no transaction.
    Other(i16),
}

/// A records blob that is not a sequence of v2 record batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// Where in the blob the bad batch starts.
    pub position: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad record batch at byte {}: {}",
            self.position, self.reason
        )
    }
}

impl std::error::Error for BatchError {}

/// The complete batches at the start of `records`, each with the byte position where it ends.
///
/// A broker may end a fetch answer with a partial batch (cut by `max_bytes`); that tail is not
/// a batch yet and is left out, as clients leave it out.
pub fn complete_batches(records: &[u8]) -> Result<Vec<(BatchHeader, usize)>, BatchError> {
    let mut batches = Vec::new();
    let mut position = 0;
    while records.len() - position >= LOG_OVERHEAD {
        let length = read_i32(records, position + 8);
        let Ok(length) = usize::try_from(length) else {
            return Err(BatchError {
                position,
                reason: "negative batch length",
            });
        };
        let end = position + LOG_OVERHEAD + length;
        if end > records.len() {
            break;
        }
        batches.push((parse_header(&records[position..end], position)?, end));
        position = end;
    }
    Ok(batches)
}

/// `records` without every batch whose base offset is at or after `offset` (a partial tail
/// batch included): what a broker would have returned had its log ended at `offset`.
pub fn cut_at(records: &Bytes, offset: i64) -> Bytes {
    let mut position = 0;
    while records.len() - position >= 8 {
        if read_i64(records, position) >= offset || records.len() - position < LOG_OVERHEAD {
            break;
        }
        let Ok(length) = usize::try_from(read_i32(records, position + 8)) else {
            break;
        };
        // A partial tail batch below the cut stays, exactly as the broker sent it.
        position = (position + LOG_OVERHEAD + length).min(records.len());
    }
    records.slice(..position)
}

/// `baseOffset int64` and `batchLength int32`: the bytes in front of what `batchLength` counts.
const LOG_OVERHEAD: usize = 12;
/// The fixed part of a v2 batch, up to and including `recordCount`.
const HEADER_LEN: usize = 61;
const MAGIC_AT: usize = 16;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const PRODUCER_ID_AT: usize = 43;
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

fn parse_header(batch: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
    let error = |reason| BatchError { position, reason };
    if batch.len() < HEADER_LEN {
        return Err(error("shorter than a v2 batch header"));
    }
    if batch[MAGIC_AT] != 2 {
        return Err(error("not a v2 record batch (magic is not 2)"));
    }
    let base_offset = read_i64(batch, 0);
    let attributes = read_i16(batch, ATTRIBUTES_AT);
    let header = |kind| BatchHeader {
        base_offset,
        last_offset: base_offset + i64::from(read_i32(batch, LAST_OFFSET_DELTA_AT)),
        producer_id: read_i64(batch, PRODUCER_ID_AT),
        kind,
    };
    if attributes & CONTROL != 0 {
        let control_type = control_type(&batch[HEADER_LEN..]).ok_or_else(|| {
            error("a control batch whose first record has no version and type key")
        })?;
        return Ok(header(BatchKind::Control(control_type)));
    }
    if attributes & TRANSACTIONAL != 0 {
        return Ok(header(BatchKind::Transactional));
    }
    Ok(header(BatchKind::Plain))
}

/// The type in a control record's key. The record is `length varint, attributes int8,
/// timestampDelta varlong, offsetDelta varint, keyLength varint, key`, and the key is
/// `version int16, type int16`.
fn control_type(record: &[u8]) -> Option<ControlType> {
    let mut cursor = 0;
    read_varint(record, &mut cursor)?; // length
    cursor += 1; // attributes
    read_varint(record, &mut cursor)?; // timestampDelta
    read_varint(record, &mut cursor)?; // offsetDelta
    let key_length = read_varint(record, &mut cursor)?;
    if key_length < 4 || record.len() < cursor + 4 {
        return None;
    }
    Some(match read_i16(record, cursor + 2) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    })
}

/// A zigzag varint (or varlong) at `cursor`, which moves past it.
fn read_varint(bytes: &[u8], cursor: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*cursor)?;
        *cursor += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let magnitude = i64::try_from(raw >> 1).ok()?;
            return Some(if raw & 1 == 0 {
                magnitude
            } else {
                -magnitude - 1
            });
        }
    }
    None
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A v2 batch of `count` records from `base_offset`, with made-up record bytes behind the
    /// header (the parser never reads a data record). A control batch gets one real control
    /// record.
    pub(crate) fn batch(
        base_offset: i64,
        count: i32,
        producer_id: i64,
        kind: BatchKind,
    ) -> Vec<u8> {
        batch_of_epoch(base_offset, count, producer_id, 0, kind)
    }

    /// [`batch`] written by `producer_id` at `producer_epoch`.
    pub(crate) fn batch_of_epoch(
        base_offset: i64,
        count: i32,
        producer_id: i64,
        producer_epoch: i16,
        kind: BatchKind,
    ) -> Vec<u8> {
        let attributes: i16 = match kind {
            BatchKind::Plain => 0,
            BatchKind::Transactional => TRANSACTIONAL,
            BatchKind::Control(_) => TRANSACTIONAL | CONTROL,
        };
        let records: Vec<u8> = match kind {
            BatchKind::Control(control) => {
                let control_type: i16 = match control {
                    ControlType::Abort => 0,
                    ControlType::Commit => 1,
                    ControlType::Other(other) => other,
                };
                // attributes 0, timestampDelta 0, offsetDelta 0, keyLength 4 (zigzag 8), key,
                // valueLength 6 (zigzag 12), value (version 0, coordinator epoch 0), no headers.
                let mut body = vec![0, 0, 0, 8, 0, 0];
                body.extend_from_slice(&control_type.to_be_bytes());
                body.extend_from_slice(&[12, 0, 0, 0, 0, 0, 0, 0]);
                let mut record = vec![u8::try_from(body.len() * 2).expect("short record")];
                record.extend_from_slice(&body);
                record
            }
            _ => vec![0xAB; 7 * usize::try_from(count).expect("count")],
        };
        let mut after_length = Vec::new();
        after_length.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
        after_length.push(2); // magic
        after_length.extend_from_slice(&0u32.to_be_bytes()); // crc (never checked here)
        after_length.extend_from_slice(&attributes.to_be_bytes());
        after_length.extend_from_slice(&(count - 1).to_be_bytes());
        after_length.extend_from_slice(&[0; 16]); // base and max timestamp
        after_length.extend_from_slice(&producer_id.to_be_bytes());
        after_length.extend_from_slice(&producer_epoch.to_be_bytes());
        after_length.extend_from_slice(&0i32.to_be_bytes()); // base sequence
        after_length.extend_from_slice(&count.to_be_bytes());
        after_length.extend_from_slice(&records);
        let mut out = base_offset.to_be_bytes().to_vec();
        out.extend_from_slice(
            &i32::try_from(after_length.len())
                .expect("len")
                .to_be_bytes(),
        );
        out.extend_from_slice(&after_length);
        out
    }

    fn header(base_offset: i64, count: i64, producer_id: i64, kind: BatchKind) -> BatchHeader {
        BatchHeader {
            base_offset,
            last_offset: base_offset + count - 1,
            producer_id,
            kind,
        }
    }

    #[test]
    fn headers_of_data_and_control_batches() {
        let commit = BatchKind::Control(ControlType::Commit);
        let abort = BatchKind::Control(ControlType::Abort);
        let mut records = batch(0, 3, -1, BatchKind::Plain);
        records.extend(batch(3, 2, 7, BatchKind::Transactional));
        records.extend(batch(5, 1, 7, commit));
        records.extend(batch(6, 4, 8, BatchKind::Transactional));
        records.extend(batch(10, 1, 8, abort));
        let headers: Vec<BatchHeader> = complete_batches(&records)
            .expect("valid batches")
            .into_iter()
            .map(|(header, _)| header)
            .collect();
        assert_eq!(
            headers,
            vec![
                header(0, 3, -1, BatchKind::Plain),
                header(3, 2, 7, BatchKind::Transactional),
                header(5, 1, 7, commit),
                header(6, 4, 8, BatchKind::Transactional),
                header(10, 1, 8, abort),
            ]
        );
    }

    #[test]
    fn a_partial_tail_batch_is_not_a_batch_yet() {
        let mut records = batch(0, 2, -1, BatchKind::Plain);
        let first_end = records.len();
        let second = batch(2, 2, -1, BatchKind::Plain);
        records.extend_from_slice(&second[..second.len() - 1]);
        let batches = complete_batches(&records).expect("valid batches");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].1, first_end);
    }

    #[test]
    fn an_old_message_format_is_an_error() {
        let mut records = batch(0, 1, -1, BatchKind::Plain);
        records[MAGIC_AT] = 1;
        assert_eq!(
            complete_batches(&records).map_err(|e| e.reason),
            Err("not a v2 record batch (magic is not 2)")
        );
    }

    #[test]
    fn cut_keeps_whole_batches_below_the_offset() {
        fn check(cut: i64, expected_batches: usize) {
            let parts = [
                batch(0, 3, -1, BatchKind::Plain),
                batch(3, 2, 7, BatchKind::Transactional),
                batch(5, 1, 7, BatchKind::Control(ControlType::Commit)),
            ];
            let records = Bytes::from(parts.concat());
            let expected: usize = parts[..expected_batches].iter().map(Vec::len).sum();
            assert_eq!(cut_at(&records, cut).len(), expected, "cut at {cut}");
        }
        check(0, 0);
        check(1, 1);
        check(3, 1);
        check(4, 2);
        check(5, 2);
        check(6, 3);
        check(i64::MAX, 3);
    }

    #[test]
    fn cut_keeps_a_partial_tail_below_the_offset() {
        let mut records = batch(0, 2, -1, BatchKind::Plain);
        let second = batch(2, 2, -1, BatchKind::Plain);
        records.extend_from_slice(&second[..20]);
        let records = Bytes::from(records);
        assert_eq!(cut_at(&records, 10).len(), records.len());
        assert_eq!(cut_at(&records, 2).len(), records.len() - 20);
    }

    #[test]
    fn varints_are_zigzag() {
        fn check(bytes: &[u8], expected: i64) {
            let mut cursor = 0;
            assert_eq!(read_varint(bytes, &mut cursor), Some(expected), "{bytes:?}");
            assert_eq!(cursor, bytes.len());
        }
        check(&[0], 0);
        check(&[1], -1);
        check(&[2], 1);
        check(&[8], 4);
        check(&[0xac, 0x02], 150);
        check(&[0xff, 0x01], -128);
    }
}
