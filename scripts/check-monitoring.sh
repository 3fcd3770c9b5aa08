#!/usr/bin/env bash
# Checks deploy/monitoring/: the Prometheus alerting rules parse (`promtool check rules`), their
# unit tests pass (`promtool test rules`), the Grafana dashboard is valid JSON whose every query
# parses as PromQL, and every lae_* metric named in either exists in src/metrics.rs.
# Installs promtool when missing: Debian ships it only inside the `prometheus` package, whose
# install would also bring a server, a system user and a service, so the package is downloaded
# with apt-get and promtool alone is unpacked into .ci/cache (git-ignored). Set PROMTOOL to use
# another promtool. Exits 1 naming each failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
fail() {
  printf 'check-monitoring: %s\n' "$*" >&2
  failures=$((failures + 1))
}

dir="deploy/monitoring"
rules="${dir}/alerts.yml"
rules_test="${dir}/alerts_test.yml"
dashboard="${dir}/grafana-dashboard.json"
failures=0

for file in "${rules}" "${rules_test}" "${dashboard}" src/metrics.rs; do
  if [ ! -f "${file}" ]; then
    echo "check-monitoring: ${file} is missing" >&2
    exit 1
  fi
done
if ! command -v python3 >/dev/null; then
  echo "check-monitoring: python3 is needed (Debian: apt-get install python3)" >&2
  exit 1
fi

step "promtool"
# The first promtool found: $PROMTOOL, one on PATH, or the one unpacked in .ci/cache.
cache=".ci/cache/promtool"
promtool="${PROMTOOL:-}"
if [ -z "${promtool}" ]; then
  promtool="$(command -v promtool || true)"
fi
if [ -z "${promtool}" ] && [ -x "${cache}/promtool" ]; then
  promtool="${cache}/promtool"
fi
if [ -z "${promtool}" ]; then
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "check-monitoring: promtool not found; install Prometheus's promtool (Debian: the prometheus package) or set PROMTOOL" >&2
    exit 1
  fi
  echo "unpacking promtool from Debian's prometheus package into ${cache}" >&2
  if [ "$(id -u)" = 0 ] && ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update -qq
  fi
  download="$(mktemp -d)"
  trap 'rm -rf "${download}"' EXIT
  # apt-get verifies the package against the archive's signed index, as an install would.
  sandbox=()
  if [ "$(id -u)" = 0 ]; then
    # apt's _apt user cannot write to a private temporary directory; root downloads itself.
    sandbox=(-o APT::Sandbox::User=root)
  fi
  if ! (cd "${download}" && apt-get download -qq "${sandbox[@]}" prometheus >&2); then
    echo "check-monitoring: apt-get download prometheus failed (as root, run apt-get update first)" >&2
    exit 1
  fi
  mkdir -p "${download}/root" "${cache}"
  dpkg-deb --fsys-tarfile "${download}"/prometheus_*.deb | tar -x -C "${download}/root" ./usr/bin/promtool
  mv "${download}/root/usr/bin/promtool" "${cache}/promtool"
  promtool="${cache}/promtool"
fi
"${promtool}" --version 2>&1 | head -n 1 >&2

step "promtool check rules ${rules}"
if ! "${promtool}" check rules "${rules}"; then
  fail "${rules} does not pass promtool check rules"
fi

step "promtool test rules ${rules_test}"
if ! "${promtool}" test rules "${rules_test}"; then
  fail "the alert unit tests in ${rules_test} failed"
fi

step "dashboard JSON and queries"
if ! python3 -m json.tool "${dashboard}" >/dev/null; then
  fail "${dashboard} is not valid JSON"
else
  # Every panel query (and templating query), with Grafana's variables replaced, as a recording
  # rule: promtool check rules then parses each as PromQL.
  queries="$(mktemp)"
  titles="$(mktemp)"
  if ! python3 - "${dashboard}" >"${queries}" 2>"${titles}" <<'EOF'; then
import json
import sys

with open(sys.argv[1]) as f:
    dashboard = json.load(f)
problems = []
if not isinstance(dashboard.get("schemaVersion"), int):
    problems.append("no schemaVersion")
names = [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]
for needed in ("DS_PROMETHEUS", "instance"):
    if needed not in names:
        problems.append(f"no template variable {needed}")

def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))

