//! One batch to every sink at once, each sink's acknowledgement recorded as it comes.
//!
//! A sink that took the batch while another still holds it is recorded at once
//! (`record_taken`), so a crash while a slow sink retries makes no sink that already took the
//! batch take it again: after a restart each sink is handed only the ids it has not taken.
//! The last acknowledgement records the batch for the stream (`record_delivered`): its ids (on
//! the live stream) and the page it completes. The next batch starts only then, so the fastest sink runs at most one batch
//! ahead of the slowest and the per-sink rows stay about one batch per sink.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{BatchRecord, CheckpointStore, Delivered, PageDone, SinkAck};
use crate::event::{LifecycleEvent, RecordId};
use crate::poller::Error;
use crate::sinks::{Delivery, SinkSet};

/// Ids single sinks took in an earlier run that not every sink has, by sink name.
pub(crate) type TakenBefore = HashMap<String, HashSet<RecordId>>;

/// Delivers `batch` of `stream` to every sink, minus what each took before, and records the
/// acknowledgements; `page` (the link to resume from) goes with the last one, and the ids
/// are remembered for the stream with `remember_ids`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, in the reader's flush"
)]
pub(crate) async fn deliver_batch(
    sinks: &SinkSet,
    store: &CheckpointStore,
    stream: &str,
    batch: &[LifecycleEvent],
    taken_before: &TakenBefore,
    page: Option<PageDone>,
    remember_ids: bool,
    shutdown: &CancellationToken,
) -> Result<Delivery, Error> {
    let _turn = sinks.turn().await;
    let delivered: Arc<Vec<Delivered>> = Arc::new(batch.iter().map(|e| (e.id, e.time)).collect());
    // Rows from an earlier run name these ids only when some set is non-empty; they go with
    // the last acknowledgement.
    let mut clear_taken = taken_before.values().any(|ids| !ids.is_empty());
    let mut running = FuturesUnordered::new();
    for idx in 0..sinks.len() {
        let part = part_for(batch, taken_before.get(sinks.name(idx)));
        if part.is_empty() {
            continue;
        }
        running.push(async move {
            let delivery = sinks.deliver_to(idx, &part, stream, shutdown).await;
            (idx, delivery)
        });
    }
    let mut last_acks = Vec::new();
    while let Some((idx, delivery)) = running.next().await {
        if delivery? == Delivery::Cancelled {
            return Ok(Delivery::Cancelled);
        }
        let ack = SinkAck {
            sink: sinks.name(idx).to_string(),
            state: sinks.resume_state(idx),
        };
        if running.is_empty() {
            last_acks.push(ack);
        } else {
            store
                .record_taken(stream, Arc::clone(&delivered), ack)
                .await?;
            clear_taken = true;
        }
    }
    let record = BatchRecord {
        delivered: Arc::unwrap_or_clone(delivered),
        remember_ids,
        page,
        acks: last_acks,
        clear_taken,
    };
    store.record_delivered(stream, record).await?;
    Ok(Delivery::Delivered)
}

/// The events of `batch` a sink has not taken before (the whole batch, borrowed, when it took
/// none).
fn part_for<'a>(
    batch: &'a [LifecycleEvent],
    taken: Option<&HashSet<RecordId>>,
) -> Cow<'a, [LifecycleEvent]> {
    match taken {
        Some(taken) if batch.iter().any(|event| taken.contains(&event.id)) => Cow::Owned(
            batch
                .iter()
                .filter(|event| !taken.contains(&event.id))
                .cloned()
                .collect(),
        ),
        _ => Cow::Borrowed(batch),
    }
}
