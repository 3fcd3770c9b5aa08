#!/usr/bin/env bash
# Builds target/generate-rpm/lacework-audit-exporter-<version>-1.x86_64.rpm with the .deb's
# layout (Cargo.toml's [package.metadata.generate-rpm]): binary, units, the configuration as
# /etc/lacework-audit-exporter/config.toml (0640, group lacework-audit-exporter), man page and
# completions. Expects the release binary and target/assets (scripts/package-deb.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-generate-rpm >/dev/null || cargo install cargo-generate-rpm --locked --version 0.21.1
cargo generate-rpm "$@"
ls -l target/generate-rpm/*.rpm
