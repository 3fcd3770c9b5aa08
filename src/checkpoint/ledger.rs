//! The window ledger: every window walked (live, re-sweep, replay), its counts, attempts,
//! status and last error, the `nextPage` link a crashed walk resumes from, and the re-sweep
//! schedule. `state show` reads it; a failed window stays visible until it is read.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::checkpoint::sqlite::{insert_delivered, upsert_cursor};
use crate::checkpoint::{BatchRecord, Cursor};

/// What a window was walked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The live stream.
    Live,
    /// A re-read of recent time for late records.
    Resweep,
    /// An operator's replay.
    Replay,
}

impl WindowKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Live => "live",
            WindowKind::Resweep => "resweep",
            WindowKind::Replay => "replay",
        }
    }
}

/// One window of one stream, named by where it starts: a window read again after a failure,
/// or read shorter after the API refused it, keeps its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowKey {
    /// The stream.
    pub stream: String,
    /// What it was walked for.
    pub kind: WindowKind,
    /// Its start (epoch ms).
    pub start_ms: i64,
}

/// A ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    /// The stream.
    pub stream: String,
    /// `live`, `resweep` or `replay`.
    pub kind: String,
    /// Window start (epoch ms, inclusive).
    pub start_ms: i64,
    /// Window end (epoch ms, exclusive).
    pub end_ms: i64,
    /// `reading`, `done`, `failed`, `covered` (failed, then read by a window around it) or
    /// `interrupted` (a re-sweep window given up for the next re-sweep).
    pub status: String,
    /// Times reading it began.
    pub attempts: i64,
    /// Pages read by the last attempt.
    pub pages: i64,
    /// Records read by the last attempt.
    pub records: i64,
    /// Events delivered by the last attempt.
    pub events: i64,
    /// Of those, records first seen after the cursor had passed their time.
    pub late: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Whether a `nextPage` link is saved to resume from.
    pub resumable: bool,
    /// When reading it first began (epoch ms).
    pub started_at_ms: i64,
    /// When the row last changed (epoch ms).
    pub updated_at_ms: i64,
}

/// Where an interrupted walk of a window can continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The `nextPage` link of the last page whose events were all delivered.
    pub next_page: String,
    /// When it was saved (epoch ms): the API keeps links valid for 24 hours.
    pub saved_at_ms: i64,
    /// The window's end as the interrupted walk had it.
    pub end_ms: i64,
    /// The query the link belongs to.
    pub query_start_ms: i64,
    /// The query's end.
    pub query_end_ms: i64,
    /// Digest keys of the records given ids before the link, in order.
    pub keys: Vec<[u8; 16]>,
    /// Pages read before the link.
    pub pages: i64,
    /// Records read before the link.
    pub records: i64,
    /// Events delivered before the link.
    pub events: i64,
}

/// Pages whose events were all delivered, saved with their ids: the link after the last one
/// is where a crashed walk resumes.
#[derive(Debug, Clone)]
pub struct PageDone {
    /// The window.
    pub key: WindowKey,
    /// The last page's `nextPage` link.
    pub next_page: String,
    /// Digest keys of the pages' records given ids, in order.
    pub keys: Vec<[u8; 16]>,
    /// Pages.
    pub pages: i64,
    /// Records on them.
    pub records: i64,
    /// Events delivered from them.
    pub events: i64,
}

impl PageDone {
    /// Nothing done yet in `key`'s window.
    pub fn new(key: &WindowKey) -> PageDone {
        PageDone {
            key: key.clone(),
            next_page: String::new(),
            keys: Vec::new(),
            pages: 0,
            records: 0,
            events: 0,
        }
    }
}

/// Counts of a completed window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Pages read.
    pub pages: i64,
    /// Records read.
    pub records: i64,
    /// Events delivered.
    pub events: i64,
    /// Late records among them.
    pub late: i64,
}

/// What completing a window moves.
#[derive(Debug, Clone)]
pub enum CursorMove {
    /// The live cursor.
    Live(Cursor),
    /// A replay's position.
    Replay {
        /// The job.
        id: String,
        /// The new position.
        position_ms: i64,
    },
    /// Nothing (a re-sweep window).
    None,
}

