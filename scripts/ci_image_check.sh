#!/usr/bin/env bash
# Build the Intervene image with podman and check that a container answers gRPC health.
#
#   bash scripts/ci_image_check.sh              # FLAVOR=core (pairstore, intervention, judge rules)
#   FLAVOR=cpu bash scripts/ci_image_check.sh   # with torch (CPU) and the ML extras: slower
#
# No registry can be pulled from here, so the base image is made by `debootstrap --variant=minbase
# bookworm` and `podman import`ed (cached as a tarball under .cache/image/ and as a podman image).
# The build sees the host's apt configuration and CA bundle through read-only build-time volumes
# and PIP_CERT as a build argument of the build stage only, so none of it lands in the image; the
# script checks that. Then it starts the pair store from the image, as the chart runs it (read-only
# root filesystem, all capabilities dropped, uid 10001, token from a mounted file), against a
# redis-server of its own on a free port, and asks for grpc.health.v1 from the host.
# Podman here needs `runtime = "runc"` and explicit ulimits: a containers.conf named by CONTAINERS_CONF.
set -euo pipefail
cd "$(dirname "$0")/.."

FLAVOR="${FLAVOR:-core}"
IMAGE="localhost/intervene:ci-${FLAVOR}"
BASE="localhost/intervene-base:bookworm"
CACHE=".cache/image"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$CACHE"
start=$SECONDS
step() { echo "== [$((SECONDS - start))s] $*"; }

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  step "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

hard_nofile="$(ulimit -Hn)"
cat > "$CACHE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${hard_nofile}:${hard_nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$PWD/$CACHE/containers.conf"

if ! podman image exists "$BASE"; then
  if [[ ! -s "$CACHE/bookworm-minbase.tar" ]]; then
    step "debootstrap bookworm (minbase)"
    rootfs="$(mktemp -d)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    # The downloaded packages stay in debootstrap's cache: 70 MB the image does not need.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$CACHE/bookworm-minbase.tar.part" .
    rm -rf "$rootfs"
    mv "$CACHE/bookworm-minbase.tar.part" "$CACHE/bookworm-minbase.tar"
  fi
  step "podman import $BASE"
  podman import "$CACHE/bookworm-minbase.tar" "$BASE" >/dev/null 2>&1
fi

ca_bundle="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
build_mounts=(-v /etc/apt/apt.conf.d:/etc/apt/apt.conf.d:ro)
build_args=(--build-arg "BASE_IMAGE=$BASE" --build-arg "FLAVOR=$FLAVOR")
if [[ -s "$ca_bundle" ]]; then
  # A build secret: mounted for the one RUN that needs it, never written to a layer.
  build_args+=(--secret "id=pip_cert,src=$ca_bundle")
fi
if [[ "$FLAVOR" == cpu && -d /opt/wheels ]]; then
  # This machine keeps the CPU build of torch on disk; PyPI's torch would be the CUDA build. /mnt exists
  # in the base image, so the mount leaves no mount point behind.
  build_mounts+=(-v /opt/wheels:/mnt:ro)
  build_args+=(--build-arg PIP_FIND_LINKS=/mnt --build-arg TORCH_INDEX_URL=)
fi
step "podman build $IMAGE"
podman build --layers --format docker "${build_args[@]}" "${build_mounts[@]}" -t "$IMAGE" . > "$CACHE/build.log" 2>&1 \
  || { tail -n 40 "$CACHE/build.log"; echo "ci_image_check: build failed (log: $CACHE/build.log)" >&2; exit 1; }

step "checking the image holds no build-time configuration"
if podman history --no-trunc --format '{{.CreatedBy}}' "$IMAGE" | grep -E 'PIP_CERT|PIP_INDEX_URL=|PIP_FIND_LINKS=|pip_cert'; then
  echo "ci_image_check: build arguments leaked into the final image's history" >&2
  exit 1
fi
podman run --rm --entrypoint /bin/sh "$IMAGE" -c '
  test "$(id -u)" = 10001 || { echo "runs as uid $(id -u), not 10001"; exit 1; }
  test ! -e /run/secrets/pip_cert || { echo "the pip CA secret was left in the image"; exit 1; }
  test ! -e /mnt || test -z "$(ls -A /mnt)" || { echo "/mnt is not empty"; exit 1; }
  test ! -e /tmp/wheels || { echo "/tmp/wheels left in the image"; exit 1; }
'
# The host's apt configuration was mounted over the image's for the build: only the base's own files remain.
image_apt="$(podman run --rm --entrypoint /bin/ls "$IMAGE" /etc/apt/apt.conf.d | sort)"
base_apt="$(podman run --rm --entrypoint /bin/ls "$BASE" /etc/apt/apt.conf.d | sort)"
if [[ "$image_apt" != "$base_apt" ]]; then
  echo "ci_image_check: /etc/apt/apt.conf.d differs from the base image's: $(comm -3 <(echo "$base_apt") <(echo "$image_apt") | xargs)" >&2
  exit 1
fi

step "intervene --help in the container"
podman run --rm --read-only "$IMAGE" serve --help >/dev/null

if [[ ! -f services/pairstore/server.py ]]; then
  echo "ci_image_check: services/pairstore/server.py does not exist yet: image built, gRPC health check skipped"
  step "done"
  exit 0
fi

work="$(mktemp -d)"
container="intervene-ci-$$"
redis_pid=""
cleanup() {
  podman rm -f "$container" >/dev/null 2>&1 || true
  [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"
grpc_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes --appendfsync always \
  --save '' --daemonize no > "$work/redis.log" 2>&1 &
redis_pid=$!
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$work/token"
chmod 0444 "$work/token"

step "starting the pair store container (redis :$redis_port, gRPC :$grpc_port)"
podman run -d --name "$container" --network host --read-only --tmpfs /tmp --tmpfs /cache \
  --cap-drop ALL --security-opt no-new-privileges --user 10001:10001 \
  -v "$work/token:/var/run/secrets/intervene/auth-token:ro" \
  -e INTERVENE_PORT="$grpc_port" -e INTERVENE_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  -e INTERVENE_AUTH_TOKEN_FILE=/var/run/secrets/intervene/auth-token \
  "$IMAGE" serve pairstore >/dev/null

step "gRPC health from the host"
if ! "$PY" - "127.0.0.1:$grpc_port" <<'PY'
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

address = sys.argv[1]
deadline = time.monotonic() + 60
status = None
while time.monotonic() < deadline:
    try:
        with grpc.insecure_channel(address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        if status == "SERVING":
            print(f"health of {address}: SERVING")
            sys.exit(0)
    except grpc.RpcError as error:
        status = error.code().name
    time.sleep(0.5)
print(f"health of {address}: {status} after 60 s", file=sys.stderr)
sys.exit(1)
PY
then
  podman logs "$container" 2>&1 | tail -n 30
  exit 1
fi
if [[ "$FLAVOR" == cpu ]]; then
  bash scripts/image_stamp.sh --record
  echo "recorded the cpu image's inputs in .ci/cpu-image.sha256: commit it, and CI skips this build until they change"
fi
step "done"
