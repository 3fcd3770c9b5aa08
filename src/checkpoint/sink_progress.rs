//! Delivery progress per sink: the ids one sink durably took while another still held the
//! batch, and the resume state a sink stores with each acknowledgement (the file sink: its
//! file's identity and length).
//!
//! A batch's ids move to `delivered` (the stream's record) once every sink took it, and their
//! rows here go in the same transaction, so this table holds at most about one batch per sink
//! per stream: the poller hands a sink the next batch only when every sink took this one.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, Transaction, params};

use crate::checkpoint::sqlite::{UNTIMED, id_from_blob, insert_delivered};
use crate::checkpoint::{Cursor, Delivered};
use crate::event::RecordId;

/// Version 3 of the schema: delivery progress per sink.
pub const SCHEMA_V3: &str = "
-- Keyed by (stream, time, id) first so that the rows of a batch every sink took are deleted
-- by their ids without a scan.
CREATE TABLE sink_taken (
    stream        TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL,
    id            BLOB NOT NULL,
    sink          TEXT NOT NULL,
    PRIMARY KEY (stream, event_time_ms, id, sink)
) WITHOUT ROWID;
CREATE TABLE sink_state (
    sink          TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
";

/// What one sink's acknowledgement adds to the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkAck {
    /// The sink's name.
    pub sink: String,
    /// The state it resumes from, when it keeps one.
    pub state: Option<String>,
}

/// Records that `ack.sink` took the batch `delivered` (and its state), while another sink
/// still holds it.
pub fn record_taken(
    c: &mut Connection,
    stream: &str,
    delivered: &[Delivered],
    ack: &SinkAck,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO sink_taken (stream, event_time_ms, id, sink)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (id, time) in delivered {
            insert.execute(params![
                stream,
                time.unwrap_or(UNTIMED),
                &id.0[..],
                ack.sink
            ])?;
        }
    }
    save_state(&tx, ack, now_ms)?;
    tx.commit()
}

/// Saves a sink's resume state, if it has one.
pub fn save_state(tx: &Transaction<'_>, ack: &SinkAck, now_ms: i64) -> rusqlite::Result<()> {
    if let Some(state) = &ack.state {
        tx.execute(
            "INSERT INTO sink_state (sink, state, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (sink) DO UPDATE SET state = excluded.state,
                 updated_at_ms = excluded.updated_at_ms",
            params![ack.sink, state, now_ms],
        )?;
    }
    Ok(())
}

/// Forgets the per-sink rows of ids every sink has now taken.
pub fn clear_taken(
    tx: &Transaction<'_>,
    stream: &str,
    delivered: &[Delivered],
) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM sink_taken WHERE stream = ?1 AND event_time_ms = ?2 AND id = ?3",
    )?;
    for (id, time) in delivered {
        delete.execute(params![stream, time.unwrap_or(UNTIMED), &id.0[..]])?;
    }
    Ok(())
}

/// Ids each sink took on the stream that not every sink has taken yet, by sink name.
pub fn taken(
    c: &mut Connection,
    stream: &str,
) -> rusqlite::Result<HashMap<String, HashSet<RecordId>>> {
    let mut select = c.prepare_cached("SELECT sink, id FROM sink_taken WHERE stream = ?1")?;
    let rows = select.query_map(params![stream], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    let mut taken: HashMap<String, HashSet<RecordId>> = HashMap::new();
    for row in rows {
        let (sink, blob) = row?;
        if let Some(id) = id_from_blob(blob) {
            taken.entry(sink).or_default().insert(id);
        }
    }
    Ok(taken)
}

/// Every sink's saved resume state, by sink name.
pub fn states(c: &mut Connection) -> rusqlite::Result<HashMap<String, String>> {
    let mut select = c.prepare_cached("SELECT sink, state FROM sink_state")?;
    let rows = select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Forgets per-sink rows older than `before_ms` (left by sinks no longer configured).
pub fn prune(tx: &Transaction<'_>, stream: &str, before_ms: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM sink_taken WHERE stream = ?1 AND event_time_ms < ?2 AND event_time_ms != ?3",
        params![stream, before_ms, UNTIMED],
    )
}

/// Takes in what a sink that keeps its own progress (the exactly-once Kafka sink) remembers
/// of a stream, trusting it over this file. As the only sink (`sole`), its ids are the
/// stream's and its cursor is the stream's; beside other sinks, its ids are recorded as taken
/// by it alone (unless every sink has them), and the stream's cursor stays, since the others
/// may not have reached it.
pub fn import(
    c: &mut Connection,
    sink: &str,
    sole: bool,
    stream: &str,
    cursor: Option<Cursor>,
    ids: &[Delivered],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    if sole {
        insert_delivered(&tx, stream, ids)?;
        if let Some(cursor) = cursor {
            tx.execute(
                "INSERT INTO cursor (stream, position_ms, origin_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (stream) DO UPDATE SET position_ms = excluded.position_ms,
                     origin_ms = excluded.origin_ms, updated_at_ms = excluded.updated_at_ms",
                params![stream, cursor.position_ms, cursor.origin_ms, now_ms],
            )?;
        }
    } else {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO sink_taken (stream, event_time_ms, id, sink)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM delivered
                 WHERE stream = ?1 AND event_time_ms = ?2 AND id = ?3)",
        )?;
        for (id, time) in ids {
            insert.execute(params![stream, time.unwrap_or(UNTIMED), &id.0[..], sink])?;
        }
    }
    tx.commit()
}
