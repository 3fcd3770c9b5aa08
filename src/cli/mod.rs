//! The command line: arguments, exit codes, signals, and one module per command. Commands get
//! their parts from `exporter`; no command module imports another.
//!
//! Invariant: only this module reads environment variables and argv. Exit codes: 0 success,
//! 1 a runtime failure (API, sink, state), 2 a usage or configuration error (nothing started),
//! 3 the Lacework API refused the key or sent a `nextPage` link off its host (a restart
//! cannot help: the shipped unit lists 3 in `RestartPreventExitStatus=`).

mod classify;
#[cfg(feature = "demo")]
mod demo;
mod generate;
mod progress;
mod replay;
mod run;
mod state;
mod times;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::telemetry::{LogFormat, StatusLine};
use times::TimeArg;

/// Exports Lacework (FortiCNAPP) audit-log lifecycle events (users created, deleted, enabled,
/// disabled, role changes, logins, API keys created and revoked) to stdout, Kafka or webhooks.
///
/// Events go to the configured sinks; logs go to standard error, always, so standard output
/// carries nothing but events when the stdout sink is on.
#[derive(Debug, Parser)]
#[command(
    name = "lacework-audit-exporter",
    version = crate::build_info::LONG_VERSION,
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file (TOML); see config.example.toml.
    #[arg(
        long,
        global = true,
        env = "LACEWORK_AUDIT_EXPORTER_CONFIG",
        default_value = crate::config::DEFAULT_PATH
    )]
    pub config: PathBuf,

    /// Log filter: a level (error, warn, info, debug, trace) or directives such as
    /// "info,lacework_audit_exporter=debug". RUST_LOG is used when this is not given.
    #[arg(long, global = true, env = "LACEWORK_AUDIT_EXPORTER_LOG")]
    pub log_level: Option<String>,

    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter: follow the audit log from the checkpoint and deliver new events.
    ///
    /// Starts where the checkpoint says (or poll.lookback ago on the first run), catches up
    /// in windows of at most poll.window, then polls every poll.interval. Stops cleanly on
    /// SIGTERM or SIGINT, committing only what every sink acknowledged.
    Run(RunArgs),
    /// Re-emit the events of a past range to the sinks, without moving the live checkpoint.
    ///
    /// Times: RFC 3339 (2026-11-01T08:00:00Z), a UTC date (2026-11-01), "now", or a
    /// duration meaning that long ago (36h, 7d, 90m). The range is FROM inclusive, TO
    /// exclusive. Events already delivered by `run` are emitted again: that is the point.
    Replay(ReplayArgs),
    /// Inspect or change the checkpoint.
    #[command(subcommand)]
    State(StateCommand),
    /// Check the configuration and exit: 0 when it is usable, 2 with a message naming the
    /// problem when it is not.
    Validate(ValidateArgs),
    /// Show how the rules classify raw audit records: one line per record (type, target, the
    /// rule that decided), or with --summary counts by type and the eventName/userAction
    /// values no rule matched.
    ///
    /// Reads a JSON array of records, NDJSON, or whole AuditLogs pages, from FILE or standard
    /// input. Needs no configuration (the built-in rules); an existing --config adds its
    /// `[events]` rules.
    Classify(ClassifyArgs),
    /// Run the real poller against an embedded fake Lacework API (no account needed) and
    /// print events to stdout until Ctrl-C.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Manpage,
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Catch up to now (minus poll.settle), then exit 0 instead of polling forever.
    #[arg(long)]
    pub once: bool,
}

/// `replay` options.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Start of the range, inclusive: RFC 3339, a UTC date, "now", or a duration ago (36h).
    #[arg(long, value_parser = times::parse_time_arg, required_unless_present = "resume")]
    pub from: Option<TimeArg>,
    /// End of the range, exclusive; default now.
    #[arg(long, value_parser = times::parse_time_arg)]
    pub to: Option<TimeArg>,
    /// Deliver only to the sink with this name (repeatable); default all configured sinks.
    #[arg(long = "sink", value_name = "NAME")]
    pub sinks: Vec<String>,
    /// Continue an interrupted replay: of the same range when --from/--to are given, else
    /// the most recent unfinished one.
    #[arg(long)]
    pub resume: bool,
    /// Keep this replay's progress in this SQLite file instead of state.path: a running
    /// daemon holds its state file, and one process at a time may walk with a state file.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Draw no progress line. By default, when standard error is a terminal, a line below
    /// the logs shows windows done of total, events delivered, events per second and the time
    /// left; never under systemd (JOURNAL_STREAM set), with --log-format json, or when the
    /// replay prints events to the same terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Show checkpoints, remembered ids and unfinished replays.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Forget the live checkpoint and remembered ids: the next run starts poll.lookback ago.
    Reset,
    /// Move the live checkpoint: the next run reads from this time on.
    Set {
        /// New position: RFC 3339, a UTC date, or a duration ago (36h).
        #[arg(long, value_parser = times::parse_time_arg)]
        to: TimeArg,
    },
}

