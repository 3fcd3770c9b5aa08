//! Reading one window: pages in, events out, batches delivered and their ids recorded.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::checkpoint::{CheckpointStore, PageDone, ResumePoint, WindowKey};
use crate::event::{LifecycleEvent, RecordId};
use crate::lacework::{AuditLogPage, AuditLogPager, LaceworkClient, Priority};
use crate::normalize::{NormalizedPage, Normalizer, WindowState};
use crate::poller::fanout::{TakenBefore, deliver_batch};
use crate::poller::window::Window;
use crate::poller::{Error, PollerParts};
use crate::service::Progress;
use crate::sinks::{Delivery, SinkSet};
use crate::time::{format_time_ms, now_ms};

/// What a window read is for. In every scope each acknowledged batch is recorded with the
/// `nextPage` link after it, so an interrupted walk resumes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The live stream: query ranges overlap, so ids are recorded per acknowledged batch and
    /// records delivered before are dropped.
    Live,
    /// A re-read of recent time for records that became visible late: like the live stream,
    /// only ids never delivered are emitted, and every one emitted is late.
    Resweep,
    /// A replay window: only records inside it are kept, so each record belongs to exactly one
    /// window and no ids need recording: an interrupted window resumes at its saved link.
    Replay(Window),
}

impl Scope {
    /// Whether delivered ids are recorded and records delivered before dropped.
    pub(crate) fn records_ids(self) -> bool {
        !matches!(self, Scope::Replay(_))
    }

    /// Its place in the request budget's line.
    fn priority(self) -> Priority {
        match self {
            Scope::Live => Priority::Live,
            Scope::Resweep => Priority::Resweep,
            Scope::Replay(_) => Priority::Replay,
        }
    }

    fn found_by(self) -> &'static str {
        match self {
            Scope::Resweep => "resweep",
            _ => "overlap",
        }
    }
}

/// A batch ends at the first page end at or past this many events, or after
/// `PAGES_PER_BATCH` pages, and is sorted by time. A window with fewer events and pages is
/// delivered as one batch, in time order. Batches end only at page ends, so each one's last
/// `nextPage` link is a point a crashed walk resumes from.
pub(crate) const MAX_BATCH_EVENTS: usize = 5_000;

/// Pages after which a batch ends even when it holds few events: a crashed walk of a long
/// window re-reads at most this many pages (40,000 records at Lacework's page size).
const PAGES_PER_BATCH: i64 = 8;

/// Starts a task that walks `pager` and hands over pages through a one-slot channel. The
/// channel closes after the last page or the first error; dropping the returned handle
/// aborts the task.
///
/// Like the normalize stage, it claims the slot before it produces: the next page is fetched
/// once the previous one was taken, so each stage works on one page while the next works on
/// the one before, and no finished page waits in a channel: three pages are in memory
/// instead of five, with the same overlap.
fn spawn_page_fetcher(
    mut pager: AuditLogPager,
) -> (
    mpsc::Receiver<Result<AuditLogPage, crate::lacework::Error>>,
    AbortOnDropHandle<()>,
) {
    let (page_tx, page_rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        loop {
            let Ok(slot) = page_tx.reserve().await else {
                return;
            };
            let (item, last) = match pager.next_page().await {
                Ok(Some(page)) => (Ok(page), false),
                Ok(None) => return,
                Err(error) => (Err(error), true),
            };
            slot.send(item);
            if last {
                return;
            }
        }
    });
    (page_rx, AbortOnDropHandle::new(task))
}

