//! The `lacework-audit-exporter` binary: parse the command line, then hand over to `cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lacework_audit_exporter::memory::tune();
    let cli = lacework_audit_exporter::cli::Cli::parse();
    lacework_audit_exporter::cli::main(cli)
}
