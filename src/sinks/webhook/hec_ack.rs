//! Splunk HEC indexer acknowledgement (`ack = true`): the data channel, the ack endpoint's
//! URL, the ack poll's request and answer, Splunk's error codes, and the bookkeeping of the
//! acknowledgements a batch still waits for.
//!
//! Protocol (Splunk's "About HTTP Event Collector Indexer Acknowledgment"): every request to
//! the event endpoint names a data channel (`X-Splunk-Request-Channel: <GUID>`) and is
//! answered `{"text":"Success","code":0,"ackId":N}`. `POST /services/collector/ack` with
//! `{"acks":[N,...]}` on the same channel answers `{"acks":{"N":true|false,...}}`; `true`
//! means the request's events are indexed. Splunk answers `true` once and then forgets the
//! id, and a channel's pending ids do not survive a Splunk restart, so an id that never comes
//! back `true` is the sender's to send again.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

/// The header that names the data channel.
pub const CHANNEL_HEADER: &str = "x-splunk-request-channel";

/// How often an ack answer that cannot be read is asked again before the round counts as
/// "nothing acknowledged".
pub const UNREADABLE_ANSWER_ATTEMPTS: u32 = 3;

/// Indexer acknowledgement settings of one webhook sink, resolved at build time.
#[derive(Debug, Clone)]
pub struct HecAck {
    /// The data channel (a GUID) every request names.
    pub channel: String,
    /// `…/services/collector/ack?channel=<channel>`.
    pub url: Url,
    /// How long a chunk may wait for its acknowledgement before it is sent again.
    pub timeout: Duration,
    /// Pause between two ack polls.
    pub poll_interval: Duration,
}

impl HecAck {
    /// The settings for events sent to `event_url` on `channel` (a new random channel when
    /// `None`).
    pub fn new(
        event_url: &Url,
        channel: Option<&str>,
        timeout: Duration,
        poll_interval: Duration,
    ) -> Result<HecAck, String> {
        let channel = channel.map_or_else(new_channel, str::to_string);
        let mut url = ack_url(event_url)?;
        url.query_pairs_mut().append_pair("channel", &channel);
        Ok(HecAck {
            channel,
            url,
            timeout,
            poll_interval,
        })
    }
}

/// A random GUID in the UUID version 4 shape, e.g. `0f8c2a4e-3b1d-4c55-9a7e-1d2c3b4a5f60`.
/// A channel's pending acknowledgements do not outlive the process that waits for them, so
/// each process start takes a new one.
pub fn new_channel() -> String {
    let bits = fastrand::u128(..);
    // Version 4 and the RFC 4122 variant, so strict GUID parsers take it.
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `text` is a GUID in the 8-4-4-4-12 hexadecimal form Splunk takes as a channel.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The ack endpoint of the HEC that `event_url` sends to: `.../services/collector/event`,
/// `.../services/collector` and `.../services/collector/raw` (also the `/1.0` forms, with or
/// without a trailing slash, any path prefix before `/services/` kept) become `.../services/collector/ack`; the
/// query is dropped.
pub fn ack_url(event_url: &Url) -> Result<Url, String> {
    let path = event_url.path().trim_end_matches('/');
    let base = ["/event", "/event/1.0", "/raw", "/raw/1.0", ""]
        .iter()
        .filter_map(|tail| path.strip_suffix(tail))
        .find(|base| base.ends_with("/services/collector"))
        .ok_or_else(|| {
            format!(
                "ack = true needs a HEC endpoint URL ending in /services/collector/event, \
                 /services/collector or /services/collector/raw, not {path:?}"
            )
        })?;
    let mut url = event_url.clone();
    url.set_path(&format!("{base}/ack"));
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The body of an ack poll: `{"acks":[1,2,3]}`.
pub fn ack_request_body(ack_ids: &[u64]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "acks": ack_ids })).expect("ids serialize")
}

/// The `ackId` of an event endpoint's success answer, `None` when it has none (indexer
/// acknowledgement is disabled on the token: Splunk then answers a bare
/// `{"text":"Success","code":0}`).
pub fn event_ack_id(reply: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "ackId")]
        ack_id: Option<u64>,
    }
    serde_json::from_str::<Answer>(reply).ok()?.ack_id
}

/// An ack poll's answer: the status of each id asked about. Ids missing from the answer are
/// not acknowledged. `None` when the answer is not JSON or has no `acks` object: such an
/// answer acknowledges nothing.
pub fn parse_ack_answer(reply: &str) -> Option<HashMap<u64, bool>> {
    #[derive(Deserialize)]
    struct Answer {
        acks: BTreeMap<String, serde_json::Value>,
    }
    let answer: Answer = serde_json::from_str(reply).ok()?;
    Some(
        answer
            .acks
            .into_iter()
            .filter_map(|(id, status)| {
                // Only a JSON `true` acknowledges; `"true"`, 1 or null do not.
                Some((
                    id.trim().parse().ok()?,
                    status == serde_json::Value::Bool(true),
                ))
            })
            .collect(),
    )
}

