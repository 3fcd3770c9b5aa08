//! Test doubles for sinks (`MemorySink`, `FailingSink`) and the one event fixture every sink
//! test shares. Compiled only for tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;

use crate::event::{EventType, LifecycleEvent, RecordId, SCHEMA};
use crate::sinks::{Error, Sink};

/// Event number `n` of a test: a `USER_CREATED` at 2026-11-01T09:15:02.123Z plus `n` ms, with
/// an id that tells `n`. Tests change the fields they care about with `..event(n)`.
pub(crate) fn event(n: u32) -> LifecycleEvent {
    let mut id = [0u8; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    LifecycleEvent {
        schema: SCHEMA,
        id: RecordId(id),
        event_type: EventType::UserCreated,
        time: Some(1_793_524_502_123 + i64::from(n)),
        account: Some("ACME".into()),
        actor: Some("admin@acme.com".into()),
        target: Some(format!("user{n}@acme.com")),
        action: Some("User Created".into()),
        description: Some(format!("User user{n}@acme.com created by admin@acme.com")),
        source: crate::event::Source::Audit,
        raw: RawValue::from_string(r#"{"accountName":"ACME"}"#.into()).expect("valid JSON"),
    }
}

/// Events `0..n`.
pub(crate) fn events(n: u32) -> Vec<LifecycleEvent> {
    (0..n).map(event).collect()
}

/// Accepts every batch (after `delay`, if set) and remembers what it took. Clones share what
/// was taken, so a test keeps one clone and hands the other to a `SinkSet`.
#[derive(Clone)]
pub(crate) struct MemorySink {
    name: String,
    delay: Duration,
    taken: Arc<Mutex<Vec<Vec<LifecycleEvent>>>>,
}

impl MemorySink {
    /// A sink that accepts at once.
    pub(crate) fn new(name: &str) -> MemorySink {
        MemorySink {
            name: name.to_string(),
            delay: Duration::ZERO,
            taken: Arc::default(),
        }
    }

    /// A sink that takes `delay` to accept each batch.
    pub(crate) fn slow(name: &str, delay: Duration) -> MemorySink {
        MemorySink {
            delay,
            ..MemorySink::new(name)
        }
    }

    /// The batches accepted, in order.
    pub(crate) fn batches(&self) -> Vec<Vec<LifecycleEvent>> {
        self.taken.lock().expect("not poisoned").clone()
    }

    /// The ids of every event accepted, in order.
    pub(crate) fn ids(&self) -> Vec<RecordId> {
        self.batches().iter().flatten().map(|e| e.id).collect()
    }
}

#[async_trait::async_trait]
impl Sink for MemorySink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.taken
            .lock()
            .expect("not poisoned")
            .push(batch.to_vec());
        Ok(())
    }
}

/// How a `FailingSink` fails.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure {
    /// `Unavailable`, asking for this wait (or none).
    Retryable(Option<Duration>),
    /// `Fatal`.
    Fatal,
}

/// Accepts its first `accept_first` calls, fails the next `fail_count` as `failure` says, then
/// accepts again. What it accepted is kept as a `MemorySink` keeps it.
#[derive(Clone)]
pub(crate) struct FailingSink {
    accepted: MemorySink,
    failure: Failure,
    accept_first: usize,
    fail_count: usize,
    calls: Arc<AtomicUsize>,
}

impl FailingSink {
    /// Fails calls `accept_first .. accept_first + fail_count` (counting from 0).
    pub(crate) fn new(
        name: &str,
        failure: Failure,
        accept_first: usize,
        fail_count: usize,
    ) -> FailingSink {
        FailingSink {
            accepted: MemorySink::new(name),
            failure,
            accept_first,
            fail_count,
            calls: Arc::default(),
        }
    }

    /// A sink that fails every call.
    pub(crate) fn always(name: &str, failure: Failure) -> FailingSink {
        FailingSink::new(name, failure, 0, usize::MAX)
    }

    /// How many times `deliver` was called.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// What it accepted.
    pub(crate) fn accepted(&self) -> &MemorySink {
        &self.accepted
    }
}

#[async_trait::async_trait]
impl Sink for FailingSink {
    fn name(&self) -> &str {
        self.accepted.name()
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = call >= self.accept_first && call - self.accept_first < self.fail_count;
        if !failing {
            return self.accepted.deliver(batch).await;
        }
        let sink = self.accepted.name().to_string();
        Err(match self.failure {
            Failure::Retryable(retry_after) => Error::Unavailable {
                sink,
                message: format!("test failure on call {call}"),
                retry_after,
            },
            Failure::Fatal => Error::Fatal {
                sink,
                message: format!("test failure on call {call}"),
            },
        })
    }
}
