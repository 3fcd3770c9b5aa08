//! `completions SHELL` and `manpage`: documentation generated from the CLI definition itself,
//! so packages never ship a stale copy.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Failure};

/// Writes shell completions for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "lacework-audit-exporter", &mut out);
    write_stdout(&out)
}

/// Writes the roff man page to standard output.
pub fn manpage() -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(Failure::runtime)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|error| {
            Failure::runtime(anyhow::Error::new(error).context("cannot write to standard output"))
        })
}
