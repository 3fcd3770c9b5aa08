#!/usr/bin/env bash
# The container image and the Kubernetes manifests, for real: builds the image
# (scripts/build-image.sh), runs `--version`, `demo --once` (the embedded fake needs no
# network) and `validate` on a mounted configuration in it, then plays deploy/kubernetes/ with
# `podman kube play` and checks that the exporter runs there as the manifests say (user,
# read-only root, no capabilities, config from the ConfigMap, secret from the Secret, state on
# the volume) until it waits for the Lacework API, which CI cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/packaging/container/containers.conf"

fail() { echo "check-image: $*" >&2; exit 1; }

# kube play needs the pause binary and a network for the pod's port (slirp4netns: no bridge,
# no iptables changes on the machine).
for tool in catatonit slirp4netns; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >&2
    else
      fail "install $tool (Debian: apt-get install $tool)"
    fi
  fi
done

image="$(./scripts/build-image.sh "$@" | tail -1)"
run() { podman run --rm --network=none "$@"; }

echo "==> --version" >&2
version_line="$(run "$image" --version)"
echo "$version_line" >&2
case "$version_line" in
  "lacework-audit-exporter "*" (revision "*) ;;
  *) fail "unexpected --version: $version_line" ;;
esac

echo "==> demo --once inside the image" >&2
events="$(run "$image" demo --once 2>/tmp/lae-image-demo.err)" || { cat /tmp/lae-image-demo.err >&2; fail "demo --once failed"; }
n_events="$(printf '%s\n' "$events" | grep -c '"schema":"lacework-audit-exporter/v1"' || true)"
[ "$n_events" -gt 0 ] || fail "demo --once printed no events"
echo "demo --once: ${n_events} events" >&2

echo "==> validate on a mounted configuration" >&2
work="$(mktemp -d)"
trap 'podman kube down "$work/all.yaml" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
printf 'secret-of-the-check\n' > "$work/secret"
cat > "$work/config.toml" <<'TOML'
[lacework]
account = "acme"
key_id = "ACME_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
secret_file = "/run/secrets/lacework-secret"

[[sinks]]
type = "stdout"
format = "ocsf"
TOML
chmod 0644 "$work/config.toml" "$work/secret"
validated="$(run -v "$work/config.toml:/etc/lacework-audit-exporter/config.toml:ro" \
  -v "$work/secret:/run/secrets/lacework-secret:ro" "$image" validate 2>&1)" || { echo "$validated" >&2; fail "validate failed"; }
echo "$validated" | tail -3 >&2
if printf 'broken = \n' > "$work/bad.toml" &&
  run -v "$work/bad.toml:/etc/lacework-audit-exporter/config.toml:ro" "$image" validate >/dev/null 2>&1; then
  fail "validate accepted a broken configuration"
fi

echo "==> deploy/kubernetes with podman kube play" >&2
for f in configmap secret.example pvc deployment; do
  printf -- '---\n'
  cat "deploy/kubernetes/$f.yaml"
done > "$work/all.yaml"
podman kube down "$work/all.yaml" >/dev/null 2>&1 || true
podman volume rm -f lacework-audit-exporter-state >/dev/null 2>&1 || true
podman secret rm lacework-audit-exporter-secrets >/dev/null 2>&1 || true
podman kube play --network slirp4netns "$work/all.yaml" >/dev/null 2>"$work/play.err" || { cat "$work/play.err" >&2; fail "kube play failed"; }
container=lacework-audit-exporter-pod-0-exporter
# podman applies neither fsGroup nor the volume's ownership: do what Kubernetes' fsGroup does.
chown 65532:65532 "$(podman volume inspect lacework-audit-exporter-state --format '{{.Mountpoint}}')"
deadline=$((SECONDS + 60))
until podman logs "$container" 2>&1 | grep -q '/api/v2/access/tokens'; do
  [ "$SECONDS" -lt "$deadline" ] || { podman logs "$container" 2>&1 | tail -5 >&2; fail "the exporter never reached the API call in the pod"; }
  sleep 2
done
settings="$(podman inspect "$container" --format 'user={{.Config.User}} readonly={{.HostConfig.ReadonlyRootfs}} capadd={{len .HostConfig.CapAdd}} security={{.HostConfig.SecurityOpt}}')"
echo "$settings" >&2
case "$settings" in
  "user=65532:65532 readonly=true capadd=0 security="*no-new-privileges*) ;;
  *) fail "the pod does not run as the manifests say: $settings" ;;
esac
podman logs "$container" 2>&1 | grep -q 'Serving /metrics, /livez and /readyz' || fail "no telemetry listener in the pod"
podman logs "$container" 2>&1 | grep -q 'secret-of-the-check\|_replace_with' && fail "the secret appeared in the pod's log"
podman kube down "$work/all.yaml" >/dev/null
podman volume rm -f lacework-audit-exporter-state >/dev/null 2>&1 || true
podman secret rm lacework-audit-exporter-secrets >/dev/null 2>&1 || true
echo "check-image: image and manifests ok (${image})" >&2