/// `classify` options.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The records: a file, or `-` (the default) for standard input.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print counts by type and the values that matched no rule instead of one line per record.
    #[arg(long)]
    pub summary: bool,
    /// Print JSON (one object per record, or one summary object).
    #[arg(long)]
    pub json: bool,
}

/// `validate` options.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also exchange the API key for a token and run each sink's connectivity check.
    #[arg(long)]
    pub online: bool,
}

/// A command's failure with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Process exit code.
    pub code: u8,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Failure {
    /// A configuration or usage problem: exit code 2.
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
        }
    }

    /// A runtime failure: exit code 1.
    pub fn runtime(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 1,
            error: error.into(),
        }
    }
}

/// Exit code of a stop on an API refusal that waiting cannot heal.
pub(crate) const EXIT_API_REFUSED: u8 = 3;

impl From<crate::exporter::Error> for Failure {
    fn from(error: crate::exporter::Error) -> Failure {
        let code = if error.is_config() {
            2
        } else if error.is_api_refusal() {
            EXIT_API_REFUSED
        } else {
            1
        };
        Failure {
            code,
            error: error.into(),
        }
    }
}

/// An environment variable, for `${VAR}` in the configuration file (`None` when unset or not
/// UTF-8).
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What the environment tells a command.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    /// systemd's `$CREDENTIALS_DIRECTORY`.
    pub credentials_directory: Option<PathBuf>,
    /// systemd's `$NOTIFY_SOCKET`.
    pub notify_socket: Option<std::ffi::OsString>,
    /// systemd's `$WATCHDOG_USEC`.
    pub watchdog_usec: Option<String>,
    /// systemd's `$WATCHDOG_PID`.
    pub watchdog_pid: Option<String>,
    /// Whether standard error is a terminal.
    pub stderr_is_terminal: bool,
    /// Whether standard output is a terminal.
    pub stdout_is_terminal: bool,
    /// Whether systemd's `$JOURNAL_STREAM` is set (logs go to the journal).
    pub under_journald: bool,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// The line below the logs on standard error that a replay's progress is drawn in.
    pub status_line: StatusLine,
}

/// Runs the parsed command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let filter = cli
        .log_level
        .clone()
        .or_else(|| {
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| "info".to_string());
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let status_line = StatusLine::default();
    if let Err(message) =
        crate::telemetry::init(&filter, cli.log_format, under_journald, &status_line)
    {
        report_error(&format!("error: {message}"));
        return ExitCode::from(2);
    }
    let environment = Environment {
        credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        notify_socket: std::env::var_os("NOTIFY_SOCKET"),
        watchdog_usec: std::env::var("WATCHDOG_USEC").ok(),
        watchdog_pid: std::env::var("WATCHDOG_PID").ok(),
        stderr_is_terminal: std::io::stderr().is_terminal(),
        stdout_is_terminal: std::io::stdout().is_terminal(),
        under_journald,
        log_format: cli.log_format,
        status_line,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "Cannot start the async runtime.");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(dispatch(cli, environment));
    // Do not wait for blocking tasks (a stdin/stdout read) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::error!(exit_code = failure.code, "{:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

async fn dispatch(cli: Cli, environment: Environment) -> Result<(), Failure> {
    match cli.command {
        Command::Run(args) => run::run(&cli.config, &environment, &args).await,
        Command::Replay(args) => replay::replay(&cli.config, &environment, &args).await,
        Command::State(command) => state::state(&cli.config, &environment, &command).await,
        Command::Validate(args) => validate::validate(&cli.config, &environment, &args).await,
        Command::Classify(args) => classify::classify(&cli.config, &args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::demo(&args).await,
        Command::Completions { shell } => generate::completions(shell),
        Command::Manpage => generate::manpage(),
    }
}

/// A token cancelled by the first SIGTERM or SIGINT. A second signal exits at once.
pub(crate) fn shutdown_on_signals() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(
            signal,
            "Shutdown requested; finishing up (send it again to exit at once)."
        );
        token.cancel();
        let signal = wait_for_signal().await;
        tracing::warn!(
            signal,
            "Second signal; exiting now without committing further."
        );
        std::process::exit(130);
    });
    shutdown
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

/// Prints a command's report on standard output (`state show`, `validate`).
#[expect(clippy::print_stdout, reason = "command reports are the CLI's output")]
pub(crate) fn report(text: &str) {
    println!("{text}");
}

#[expect(clippy::print_stderr, reason = "the logger could not be installed")]
fn report_error(text: &str) {
    eprintln!("{text}");
}
