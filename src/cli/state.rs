//! `state show | reset | set`: the operator's view of the checkpoint.

use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use crate::cli::times::show_time;
use crate::cli::{Environment, Failure, StateCommand, report};
use crate::exporter::{live_stream_of, open_store, read_config};
use crate::time::{format_time_ms, now_ms};

/// Runs a `state` subcommand.
pub async fn state(
    path: &Path,
    environment: &Environment,
    command: &StateCommand,
) -> Result<(), Failure> {
    let config = read_config(path)?;
    let stream = live_stream_of(&config, environment.credentials_directory.as_deref())?;
    let store = open_store(&config).await?;
    match command {
        StateCommand::Show { json } => {
            let streams = store.streams().await.map_err(Failure::runtime)?;
            let replays = store.replays().await.map_err(Failure::runtime)?;
            let now = now_ms();
            if *json {
                let value = json!({
                    "state_path": config.state.path,
                    "live_stream": stream,
                    "streams": streams.iter().map(|s| json!({
                        "stream": s.stream,
                        "checkpoint": s.position_ms.and_then(format_time_ms),
                        "lag_seconds": s.position_ms.map(|p| (now - p) / 1000),
                        "updated_at": s.updated_at_ms.and_then(format_time_ms),
                        "remembered_ids": s.n_delivered_ids,
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
            for s in &streams {
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
            if position > now_ms() {
                return Err(Failure::usage(anyhow!(
                    "--to {} is in the future",
                    show_time(position)
                )));
            }
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