exprs = []
ids = set()
for panel in panels(dashboard.get("panels", [])):
    if panel.get("type") == "row":
        continue
    if panel.get("id") in ids:
        problems.append(f"panel id {panel.get('id')} is used twice")
    ids.add(panel.get("id"))
    targets = panel.get("targets", [])
    if not targets:
        problems.append(f"panel {panel.get('title')!r} has no query")
    for target in targets:
        if not target.get("expr", "").strip():
            problems.append(f"panel {panel.get('title')!r} has an empty query")
        exprs.append((panel.get("title"), target.get("expr", "")))
for variable in dashboard.get("templating", {}).get("list", []):
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    if variable.get("type") == "query" and query.startswith("label_values("):
        # label_values(SELECTOR, label) is Grafana's; its selector is PromQL.
        exprs.append((f"variable {variable['name']}", query[len("label_values("):].rsplit(",", 1)[0]))
if problems:
    sys.stderr.write("".join(f"dashboard: {p}\n" for p in problems))
    sys.exit(1)
substitutions = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h",
                 "$instance": ".*", "$account": ".*"}
print("groups:\n  - name: dashboard-queries\n    rules:")
for idx, (title, expr) in enumerate(exprs):
    for variable, value in substitutions.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        sys.stderr.write(f"dashboard: {title!r} uses an unknown variable: {expr}\n")
        sys.exit(1)
    print(f"      - record: dashboard:query_{idx}")
    print(f"        expr: {json.dumps(expr)}")
    sys.stderr.write(f"query_{idx}\t{title}\t{expr}\n")
EOF
    grep -v '^query_' "${titles}" >&2 || true
    fail "${dashboard} is not a dashboard this check understands (see above)"
  elif ! parsed="$("${promtool}" check rules "${queries}" 2>&1)"; then
    # promtool names the rule (dashboard:query_N); name the panel and its query too.
    for query in $(grep -o 'dashboard:query_[0-9]*' <<<"${parsed}" | sort -u | cut -d: -f2); do
      grep "^${query}	" "${titles}" | cut -f2- | sed 's/	/: /; s/^/panel /' >&2
    done
    grep -i 'error' <<<"${parsed}" | sed 's/^/  /' >&2
    fail "a query in ${dashboard} is not valid PromQL"
  else
    echo "$(grep -c 'record:' "${queries}") queries parse" >&2
  fi
  rm -f "${queries}" "${titles}"
fi

step "every lae_* metric named exists in src/metrics.rs"
# The names src/metrics.rs emits: the quoted "lae_..." strings before its test module (whose
# example names are not real metrics); histograms also have _bucket, _sum and _count series.
known="$(sed '/^mod tests/,$d' src/metrics.rs | grep -o '"lae_[a-z][a-z0-9_]*"' | tr -d '"' | sort -u)"
histograms="$(sed '/^mod tests/,$d' src/metrics.rs | grep -A1 'histogram_observe(' |
  grep -o '"lae_[a-z][a-z0-9_]*"' | tr -d '"' | sort -u || true)"
if [ -z "${known}" ]; then
  fail "found no metric names in src/metrics.rs"
fi
for file in "${rules}" "${rules_test}" "${dashboard}"; do
  for name in $(grep -o 'lae_[a-z][a-z0-9_]*' "${file}" | sort -u); do
    base="${name}"
    for suffix in _bucket _sum _count; do
      if [ "${name%"${suffix}"}" != "${name}" ] && grep -qx "${name%"${suffix}"}" <<<"${histograms}"; then
        base="${name%"${suffix}"}"
      fi
    done
    if ! grep -qx "${base}" <<<"${known}"; then
      fail "${file} names ${name}, which src/metrics.rs does not emit"
    fi
  done
done
# Not a failure: a metric no alert or panel shows yet.
for name in ${known}; do
  if ! grep -q "${name}" "${rules}" "${dashboard}"; then
    echo "note: ${name} is in neither ${rules} nor ${dashboard}" >&2
  fi
done
echo "$(wc -w <<<"${known}") metrics in src/metrics.rs" >&2

if [ "${failures}" -gt 0 ]; then
  printf '\ncheck-monitoring: %d check(s) failed\n' "${failures}" >&2
  exit 1
fi
printf '\ncheck-monitoring: all checks passed\n' >&2
