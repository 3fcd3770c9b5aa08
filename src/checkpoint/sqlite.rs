//! The SQLite schema and statements behind `CheckpointStore`.
//!
//! Schema changes bump `SCHEMA_VERSION` (kept in `PRAGMA user_version`) and add a step to
//! `migrate`; a file from a newer build is refused rather than misread.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::checkpoint::inventory::SCHEMA_V4;
use crate::checkpoint::ledger::SCHEMA_V2;
use crate::checkpoint::sink_progress::SCHEMA_V3;
use crate::checkpoint::{Cursor, Delivered, Error, ReplayJob, StreamState};
use crate::event::RecordId;

/// `event_time_ms` of ids whose record had no understandable time.
pub const UNTIMED: i64 = i64::MIN;

/// Version of the schema this build writes: 2 added the window ledger and re-sweeps, 3 the
/// delivery progress per sink, 4 reconciliation.
pub const SCHEMA_VERSION: i64 = 4;

const SCHEMA_V1: &str = "
CREATE TABLE cursor (
    stream        TEXT PRIMARY KEY,
    position_ms   INTEGER NOT NULL,
    origin_ms     INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
-- Keyed by time, not by id: ids are hashes, so a table keyed by id takes every insert at a
-- random page, while a window's event times cluster at the recent end of the key range.
CREATE TABLE delivered (
    stream        TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL,  -- UNTIMED for records without a createdTime
    id            BLOB NOT NULL,
    PRIMARY KEY (stream, event_time_ms, id)
) WITHOUT ROWID;
CREATE TABLE replay (
    id            TEXT PRIMARY KEY,
    from_ms       INTEGER NOT NULL,
    to_ms         INTEGER NOT NULL,
    position_ms   INTEGER NOT NULL,
    sinks         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
";

/// Opens the database, retrying while another process holds it busy: switching a new file
/// to WAL can answer BUSY without consulting the busy handler.
pub fn open(path: &Path) -> Result<Connection, Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_once(path) {
            Err(Error::Sqlite {
                source: rusqlite::Error::SqliteFailure(failure, _),
                ..
            }) if failure.code == rusqlite::ErrorCode::DatabaseBusy
                && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20 + fastrand::u64(0..30)));
            }
            other => return other,
        }
    }
}

/// Creates the directory `path` lives in, if it has one.
pub fn create_parent_dir(path: &Path) -> Result<(), Error> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
            path: parent.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

fn open_once(path: &Path) -> Result<Connection, Error> {
    let sqlite_error = |source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    create_parent_dir(path)?;
    let mut connection = Connection::open(path).map_err(sqlite_error)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite_error)?;
    // WAL lets `state show` read while the daemon writes; FULL sync makes a committed
    // checkpoint survive power loss, which is the point of having one.
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite_error)?;
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_error)?;
    // 2 MiB of page cache (SQLite's default): the recent end of the delivered-id index, which
    // is all a live walk reads, fits many times over; more would only hold pages a replay's
    // resume keys passed through, resident for the life of the daemon.
    connection
        .pragma_update(None, "cache_size", -2048)
        .map_err(sqlite_error)?;
    migrate(&mut connection, path)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), Error> {
    let sqlite_error = |source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    // IMMEDIATE takes the write lock first, so two processes opening a new file at once do
    // not both create the tables: the second waits (busy_timeout), then sees the version.
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error)?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1).map_err(sqlite_error)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2).map_err(sqlite_error)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3).map_err(sqlite_error)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4).map_err(sqlite_error)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(())
}

pub fn cursor(c: &mut Connection, stream: &str) -> rusqlite::Result<Option<Cursor>> {
    c.query_row(
        "SELECT position_ms, origin_ms FROM cursor WHERE stream = ?1",
        [stream],
        |row| {
            Ok(Cursor {
                position_ms: row.get(0)?,
                origin_ms: row.get(1)?,
            })
        },
    )
    .optional()
}

pub fn insert_delivered(
    tx: &rusqlite::Transaction<'_>,
    stream: &str,
    delivered: &[Delivered],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO delivered (stream, event_time_ms, id) VALUES (?1, ?2, ?3)",
    )?;
    for (id, time) in delivered {
        insert.execute(params![stream, time.unwrap_or(UNTIMED), &id.0[..]])?;
    }
    Ok(())
}

/// Moves the cursor; a new cursor takes `origin_ms`, an existing one keeps its origin.
pub fn upsert_cursor(
    tx: &rusqlite::Transaction<'_>,
    stream: &str,
    cursor: Cursor,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO cursor (stream, position_ms, origin_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (stream) DO UPDATE SET position_ms = excluded.position_ms, updated_at_ms = excluded.updated_at_ms",
        params![stream, cursor.position_ms, cursor.origin_ms, now_ms],
    )?;
    Ok(())
}

