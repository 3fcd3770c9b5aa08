#!/usr/bin/env bash
# The benchmark (README "Performance"): builds the release binaries, then runs lae-bench
# (crates/bench), which starts the fake Lacework API and measures the exporter per sink next
# to curl, a minimal Rust loop and Python. Arguments go to lae-bench:
#   ./scripts/bench.sh                                  # N = 1,000,000, every sink and baseline
#   ./scripts/bench.sh --records 5000000 --skip-baselines
#   ./scripts/bench.sh --sinks stdout,webhook
#   ./scripts/bench.sh --sinks file,file-nofsync,kafka,kafka-eos   # file: fsync = true (the
#                       # default); kafka-eos: exactly_once = true, one transaction per batch
#   ./scripts/bench.sh requests [--scale 60] [--hours 1] [--per-minute 3]
#                       # API requests per hour of one live stream at the default settings
#                       # (live polls, re-sweeps, nextPage, tokens) as a share of 480/h; time is
#                       # scaled (60: one hour in 60 s), the fake API runs inside lae-bench
#   ./scripts/bench.sh static [--records N] [--skip-baselines]
#                       # the stdout and file-sink rows, the minimal loop, Python and curl
#                       # against pages written once and served by nginx (installed with
#                       # apt-get when missing), the fake stopped before the measured runs; prints
#                       # CPU s per million events and the goals (stdout >= 1.0x the minimal loop,
#                       # file sink >= 0.9x, peak RSS <= 48 MiB)
#   ./scripts/bench.sh idle [--minutes 3]
#                       # a caught-up daemon (`run`, poll.interval = 5s, a file sink) for M
#                       # minutes: RSS median/max and VmHWM, CPU s/hour, polls and AuditLogs
#                       # requests per hour (goals: RSS <= 16 MiB, one request per poll)
# The Kafka rows need tansu (./scripts/test.sh installs it into .ci/cache); without it those
# rows are skipped. The Python row installs `requests` into .ci/cache/py if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace >&2
exec ./target/release/lae-bench "$@"
