//! The checkpoint store: per-stream cursors, ids of delivered events, replay progress.
//!
//! Invariant: only this module opens the database. Every call runs on the blocking pool so
//! SQLite never stalls the async workers, and every write is one transaction. The poller
//! records the ids of each acknowledged batch before it moves the cursor past them, so a
//! cursor never covers an event whose id is not recorded.
//!
//! Invariant: this module imports nothing of ours but `event::RecordId` and the time helpers.

mod inventory;
mod ledger;
mod lock;
mod sink_progress;
mod sqlite;
mod stream;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::event::RecordId;
use crate::time::now_ms;

pub(crate) use inventory::Seen;
pub(crate) use ledger::{
    CursorMove, PageDone, ResumePoint, ResweepState, WindowCounts, WindowKey, WindowKind, WindowRow,
};
pub(crate) use sink_progress::SinkAck;
pub(crate) use stream::live_stream_key;

/// A delivered event's id and time, as recorded.
pub type Delivered = (RecordId, Option<i64>);

/// What the last acknowledgement of a batch records, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct BatchRecord {
    /// The batch's ids and event times.
    pub delivered: Vec<Delivered>,
    /// Whether the ids are remembered for the stream (to drop them when read again): the
    /// live stream and re-sweeps re-read time, a replay never reads a record twice.
    pub remember_ids: bool,
    /// The page the batch completes, with its `nextPage` link, when a longer window goes on.
    pub page: Option<PageDone>,
    /// The resume states of the sinks that took it last.
    pub acks: Vec<SinkAck>,
    /// Whether a sink took some of it before (`record_taken`): those rows go.
    pub clear_taken: bool,
}

/// A checkpoint store failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused an operation.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer version of the exporter.
    #[error(
        "state database {path} has schema version {found}; this build understands up to {supported}: upgrade the exporter"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// The directory for the file could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the state file.
    #[error(
        "state database {path} is in use by another exporter process{}: only one `run` or `replay` may use a state file at a time (give a replay its own with `replay --state PATH`)",
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// The holder, when its lock file tells.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or written.
    #[error("cannot lock the state database through {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The blocking task running the query panicked or was cancelled.
    #[error("state database task failed: {0}")]
    Task(String),
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Everything before this (epoch ms) was delivered.
    pub position_ms: i64,
    /// Where the stream's reading began (its first run's start, or where an operator put it):
    /// re-reads for late records never reach before it, since nothing there was meant to be
    /// delivered.
    pub origin_ms: i64,
}

/// What `state show` reports for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Stream key, e.g. `live:acme.lacework.net`.
    pub stream: String,
    /// Cursor position (epoch ms): everything before it was delivered.
    pub position_ms: Option<i64>,
    /// When the cursor last moved (epoch ms).
    pub updated_at_ms: Option<i64>,
    /// Ids remembered for this stream.
    pub n_delivered_ids: u64,
}

/// A replay's saved progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayJob {
    /// Job id; its stream is `replay:<id>`.
    pub id: String,
    /// Range start (epoch ms, inclusive).
    pub from_ms: i64,
    /// Range end (epoch ms, exclusive).
    pub to_ms: i64,
    /// Everything before this was delivered.
    pub position_ms: i64,
    /// Sink names the replay delivers to, comma-separated; empty means all.
    pub sinks: String,
    /// When the job started (epoch ms).
    pub created_at_ms: i64,
}

impl ReplayJob {
    /// The stream key its delivered ids live under.
    pub fn stream(&self) -> String {
        format!("replay:{}", self.id)
    }
}

/// Handle to the state database. Cheap to clone.
#[derive(Clone)]
pub struct CheckpointStore {
    path: PathBuf,
    connection: Arc<Mutex<rusqlite::Connection>>,
    /// Held by stores opened for writing walks; released with the last clone.
    _lock: Option<Arc<lock::StateLock>>,
}