/// The last re-sweep of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResweepState {
    /// When it began (epoch ms).
    pub started_at_ms: i64,
    /// When it ended, if it did.
    pub finished_at_ms: Option<i64>,
    /// The range it read.
    pub from_ms: i64,
    /// Its end.
    pub to_ms: i64,
    /// Windows read.
    pub windows: i64,
    /// Late records it found and delivered.
    pub late_records: i64,
}

pub const SCHEMA_V2: &str = "
CREATE TABLE window_ledger (
    stream         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    start_ms       INTEGER NOT NULL,
    end_ms         INTEGER NOT NULL,
    query_start_ms INTEGER NOT NULL,
    query_end_ms   INTEGER NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    pages          INTEGER NOT NULL DEFAULT 0,
    records        INTEGER NOT NULL DEFAULT 0,
    events         INTEGER NOT NULL DEFAULT 0,
    late           INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    next_page      TEXT,
    next_page_at_ms INTEGER,
    started_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (stream, kind, start_ms)
);
CREATE INDEX window_ledger_recent ON window_ledger (stream, updated_at_ms);
-- Digest keys of records given ids before the saved nextPage link, one row per page.
CREATE TABLE window_resume_keys (
    stream   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    keys     BLOB NOT NULL,
    PRIMARY KEY (stream, kind, start_ms, seq)
);
CREATE TABLE resweep (
    stream         TEXT PRIMARY KEY,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    from_ms        INTEGER NOT NULL,
    to_ms          INTEGER NOT NULL,
    windows        INTEGER NOT NULL,
    late_records   INTEGER NOT NULL
);
";

fn delete_resume_keys(tx: &Transaction<'_>, key: &WindowKey) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM window_resume_keys WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3",
        params![key.stream, key.kind.as_str(), key.start_ms],
    )?;
    Ok(())
}

/// The saved link of an unfinished window, with the keys before it.
pub fn resume_point(c: &mut Connection, key: &WindowKey) -> rusqlite::Result<Option<ResumePoint>> {
    let row = c
        .query_row(
            "SELECT next_page, next_page_at_ms, end_ms, query_start_ms, query_end_ms, pages,
                 records, events
             FROM window_ledger
             WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3 AND status != 'done'
               AND next_page IS NOT NULL",
            params![key.stream, key.kind.as_str(), key.start_ms],
            |row| {
                Ok(ResumePoint {
                    next_page: row.get(0)?,
                    saved_at_ms: row.get(1)?,
                    end_ms: row.get(2)?,
                    query_start_ms: row.get(3)?,
                    query_end_ms: row.get(4)?,
                    keys: Vec::new(),
                    pages: row.get(5)?,
                    records: row.get(6)?,
                    events: row.get(7)?,
                })
            },
        )
        .optional()?;
    let Some(mut point) = row else {
        return Ok(None);
    };
    let mut select = c.prepare_cached(
        "SELECT keys FROM window_resume_keys WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3
         ORDER BY seq",
    )?;
    let chunks = select.query_map(
        params![key.stream, key.kind.as_str(), key.start_ms],
        |row| row.get::<_, Vec<u8>>(0),
    )?;
    for chunk in chunks {
        point.keys.extend(
            chunk?
                .chunks_exact(16)
                .map(|k| <[u8; 16]>::try_from(k).expect("16 bytes")),
        );
    }
    Ok(Some(point))
}

/// The start of the stream's earliest window of `kind` that was begun and not finished.
pub fn first_unfinished_start(
    c: &mut Connection,
    stream: &str,
    kind: WindowKind,
) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT MIN(start_ms) FROM window_ledger
         WHERE stream = ?1 AND kind = ?2 AND status IN ('reading', 'failed')",
        params![stream, kind.as_str()],
        |row| row.get(0),
    )
}

