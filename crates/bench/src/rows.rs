//! Building table rows: the collection a bench fills (failed rows are reported, not fatal), the
//! rows of the comparison loops, and the exporter rows whose events land in local files
//! (stdout redirected to a file, the file sink), which both the fake-API bench and the static
//! mode run.

use std::path::Path;
use std::process::Stdio;

use anyhow::Result;

use crate::baselines::Fetched;
use crate::exporter::{self, Run, Target};
use crate::report::{Row, group};

/// Collects rows; a failed or skipped row is reported and the bench goes on.
pub struct Rows {
    pub rows: Vec<Row>,
    pub skipped: Vec<String>,
}

impl Rows {
    pub fn new() -> Rows {
        Rows {
            rows: Vec::new(),
            skipped: Vec::new(),
        }
    }

    pub fn push(&mut self, name: &str, result: Result<Row>) {
        match result {
            Ok(row) => {
                eprintln!(
                    "{name}: {} events in {:.2} s",
                    group(row.events),
                    row.cost.wall.as_secs_f64()
                );
                self.rows.push(row);
            }
            Err(e) => {
                let line = format!("{name}: failed: {e:#}");
                eprintln!("{line}");
                self.skipped.push(line);
            }
        }
    }

    pub fn skip(&mut self, line: String) {
        eprintln!("{line}");
        self.skipped.push(line);
    }
}

/// A comparison loop's row; notes a record count other than `expected`, and curl's time on
/// the wire.
pub fn fetched_row(name: &str, f: Fetched, expected: u64) -> Row {
    let mut notes = Vec::new();
    if f.records != expected {
        notes.push(format!("{} records, expected {expected}", f.records));
    }
    if let Some(secs) = f.transfer_secs.filter(|s| *s > 0.0) {
        notes.push(format!(
            "time on the wire (sum of curl's time_total) {secs:.2} s = {} records/s; the rest \
             of the wall time is starting one curl per request",
            group((f.records as f64 / secs).round() as u64)
        ));
    }
    let note = (!notes.is_empty()).then(|| format!("{name}: {}", notes.join("; ")));
    Row {
        name: name.to_owned(),
        events: f.records,
        cost: f.cost,
        requests: Some(f.requests),
        note,
    }
}

/// An exporter row; notes an event count other than `expected` or than the exporter logged.
pub fn sink_row(name: &str, events: u64, run: &Run, expected: u64) -> Row {
    let mut notes = Vec::new();
    if events != expected {
        notes.push(format!("{events} events counted, expected {expected}"));
    }
    if run.logged_events != events {
        notes.push(format!("the exporter logged {} events", run.logged_events));
    }
    Row {
        name: name.to_owned(),
        events,
        cost: run.cost,
        requests: Some(run.requests()),
        note: (!notes.is_empty()).then(|| format!("{name}: {}", notes.join("; "))),
    }
}

/// Appends `note` to the row's note (which starts with the row's name).
pub fn add_note(row: &mut Row, note: String) {
    row.note = Some(match row.note.take() {
        Some(previous) => format!("{previous}; {note}"),
        None => format!("{}: {note}", row.name),
    });
}

/// The name of the stdout row.
pub const STDOUT_ROW: &str = "exporter -> stdout (file)";

/// The name of the file sink row.
pub fn file_row_name(fsync: bool) -> &'static str {
    if fsync {
        "exporter -> file (fsync = true)"
    } else {
        "exporter -> file (fsync = false)"
    }
}

/// The exporter with the stdout sink, stdout redirected to a file in `dir` whose lines are
/// the events (the file is deleted after counting).
pub fn stdout_row(bin: &Path, dir: &Path, target: &Target<'_>, expected: u64) -> Result<Row> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join("events.ndjson");
    let file = std::fs::File::create(&out)?;
    let run = exporter::replay(
        bin,
        dir,
        target,
        "[[sinks]]\ntype = \"stdout\"\n",
        Stdio::from(file),
    )?;
    let events = exporter::count_lines(&out)?;
    let _ = std::fs::remove_file(&out);
    Ok(sink_row(STDOUT_ROW, events, &run, expected))
}

/// The exporter with the file sink (`fsync` as given, the default being true), writing in
/// `dir`; the events are the lines of the file and its rotated files (deleted after counting).
pub fn file_row(
    bin: &Path,
    dir: &Path,
    target: &Target<'_>,
    fsync: bool,
    expected: u64,
) -> Result<Row> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join("events.ndjson");
    // The defaults but `rotate_keep`: at its maximum no rotated file is deleted before it is
    // counted.
    let mut sink_toml = format!(
        "[[sinks]]\ntype = \"file\"\npath = {}\nrotate_keep = 1000\n",
        exporter::toml_string(&out.to_string_lossy())
    );
    if !fsync {
        sink_toml.push_str("fsync = false\n");
    }
    let run = exporter::replay(bin, dir, target, &sink_toml, Stdio::null())?;
    let counted = exporter::count_rotated_lines(&out);
    exporter::remove_rotated(&out);
    let (events, n_files) = counted?;
    let mut row = sink_row(file_row_name(fsync), events, &run, expected);
    if n_files > 1 {
        add_note(&mut row, format!("{n_files} files (rotated at 100 MiB)"));
    }
    Ok(row)
}