/// Starts a thread of the blocking pool that turns pages into events
/// (`Normalizer::normalize_page`, which uses further threads for a large page), keeping only
/// records inside `keep` (a replay window). Ids depend on the order records are seen in
/// (identical records are numbered), so pages pass one at a time. The stage is CPU work, so it
/// stays off the runtime's workers, which fetch and deliver meanwhile. It ends when the page
/// channel closes or its receiver is dropped (at most one page later).
fn spawn_normalizer(
    mut pages: mpsc::Receiver<Result<AuditLogPage, crate::lacework::Error>>,
    normalizer: Arc<Normalizer>,
    keep: Option<Range<i64>>,
    mut window: WindowState,
) -> mpsc::Receiver<Result<NormalizedPage, crate::lacework::Error>> {
    let (page_tx, page_rx) = mpsc::channel(1);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        loop {
            // The slot first, then the next page (see `spawn_page_fetcher`).
            let Ok(slot) = runtime.block_on(page_tx.reserve()) else {
                return;
            };
            let Some(page) = pages.blocking_recv() else {
                return;
            };
            slot.send(page.map(|page| normalizer.normalize_page(page, keep.as_ref(), &mut window)));
        }
    });
    page_rx
}

/// Counters of one window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowStats {
    /// Pages fetched.
    pub pages: usize,
    /// Records received.
    pub n_records: usize,
    /// Events delivered.
    pub n_events: usize,
    /// Records dropped because their id was delivered before.
    pub n_duplicates: usize,
    /// Records outside a replay window (the API's bounds are inclusive).
    pub n_outside: usize,
    /// Events delivered whose time the cursor had already passed when they were first seen
    /// (caught by the overlap or a re-sweep).
    pub n_late: usize,
    /// Time spent reading and delivering the window.
    pub elapsed: std::time::Duration,
}

impl WindowStats {
    /// The counts the ledger keeps.
    pub(crate) fn counts(&self) -> crate::checkpoint::WindowCounts {
        crate::checkpoint::WindowCounts {
            pages: self.pages as i64,
            records: self.n_records as i64,
            events: self.n_events as i64,
            late: self.n_late as i64,
        }
    }

    /// Logs and records the metrics of a committed window.
    pub(crate) fn log_committed(
        &self,
        stream: &str,
        account: &str,
        window: Window,
        n_pruned: usize,
    ) {
        crate::metrics::emit::window_committed(
            stream,
            account,
            window.end_ms,
            now_ms(),
            self.elapsed.as_secs_f64(),
            self.n_records as u64,
            self.n_duplicates as u64,
        );
        tracing::info!(
            stream,
            window.start = %format_time_ms(window.start_ms).unwrap_or_default(),
            window.end = %format_time_ms(window.end_ms).unwrap_or_default(),
            pages = self.pages,
            n_records = self.n_records,
            n_events = self.n_events,
            n_duplicates = self.n_duplicates,
            n_late = self.n_late,
            n_pruned,
            "Window delivered and committed."
        );
    }
}

/// How reading a window ended.
pub(crate) enum Outcome {
    /// Every event was delivered and its id recorded.
    Completed(WindowStats),
    /// Shutdown came first; what was acknowledged is recorded, the rest is not.
    Cancelled,
}

/// Reads windows for a poller.
pub(crate) struct WindowReader {
    client: LaceworkClient,
    normalizer: Arc<Normalizer>,
    sinks: Arc<SinkSet>,
    store: CheckpointStore,
    progress: Progress,
    result_cap: u64,
    /// How often the user inventory is reconciled (zero: never): an audit event about a
    /// change reconciliation delivered within it is not delivered again.
    reconcile_every: std::time::Duration,
}

impl WindowReader {
    /// A reader over the poller's parts; `result_cap` is the most rows one query returns.
    pub(crate) fn new(parts: &PollerParts, result_cap: u64) -> WindowReader {
        WindowReader {
            client: parts.client.clone(),
            normalizer: Arc::clone(&parts.normalizer),
            sinks: Arc::clone(&parts.sinks),
            store: parts.store.clone(),
            progress: parts.progress.clone(),
            result_cap,
            reconcile_every: parts.reconcile_every,
        }
    }