/// Marks the window as being read (one more attempt). A walk that does not resume starts
/// the window's counts and saved link afresh.
pub fn begin_window(
    c: &mut Connection,
    key: &WindowKey,
    end_ms: i64,
    query: (i64, i64),
    resuming: bool,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    tx.execute(
        "INSERT INTO window_ledger (stream, kind, start_ms, end_ms, query_start_ms, query_end_ms,
             status, attempts, started_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'reading', 1, ?7, ?7)
         ON CONFLICT (stream, kind, start_ms) DO UPDATE SET
             end_ms = excluded.end_ms, query_start_ms = excluded.query_start_ms,
             query_end_ms = excluded.query_end_ms, status = 'reading',
             attempts = attempts + 1, updated_at_ms = excluded.updated_at_ms",
        params![
            key.stream,
            key.kind.as_str(),
            key.start_ms,
            end_ms,
            query.0,
            query.1,
            now_ms
        ],
    )?;
    if !resuming {
        tx.execute(
            "UPDATE window_ledger SET pages = 0, records = 0, events = 0, late = 0,
                 next_page = NULL, next_page_at_ms = NULL
             WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3",
            params![key.stream, key.kind.as_str(), key.start_ms],
        )?;
        delete_resume_keys(&tx, key)?;
    }
    tx.commit()
}

/// Records a batch every sink took: its ids (when remembered), the page it completes and the
/// sinks' resume states, in one transaction: a saved link never runs ahead of the ids recorded
/// before it, and a sink's state never disagrees with what is recorded for it. With
/// `clear_taken` (some sink took part of the batch before), the per-sink rows of its ids go.
pub fn record_page(
    c: &mut Connection,
    stream: &str,
    record: &BatchRecord,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    if record.remember_ids {
        insert_delivered(&tx, stream, &record.delivered)?;
    }
    if record.clear_taken {
        crate::checkpoint::sink_progress::clear_taken(&tx, stream, &record.delivered)?;
    }
    for ack in &record.acks {
        crate::checkpoint::sink_progress::save_state(&tx, ack, now_ms)?;
    }
    if let Some(page) = &record.page {
        let key = &page.key;
        tx.execute(
            "UPDATE window_ledger SET next_page = ?4, next_page_at_ms = ?5, updated_at_ms = ?5,
                 pages = pages + ?6, records = records + ?7, events = events + ?8
             WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3",
            params![
                key.stream,
                key.kind.as_str(),
                key.start_ms,
                page.next_page,
                now_ms,
                page.pages,
                page.records,
                page.events
            ],
        )?;
        if !page.keys.is_empty() {
            let blob: Vec<u8> = page.keys.iter().flatten().copied().collect();
            tx.execute(
                "INSERT INTO window_resume_keys (stream, kind, start_ms, seq, keys)
                 VALUES (?1, ?2, ?3,
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM window_resume_keys
                      WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3), ?4)",
                params![key.stream, key.kind.as_str(), key.start_ms, blob],
            )?;
        }
    }
    tx.commit()
}

/// Marks the window done, forgets its saved link, marks failed windows it covers, and moves
/// the cursor, in one transaction.
pub fn complete_window(
    c: &mut Connection,
    key: &WindowKey,
    query: (i64, i64),
    counts: WindowCounts,
    cursor: &CursorMove,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    tx.execute(
        "UPDATE window_ledger SET status = 'done', pages = ?4, records = ?5, events = ?6,
             late = ?7, next_page = NULL, next_page_at_ms = NULL, updated_at_ms = ?8
         WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3",
        params![
            key.stream,
            key.kind.as_str(),
            key.start_ms,
            counts.pages,
            counts.records,
            counts.events,
            counts.late,
            now_ms
        ],
    )?;
    delete_resume_keys(&tx, key)?;
    tx.execute(
        "UPDATE window_ledger SET status = 'covered', updated_at_ms = ?4
         WHERE stream = ?1 AND status = 'failed' AND start_ms >= ?2 AND end_ms <= ?3",
        params![key.stream, query.0, query.1, now_ms],
    )?;
    match cursor {
        CursorMove::Live(cursor) => upsert_cursor(&tx, &key.stream, *cursor, now_ms)?,
        CursorMove::Replay { id, position_ms } => {
            tx.execute(
                "UPDATE replay SET position_ms = ?2, updated_at_ms = ?3 WHERE id = ?1",
                params![id, position_ms, now_ms],
            )?;
        }
        CursorMove::None => {}
    }
    tx.commit()
}

/// Marks the window failed with its error; it stays a gap until read.
pub fn fail_window(
    c: &mut Connection,
    key: &WindowKey,
    error: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE window_ledger SET status = 'failed', last_error = ?4, updated_at_ms = ?5
         WHERE stream = ?1 AND kind = ?2 AND start_ms = ?3",
        params![key.stream, key.kind.as_str(), key.start_ms, error, now_ms],
    )?;
    Ok(())
}

