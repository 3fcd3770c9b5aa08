//! Reconciliation against the user inventory: every `[reconcile] every`, between live polls,
//! the account's user list is compared with the last snapshot and each change the audit log
//! did not deliver becomes an event with `source = "reconcile"`.
//!
//! The first snapshot is a baseline and emits nothing. A key without the rights to list users
//! gets one WARN and reconciliation stays off for the process. A change delivered from both
//! sources within the interval is delivered once, whichever came first: audit events note
//! what they delivered (`lifecycle_seen`), reconciliation skips what the audit log delivered,
//! and the reader skips audit events reconciliation delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CheckpointStore, Seen};
use crate::event::{LifecycleEvent, Source};
use crate::lacework::{InventoryUser, LaceworkClient, Priority, is_refusal};
use crate::normalize::inventory_changes;
use crate::poller::Error;
use crate::poller::fanout::deliver_batch;
use crate::sinks::{Delivery, SinkSet};
use crate::time::now_ms;

/// What `Source` is called in `lifecycle_seen`.
pub(crate) fn source_name(source: Source) -> &'static str {
    match source {
        Source::Audit => "audit",
        Source::Reconcile => "reconcile",
    }
}

/// The lifecycle events of `batch` with a target, as `lifecycle_seen` notes them.
pub(crate) fn seen_of(batch: &[LifecycleEvent]) -> Vec<Seen> {
    batch
        .iter()
        .filter(|e| e.event_type.is_lifecycle())
        .filter_map(|e| {
            Some((
                e.event_type.as_str().to_string(),
                e.target.as_deref()?.to_lowercase(),
                e.time?,
                source_name(e.source).to_string(),
            ))
        })
        .collect()
}

/// The reconciliation schedule of one stream.
pub(crate) struct Reconciler {
    every: Duration,
    /// The account events name: the configured one, else the first the key's profile lists.
    account: tokio::sync::OnceCell<Option<String>>,
    configured_account: Option<String>,
    /// Set when the key may not list users: off for the rest of the process.
    refused: AtomicBool,
}

impl Reconciler {
    /// A schedule every `every` (zero: off) for the account named `account` in events.
    pub(crate) fn new(every: Duration, account: Option<String>) -> Reconciler {
        Reconciler {
            every,
            account: tokio::sync::OnceCell::new(),
            configured_account: account,
            refused: AtomicBool::new(false),
        }
    }

    /// The interval, when reconciliation is on.
    pub(crate) fn every(&self) -> Option<Duration> {
        (!self.every.is_zero() && !self.refused.load(Ordering::Relaxed)).then_some(self.every)
    }

    /// Reconciles `stream` if due. Errors reading the inventory are logged and retried next
    /// time: the live walk never waits on this.
    pub(crate) async fn step(
        &self,
        client: &LaceworkClient,
        sinks: &SinkSet,
        store: &CheckpointStore,
        stream: &str,
        shutdown: &CancellationToken,
    ) -> Result<Delivery, Error> {
        let Some(every) = self.every() else {
            return Ok(Delivery::Delivered);
        };
        let every_ms = every.as_millis() as i64;
        let now = now_ms();
        let last = store.inventory(stream).await?;
        if last
            .as_ref()
            .is_some_and(|(taken, _)| now - taken < every_ms)
        {
            return Ok(Delivery::Delivered);
        }
        let (users, endpoint) = match client.user_inventory(Priority::Resweep).await {
            Ok(found) => found,
            Err(error) if is_refusal(&error) => {
                self.refused.store(true, Ordering::Relaxed);
                tracing::warn!(stream, error = %error, "The API key may not list users (TeamUsers and TeamMembers refused): reconciliation is off for this account. Give the key's creator the rights to list users to turn it on.");
                return Ok(Delivery::Delivered);
            }
            Err(error) => {
                tracing::warn!(stream, error = %error, "Could not read the user inventory; reconciling at the next poll.");
                return Ok(Delivery::Delivered);
            }
        };
        let snapshot = serde_json::to_string(&users).expect("users serialize");
        let Some((before_ms, before)) = last else {
            store.save_inventory(stream, now, snapshot).await?;
            tracing::info!(
                stream,
                endpoint,
                n_users = users.len(),
                "User inventory baseline taken; changes from now on are reconciled."
            );
            return Ok(Delivery::Delivered);
        };
        let before: Vec<InventoryUser> = serde_json::from_str(&before).unwrap_or_default();
        let account = self
            .account
            .get_or_init(|| async {
                match &self.configured_account {
                    Some(account) => Some(account.clone()),
                    None => client
                        .profile_accounts(Priority::Resweep)
                        .await
                        .ok()
                        .and_then(|accounts| accounts.into_iter().next()),
                }
            })
            .await;
        let changes = inventory_changes(account.as_deref(), &before, before_ms, &users, now);
        // Delivered already: by the audit log within the interval, or by an attempt of this
        // reconciliation that stopped before its snapshot was saved.
        let delivered = store.delivered_since(stream, before_ms).await?;
        let mut events = Vec::new();
        let mut n_known = 0;
        for event in changes {
            let target = event.target.as_deref().unwrap_or("");
            let from_audit = store
                .lifecycle_seen(
                    stream,
                    event.event_type.as_str(),
                    target,
                    "audit",
                    (before_ms - every_ms, now),
                )
                .await?;
            if from_audit || delivered.contains(&event.id) {
                n_known += 1;
            } else {
                events.push(event);
            }
        }
        if !events.is_empty() {
            let delivery = deliver_batch(
                sinks,
                store,
                stream,
                &events,
                &HashMap::new(),
                None,
                true,
                shutdown,
            )
            .await?;
            if delivery == Delivery::Cancelled {
                return Ok(Delivery::Cancelled);
            }
            // Noted at the earlier snapshot's time: the change happened between the two
            // snapshots, and an audit record of it, however late it lands, carries a time
            // in there.
            let seen = seen_of(&events)
                .into_iter()
                .map(|(event_type, target, _, source)| (event_type, target, before_ms, source))
                .collect();
            store.note_lifecycle(stream, seen).await?;
        }
        store.save_inventory(stream, now, snapshot).await?;
        tracing::info!(
            stream,
            endpoint,
            n_users = users.len(),
            n_events = events.len(),
            n_known,
            "User inventory reconciled."
        );
        Ok(Delivery::Delivered)
    }
}