impl CheckpointStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<CheckpointStore, Error> {
        let path = path.to_path_buf();
        let opened_path = path.clone();
        let connection = tokio::task::spawn_blocking(move || sqlite::open(&opened_path))
            .await
            .map_err(|error| Error::Task(error.to_string()))??;
        Ok(CheckpointStore {
            path,
            connection: Arc::new(Mutex::new(connection)),
            _lock: None,
        })
    }

    /// Opens the database for a process that walks and writes (`run`, `replay`, `state
    /// set`/`reset`), holding its exclusive lock: a second such process is refused with
    /// `Error::Locked`. `state show` opens without it and works beside a running daemon.
    pub async fn open_exclusive(path: &Path) -> Result<CheckpointStore, Error> {
        let locked_path = path.to_path_buf();
        let lock = tokio::task::spawn_blocking(move || lock::StateLock::acquire(&locked_path))
            .await
            .map_err(|error| Error::Task(error.to_string()))??;
        let mut store = CheckpointStore::open(path).await?;
        store._lock = Some(Arc::new(lock));
        Ok(store)
    }

    async fn with_connection<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half transaction: SQLite rolls
            // back on drop, so a poisoned lock is safe to take over.
            let mut guard = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard).map_err(|source| Error::Sqlite { path, source })
        })
        .await
        .map_err(|error| Error::Task(error.to_string()))?
    }

    /// The stream's cursor, if it has one.
    pub async fn cursor(&self, stream: &str) -> Result<Option<Cursor>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sqlite::cursor(c, &stream))
            .await
    }

    /// Records a batch every sink has now taken (see `BatchRecord`), atomically.
    pub async fn record_delivered(&self, stream: &str, record: BatchRecord) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| ledger::record_page(c, &stream, &record, now_ms()))
            .await
    }

    /// Records that one sink took a batch (and its resume state) while another still holds
    /// it: after a crash, that sink is not handed these ids again.
    pub async fn record_taken(
        &self,
        stream: &str,
        delivered: Arc<Vec<Delivered>>,
        ack: SinkAck,
    ) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| {
            sink_progress::record_taken(c, &stream, &delivered, &ack, now_ms())
        })
        .await
    }

    /// Ids single sinks took on the stream that not every sink has taken yet, by sink name
    /// (at most about a batch per sink).
    pub async fn taken(&self, stream: &str) -> Result<HashMap<String, HashSet<RecordId>>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sink_progress::taken(c, &stream))
            .await
    }

    /// Takes in what a sink that keeps its own progress remembers of `stream` (see
    /// `sink_progress::import`).
    pub async fn import_sink_progress(
        &self,
        sink: &str,
        sole: bool,
        stream: &str,
        cursor: Option<Cursor>,
        ids: Vec<Delivered>,
    ) -> Result<(), Error> {
        let (sink, stream) = (sink.to_string(), stream.to_string());
        self.with_connection(move |c| {
            sink_progress::import(c, &sink, sole, &stream, cursor, &ids, now_ms())
        })
        .await
    }

    /// The stream's last user-inventory snapshot: when it was taken, and its users (JSON).
    pub async fn inventory(&self, stream: &str) -> Result<Option<(i64, String)>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| inventory::snapshot(c, &stream))
            .await
    }

    /// Replaces the stream's user-inventory snapshot.
    pub async fn save_inventory(
        &self,
        stream: &str,
        taken_at_ms: i64,
        users: String,
    ) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| inventory::save_snapshot(c, &stream, taken_at_ms, &users))
            .await
    }

    /// Notes lifecycle changes delivered (type, lower-cased user, time, source).
    pub async fn note_lifecycle(&self, stream: &str, seen: Vec<Seen>) -> Result<(), Error> {
        if seen.is_empty() {
            return Ok(());
        }
        let stream = stream.to_string();
        self.with_connection(move |c| inventory::note(c, &stream, &seen))
            .await
    }

    /// Whether `source` delivered a change of `event_type` about `target` within `range`.
    pub async fn lifecycle_seen(
        &self,
        stream: &str,
        event_type: &str,
        target: &str,
        source: &str,
        range: (i64, i64),
    ) -> Result<bool, Error> {
        let (stream, event_type, target, source) = (
            stream.to_string(),
            event_type.to_string(),
            target.to_lowercase(),
            source.to_string(),
        );
        self.with_connection(move |c| {
            inventory::was_seen(c, &stream, &event_type, &target, &source, range)
        })
        .await
    }

    /// Every sink's saved resume state, by sink name.
    pub async fn sink_states(&self) -> Result<HashMap<String, String>, Error> {
        self.with_connection(sink_progress::states).await
    }

    /// Where an interrupted walk of this window can continue, if a link was saved.
    pub async fn resume_point(&self, key: &WindowKey) -> Result<Option<ResumePoint>, Error> {
        let key = key.clone();
        self.with_connection(move |c| ledger::resume_point(c, &key))
            .await
    }

    /// The start of the stream's earliest begun, unfinished window of `kind`.
    pub async fn first_unfinished_start(
        &self,
        stream: &str,
        kind: WindowKind,
    ) -> Result<Option<i64>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| ledger::first_unfinished_start(c, &stream, kind))
            .await
    }

    /// Marks a window as being read (`resuming`: at its saved link).
    pub async fn begin_window(
        &self,
        key: &WindowKey,
        end_ms: i64,
        query: (i64, i64),
        resuming: bool,
    ) -> Result<(), Error> {
        let key = key.clone();
        self.with_connection(move |c| {
            ledger::begin_window(c, &key, end_ms, query, resuming, now_ms())
        })
        .await
    }

    /// Marks a window done and moves `cursor`, in one transaction: everything before a live
    /// cursor's `position_ms` was delivered. A new cursor takes `cursor.origin_ms` as its
    /// origin; an existing one keeps its own.
    pub async fn complete_window(
        &self,
        key: &WindowKey,
        query: (i64, i64),
        counts: WindowCounts,
        cursor: CursorMove,
    ) -> Result<(), Error> {
        let key = key.clone();
        self.with_connection(move |c| {
            ledger::complete_window(c, &key, query, counts, &cursor, now_ms())
        })
        .await
    }

    /// Marks a window failed; it shows as a gap until read.
    pub async fn fail_window(&self, key: &WindowKey, error: String) -> Result<(), Error> {
        let key = key.clone();
        self.with_connection(move |c| ledger::fail_window(c, &key, &error, now_ms()))
            .await
    }

    /// The stream's most recently touched windows, newest first.
    pub async fn recent_windows(
        &self,
        stream: &str,
        limit: usize,
    ) -> Result<Vec<WindowRow>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| ledger::recent_windows(c, &stream, limit))
            .await
    }

    /// Windows that failed and were not read since, oldest first.
    pub async fn gaps(&self, stream: &str) -> Result<Vec<WindowRow>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| ledger::gaps(c, &stream))
            .await
    }

    /// The stream's last re-sweep.
    pub async fn resweep(&self, stream: &str) -> Result<Option<ResweepState>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| ledger::resweep(c, &stream))
            .await
    }

    /// Records that a re-sweep of `[from_ms, to_ms)` began.
    pub async fn start_resweep(&self, stream: &str, from_ms: i64, to_ms: i64) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| ledger::start_resweep(c, &stream, from_ms, to_ms, now_ms()))
            .await
    }

    /// Records how the current re-sweep ended.
    pub async fn finish_resweep(
        &self,
        stream: &str,
        windows: i64,
        late_records: i64,
    ) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| {
            ledger::finish_resweep(c, &stream, windows, late_records, now_ms())
        })
        .await
    }

    /// Ids delivered on the stream whose event time is at or after `since_ms`, plus those
    /// without a time.
    pub async fn delivered_since(
        &self,
        stream: &str,
        since_ms: i64,
    ) -> Result<HashSet<RecordId>, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sqlite::delivered_since(c, &stream, since_ms))
            .await
    }

    /// Whether one id was delivered on the stream.
    pub async fn is_delivered(
        &self,
        stream: &str,
        id: RecordId,
        time_ms: Option<i64>,
    ) -> Result<bool, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sqlite::is_delivered(c, &stream, id, time_ms))
            .await
    }

    /// Forgets ids of events older than `before_ms`. Returns how many were dropped.
    pub async fn prune(&self, stream: &str, before_ms: i64) -> Result<usize, Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sqlite::prune(c, &stream, before_ms))
            .await
    }

    /// Sets the cursor and makes it the stream's origin (operator command): the next run reads
    /// from there, never before. Remembered ids stay.
    pub async fn set_cursor(&self, stream: &str, position_ms: i64) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sqlite::set_cursor(c, &stream, position_ms, now_ms()))
            .await
    }

    /// Deletes the stream's cursor and remembered ids (operator command).
    pub async fn reset(&self, stream: &str) -> Result<(), Error> {
        let stream = stream.to_string();
        self.with_connection(move |c| sqlite::reset(c, &stream))
            .await
    }

    /// Every stream with a cursor or remembered ids.
    pub async fn streams(&self) -> Result<Vec<StreamState>, Error> {
        self.with_connection(sqlite::streams).await
    }

    /// Saves a new replay job (replacing one with the same id).
    pub async fn start_replay(&self, job: ReplayJob) -> Result<(), Error> {
        self.with_connection(move |c| sqlite::start_replay(c, &job))
            .await
    }

    /// Deletes a finished replay and its ids.
    pub async fn finish_replay(&self, job: &ReplayJob) -> Result<(), Error> {
        let id = job.id.clone();
        let stream = job.stream();
        self.with_connection(move |c| sqlite::finish_replay(c, &id, &stream))
            .await
    }

    /// Unfinished replays, newest first.
    pub async fn replays(&self) -> Result<Vec<ReplayJob>, Error> {
        self.with_connection(sqlite::replays).await
    }
}