/// Forgets ledger rows of windows that ended before `before_ms`, with the ids. Failed live
/// and replay windows stay until read: a gap never silently disappears.
pub fn prune(tx: &Transaction<'_>, stream: &str, before_ms: i64) -> rusqlite::Result<usize> {
    let pruned = tx.execute(
        "DELETE FROM window_ledger WHERE stream = ?1 AND end_ms < ?2
             AND (status != 'failed' OR kind = 'resweep')",
        params![stream, before_ms],
    )?;
    tx.execute(
        "DELETE FROM window_resume_keys WHERE stream = ?1 AND NOT EXISTS (
             SELECT 1 FROM window_ledger l WHERE l.stream = window_resume_keys.stream
                 AND l.kind = window_resume_keys.kind AND l.start_ms = window_resume_keys.start_ms)",
        [stream],
    )?;
    Ok(pruned)
}

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WindowRow> {
    Ok(WindowRow {
        stream: row.get(0)?,
        kind: row.get(1)?,
        start_ms: row.get(2)?,
        end_ms: row.get(3)?,
        status: row.get(4)?,
        attempts: row.get(5)?,
        pages: row.get(6)?,
        records: row.get(7)?,
        events: row.get(8)?,
        late: row.get(9)?,
        last_error: row.get(10)?,
        resumable: row.get::<_, Option<String>>(11)?.is_some(),
        started_at_ms: row.get(12)?,
        updated_at_ms: row.get(13)?,
    })
}

const COLUMNS: &str = "stream, kind, start_ms, end_ms, status, attempts, pages, records, events,
    late, last_error, next_page, started_at_ms, updated_at_ms";

/// The stream's most recently touched windows, newest first.
pub fn recent_windows(
    c: &mut Connection,
    stream: &str,
    limit: usize,
) -> rusqlite::Result<Vec<WindowRow>> {
    let mut select = c.prepare(&format!(
        "SELECT {COLUMNS} FROM window_ledger WHERE stream = ?1
         ORDER BY updated_at_ms DESC, start_ms DESC LIMIT ?2"
    ))?;
    let rows = select.query_map(params![stream, limit as i64], row)?;
    rows.collect()
}

/// Windows that failed and were not read since: the gaps, oldest first.
pub fn gaps(c: &mut Connection, stream: &str) -> rusqlite::Result<Vec<WindowRow>> {
    let mut select = c.prepare(&format!(
        "SELECT {COLUMNS} FROM window_ledger WHERE stream = ?1 AND status = 'failed'
         ORDER BY start_ms"
    ))?;
    let rows = select.query_map([stream], row)?;
    rows.collect()
}

/// The stream's last re-sweep.
pub fn resweep(c: &mut Connection, stream: &str) -> rusqlite::Result<Option<ResweepState>> {
    c.query_row(
        "SELECT started_at_ms, finished_at_ms, from_ms, to_ms, windows, late_records
         FROM resweep WHERE stream = ?1",
        [stream],
        |row| {
            Ok(ResweepState {
                started_at_ms: row.get(0)?,
                finished_at_ms: row.get(1)?,
                from_ms: row.get(2)?,
                to_ms: row.get(3)?,
                windows: row.get(4)?,
                late_records: row.get(5)?,
            })
        },
    )
    .optional()
}

/// Records that a re-sweep of `[from_ms, to_ms)` began; unfinished re-sweep windows of an
/// earlier one are abandoned (their time is read again by this one).
pub fn start_resweep(
    c: &mut Connection,
    stream: &str,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    tx.execute(
        "INSERT OR REPLACE INTO resweep (stream, started_at_ms, finished_at_ms, from_ms, to_ms,
             windows, late_records) VALUES (?1, ?2, NULL, ?3, ?4, 0, 0)",
        params![stream, now_ms, from_ms, to_ms],
    )?;
    tx.execute(
        "DELETE FROM window_resume_keys WHERE stream = ?1 AND kind = 'resweep'",
        [stream],
    )?;
    tx.execute(
        "UPDATE window_ledger SET next_page = NULL, next_page_at_ms = NULL,
             status = CASE status WHEN 'reading' THEN 'interrupted' ELSE status END
         WHERE stream = ?1 AND kind = 'resweep' AND status != 'done'",
        [stream],
    )?;
    tx.commit()
}

