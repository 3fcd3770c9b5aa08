#!/usr/bin/env bash
# Builds the OCI image localhost/lacework-audit-exporter:<version> from the release binary:
# stages a root file system (the stripped binary, the shared libraries `ldd` lists, the CA
# bundle, a non-root user), then `podman build -f packaging/container/Containerfile`.
#   scripts/build-image.sh           build (and print the image's size)
#   scripts/build-image.sh --save    also write target/image/lacework-audit-exporter-<version>.oci.tar
#                                    and its SHA256SUMS, for a release
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/packaging/container/containers.conf}"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >&2
  else
    echo "install podman and runc (Debian: apt-get install podman runc)" >&2
    exit 1
  fi
fi
if [ ! -f /etc/ssl/certs/ca-certificates.crt ]; then
  echo "the CA bundle /etc/ssl/certs/ca-certificates.crt is missing (Debian: ca-certificates)" >&2
  exit 1
fi

cargo build --release --locked >&2
version="$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "lacework-audit-exporter"))')"
image="localhost/lacework-audit-exporter:${version}"

stage=target/image/context
rm -rf "$stage"
root="$stage/rootfs"
mkdir -p "$root/usr/bin" "$root/etc/ssl/certs" "$root/etc/lacework-audit-exporter" \
  "$root/var/lib/lacework-audit-exporter" "$root/tmp" "$root/usr/lib/ssl"
bin=target/release/lacework-audit-exporter
# The release profile keeps line tables for backtraces on the host; the image drops them.
objcopy --strip-debug "$bin" "$root/usr/bin/lacework-audit-exporter"
# The C libraries (OpenSSL and zlib for librdkafka, glibc), at the paths the loader looks in.
ldd "$bin" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
# OpenSSL's default CA file (librdkafka without ssl.ca.location).
ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
printf 'root:x:0:0::/:/nonexistent\nexporter:x:65532:65532::/var/lib/lacework-audit-exporter:/nonexistent\n' > "$root/etc/passwd"
printf 'root:x:0:\nexporter:x:65532:\n' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/lacework-audit-exporter"
chown -R 65532:65532 "$root/var/lib/lacework-audit-exporter"

podman build --network=none --quiet -f packaging/container/Containerfile -t "$image" "$stage" >&2
size="$(podman image inspect "$image" --format '{{.Size}}')"
echo "built ${image}: $((size / 1024 / 1024)) MiB (${size} bytes)" >&2

if [ "${1:-}" = "--save" ]; then
  archive="target/image/lacework-audit-exporter-${version}.oci.tar"
  rm -f "$archive"
  podman save --format oci-archive -o "$archive" "$image"
  (cd target/image && sha256sum "$(basename "$archive")" > SHA256SUMS)
  echo "saved ${archive} ($(du -h "$archive" | cut -f1))" >&2
fi
echo "$image"