/// What to do when the HEC token has no indexer acknowledgement.
pub const ACK_DISABLED: &str = "indexer acknowledgement is disabled on the HEC token: enable \
     \"Indexer acknowledgement\" on the token in Splunk, or set ack = false";

/// What the operator should do about a HEC error answer (`{"text":..,"code":N}`), for the
/// codes that need an operator; `None` for the others.
pub fn operator_hint(reply: &str) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct HecError {
        code: i64,
    }
    match serde_json::from_str::<HecError>(reply).ok()?.code {
        2..=4 => Some("the HEC token is missing or invalid: check hec_token_file"),
        1 => Some("the HEC token is disabled: enable it in Splunk"),
        7 => Some("the event names an index the HEC token may not write: check hec_index"),
        10 | 11 => Some(
            "the HEC refused the data channel: with indexer acknowledgement on the token, set \
             ack = true (and leave channel unset or set it to a GUID)",
        ),
        14 => Some(ACK_DISABLED),
        _ => None,
    }
}

/// The chunks of one batch that wait for their acknowledgement, by ackId.
#[derive(Debug)]
pub struct PendingAcks<T> {
    pending: BTreeMap<u64, Waiting<T>>,
}

#[derive(Debug)]
struct Waiting<T> {
    chunk: T,
    sent_at: Instant,
}

impl<T> Default for PendingAcks<T> {
    fn default() -> Self {
        PendingAcks {
            pending: BTreeMap::new(),
        }
    }
}

impl<T> PendingAcks<T> {
    /// Records that `chunk` was accepted at `sent_at` with `ack_id`. Returns a chunk that
    /// waited under the same id: Splunk numbers ids anew after a restart, so that chunk's
    /// acknowledgement is lost and it must be sent again.
    pub fn insert(&mut self, ack_id: u64, chunk: T, sent_at: Instant) -> Option<T> {
        self.pending
            .insert(ack_id, Waiting { chunk, sent_at })
            .map(|displaced| displaced.chunk)
    }

    /// The ids to poll, ascending.
    pub fn ack_ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// Whether every chunk was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many chunks still wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Drops the chunks `answer` acknowledged (`true`); returns how many.
    pub fn settle(&mut self, answer: &HashMap<u64, bool>) -> usize {
        let before = self.pending.len();
        self.pending
            .retain(|ack_id, _| answer.get(ack_id) != Some(&true));
        before - self.pending.len()
    }

