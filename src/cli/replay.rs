//! `replay`: re-emit a past range to the sinks with its own resumable progress.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

use crate::checkpoint::ReplayJob;
use crate::cli::progress::{Conditions, ReplayProgress, shows_progress};
use crate::cli::times::{TimeArg, show_time};
use crate::cli::{Environment, Failure, ReplayArgs, shutdown_on_signals};
use crate::exporter::{Loaded, Parts, ReplayOutcome, open_store, open_store_exclusive};
use crate::time::now_ms;

/// Runs `replay`.
pub async fn replay(
    path: &Path,
    environment: &Environment,
    args: &ReplayArgs,
) -> Result<(), Failure> {
    let mut loaded = Loaded::load(
        path,
        environment.credentials_directory.as_deref(),
        &crate::cli::env_var,
    )?;
    if let Some(state) = &args.state {
        loaded.config.state.path = state.clone();
    }
    // Read first, to refuse a bad command line (exit 2) even beside a running daemon; the
    // lock is taken before anything is written.
    let saved = open_store(&loaded.config)
        .await?
        .replays()
        .await
        .map_err(Failure::runtime)?;
    let now = now_ms();
    let requested = args.from.map(|from| {
        let to = args.to.map_or(now, |to| to.resolve(now));
        (from.resolve(now), to)
    });
    if let Some((from, to)) = requested
        && from >= to
    {
        return Err(Failure::usage(anyhow!(
            "--from {} is not before --to {}: the range is FROM inclusive, TO exclusive",
            show_time(from),
            show_time(to)
        )));
    }
    let resumed = match (args.resume, requested) {
        (false, _) => None,
        (true, Some((from, to))) => {
            let found = saved
                .iter()
                .find(|job| job.from_ms == from && job.to_ms == to)
                .cloned();
            let relative = [args.from, args.to.or(Some(TimeArg::Ago(Duration::ZERO)))]
                .into_iter()
                .flatten()
                .any(|time| matches!(time, TimeArg::Ago(_)));
            if found.is_none() && relative && !saved.is_empty() {
                // "36h" means another instant every time it is read, so it can never name the
                // interrupted range again; starting over silently would surprise.
                return Err(Failure::usage(anyhow!(
                    "--resume with a relative --from/--to cannot find the interrupted range again: run `replay --resume` alone, or give the absolute times shown by `state show`"
                )));
            }
            if found.is_none() {
                tracing::info!(from = %show_time(from), to = %show_time(to), "No interrupted replay of this range; starting from its beginning.");
            }
            found
        }
        (true, None) => Some(saved.into_iter().next().ok_or_else(|| {
            Failure::usage(anyhow!(
                "--resume: there is no interrupted replay to resume"
            ))
        })?),
    };
    let store = open_store_exclusive(&loaded.config).await?;
    let job = match resumed {
        Some(job) => job,
        None => {
            let (from, to) = requested.expect("clap requires --from unless --resume");
            let job = ReplayJob {
                id: format!("{from}-{to}"),
                from_ms: from,
                to_ms: to,
                position_ms: from,
                sinks: args.sinks.join(","),
                created_at_ms: now,
            };
            store
                .start_replay(job.clone())
                .await
                .map_err(Failure::runtime)?;
            job
        }
    };
    let settled_until = now - loaded.config.poll.settle.as_millis() as i64;
    if job.to_ms > settled_until {
        tracing::warn!(
            to = %show_time(job.to_ms),
            "The range reaches into the last poll.settle: records of the last minutes may not have landed yet."
        );
    }
    let sinks: Vec<String> = if !args.sinks.is_empty() {
        args.sinks.clone()
    } else {
        job.sinks
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let parts = Parts::build_for_replay(&loaded, &sinks, &job).await?;
    parts.check_sinks_at_start().await?;
    let shutdown = shutdown_on_signals();
    tracing::info!(
        job = %job.id,
        from = %show_time(job.from_ms),
        to = %show_time(job.to_ms),
        resume_at = %show_time(job.position_ms),
        sinks = ?parts.sinks.names(),
        "Replay starting."
    );
    let events_on_terminal = environment.stdout_is_terminal
        && loaded.config.sinks.iter().any(|sink| {
            sink.is_stdout() && (sinks.is_empty() || sinks.iter().any(|name| name == sink.name()))
        });
    let progress = shows_progress(&Conditions {
        stderr_is_terminal: environment.stderr_is_terminal,
        under_journald: environment.under_journald,
        log_format: environment.log_format,
        no_progress: args.no_progress,
        events_on_terminal,
    })
    .then(|| {
        ReplayProgress::new(
            environment.status_line.clone(),
            (job.from_ms, job.to_ms),
            loaded.config.poll.window,
            job.position_ms,
        )
    });
    let outcome = match &progress {
        Some(progress) => {
            let record = |step| progress.record(step);
            let outcome = progress
                .drive(parts.replay(store, &job, &shutdown, &record))
                .await;
            progress.finish(outcome.as_ref().ok().copied());
            outcome
        }
        None => parts.replay(store, &job, &shutdown, &|_| {}).await,
    };
    match outcome? {
        ReplayOutcome::Finished => tracing::info!(job = %job.id, "Replay finished."),
        ReplayOutcome::Interrupted => tracing::warn!(
            job = %job.id,
            "Replay interrupted; progress is saved and `replay --resume` continues it."
        ),
    }
    Ok(())
}
