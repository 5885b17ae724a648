#!/usr/bin/env bash
# Fingerprint of the inputs of the cpu image's dependency layer, so CI rebuilds that image (5.5-8.5 min on a
# clean machine) only when one of them changed since a build that passed. The core image, which copies the same
# source tree, is built and health-checked on every run.
#
#   bash scripts/image_stamp.sh           # print the fingerprint of the working tree
#   bash scripts/image_stamp.sh --check   # exit 0 when it equals the recorded one (.ci/cpu-image.sha256)
#   bash scripts/image_stamp.sh --record  # record it (scripts/ci_image_check.sh does, after a cpu build passes)
set -euo pipefail
cd "$(dirname "$0")/.."

STAMP=".ci/cpu-image.sha256"
INPUTS=(Dockerfile .dockerignore pyproject.toml constraints.txt requirements scripts/requirements.py)

fingerprint() {
  git ls-files -z -- "${INPUTS[@]}" | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

case "${1:-}" in
  "") fingerprint ;;
  --check) [[ -s "$STAMP" && "$(fingerprint)" == "$(cat "$STAMP")" ]] ;;
  --record) fingerprint > "$STAMP" ;;
  *) echo "usage: $0 [--check|--record]" >&2; exit 2 ;;
esac
