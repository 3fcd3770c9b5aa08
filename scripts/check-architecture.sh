#!/usr/bin/env bash
# The rules about absence in ARCHITECTURE.md ("Invariant: ... never imports ..."), checked on
# the source. Test code (files named tests.rs or testing.rs, and everything from a file's
# first `#[cfg(test)]` on) is left out: tests may reach anywhere. Paths are written
# `crate::...` (house style; `super::` only in test modules), so grep sees every import.
# Exits 1 naming each broken rule and the lines that break it.
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0

# The production lines of the .rs files at the given paths, as `file:line:text`.
production() {
  find "$@" -name '*.rs' ! -name tests.rs ! -name testing.rs -print0 | sort -z |
    xargs -0 awk '
      FNR == 1 { in_test = 0 }
      /^[[:space:]]*#\[cfg\(test\)\]/ { in_test = 1 }
      !in_test { print FILENAME ":" FNR ":" $0 }'
}

report() {
  printf 'architecture rule broken: %s\n%s\n\n' "$1" "$2" >&2
  failures=$((failures + 1))
}

# never NAME PATTERN PATHS...: no production line at PATHS matches PATTERN.
never() {
  local name="$1" pattern="$2" hits
  shift 2
  hits="$(production "$@" | grep -E "${pattern}" || true)"
  if [ -n "${hits}" ]; then report "${name}" "${hits}"; fi
}

# only NAME ALLOWED PATHS...: every `crate::path` named at PATHS starts with one of ALLOWED
# (alternatives of whole path segments, e.g. 'time|event::RecordId').
only() {
  local name="$1" allowed="$2" hits
  shift 2
  hits="$(production "$@" | grep -E 'crate::' |
    grep -vE "^[^:]+:[0-9]+:[[:space:]]*//" |
    awk -v allowed="^(${allowed})(::|[{]|$)" '{
      line = $0
      while (match(line, /crate::[A-Za-z_:{]+/)) {
        path = substr(line, RSTART + 7, RLENGTH - 7)
        if (path !~ allowed) { print $0; break }
        line = substr(line, RSTART + RLENGTH)
      }
    }' || true)"
  if [ -n "${hits}" ]; then report "${name}" "${hits}"; fi
}

only "event imports nothing of ours but the time helpers" \
  'event|time' src/event
never "lacework never imports event, normalize, sinks or checkpoint" \
  'crate::(event|normalize|sinks|checkpoint|poller|exporter)\b' src/lacework
only "formats imports only event and the time helpers" \
  'formats|event|time' src/formats
only "checkpoint imports only event::RecordId and the time helpers" \
  'checkpoint|event::RecordId|time' src/checkpoint
never "service never imports checkpoint or event" \
  'crate::(checkpoint|event)\b' src/service
never "normalize does no I/O: it never imports sinks, checkpoint, poller, service or exporter" \
  'crate::(sinks|checkpoint|poller|service|exporter|cli)\b' src/normalize
never "nothing below cli imports cli" \
  'crate::cli\b' $(find src -mindepth 1 -maxdepth 1 ! -name cli ! -name main.rs)
never "no command module imports another" \
  'crate::cli::(run|replay|state|validate|demo|generate)\b' src/cli
never "only the demo command names the fake" \
  'fake_lacework' $(find src -name '*.rs' ! -path src/cli/demo.rs)
only "config/secrets.rs is a leaf" 'config::secrets' src/config/secrets.rs
for floor in time metrics backoff text tls telemetry heartbeat build_info memory; do
  only "the ground floor imports nothing of ours (src/${floor}.rs)" "${floor}" "src/${floor}.rs"
done
never "unsafe code lives in src/memory.rs alone (the allocator's C calls)" \
  '(^|[^a-z_])unsafe([^_a-z]|$)' $(find src -name '*.rs' ! -path src/memory.rs)
never "super:: is for test modules; production code names crate:: paths" \
  '(^|[^a-z_])super::' src

if [ "${failures}" -gt 0 ]; then
  echo "${failures} architecture rule(s) broken; see ARCHITECTURE.md" >&2
  exit 1
fi
echo "architecture rules hold" >&2
