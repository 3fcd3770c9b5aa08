//! Reading one window: pages in, events out, batches delivered and their ids recorded.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::checkpoint::CheckpointStore;
use crate::event::{LifecycleEvent, RecordId};
use crate::lacework::{AuditLogPage, AuditLogPager, LaceworkClient};
use crate::normalize::{IdAssigner, NormalizedPage, Normalizer};
use crate::poller::window::Window;
use crate::poller::{Error, PollerParts};
use crate::service::Progress;
use crate::sinks::{Delivery, SinkSet};
use crate::time::{format_time_ms, now_ms};

/// What a window read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The live stream: query ranges overlap, so ids are recorded per acknowledged batch and
    /// records delivered before are dropped.
    Live,
    /// A replay window: only records inside it are kept, so each record belongs to exactly one
    /// window and no ids need recording; an interrupted window is replayed whole on resume.
    Replay(Window),
}

/// Events are delivered in batches of at most this many, sorted by time within a batch. A
/// window with fewer events is delivered as one batch, in time order.
pub(crate) const MAX_BATCH_EVENTS: usize = 5_000;

/// Starts a task that walks `pager` and hands over pages through a one-slot channel. The
/// channel closes after the last page or the first error; dropping the returned handle
/// aborts the task.
fn spawn_page_fetcher(
    mut pager: AuditLogPager,
) -> (
    mpsc::Receiver<Result<AuditLogPage, crate::lacework::Error>>,
    AbortOnDropHandle<()>,
) {
    let (page_tx, page_rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        loop {
            let (item, last) = match pager.next_page().await {
                Ok(Some(page)) => (Ok(page), false),
                Ok(None) => return,
                Err(error) => (Err(error), true),
            };
            if page_tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    (page_rx, AbortOnDropHandle::new(task))
}

/// Starts a task that turns pages into events (`Normalizer::normalize_page`), keeping only
/// records inside `keep` (a replay window). Ids depend on the order records are seen in
/// (identical records are numbered), so this stage is one task per window.
fn spawn_normalizer(
    mut pages: mpsc::Receiver<Result<AuditLogPage, crate::lacework::Error>>,
    normalizer: Arc<Normalizer>,
    keep: Option<Range<i64>>,
) -> (
    mpsc::Receiver<Result<NormalizedPage, crate::lacework::Error>>,
    AbortOnDropHandle<()>,
) {
    let (page_tx, page_rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let mut ids = IdAssigner::default();
        while let Some(page) = pages.recv().await {
            let page = page.map(|page| normalizer.normalize_page(&page, keep.as_ref(), &mut ids));
            if page_tx.send(page).await.is_err() {
                return;
            }
        }
    });
    (page_rx, AbortOnDropHandle::new(task))
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
    /// Time spent reading and delivering the window.
    pub elapsed: std::time::Duration,
}

impl WindowStats {
    /// Logs and records the metrics of a committed window.
    pub(crate) fn log_committed(&self, stream: &str, window: Window, n_pruned: usize) {
        crate::metrics::emit::window_committed(
            stream,
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
        }
    }

    /// Reads the records of `query`, keeping only those inside `keep` when given, and
    /// delivers those not delivered on `stream` before.
    pub(crate) async fn read(
        &self,
        stream: &str,
        query: Window,
        scope: Scope,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Error> {
        let keep = match scope {
            Scope::Live => None,
            Scope::Replay(window) => Some(window.start_ms..window.end_ms),
        };
        let delivered_before = match scope {
            Scope::Live => self.store.delivered_since(stream, query.start_ms).await?,
            Scope::Replay(_) => HashSet::new(),
        };
        let started = std::time::Instant::now();
        let mut stats = WindowStats::default();
        let mut batch: Vec<LifecycleEvent> = Vec::new();
        // Three stages, each its own task, joined by one-slot channels: fetching (HTTP and the
        // page envelope), normalizing (parse, classify, hash), and here, deduplicating and
        // delivering. Throughput is the slowest stage's, not their sum, and at most a few
        // pages are in memory however long the window. Dropping the handles stops the stages.
        let (pages, _fetcher) =
            spawn_page_fetcher(self.client.audit_logs(query.start_ms, query.end_ms));
        let (mut normalized, _normalizer) =
            spawn_normalizer(pages, Arc::clone(&self.normalizer), keep);
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
            for event in page.events {
                if self
                    .seen_before(stream, &event, query, scope, &delivered_before)
                    .await?
                {
                    stats.n_duplicates += 1;
                    continue;
                }
                if event.time.is_none() {
                    tracing::warn!(id = %event.id, "Record has no understandable createdTime; emitting it with time null.");
                }
                batch.push(event);
                if batch.len() >= MAX_BATCH_EVENTS
                    && self
                        .flush(stream, scope, &mut batch, &mut stats, shutdown)
                        .await?
                        == Delivery::Cancelled
                {
                    return Ok(Outcome::Cancelled);
                }
            }
        }
        if self
            .flush(stream, scope, &mut batch, &mut stats, shutdown)
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

    /// Whether the event's id was delivered on the live stream before.
    async fn seen_before(
        &self,
        stream: &str,
        event: &LifecycleEvent,
        query: Window,
        scope: Scope,
        delivered_before: &HashSet<RecordId>,
    ) -> Result<bool, Error> {
        if scope != Scope::Live {
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

    /// Delivers the batch to every sink and records its ids.
    async fn flush(
        &self,
        stream: &str,
        scope: Scope,
        batch: &mut Vec<LifecycleEvent>,
        stats: &mut WindowStats,
        shutdown: &CancellationToken,
    ) -> Result<Delivery, Error> {
        if batch.is_empty() {
            return Ok(Delivery::Delivered);
        }
        batch.sort_by_key(|event| event.time);
        if self.sinks.deliver_all(batch, shutdown).await? == Delivery::Cancelled {
            return Ok(Delivery::Cancelled);
        }
        stats.n_events += batch.len();
        if scope == Scope::Live {
            let delivered: Vec<(RecordId, Option<i64>)> =
                batch.iter().map(|e| (e.id, e.time)).collect();
            self.store.record_delivered(stream, delivered).await?;
        }
        batch.clear();
        self.progress.touch();
        Ok(Delivery::Delivered)
    }
}
