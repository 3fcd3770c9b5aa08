//! `state show | reset | set`: the operator's view of the checkpoint.

use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use crate::checkpoint::{CheckpointStore, ResweepState, WindowRow};
use crate::cli::times::show_time;
use crate::cli::{Environment, Failure, StateCommand, report};
use crate::exporter::{live_stream_of, open_store, open_store_exclusive, read_config};
use crate::time::{format_time_ms, now_ms};

/// Runs a `state` subcommand.
pub async fn state(
    path: &Path,
    environment: &Environment,
    command: &StateCommand,
) -> Result<(), Failure> {
    let config = read_config(path, &crate::cli::env_var)?;
    let stream = live_stream_of(&config, environment.credentials_directory.as_deref())?;
    if let StateCommand::Set { to } = command
        && to.resolve(now_ms()) > now_ms()
    {
        return Err(Failure::usage(anyhow!(
            "--to {} is in the future",
            show_time(to.resolve(now_ms()))
        )));
    }
    // Changing the checkpoint beside a running daemon would be overwritten by it: only
    // `show` reads without the lock.
    let store = match command {
        StateCommand::Show { .. } => open_store(&config).await?,
        StateCommand::Reset | StateCommand::Set { .. } => open_store_exclusive(&config).await?,
    };
    match command {
        StateCommand::Show { json } => {
            let streams = store.streams().await.map_err(Failure::runtime)?;
            let replays = store.replays().await.map_err(Failure::runtime)?;
            let mut ledgers = Vec::new();
            for s in &streams {
                ledgers.push(Ledger::read(&store, &s.stream).await?);
            }
            let sink_states = store.sink_states().await.map_err(Failure::runtime)?;
            let mut ahead = Vec::new();
            for s in &streams {
                let taken = store.taken(&s.stream).await.map_err(Failure::runtime)?;
                let mut counts: Vec<(String, usize)> = taken
                    .into_iter()
                    .map(|(sink, ids)| (sink, ids.len()))
                    .collect();
                counts.sort();
                ahead.push(counts);
            }
            let now = now_ms();
            if *json {
                let value = json!({
                    "state_path": config.state.path,
                    "live_stream": stream,
                    // What sinks that can cut back their output resume from (the file sink:
                    // its file's device, inode and committed length).
                    "sink_states": sink_states.iter().map(|(sink, state)| json!({
                        "sink": sink,
                        "state": serde_json::from_str::<serde_json::Value>(state)
                            .unwrap_or_else(|_| json!(state)),
                    })).collect::<Vec<_>>(),
                    "streams": streams.iter().zip(ledgers.iter().zip(&ahead)).map(|(s, (ledger, ahead))| json!({
                        "stream": s.stream,
                        "checkpoint": s.position_ms.and_then(format_time_ms),
                        "lag_seconds": s.position_ms.map(|p| (now - p) / 1000),
                        "updated_at": s.updated_at_ms.and_then(format_time_ms),
                        "remembered_ids": s.n_delivered_ids,
                        // Ids single sinks took while another still holds the batch.
                        "sinks_ahead": ahead
                            .iter()
                            .map(|(sink, n)| json!({"sink": sink, "ids": n}))
                            .collect::<Vec<_>>(),
                        "resweep": ledger.resweep.as_ref().map(|r| json!({
                            "started_at": format_time_ms(r.started_at_ms),
                            "finished_at": r.finished_at_ms.and_then(format_time_ms),
                            "from": format_time_ms(r.from_ms),
                            "to": format_time_ms(r.to_ms),
                            "windows": r.windows,
                            "late_records": r.late_records,
                        })),
                        "gaps": ledger.gaps.iter().map(window_json).collect::<Vec<_>>(),
                        "recent_windows": ledger.recent.iter().map(window_json).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "replays": replays.iter().map(|r| json!({
                        "id": r.id,
                        "from": format_time_ms(r.from_ms),
                        "to": format_time_ms(r.to_ms),
                        "position": format_time_ms(r.position_ms),
                        "sinks": r.sinks,
                    })).collect::<Vec<_>>(),
                });
                report(&serde_json::to_string_pretty(&value).expect("json serializes"));
                return Ok(());
            }
            let mut text = format!("state database: {}\n", config.state.path.display());
            if !streams.iter().any(|s| s.stream == stream) {
                text.push_str(&format!(
                    "{stream} (this configuration): no checkpoint yet; the next run starts {} ago\n",
                    humantime::format_duration(config.poll.lookback)
                ));
            }
            for (s, (ledger, ahead)) in streams.iter().zip(ledgers.iter().zip(&ahead)) {
                let mine = if s.stream == stream {
                    " (this configuration)"
                } else {
                    ""
                };
                text.push_str(&format!("{}{mine}\n", s.stream));
                match s.position_ms {
                    Some(position) => text.push_str(&format!(
                        "  checkpoint:     {} (lag {})\n",
                        show_time(position),
                        humantime::format_duration(std::time::Duration::from_secs(
                            ((now - position) / 1000).max(0) as u64
                        ))
                    )),
                    None => text.push_str("  checkpoint:     none\n"),
                }
                if let Some(updated) = s.updated_at_ms {
                    text.push_str(&format!("  updated:        {}\n", show_time(updated)));
                }
                text.push_str(&format!("  remembered ids: {}\n", s.n_delivered_ids));
                for (sink, n) in ahead {
                    text.push_str(&format!(
                        "  sink {sink}: took {n} ids another sink has not taken yet\n"
                    ));
                }
                ledger.describe(&mut text);
            }
            let mut sink_names: Vec<&String> = sink_states.keys().collect();
            sink_names.sort();
            for sink in sink_names {
                text.push_str(&format!(
                    "sink {sink}: resumes from {}\n",
                    sink_states[sink]
                ));
            }
            for r in &replays {
                text.push_str(&format!(
                    "unfinished replay {}: [{}, {}) at {}{}\n",
                    r.id,
                    show_time(r.from_ms),
                    show_time(r.to_ms),
                    show_time(r.position_ms),
                    if r.sinks.is_empty() {
                        String::new()
                    } else {
                        format!(" to sinks {}", r.sinks)
                    }
                ));
            }
            report(text.trim_end());
        }
        StateCommand::Reset => {
            store.reset(&stream).await.map_err(Failure::runtime)?;
            report(&format!(
                "{stream}: checkpoint and remembered ids reset; the next run starts {} ago",
                humantime::format_duration(config.poll.lookback)
            ));
        }
        StateCommand::Set { to } => {
            let position = to.resolve(now_ms());
            store
                .set_cursor(&stream, position)
                .await
                .map_err(Failure::runtime)?;
            report(&format!(
                "{stream}: checkpoint set to {}",
                show_time(position)
            ));
        }
    }
    Ok(())
}

/// What the window ledger says about one stream.
struct Ledger {
    resweep: Option<ResweepState>,
    gaps: Vec<WindowRow>,
    recent: Vec<WindowRow>,
}

/// Windows shown under "recent windows".
const RECENT_WINDOWS: usize = 10;

impl Ledger {
    async fn read(store: &CheckpointStore, stream: &str) -> Result<Ledger, Failure> {
        Ok(Ledger {
            resweep: store.resweep(stream).await.map_err(Failure::runtime)?,
            gaps: store.gaps(stream).await.map_err(Failure::runtime)?,
            recent: store
                .recent_windows(stream, RECENT_WINDOWS)
                .await
                .map_err(Failure::runtime)?,
        })
    }

    fn describe(&self, text: &mut String) {
        if let Some(r) = &self.resweep {
            let outcome = match r.finished_at_ms {
                Some(finished) => format!(
                    "finished {}, {} window(s), {} late record(s) delivered",
                    show_time(finished),
                    r.windows,
                    r.late_records
                ),
                None => "under way (or interrupted)".to_string(),
            };
            text.push_str(&format!(
                "  last re-sweep:  {} over [{}, {}): {outcome}\n",
                show_time(r.started_at_ms),
                show_time(r.from_ms),
                show_time(r.to_ms)
            ));
        }
        if self.gaps.is_empty() {
            text.push_str("  gaps:           none\n");
        } else {
            text.push_str(&format!(
                "  gaps:           {} window(s) failed and not yet read; they are retried, never skipped\n",
                self.gaps.len()
            ));
            for gap in &self.gaps {
                text.push_str(&format!("    {}\n", window_line(gap)));
            }
        }
        if !self.recent.is_empty() {
            text.push_str("  recent windows:\n");
            for window in &self.recent {
                text.push_str(&format!("    {}\n", window_line(window)));
            }
        }
    }
}

fn window_line(w: &WindowRow) -> String {
    let mut line = format!(
        "{:<7} [{}, {}) {:<11} attempts {}, pages {}, records {}, events {}, late {}",
        w.kind,
        show_time(w.start_ms),
        show_time(w.end_ms),
        w.status,
        w.attempts,
        w.pages,
        w.records,
        w.events,
        w.late
    );
    if w.resumable {
        line.push_str(", resumable");
    }
    if let Some(error) = w.last_error.as_deref().filter(|_| w.status != "done") {
        line.push_str(&format!(
            "; last error: {}",
            crate::text::excerpt(error, 200)
        ));
    }
    line
}

fn window_json(w: &WindowRow) -> serde_json::Value {
    json!({
        "kind": w.kind,
        "start": format_time_ms(w.start_ms),
        "end": format_time_ms(w.end_ms),
        "status": w.status,
        "attempts": w.attempts,
        "pages": w.pages,
        "records": w.records,
        "events": w.events,
        "late": w.late,
        "last_error": w.last_error,
        "resumable": w.resumable,
        "started_at": format_time_ms(w.started_at_ms),
        "updated_at": format_time_ms(w.updated_at_ms),
    })
}
