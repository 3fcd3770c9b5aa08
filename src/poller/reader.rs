//! Reading one window: pages in, events out, batches delivered and their ids recorded.

use std::collections::HashSet;

use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointStore;
use crate::event::{IdAssigner, LifecycleEvent, Normalizer, RecordId, content_digest};
use crate::lacework::{AuditLog, LaceworkClient};
use crate::poller::Error;
use crate::poller::window::Window;
use crate::service::Progress;
use crate::sinks::{Delivery, SinkSet};

/// Events are delivered in batches of at most this many, sorted by time within a batch. A
/// window with fewer events is delivered as one batch, in time order.
pub const MAX_BATCH_EVENTS: usize = 5_000;

/// Counters of one window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
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
            crate::checkpoint::now_ms(),
            self.elapsed.as_secs_f64(),
            self.n_records as u64,
            self.n_duplicates as u64,
        );
        tracing::info!(
            stream,
            window.start = %crate::event::format_time_ms(window.start_ms).unwrap_or_default(),
            window.end = %crate::event::format_time_ms(window.end_ms).unwrap_or_default(),
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
pub enum Outcome {
    /// Every event was delivered and its id recorded.
    Completed(WindowStats),
    /// Shutdown came first; what was acknowledged is recorded, the rest is not.
    Cancelled,
}

/// Reads windows for a poller.
pub struct WindowReader {
    client: LaceworkClient,
    normalizer: Normalizer,
    sinks: SinkSet,
    store: CheckpointStore,
    progress: Progress,
}

/// Events waiting for delivery and the ids they carry.
#[derive(Default)]
struct Batch {
    events: Vec<LifecycleEvent>,
}

impl WindowReader {
    pub fn new(
        client: LaceworkClient,
        normalizer: Normalizer,
        sinks: SinkSet,
        store: CheckpointStore,
        progress: Progress,
    ) -> WindowReader {
        WindowReader {
            client,
            normalizer,
            sinks,
            store,
            progress,
        }
    }

    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    pub fn client(&self) -> &LaceworkClient {
        &self.client
    }

    pub fn sinks(&self) -> &SinkSet {
        &self.sinks
    }

    /// Reads the records of `query`, keeping only those inside `keep` when given, and
    /// delivers those not delivered on `stream` before.
    pub async fn read(
        &self,
        stream: &str,
        query: Window,
        keep: Option<Window>,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Error> {
        let delivered_before = self.store.delivered_since(stream, query.start_ms).await?;
        let mut ids = IdAssigner::default();
        let started = std::time::Instant::now();
        let mut stats = WindowStats::default();
        let mut batch = Batch::default();
        let mut pager = self.client.audit_logs(query.start_ms, query.end_ms);
        loop {
            let page = tokio::select! {
                () = shutdown.cancelled() => return Ok(Outcome::Cancelled),
                page = pager.next_page() => page?,
            };
            let Some(page) = page else { break };
            stats.pages += 1;
            self.progress.touch();
            stats.n_records += page.records.len();
            for raw in &page.records {
                let Some(event) = self
                    .normalize(
                        stream,
                        raw,
                        query,
                        keep,
                        &mut ids,
                        &delivered_before,
                        &mut stats,
                    )
                    .await?
                else {
                    continue;
                };
                batch.events.push(event);
                if batch.events.len() >= MAX_BATCH_EVENTS
                    && self.flush(stream, &mut batch, &mut stats, shutdown).await?
                        == Delivery::Cancelled
                {
                    return Ok(Outcome::Cancelled);
                }
            }
        }
        if self.flush(stream, &mut batch, &mut stats, shutdown).await? == Delivery::Cancelled {
            return Ok(Outcome::Cancelled);
        }
        stats.elapsed = started.elapsed();
        Ok(Outcome::Completed(stats))
    }

    /// Turns one record into an event, or `None` when it is not emitted, outside the window or
    /// already delivered.
    #[allow(clippy::too_many_arguments)]
    async fn normalize(
        &self,
        stream: &str,
        raw: &RawValue,
        query: Window,
        keep: Option<Window>,
        ids: &mut IdAssigner,
        delivered_before: &HashSet<RecordId>,
        stats: &mut WindowStats,
    ) -> Result<Option<LifecycleEvent>, Error> {
        // `AuditLogPage::decode` guarantees an object, and every field is parsed leniently.
        let record = AuditLog::parse(raw).unwrap_or_default();
        let time = record.created_ms();
        if let (Some(keep), Some(time)) = (keep, time)
            && !keep.contains(time)
        {
            stats.n_outside += 1;
            return Ok(None);
        }
        let Some(event_type) = self.normalizer.emitted_type(&record) else {
            return Ok(None);
        };
        let id = ids.next_id(&content_digest(&record));
        let seen = if delivered_before.contains(&id) {
            true
        } else if time.is_none_or(|t| t < query.start_ms) {
            // Outside what was preloaded: ask the store.
            self.store.is_delivered(stream, id).await?
        } else {
            false
        };
        if seen {
            stats.n_duplicates += 1;
            return Ok(None);
        }
        if time.is_none() {
            tracing::warn!(id = %id, "Record has no understandable createdTime; emitting it with time null.");
        }
        Ok(Some(
            self.normalizer.build_event(raw, &record, event_type, id),
        ))
    }

    /// Delivers the batch to every sink and records its ids.
    async fn flush(
        &self,
        stream: &str,
        batch: &mut Batch,
        stats: &mut WindowStats,
        shutdown: &CancellationToken,
    ) -> Result<Delivery, Error> {
        if batch.events.is_empty() {
            return Ok(Delivery::Delivered);
        }
        batch.events.sort_by_key(|event| event.time);
        if self.sinks.deliver_all(&batch.events, shutdown).await? == Delivery::Cancelled {
            return Ok(Delivery::Cancelled);
        }
        let delivered: Vec<(RecordId, Option<i64>)> =
            batch.events.iter().map(|e| (e.id, e.time)).collect();
        stats.n_events += delivered.len();
        batch.events.clear();
        self.store.commit(stream, delivered, None).await?;
        self.progress.touch();
        Ok(Delivery::Delivered)
    }
}
