//! In-process tests of the delivery rule: the fake Lacework API on loopback, a real SQLite file
//! in a temporary directory, and test sinks. A cursor moves only after every sink acknowledged
//! its window; what was acknowledged before a crash is not delivered again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use url::Url;

use super::*;
use crate::backoff::Backoff;
use crate::config::secrets::Secret;
use crate::config::{Credentials, EventsConfig};
use crate::event::RecordId;
use crate::lacework::ClientOptions;
use crate::sinks::Sink;
use crate::sinks::testing::{FailingSink, Failure, MemorySink};

const STREAM: &str = "live:test";

/// The fake API with generated history, and a state file.
struct Harness {
    fake: fake_lacework::FakeLacework,
    store: CheckpointStore,
    history_end_ms: i64,
    _state_dir: tempfile::TempDir,
}

impl Harness {
    /// `n_records` records (30% lifecycle) over the last day, ending a minute ago.
    async fn new(n_records: usize) -> Harness {
        let fake = fake_lacework::FakeLacework::start(fake_lacework::FakeConfig::default())
            .await
            .expect("the fake starts");
        let end = chrono::Utc::now() - chrono::Duration::minutes(1);
        fake.generate(&fake_lacework::GenerateSpec {
            seed: 7,
            start: end - chrono::Duration::hours(20),
            end,
            count: n_records,
            ..fake_lacework::GenerateSpec::default()
        });
        let state_dir = tempfile::tempdir().expect("a temporary directory");
        let store = CheckpointStore::open(&state_dir.path().join("state.db"))
            .await
            .expect("the store opens");
        Harness {
            fake,
            store,
            history_end_ms: end.timestamp_millis(),
            _state_dir: state_dir,
        }
    }

    /// Asserts that `ids` holds every lifecycle event of the history, each once.
    fn assert_every_event_once(&self, ids: &[RecordId]) {
        let expected = self
            .fake
            .expected_lifecycle(0, self.history_end_ms + 1, None)
            .len();
        assert!(expected > 0, "the history has lifecycle records");
        let distinct = ids.iter().collect::<HashSet<_>>().len();
        assert_eq!(distinct, ids.len(), "no event twice");
        assert_eq!(ids.len(), expected, "every lifecycle event");
    }

    /// A `run --once` over the history with these sinks.
    async fn run_once(&self, sinks: Vec<Box<dyn Sink>>) -> Result<(), Error> {
        let poller = self.poller(sinks);
        poller.resume_sinks(&[STREAM.to_string()]).await?;
        poller
            .run_live(STREAM, true, &CancellationToken::new())
            .await
    }