    /// Takes out the chunks sent `timeout` or longer before `now`, with their ids, to send
    /// them again.
    pub fn take_expired(&mut self, now: Instant, timeout: Duration) -> Vec<(u64, T)> {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, waiting)| now.saturating_duration_since(waiting.sent_at) >= timeout)
            .map(|(ack_id, _)| *ack_id)
            .collect();
        expired
            .into_iter()
            .filter_map(|ack_id| Some((ack_id, self.pending.remove(&ack_id)?.chunk)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_urls_are_derived_from_the_event_url() {
        fn check(event_url: &str, expected: Result<&str, &str>) {
            let url = Url::parse(event_url).unwrap();
            match (ack_url(&url), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_str(), want, "{event_url}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{event_url}: {got}"),
                (got, want) => panic!("{event_url}: got {got:?}, want {want:?}"),
            }
        }
        check(
            "https://splunk:8088/services/collector/event",
            Ok("https://splunk:8088/services/collector/ack"),
        );
        check(
            "https://splunk:8088/services/collector",
            Ok("https://splunk:8088/services/collector/ack"),
        );
        check(
            "https://splunk:8088/services/collector/",
            Ok("https://splunk:8088/services/collector/ack"),
        );
        check(
            "https://splunk:8088/services/collector/raw?sourcetype=x&channel=old",
            Ok("https://splunk:8088/services/collector/ack"),
        );
        check(
            "http://127.0.0.1:1234/splunk/hec/services/collector/event/",
            Ok("http://127.0.0.1:1234/splunk/hec/services/collector/ack"),
        );
        check(
            "https://http-inputs-acme.splunkcloud.com/services/collector/event/1.0",
            Ok("https://http-inputs-acme.splunkcloud.com/services/collector/ack"),
        );
        check(
            "https://splunk:8088/services/collector/events",
            Err("/services/collector/events"),
        );
        check("https://collector.example.com/lacework", Err("ack = true"));
        check(
            "https://example.com/myservices/collector",
            Err("ack = true"),
        );
    }

    #[test]
    fn the_channel_is_named_in_the_ack_url_and_is_a_guid() {
        let url = Url::parse("https://splunk:8088/services/collector/event").unwrap();
        let ack = HecAck::new(&url, None, Duration::from_secs(60), Duration::from_secs(1)).unwrap();
        assert!(is_guid(&ack.channel), "{}", ack.channel);
        assert_eq!(
            ack.url.as_str(),
            format!(
                "https://splunk:8088/services/collector/ack?channel={}",
                ack.channel
            )
        );
        let other = HecAck::new(&url, None, Duration::from_secs(60), Duration::from_secs(1))
            .unwrap()
            .channel;
        assert_ne!(ack.channel, other, "each start takes a new channel");
        let fixed = "11111111-2222-4333-8444-555555555555";
        let ack = HecAck::new(
            &url,
            Some(fixed),
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(ack.channel, fixed);
        for _ in 0..100 {
            let channel = new_channel();
            assert!(is_guid(&channel), "{channel}");
            assert_eq!(&channel[14..15], "4", "version 4: {channel}");
            assert!("89ab".contains(&channel[19..20]), "variant: {channel}");
        }
        for bad in [
            "",
            "not-a-guid",
            "11111111-2222-4333-8444-55555555555",
            "11111111-2222-4333-8444-55555555555g",
            "11111111222243338444555555555555",
        ] {
            assert!(!is_guid(bad), "{bad}");
        }
    }

    #[test]
    fn ack_answers_are_read_strictly() {
        fn check(reply: &str, expected: Option<&[(u64, bool)]>) {
            let expected: Option<HashMap<u64, bool>> =
                expected.map(|pairs| pairs.iter().copied().collect());
            assert_eq!(parse_ack_answer(reply), expected, "{reply}");
        }
        check(
            r#"{"acks":{"0":true,"1":false,"2":true}}"#,
            Some(&[(0, true), (1, false), (2, true)]),
        );
        check(r#"{"acks":{}}"#, Some(&[]));
        // Only a JSON true acknowledges.
        check(
            r#"{"acks":{"3":"true","4":1,"5":null}}"#,
            Some(&[(3, false), (4, false), (5, false)]),
        );
        // Keys that are not ids are ignored.
        check(r#"{"acks":{"x":true,"6":true}}"#, Some(&[(6, true)]));
        check(r#"{"text":"Server is busy","code":9}"#, None);
        check(r#"{"acks":[0,1]}"#, None);
        check("<html>bad gateway</html>", None);
        check("", None);
        check(r#"{"acks":{"0":true}"#, None);
    }

    #[test]
    fn missing_ids_are_not_acknowledged() {
        let mut pending = PendingAcks::default();
        let now = Instant::now();
        for ack_id in 0..4 {
            assert!(pending.insert(ack_id, ack_id * 10, now).is_none());
        }
        let answer = parse_ack_answer(r#"{"acks":{"0":true,"1":false,"3":true}}"#).unwrap();
        assert_eq!(pending.settle(&answer), 2);
        assert_eq!(pending.ack_ids(), vec![1, 2]);
        assert_eq!(pending.settle(&HashMap::new()), 0);
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn chunks_past_the_timeout_are_taken_out_to_send_again() {
        let mut pending = PendingAcks::default();
        let start = Instant::now();
        pending.insert(7, "early", start);
        pending.insert(8, "late", start + Duration::from_secs(5));
        let timeout = Duration::from_secs(10);
        assert!(
            pending
                .take_expired(start + Duration::from_secs(9), timeout)
                .is_empty()
        );
        assert_eq!(
            pending.take_expired(start + Duration::from_secs(10), timeout),
            vec![(7, "early")]
        );
        assert_eq!(pending.ack_ids(), vec![8]);
        // A restarted Splunk numbering from 0 again: the chunk under a reused id is lost.
        assert_eq!(pending.insert(8, "again", start), Some("late"));
    }

    #[test]
    fn event_answers_and_error_codes() {
        assert_eq!(
            event_ack_id(r#"{"text":"Success","code":0,"ackId":42}"#),
            Some(42)
        );
        assert_eq!(event_ack_id(r#"{"text":"Success","code":0}"#), None);
        assert_eq!(event_ack_id("OK"), None);
        assert!(
            operator_hint(r#"{"text":"ACK is disabled","code":14}"#)
                .unwrap()
                .contains("ack = false")
        );
        assert!(
            operator_hint(r#"{"text":"Data channel is missing","code":10}"#)
                .unwrap()
                .contains("channel")
        );
        assert!(
            operator_hint(r#"{"text":"Invalid token","code":4}"#)
                .unwrap()
                .contains("hec_token_file")
        );
        assert_eq!(operator_hint(r#"{"text":"Server is busy","code":9}"#), None);
        assert_eq!(operator_hint("busy"), None);
        assert_eq!(ack_request_body(&[1, 5]), br#"{"acks":[1,5]}"#.to_vec());
    }
}
