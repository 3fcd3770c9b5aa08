#!/usr/bin/env bash
# The .deb and the .rpm, built and checked: the .deb is installed on this machine with dpkg
# (the binary runs, the unit and its template pass `systemd-analyze verify`, files have the
# modes the unit expects), then purged; the .rpm's file list and modes are read with rpm and
# compared with the .deb's. SHA256SUMS is written beside the artefacts in target/dist/.
# cargo-deb and cargo-generate-rpm are cached in $LAE_TOOL_CACHE (default
# ~/.cache/lae-ci-tools, outside the clone): a cold install takes about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-packages: $*" >&2; exit 1; }

tools="${LAE_TOOL_CACHE:-$HOME/.cache/lae-ci-tools}"
export PATH="$tools/bin:$PATH"
command -v cargo-deb >/dev/null || cargo install --locked --root "$tools" cargo-deb --version 3.8.0 >&2
command -v cargo-generate-rpm >/dev/null || cargo install --locked --root "$tools" cargo-generate-rpm --version 0.21.1 >&2
if ! command -v rpm >/dev/null || ! command -v dpkg >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rpm >&2
  else
    fail "install rpm and dpkg (Debian: apt-get install rpm)"
  fi
fi

./scripts/package-deb.sh >&2
./scripts/package-rpm.sh >&2
deb="$(ls target/debian/lacework-audit-exporter_*.deb | tail -1)"
rpmfile="$(ls target/generate-rpm/lacework-audit-exporter-*.rpm | tail -1)"

echo "==> dpkg -i ${deb}" >&2
if [ "$(id -u)" != 0 ]; then fail "installing the .deb needs root"; fi
dpkg -i "$deb" >&2
trap 'dpkg --purge lacework-audit-exporter >/dev/null 2>&1 || true' EXIT
/usr/bin/lacework-audit-exporter --version >&2
/usr/bin/lacework-audit-exporter --version | grep -q "(revision " || fail "--version names no revision"
for unit in lacework-audit-exporter.service lacework-audit-exporter@.service; do
  path="/usr/lib/systemd/system/$unit"
  [ -f "$path" ] || fail "$path is missing"
done
# verify an instance of the template as well as the unit (a template alone is not loadable).
instance_dir="$(mktemp -d)"
cp /usr/lib/systemd/system/lacework-audit-exporter@.service "$instance_dir/lacework-audit-exporter@soc.service"
systemd-analyze verify /usr/lib/systemd/system/lacework-audit-exporter.service "$instance_dir/lacework-audit-exporter@soc.service" 2>"$instance_dir/verify.err" ||
  { cat "$instance_dir/verify.err" >&2; fail "systemd-analyze verify failed"; }
# Lines about the host's own units are not ours.
if grep -i "lacework" "$instance_dir/verify.err" >&2; then fail "systemd-analyze verify complained about the units"; fi
mode_of() { stat -c '%a %U:%G' "$1"; }
[ "$(mode_of /etc/lacework-audit-exporter/config.toml)" = "640 root:lacework-audit-exporter" ] ||
  fail "config.toml is $(mode_of /etc/lacework-audit-exporter/config.toml), not 640 root:lacework-audit-exporter"
[ "$(mode_of /usr/bin/lacework-audit-exporter)" = "755 root:root" ] || fail "the binary is $(mode_of /usr/bin/lacework-audit-exporter)"
for file in /usr/share/man/man1/lacework-audit-exporter.1.gz \
  /usr/share/bash-completion/completions/lacework-audit-exporter \
  /usr/share/doc/lacework-audit-exporter/config.example.toml; do
  [ -f "$file" ] || fail "$file is missing"
done
zcat /usr/share/man/man1/lacework-audit-exporter.1.gz | grep -q "lacework-audit-exporter" || fail "the man page is empty"
deb_files="$(dpkg -L lacework-audit-exporter | grep -E '^/(usr/bin|etc|usr/share/man|lib/systemd|usr/lib/systemd)/' |
  while read -r f; do if [ -f "$f" ]; then basename "$f"; fi; done | sort -u)"
dpkg --purge lacework-audit-exporter >&2
[ ! -e /usr/bin/lacework-audit-exporter ] || fail "purge left the binary"
trap - EXIT

echo "==> ${rpmfile}" >&2
rpm -qpi "$rpmfile" >/dev/null 2>&1 || fail "rpm cannot read $rpmfile"
listing="$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpmfile" 2>/dev/null)"
echo "$listing" | grep -qx -- '-rw-r----- root:lacework-audit-exporter /etc/lacework-audit-exporter/config.toml' ||
  fail "the rpm's config.toml is not 0640 root:lacework-audit-exporter: $(echo "$listing" | grep config.toml)"
echo "$listing" | grep -qx -- '-rwxr-xr-x root:root /usr/bin/lacework-audit-exporter' || fail "the rpm's binary is not 0755 root:root"
rpm_files="$(rpm -qlp "$rpmfile" 2>/dev/null | grep -E '^/(usr/bin|etc|usr/share/man|usr/lib/systemd)/' | xargs -n1 basename | sort -u)"
[ "$deb_files" = "$rpm_files" ] || fail "the .deb and the .rpm differ: $(diff <(echo "$deb_files") <(echo "$rpm_files") | tr '\n' ' ')"

dist=target/dist
rm -rf "$dist" && mkdir -p "$dist"
cp "$deb" "$rpmfile" "$dist/"
(cd "$dist" && sha256sum ./*.deb ./*.rpm | sed 's# \./# #' > SHA256SUMS)
ls -l "$dist" >&2
cat "$dist/SHA256SUMS" >&2
echo "check-packages: .deb installed and checked, .rpm checked" >&2