    fn poller(&self, sinks: Vec<Box<dyn Sink>>) -> Poller {
        let fake_config = self.fake.config();
        let credentials = Credentials {
            key_id: fake_config.key_id.clone(),
            secret: Secret::new(fake_config.secret.clone()),
            api_origin: Url::parse(&self.fake.base_url()).expect("a URL"),
            sub_account: None,
        };
        let options = ClientOptions {
            token_ttl: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(10),
            max_retries: 2,
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(50),
            },
            org_access: true,
            rate_limit: crate::config::RateBudget::default(),
        };
        let poll = PollConfig {
            interval: Duration::from_secs(1),
            window: Duration::from_secs(86_400),
            settle: Duration::from_secs(3),
            lookback: Duration::from_secs(25 * 3600),
            overlap: Duration::from_secs(60),
            ..PollConfig::default()
        };
        Poller::new(
            PollerParts {
                client: LaceworkClient::new(&credentials, &options).expect("a client"),
                normalizer: Arc::new(
                    Normalizer::new(&EventsConfig::default(), None).expect("built-in rules"),
                ),
                sinks: Arc::new(SinkSet::new(
                    sinks,
                    Backoff {
                        initial: Duration::from_millis(10),
                        max: Duration::from_millis(10),
                    },
                )),
                store: self.store.clone(),
                progress: Progress::default(),
                account: None,
                reconcile_every: Duration::ZERO,
            },
            poll,
            Duration::from_secs(7 * 86_400),
        )
    }

    /// The paths of the AuditLogs requests the fake saw, in order (first pages and nextPage
    /// fetches).
    fn audit_log_paths(&self) -> Vec<String> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v2/AuditLogs"))
            .map(|r| r.path)
            .collect()
    }

    async fn cursor(&self) -> Option<i64> {
        self.store
            .cursor(STREAM)
            .await
            .expect("the store answers")
            .map(|cursor| cursor.position_ms)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_moves_only_after_the_sinks_acknowledged() {
    let harness = Harness::new(2_000).await;
    let slow = MemorySink::slow("slow", Duration::from_millis(500));
    let poller = harness.poller(vec![Box::new(slow.clone())]);
    let walk = tokio::spawn(async move {
        poller
            .run_live(STREAM, true, &CancellationToken::new())
            .await
    });
    // While the one window's batch is being delivered, nothing is committed.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(harness.cursor().await, None, "no cursor while delivering");
    walk.await
        .expect("the walk runs")
        .expect("the walk succeeds");
    let cursor = harness.cursor().await.expect("a cursor after delivery");
    assert!(
        cursor >= harness.history_end_ms,
        "caught up to the history's end"
    );
    harness.assert_every_event_once(&slow.ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_holds_the_cursor_and_loses_nothing() {
    let harness = Harness::new(2_000).await;
    let down = FailingSink::always("down", Failure::Retryable(None));
    let healthy = MemorySink::new("healthy");
    let poller = harness.poller(vec![Box::new(down.clone()), Box::new(healthy.clone())]);
    let shutdown = CancellationToken::new();
    let walk = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { poller.run_live(STREAM, true, &shutdown).await })
    };
    // Retried every 10 ms: let it fail a while, then stop the walk.
    while down.calls() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    walk.await
        .expect("the walk runs")
        .expect("a cancelled walk is not an error");
    assert_eq!(harness.cursor().await, None, "the cursor did not move");
    let remembered = harness
        .store
        .delivered_since(STREAM, 0)
        .await
        .expect("the store answers");
    assert!(
        remembered.is_empty(),
        "no id is recorded for an unacknowledged batch"
    );

    // The sink heals: a new walk delivers everything.
    let healed = MemorySink::new("down");
    harness
        .run_once(vec![Box::new(healed.clone())])
        .await
        .expect("the walk succeeds");
    harness.assert_every_event_once(&healed.ids());
    assert!(harness.cursor().await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_took_a_batch_is_not_handed_it_again_while_another_held_it() {
    let harness = Harness::new(2_000).await;
    let fast = MemorySink::new("fast");
    let down = FailingSink::always("down", Failure::Retryable(None));
    let poller = harness.poller(vec![Box::new(fast.clone()), Box::new(down.clone())]);
    let shutdown = CancellationToken::new();
    let walk = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { poller.run_live(STREAM, true, &shutdown).await })
    };
    // `fast` takes the batch at once; `down` holds it. Then the process goes away.
    while down.calls() < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    walk.await
        .expect("the walk runs")
        .expect("cancelled, not failed");
    let first = fast.ids();
    assert!(!first.is_empty(), "the fast sink took the batch");
    assert_eq!(harness.cursor().await, None, "the cursor waits for `down`");
    let taken = harness.store.taken(STREAM).await.unwrap();
    assert_eq!(
        taken.get("fast").map(HashSet::len),
        Some(first.len()),
        "what `fast` took is recorded for it alone"
    );

    // Restarted, `down` healed: it gets everything, `fast` only what it had not taken.
    let fast_again = MemorySink::new("fast");
    let healed = MemorySink::new("down");
    harness
        .run_once(vec![Box::new(fast_again.clone()), Box::new(healed.clone())])
        .await
        .expect("the walk succeeds");
    let before: HashSet<&RecordId> = first.iter().collect();
    let again = fast_again
        .ids()
        .iter()
        .filter(|id| before.contains(id))
        .count();
    assert_eq!(again, 0, "`fast` is not handed again what it took");
    harness.assert_every_event_once(&healed.ids());
    let all: Vec<RecordId> = first.iter().copied().chain(fast_again.ids()).collect();
    harness.assert_every_event_once(&all);
    assert!(
        harness.store.taken(STREAM).await.unwrap().is_empty(),
        "once every sink took the batch, the per-sink rows go"
    );
    assert!(harness.cursor().await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_commit_rereads_only_what_was_not_acknowledged() {
    // 42,000 records, about 14,000 lifecycle events in one window of 9 pages: a batch ends
    // at the first page end past MAX_BATCH_EVENTS, with that page's nextPage link saved. The
    // sink takes the first batch, then fails fatally: the walk stops before the window's
    // cursor is committed, as a crash would.
    let harness = Harness::new(40_000).await;
    // 2,000 identical records, shuffled across every page: ids number repeats in the order
    // they are seen, so the resumed walk must continue the first walk's numbering.
    let twin = fake_lacework::FakeRecord::lifecycle(
        "USER_CREATED",
        "ACME",
        "admin@acme.com",
        Some("twin@acme.com"),
        chrono::DateTime::from_timestamp_millis(harness.history_end_ms - 3_600_000).unwrap(),
    );
    for _ in 0..2_000 {
        harness.fake.insert(twin.clone());
    }
    let dying = FailingSink::new("dying", Failure::Fatal, 1, usize::MAX);
    let error = harness
        .run_once(vec![Box::new(dying.clone())])
        .await
        .expect_err("a fatal sink error stops the walk");
    assert!(!error.is_retryable(), "{error}");
    assert_eq!(harness.cursor().await, None, "nothing committed");
    let first = dying.accepted().ids();
    assert!(
        first.len() >= reader::MAX_BATCH_EVENTS,
        "whole pages' events: {}",
        first.len()
    );

    // Restarted with a sink that works: the walk resumes at the saved nextPage link after the
    // pages that were acknowledged, not at the window's first page.
    harness.fake.clear_requests();
    let restarted = MemorySink::new("dying");
    harness
        .run_once(vec![Box::new(restarted.clone())])
        .await
        .expect("the walk succeeds");
    let audit_requests = harness.audit_log_paths();
    assert!(
        audit_requests[0].starts_with("/api/v2/AuditLogs/"),
        "resumed at page 2: {audit_requests:?}"
    );
    let second = restarted.ids();
    let before: HashSet<&RecordId> = first.iter().collect();
    let overlap = second.iter().filter(|id| before.contains(id)).count();
    assert_eq!(overlap, 0, "nothing acknowledged before is delivered again");
    let all: Vec<RecordId> = first.into_iter().chain(second).collect();
    harness.assert_every_event_once(&all);
    assert!(harness.cursor().await.unwrap() >= harness.history_end_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_link_the_server_no_longer_knows_falls_back_to_the_window_start() {
    let harness = Harness::new(20_000).await;
    // An interrupted first walk left a link the server does not know (its snapshot expired).
    let cursor = now_ms() - 25 * 3_600_000;
    let key = WindowKey {
        stream: STREAM.to_string(),
        kind: WindowKind::Live,
        start_ms: cursor,
    };
    harness
        .store
        .begin_window(
            &key,
            harness.history_end_ms + 1,
            (cursor, harness.history_end_ms + 1),
            false,
        )
        .await
        .unwrap();
    let mut expired = crate::checkpoint::PageDone::new(&key);
    expired.next_page = format!("{}/api/v2/AuditLogs/expired==", harness.fake.base_url());
    expired.pages = 1;
    harness
        .store
        .record_delivered(
            STREAM,
            crate::checkpoint::BatchRecord {
                page: Some(expired),
                ..crate::checkpoint::BatchRecord::default()
            },
        )
        .await
        .unwrap();
    let sink = MemorySink::new("sink");
    harness
        .run_once(vec![Box::new(sink.clone())])
        .await
        .expect("the walk falls back and succeeds");
    let paths = harness.audit_log_paths();
    assert_eq!(
        paths[0], "/api/v2/AuditLogs/expired==",
        "the saved link is tried first"
    );
    assert_eq!(
        paths[1], "/api/v2/AuditLogs",
        "then the window from its start"
    );
    harness.assert_every_event_once(&sink.ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_replay_resumes_at_its_saved_link_and_repeats_nothing() {
    // About 14,000 lifecycle events in one replay window of 9 pages: the sink takes the first
    // batch, then fails fatally, as a crash would leave it.
    let harness = Harness::new(40_000).await;
    let job = ReplayJob {
        id: "r1".into(),
        from_ms: harness.history_end_ms - 21 * 3_600_000,
        to_ms: harness.history_end_ms + 1,
        position_ms: harness.history_end_ms - 21 * 3_600_000,
        sinks: String::new(),
        created_at_ms: 0,
    };
    harness.store.start_replay(job.clone()).await.unwrap();
    let dying = FailingSink::new("dying", Failure::Fatal, 1, usize::MAX);
    let error = harness
        .poller(vec![Box::new(dying.clone())])
        .replay(&job, &CancellationToken::new(), &|_| {})
        .await
        .expect_err("a fatal sink error stops the replay");
    assert!(!error.is_retryable(), "{error}");
    let first = dying.accepted().ids();
    assert!(first.len() >= reader::MAX_BATCH_EVENTS, "{}", first.len());
    let remembered = harness
        .store
        .delivered_since(&job.stream(), 0)
        .await
        .unwrap();
    assert!(remembered.is_empty(), "a replay records no ids");

    harness.fake.clear_requests();
    let resumed = MemorySink::new("dying");
    let steps = std::sync::Mutex::new(Vec::new());
    let outcome = harness
        .poller(vec![Box::new(resumed.clone())])
        .replay(&job, &CancellationToken::new(), &|step| {
            steps.lock().unwrap().push(step)
        })
        .await
        .expect("the resumed replay finishes");
    assert_eq!(outcome, ReplayOutcome::Finished);
    // The observer hears of every committed window: the last ends the range, and the events
    // add up to what the sink took.
    let steps = steps.into_inner().unwrap();
    assert_eq!(
        steps.last().map(|s| s.position_ms),
        Some(job.to_ms),
        "{steps:?}"
    );
    assert_eq!(
        steps.iter().map(|s| s.n_events).sum::<usize>(),
        resumed.ids().len(),
        "{steps:?}"
    );
    assert!(
        harness.audit_log_paths()[0].starts_with("/api/v2/AuditLogs/"),
        "resumed at the saved nextPage link: {:?}",
        harness.audit_log_paths()
    );
    let second = resumed.ids();
    let before: HashSet<&RecordId> = first.iter().collect();
    assert_eq!(
        second.iter().filter(|id| before.contains(id)).count(),
        0,
        "nothing taken before is replayed again"
    );
    let all: Vec<RecordId> = first.into_iter().chain(second).collect();
    harness.assert_every_event_once(&all);
}
