//! What reconciliation keeps: each stream's last user-inventory snapshot, and the lifecycle
//! changes delivered by type and user, so a change learned from both the audit log and the
//! inventory is delivered once.

use rusqlite::{Connection, OptionalExtension, params};

/// Version 4 of the schema: reconciliation.
pub const SCHEMA_V4: &str = "
CREATE TABLE inventory (
    stream      TEXT PRIMARY KEY,
    taken_at_ms INTEGER NOT NULL,
    users       TEXT NOT NULL
);
CREATE TABLE lifecycle_seen (
    stream     TEXT NOT NULL,
    event_type TEXT NOT NULL,
    target     TEXT NOT NULL,
    time_ms    INTEGER NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (stream, event_type, target, time_ms, source)
) WITHOUT ROWID;
";

/// A lifecycle change as reconciliation compares them: type, user (lower-cased), time,
/// source (`audit` or `reconcile`).
pub type Seen = (String, String, i64, String);

/// The stream's last snapshot: when it was taken and its users (JSON).
pub fn snapshot(c: &mut Connection, stream: &str) -> rusqlite::Result<Option<(i64, String)>> {
    c.query_row(
        "SELECT taken_at_ms, users FROM inventory WHERE stream = ?1",
        [stream],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

/// Replaces the stream's snapshot.
pub fn save_snapshot(
    c: &mut Connection,
    stream: &str,
    taken_at_ms: i64,
    users: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO inventory (stream, taken_at_ms, users) VALUES (?1, ?2, ?3)
         ON CONFLICT (stream) DO UPDATE SET taken_at_ms = excluded.taken_at_ms,
             users = excluded.users",
        params![stream, taken_at_ms, users],
    )?;
    Ok(())
}

/// Notes lifecycle changes delivered.
pub fn note(c: &mut Connection, stream: &str, seen: &[Seen]) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO lifecycle_seen (stream, event_type, target, time_ms, source)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (event_type, target, time_ms, source) in seen {
            insert.execute(params![stream, event_type, target, time_ms, source])?;
        }
    }
    tx.commit()
}

/// Whether a change of `event_type` about `target` from `source` was delivered between
/// `from_ms` and `to_ms`.
pub fn was_seen(
    c: &mut Connection,
    stream: &str,
    event_type: &str,
    target: &str,
    source: &str,
    (from_ms, to_ms): (i64, i64),
) -> rusqlite::Result<bool> {
    let mut select = c.prepare_cached(
        "SELECT 1 FROM lifecycle_seen WHERE stream = ?1 AND event_type = ?2 AND target = ?3
             AND source = ?4 AND time_ms BETWEEN ?5 AND ?6",
    )?;
    select.exists(params![stream, event_type, target, source, from_ms, to_ms])
}

/// Forgets changes older than `before_ms`.
pub fn prune(tx: &rusqlite::Transaction<'_>, stream: &str, before_ms: i64) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM lifecycle_seen WHERE stream = ?1 AND time_ms < ?2",
        params![stream, before_ms],
    )?;
    Ok(())
}