/// Puts the cursor at `position_ms` and makes that the stream's origin (operator command).
pub fn set_cursor(
    c: &mut Connection,
    stream: &str,
    position_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO cursor (stream, position_ms, origin_ms, updated_at_ms) VALUES (?1, ?2, ?2, ?3)
         ON CONFLICT (stream) DO UPDATE SET position_ms = excluded.position_ms,
             origin_ms = excluded.origin_ms, updated_at_ms = excluded.updated_at_ms",
        params![stream, position_ms, now_ms],
    )?;
    Ok(())
}

pub fn id_from_blob(blob: Vec<u8>) -> Option<RecordId> {
    blob.try_into().ok().map(RecordId)
}

pub fn delivered_since(
    c: &mut Connection,
    stream: &str,
    since_ms: i64,
) -> rusqlite::Result<HashSet<RecordId>> {
    let mut select = c.prepare_cached(
        "SELECT id FROM delivered WHERE stream = ?1 AND (event_time_ms >= ?2 OR event_time_ms = ?3)",
    )?;
    let rows = select.query_map(params![stream, since_ms, UNTIMED], |row| {
        row.get::<_, Vec<u8>>(0)
    })?;
    let mut ids = HashSet::new();
    for blob in rows {
        if let Some(id) = id_from_blob(blob?) {
            ids.insert(id);
        }
    }
    Ok(ids)
}

pub fn is_delivered(
    c: &mut Connection,
    stream: &str,
    id: RecordId,
    time_ms: Option<i64>,
) -> rusqlite::Result<bool> {
    let mut select = c.prepare_cached(
        "SELECT 1 FROM delivered WHERE stream = ?1 AND event_time_ms = ?2 AND id = ?3",
    )?;
    select.exists(params![stream, time_ms.unwrap_or(UNTIMED), &id.0[..]])
}

/// Forgets ids (and ledger rows) older than `before_ms`; returns how many ids went.
pub fn prune(c: &mut Connection, stream: &str, before_ms: i64) -> rusqlite::Result<usize> {
    let tx = c.transaction()?;
    let pruned = tx.execute(
        "DELETE FROM delivered WHERE stream = ?1 AND event_time_ms < ?2 AND event_time_ms != ?3",
        params![stream, before_ms, UNTIMED],
    )?;
    crate::checkpoint::ledger::prune(&tx, stream, before_ms)?;
    crate::checkpoint::sink_progress::prune(&tx, stream, before_ms)?;
    crate::checkpoint::inventory::prune(&tx, stream, before_ms)?;
    tx.commit()?;
    Ok(pruned)
}

pub fn reset(c: &mut Connection, stream: &str) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    for table in [
        "cursor",
        "delivered",
        "window_ledger",
        "window_resume_keys",
        "resweep",
        "sink_taken",
        "inventory",
        "lifecycle_seen",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE stream = ?1"), [stream])?;
    }
    tx.commit()
}

pub fn streams(c: &mut Connection) -> rusqlite::Result<Vec<StreamState>> {
    let mut select = c.prepare(
        "SELECT s.stream, cu.position_ms, cu.updated_at_ms,
                (SELECT COUNT(*) FROM delivered d WHERE d.stream = s.stream)
         FROM (SELECT stream FROM cursor UNION SELECT DISTINCT stream FROM delivered
               UNION SELECT DISTINCT stream FROM window_ledger) s
         LEFT JOIN cursor cu ON cu.stream = s.stream
         ORDER BY s.stream",
    )?;
    let rows = select.query_map([], |row| {
        Ok(StreamState {
            stream: row.get(0)?,
            position_ms: row.get(1)?,
            updated_at_ms: row.get(2)?,
            n_delivered_ids: row.get::<_, i64>(3)? as u64,
        })
    })?;
    rows.collect()
}

pub fn start_replay(c: &mut Connection, job: &ReplayJob) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    tx.execute("DELETE FROM delivered WHERE stream = ?1", [job.stream()])?;
    tx.execute("DELETE FROM sink_taken WHERE stream = ?1", [job.stream()])?;
    tx.execute(
        "INSERT OR REPLACE INTO replay (id, from_ms, to_ms, position_ms, sinks, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![job.id, job.from_ms, job.to_ms, job.position_ms, job.sinks, job.created_at_ms],
    )?;
    tx.commit()
}

pub fn finish_replay(c: &mut Connection, id: &str, stream: &str) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    tx.execute("DELETE FROM replay WHERE id = ?1", [id])?;
    for table in [
        "delivered",
        "window_ledger",
        "window_resume_keys",
        "sink_taken",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE stream = ?1"), [stream])?;
    }
    tx.commit()
}