/// Records how the current re-sweep ended.
pub fn finish_resweep(
    c: &mut Connection,
    stream: &str,
    windows: i64,
    late_records: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE resweep SET finished_at_ms = ?2, windows = ?3, late_records = ?4
         WHERE stream = ?1",
        params![stream, now_ms, windows, late_records],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: WindowKind, start_ms: i64) -> WindowKey {
        WindowKey {
            stream: "live:a".into(),
            kind,
            start_ms,
        }
    }

    fn statuses(c: &mut Connection) -> Vec<(i64, String)> {
        let mut rows: Vec<(i64, String)> = recent_windows(c, "live:a", 100)
            .unwrap()
            .into_iter()
            .map(|w| (w.start_ms, w.status))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn a_saved_link_comes_back_with_its_keys_until_the_window_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::checkpoint::sqlite::open(&dir.path().join("state.db")).unwrap();
        let window = key(WindowKind::Live, 100);
        begin_window(&mut c, &window, 200, (90, 200), false, 1).unwrap();
        assert_eq!(resume_point(&mut c, &window).unwrap(), None);
        for (n, link) in [(1u8, "/p2"), (2, "/p3")] {
            let page = PageDone {
                next_page: link.into(),
                keys: vec![[n; 16], [n; 16]],
                pages: 1,
                records: 5,
                events: 2,
                ..PageDone::new(&window)
            };
            let record = BatchRecord {
                page: Some(page),
                ..BatchRecord::default()
            };
            record_page(&mut c, "live:a", &record, 10 + i64::from(n)).unwrap();
        }
        let point = resume_point(&mut c, &window)
            .unwrap()
            .expect("a saved link");
        assert_eq!(point.next_page, "/p3");
        assert_eq!(point.saved_at_ms, 12);
        assert_eq!(
            (point.end_ms, point.query_start_ms, point.query_end_ms),
            (200, 90, 200)
        );
        assert_eq!(
            point.keys,
            vec![[1; 16], [1; 16], [2; 16], [2; 16]],
            "in order"
        );
        assert_eq!((point.pages, point.records, point.events), (2, 10, 4));
        // A walk that starts the window afresh forgets the link and the keys.
        begin_window(&mut c, &window, 200, (90, 200), false, 20).unwrap();
        assert_eq!(resume_point(&mut c, &window).unwrap(), None);
        let rows: i64 = c
            .query_row("SELECT COUNT(*) FROM window_resume_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn failed_windows_stay_until_read_and_done_ones_are_pruned_with_the_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::checkpoint::sqlite::open(&dir.path().join("state.db")).unwrap();
        let done = |c: &mut Connection, kind, start: i64, end: i64, query: (i64, i64)| {
            let window = key(kind, start);
            begin_window(c, &window, end, query, false, 1).unwrap();
            complete_window(
                c,
                &window,
                query,
                WindowCounts::default(),
                &CursorMove::None,
                2,
            )
            .unwrap();
        };
        done(&mut c, WindowKind::Live, 0, 100, (0, 100));
        let failed = key(WindowKind::Live, 100);
        begin_window(&mut c, &failed, 200, (100, 200), false, 3).unwrap();
        fail_window(&mut c, &failed, "503", 4).unwrap();
        assert_eq!(gaps(&mut c, "live:a").unwrap().len(), 1);
        // A re-sweep window around the gap covers it.
        done(&mut c, WindowKind::Resweep, 50, 300, (50, 300));
        assert!(gaps(&mut c, "live:a").unwrap().is_empty());
        assert_eq!(
            statuses(&mut c),
            [
                (0, "done".to_string()),
                (50, "done".to_string()),
                (100, "covered".to_string())
            ]
        );
        // A failure nothing covered is never pruned; done (and covered) rows go with the ids.
        let open_gap = key(WindowKind::Live, 400);
        begin_window(&mut c, &open_gap, 500, (400, 500), false, 5).unwrap();
        fail_window(&mut c, &open_gap, "503", 6).unwrap();
        let tx = c.transaction().unwrap();
        prune(&tx, "live:a", 1_000).unwrap();
        tx.commit().unwrap();
        assert_eq!(statuses(&mut c), [(400, "failed".to_string())]);
    }
}