    /// Reads the records of `query` (from `resume`'s saved page when given), keeping only
    /// those inside a replay window, and delivers those not delivered on the stream before.
    /// Records the cursor had passed (before `key.start_ms`) count as late.
    pub(crate) async fn read(
        &self,
        key: &WindowKey,
        query: Window,
        scope: Scope,
        resume: Option<ResumePoint>,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Error> {
        let stream = key.stream.as_str();
        let keep = match scope {
            Scope::Replay(window) => Some(window.start_ms..window.end_ms),
            Scope::Live | Scope::Resweep => None,
        };
        let late_before = match scope {
            Scope::Live => Some(key.start_ms),
            Scope::Resweep => Some(i64::MAX),
            Scope::Replay(_) => None,
        };
        let delivered_before = if scope.records_ids() {
            self.store.delivered_since(stream, query.start_ms).await?
        } else {
            HashSet::new()
        };
        // What single sinks took in an earlier run: at most about a batch per sink.
        let taken_before = self.store.taken(stream).await?;
        let started = std::time::Instant::now();
        let mut stats = WindowStats::default();
        let (pager, window) = match resume {
            Some(point) => {
                stats.pages = point.pages as usize;
                stats.n_records = point.records as usize;
                stats.n_events = point.events as usize;
                (
                    self.client
                        .resume_audit_logs(&point.next_page, scope.priority())?,
                    WindowState::resumed(point.keys),
                )
            }
            None => (
                self.client
                    .audit_logs(query.start_ms, query.end_ms, scope.priority()),
                WindowState::default(),
            ),
        };
        let mut batch: Vec<LifecycleEvent> = Vec::new();
        // What the pages read since the last batch add to the ledger's row when it ends.
        let mut pending = PageDone::new(key);
        // Three stages, each its own task, joined by one-slot channels: fetching (HTTP and the
        // page envelope), normalizing (parse, classify, hash), and here, deduplicating and
        // delivering. Throughput is the slowest stage's, not their sum, and at most a few
        // pages are in memory however long the window. Dropping the fetcher's handle and the
        // receiver stops the stages.
        let (pages, _fetcher) = spawn_page_fetcher(pager);
        let mut normalized = spawn_normalizer(pages, Arc::clone(&self.normalizer), keep, window);
        loop {
            let page = tokio::select! {
                () = shutdown.cancelled() => return Ok(Outcome::Cancelled),
                page = normalized.recv() => page,
            };
            let Some(page) = page.transpose()? else { break };
            // Checked before anything of the window is delivered: a capped result would be
            // silently incomplete.
            if let Some(rows) = page.total_rows.filter(|rows| *rows > self.result_cap) {
                return Err(Error::ResultCapped {
                    rows,
                    cap: self.result_cap,
                });
            }
            stats.pages += 1;
            stats.n_records += page.n_records;
            stats.n_outside += page.n_outside;
            self.progress.touch();
            batch.reserve(page.events.len());
            for event in page.events {
                if self
                    .seen_before(stream, &event, query, scope, &delivered_before)
                    .await?
                    || self.reconciled_before(stream, &event, scope).await?
                {
                    stats.n_duplicates += 1;
                    continue;
                }
                if event.time.is_none() {
                    tracing::warn!(id = %event.id, "Record has no understandable createdTime; emitting it with time null.");
                }
                batch.push(event);
            }
            pending.pages += 1;
            pending.keys.extend(page.keys);
            pending.records += page.n_records as i64;
            let Some(next_page) = page.next_page else {
                continue;
            };
            if batch.len() < MAX_BATCH_EVENTS && pending.pages < PAGES_PER_BATCH {
                continue;
            }
            // The batch ends here, and the page's link is saved with its ids: a walk
            // interrupted later resumes there instead of at the window's start.
            pending.next_page = next_page;
            pending.events = batch.len() as i64;
            let done = std::mem::replace(&mut pending, PageDone::new(key));
            if self
                .flush(
                    stream,
                    scope,
                    late_before,
                    &mut batch,
                    Some(done),
                    &taken_before,
                    &mut stats,
                    shutdown,
                )
                .await?
                == Delivery::Cancelled
            {
                return Ok(Outcome::Cancelled);
            }
        }
        if self
            .flush(
                stream,
                scope,
                late_before,
                &mut batch,
                None,
                &taken_before,
                &mut stats,
                shutdown,
            )
            .await?
            == Delivery::Cancelled
        {
            return Ok(Outcome::Cancelled);
        }
        // Without `totalRows`, exactly the cap's worth of records means the API probably cut
        // the result: read the window again in halves (on the live stream, the ids recorded
        // keep the re-read from emitting twice).
        if stats.n_records as u64 >= self.result_cap {
            return Err(Error::ResultCapped {
                rows: stats.n_records as u64,
                cap: self.result_cap,
            });
        }
        stats.elapsed = started.elapsed();
        Ok(Outcome::Completed(stats))
    }

    /// Whether the event's id was delivered on the stream before.
    async fn seen_before(
        &self,
        stream: &str,
        event: &LifecycleEvent,
        query: Window,
        scope: Scope,
        delivered_before: &HashSet<RecordId>,
    ) -> Result<bool, Error> {
        if !scope.records_ids() {
            return Ok(false);
        }
        if delivered_before.contains(&event.id) {
            return Ok(true);
        }
        if event.time.is_none_or(|t| t < query.start_ms) {
            // Outside what was preloaded: ask the store.
            return Ok(self
                .store
                .is_delivered(stream, event.id, event.time)
                .await?);
        }
        Ok(false)
    }

    /// Whether reconciliation already delivered this change (same type and user): it notes a
    /// change at the time of the snapshot before it, so a record of the change carries a
    /// time at most about one interval later (two allowed, for a walk that was busy).
    async fn reconciled_before(
        &self,
        stream: &str,
        event: &LifecycleEvent,
        scope: Scope,
    ) -> Result<bool, Error> {
        let (Some(target), Some(time)) = (event.target.as_deref(), event.time) else {
            return Ok(false);
        };
        if !scope.records_ids()
            || self.reconcile_every.is_zero()
            || !event.event_type.is_lifecycle()
        {
            return Ok(false);
        }
        let every = self.reconcile_every.as_millis() as i64;
        Ok(self
            .store
            .lifecycle_seen(
                stream,
                event.event_type.as_str(),
                target,
                "reconcile",
                (time - 2 * every, time),
            )
            .await?)
    }

    /// Delivers the batch to every sink (minus what each took before) and records its ids,
    /// with `page` (the link to resume from) in the same transaction as the last
    /// acknowledgement.
    #[expect(clippy::too_many_arguments, reason = "one call site per flush point")]
    async fn flush(
        &self,
        stream: &str,
        scope: Scope,
        late_before: Option<i64>,
        batch: &mut Vec<LifecycleEvent>,
        page: Option<PageDone>,
        taken_before: &TakenBefore,
        stats: &mut WindowStats,
        shutdown: &CancellationToken,
    ) -> Result<Delivery, Error> {
        if batch.is_empty() && page.is_none() {
            return Ok(Delivery::Delivered);
        }
        batch.sort_by_key(|event| event.time);
        let delivery = deliver_batch(
            &self.sinks,
            &self.store,
            stream,
            batch,
            taken_before,
            page,
            scope.records_ids(),
            shutdown,
        )
        .await?;
        if delivery == Delivery::Cancelled {
            return Ok(Delivery::Cancelled);
        }
        stats.n_events += batch.len();
        crate::poller::own_key::watch(batch, self.client.key_id());
        if scope.records_ids() && !self.reconcile_every.is_zero() {
            self.store
                .note_lifecycle(stream, crate::poller::reconcile::seen_of(batch))
                .await?;
        }
        if let Some(late_before) = late_before {
            let now = now_ms();
            let delays: Vec<f64> = batch
                .iter()
                .filter_map(|event| event.time)
                .filter(|time| *time < late_before)
                .map(|time| (now - time).max(0) as f64 / 1000.0)
                .collect();
            if !delays.is_empty() {
                stats.n_late += delays.len();
                crate::metrics::emit::late_records(stream, scope.found_by(), &delays);
            }
        }
        batch.clear();
        self.progress.touch();
        Ok(Delivery::Delivered)
    }
}