pub fn replays(c: &mut Connection) -> rusqlite::Result<Vec<ReplayJob>> {
    let mut select = c.prepare(
        "SELECT id, from_ms, to_ms, position_ms, sinks, created_at_ms FROM replay
         ORDER BY updated_at_ms DESC, id",
    )?;
    let rows = select.query_map([], |row| {
        Ok(ReplayJob {
            id: row.get(0)?,
            from_ms: row.get(1)?,
            to_ms: row.get(2)?,
            position_ms: row.get(3)?,
            sinks: row.get(4)?,
            created_at_ms: row.get(5)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records ids alone, as `ledger::record_page` does without a page.
    fn record_delivered(
        c: &mut Connection,
        stream: &str,
        delivered: &[Delivered],
    ) -> rusqlite::Result<()> {
        let record = crate::checkpoint::BatchRecord {
            delivered: delivered.to_vec(),
            remember_ids: true,
            ..crate::checkpoint::BatchRecord::default()
        };
        crate::checkpoint::ledger::record_page(c, stream, &record, 0)
    }

    /// Moves the cursor alone.
    fn advance(
        c: &mut Connection,
        stream: &str,
        cursor: Cursor,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let tx = c.transaction()?;
        upsert_cursor(&tx, stream, cursor, now_ms)?;
        tx.commit()
    }

    fn id(n: u8) -> RecordId {
        RecordId([n; 16])
    }

    #[test]
    fn cursor_and_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.db");
        let mut c = open(&path).unwrap();
        assert_eq!(cursor(&mut c, "live:a").unwrap(), None);
        record_delivered(&mut c, "live:a", &[(id(1), Some(100)), (id(2), None)]).unwrap();
        advance(
            &mut c,
            "live:a",
            Cursor {
                position_ms: 1_000,
                origin_ms: 10,
            },
            5,
        )
        .unwrap();
        record_delivered(&mut c, "live:a", &[(id(1), Some(100))]).unwrap();
        drop(c);

        let mut c = open(&path).unwrap();
        assert_eq!(
            cursor(&mut c, "live:a").unwrap(),
            Some(Cursor {
                position_ms: 1_000,
                origin_ms: 10
            })
        );
        advance(
            &mut c,
            "live:a",
            Cursor {
                position_ms: 2_000,
                origin_ms: 1_000,
            },
            6,
        )
        .unwrap();
        assert_eq!(
            cursor(&mut c, "live:a").unwrap().unwrap().origin_ms,
            10,
            "a moving cursor keeps its origin"
        );
        set_cursor(&mut c, "live:a", 1_000, 7).unwrap();
        assert_eq!(
            cursor(&mut c, "live:a").unwrap(),
            Some(Cursor {
                position_ms: 1_000,
                origin_ms: 1_000
            }),
            "an operator's position is also the new origin"
        );
        let since = delivered_since(&mut c, "live:a", 500).unwrap();
        assert_eq!(
            since,
            HashSet::from([id(2)]),
            "the untimed id is always included"
        );
        assert!(is_delivered(&mut c, "live:a", id(1), Some(100)).unwrap());
        assert!(is_delivered(&mut c, "live:a", id(2), None).unwrap());
        assert!(!is_delivered(&mut c, "live:b", id(1), Some(100)).unwrap());
        assert_eq!(prune(&mut c, "live:a", 101).unwrap(), 1);
        let state = streams(&mut c).unwrap();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].n_delivered_ids, 1);
        reset(&mut c, "live:a").unwrap();
        assert!(streams(&mut c).unwrap().is_empty());
    }

    #[test]
    fn concurrent_first_opens_do_not_race() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || open(&path).map(drop))
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .unwrap()
                .expect("every concurrent open succeeds");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let c = open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        assert!(matches!(open(&path), Err(Error::NewerSchema { .. })));
    }

    #[test]
    fn replay_jobs_track_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir.path().join("state.db")).unwrap();
        let job = ReplayJob {
            id: "r1".into(),
            from_ms: 0,
            to_ms: 100,
            position_ms: 0,
            sinks: String::new(),
            created_at_ms: 1,
        };
        start_replay(&mut c, &job).unwrap();
        let key = crate::checkpoint::WindowKey {
            stream: job.stream(),
            kind: crate::checkpoint::WindowKind::Replay,
            start_ms: 0,
        };
        crate::checkpoint::ledger::begin_window(&mut c, &key, 50, (0, 50), false, 2).unwrap();
        crate::checkpoint::ledger::complete_window(
            &mut c,
            &key,
            (0, 50),
            crate::checkpoint::WindowCounts::default(),
            &crate::checkpoint::CursorMove::Replay {
                id: "r1".into(),
                position_ms: 50,
            },
            2,
        )
        .unwrap();
        let saved = replays(&mut c).unwrap();
        assert_eq!(saved[0].position_ms, 50);
        // Ids recorded under a replay's stream by an older version are dropped with the job.
        record_delivered(&mut c, &job.stream(), &[(id(9), Some(5))]).unwrap();
        finish_replay(&mut c, "r1", &job.stream()).unwrap();
        assert!(replays(&mut c).unwrap().is_empty());
        assert!(!is_delivered(&mut c, &job.stream(), id(9), Some(5)).unwrap());
    }
}
