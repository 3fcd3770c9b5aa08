#!/usr/bin/env bash
# Builds target/debian/lacework-audit-exporter_<version>_<arch>.deb: the binary, the systemd
# unit, the configuration (as /etc/lacework-audit-exporter/config.toml, 0640), the man page and
# shell completions generated from the CLI definition.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0
cargo build --release --locked
assets=target/assets
rm -rf "$assets" && mkdir -p "$assets/completions"
bin=target/release/lacework-audit-exporter
"$bin" manpage | gzip -9n > "$assets/lacework-audit-exporter.1.gz"
"$bin" completions bash > "$assets/completions/lacework-audit-exporter.bash"
"$bin" completions zsh > "$assets/completions/_lacework-audit-exporter"
"$bin" completions fish > "$assets/completions/lacework-audit-exporter.fish"
cargo deb --no-build --locked "$@"
ls -l target/debian/*.deb
