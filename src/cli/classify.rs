//! `classify`: how the rules read an export of audit records, to check them on your own data.

use std::io::Read;
use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use crate::cli::{ClassifyArgs, Failure, report};
use crate::config::EventsConfig;
use crate::exporter::{Summary, classify_records, read_config};
use crate::time::format_time_ms;

/// Runs `classify`.
pub async fn classify(config_path: &Path, args: &ClassifyArgs) -> Result<(), Failure> {
    let events = events_config(config_path)?;
    let input = read_input(args.input.as_deref())?;
    let records = classify_records(&input, &events)?;
    if args.summary {
        let summary = Summary::of(&records);
        report(&if args.json {
            summary_json(&summary)
        } else {
            summary_text(&summary)
        });
        return Ok(());
    }
    let mut out = String::new();
    for record in &records {
        if args.json {
            let line = json!({
                "type": record.event_type.as_str(),
                "target": record.target,
                "actor": record.actor,
                "rule": record.matched_by,
                "time": record.time_ms.and_then(format_time_ms),
                "userAction": record.user_action,
                "eventName": record.event_name,
                "eventDescription": record.description,
            });
            out.push_str(&line.to_string());
        } else {
            let summary = record
                .user_action
                .as_deref()
                .or(record.event_name.as_deref())
                .or(record.description.as_deref())
                .unwrap_or("");
            out.push_str(&format!(
                "{}\t{}\t{}\t{}",
                record.event_type.as_str(),
                record.target.as_deref().unwrap_or("-"),
                record.matched_by,
                crate::text::excerpt(summary, 100)
            ));
        }
        out.push('\n');
    }
    report(out.trim_end_matches('\n'));
    Ok(())
}

/// The rules: the configuration's `[events]` when the file exists (or was named), else the
/// built-in table alone, so `classify` works on a machine without a configuration.
fn events_config(path: &Path) -> Result<EventsConfig, Failure> {
    if !path.exists() && path == Path::new(crate::config::DEFAULT_PATH) {
        return Ok(EventsConfig::default());
    }
    Ok(read_config(path, &crate::cli::env_var)?.events)
}

/// The whole input: a file, or standard input for `-` or no argument.
fn read_input(path: Option<&Path>) -> Result<Vec<u8>, Failure> {
    let mut input = Vec::new();
    match path {
        None => read_stdin(&mut input)?,
        Some(path) if path == Path::new("-") => read_stdin(&mut input)?,
        Some(path) => {
            input = std::fs::read(path)
                .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", path.display())))?;
        }
    }
    Ok(input)
}

fn read_stdin(into: &mut Vec<u8>) -> Result<(), Failure> {
    std::io::stdin()
        .read_to_end(into)
        .map(drop)
        .map_err(|e| Failure::usage(anyhow!("cannot read standard input: {e}")))
}

fn summary_text(summary: &Summary) -> String {
    let mut text = format!("records: {}\n\n", summary.records);
    text.push_str(&format!("{:<20} {:>8}\n", "type", "count"));
    for (event_type, count) in &summary.by_type {
        text.push_str(&format!("{event_type:<20} {count:>8}\n"));
    }
    if summary.unmatched.is_empty() {
        text.push_str("\nevery record matched a rule");
    } else {
        text.push_str("\nmatched no rule (AUDIT), by value:\n");
        let mut unmatched: Vec<_> = summary.unmatched.iter().collect();
        unmatched.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for ((field, value), count) in unmatched {
            text.push_str(&format!("{count:>8}  {field:<10} {value:?}\n"));
        }
    }
    text.trim_end().to_string()
}

fn summary_json(summary: &Summary) -> String {
    let unmatched: Vec<_> = summary
        .unmatched
        .iter()
        .map(|((field, value), count)| json!({"field": field, "value": value, "count": count}))
        .collect();
    json!({
        "records": summary.records,
        "by_type": summary.by_type,
        "unmatched": unmatched,
    })
    .to_string()
}
