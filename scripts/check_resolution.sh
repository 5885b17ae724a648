#!/usr/bin/env bash
# Does an image flavor's dependency set resolve? Runs pip's resolver on exactly what the Dockerfile installs for
# FLAVOR (scripts/requirements.py writes both), with no GPU and without downloading wheels: a dry run in a
# throwaway venv that reads each candidate's metadata only (PEP 658 files where the index serves them, else the
# few kB of the wheel that hold it, by HTTP range requests), and refuses sdists (--only-binary :all:), whose
# metadata would mean a download and a build.
#
#   bash scripts/check_resolution.sh core|cpu|gpu            # resolves against requirements/lock-FLAVOR.txt
#   bash scripts/check_resolution.sh gpu --update            # resolves afresh and rewrites the lock
#
# Red (exit 1) with pip's conflict lines when the set cannot be resolved, or when the lock is stale (a package
# resolved that the lock lacks); a locked package nothing needs any more is only reported, since environment
# markers make that depend on the resolving Python. The pip configuration of the
# machine (a local wheel folder, a constraints file) is ignored, as it is in the image build; PIP_INDEX_URL and
# PIP_CERT are kept. The cpu flavor takes the CPU build of torch as the image does: from TORCH_FIND_LINKS (a
# folder holding the wheel; default /opt/wheels when it holds one) or else TORCH_INDEX_URL (default PyTorch's CPU
# index). Settings (environment): PYTHON_BOOTSTRAP (a Python 3.11, default Debian's /usr/bin/python3.11 where it
# exists, else python3), VLLM_VERSION (gpu: another
# vllm release than the vllm extra's pin), KEEP_REPORT (a path for pip's JSON report).
set -euo pipefail
cd "$(dirname "$0")/.."

flavor="${1:-}"
update=false
[[ "${2:-}" == --update ]] && update=true
case "$flavor" in core | cpu | gpu) ;; *)
  echo "usage: $0 core|cpu|gpu [--update]" >&2
  exit 2
  ;;
esac
# Debian's python3.11 where there is one: the images' own (its patch release decides some markers, e.g. redis
# needs async-timeout below 3.11.3).
default_python=python3
[[ -x /usr/bin/python3.11 ]] && default_python=/usr/bin/python3.11
PYTHON_BOOTSTRAP="${PYTHON_BOOTSTRAP:-$default_python}"
CHECK_PIP_VERSION=26.3
TORCH_INDEX_URL="${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"
if [[ -z "${TORCH_FIND_LINKS+set}" ]]; then
  TORCH_FIND_LINKS=""
  compgen -G "/opt/wheels/torch-*.whl" >/dev/null && TORCH_FIND_LINKS=/opt/wheels
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
lock_args=()
$update && lock_args=(--no-lock)
vllm_args=()
[[ -n "${VLLM_VERSION:-}" ]] && vllm_args=(--vllm-version "$VLLM_VERSION")
"$PYTHON_BOOTSTRAP" scripts/requirements.py "$flavor" "$work/in" "${lock_args[@]}" "${vllm_args[@]}"

"$PYTHON_BOOTSTRAP" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip)
# Wheels are chosen for the resolving interpreter: it must be the images' Python.
if ! "$work/venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "check_resolution: needs Python 3.11, the images' Python: set PYTHON_BOOTSTRAP" >&2
  exit 2
fi
# A pip whose lazy wheels (fast-deps) read a wheel's metadata with HTTP range requests: an index that serves no
# PEP 658 metadata files would otherwise cost a download of every candidate wheel (GBs for the CUDA torch).
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  "${pip[@]}" install --quiet --disable-pip-version-check "pip==$CHECK_PIP_VERSION"

source_args=()
if [[ "$flavor" == cpu ]]; then
  if [[ -n "$TORCH_FIND_LINKS" ]]; then
    source_args=(--find-links "$TORCH_FIND_LINKS")
  elif [[ -n "$TORCH_INDEX_URL" ]]; then
    source_args=(--extra-index-url "$TORCH_INDEX_URL")
  fi
fi

started=$SECONDS
set +e
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_NO_INDEX -u PIP_REQUIRE_VIRTUALENV \
  PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "${pip[@]}" install --dry-run --ignore-installed --only-binary :all: --use-feature=fast-deps --progress-bar off \
  --report "$work/report.json" -r "$work/in/requirements.txt" -c "$work/in/constraints.txt" "${source_args[@]}" \
  >"$work/pip.log" 2>&1
status=$?
if ((status == 0)) && [[ -s "$work/in/no-deps.txt" ]]; then
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
    "${pip[@]}" install --dry-run --ignore-installed --no-deps --use-feature=fast-deps --quiet \
    -r "$work/in/no-deps.txt" >>"$work/pip.log" 2>&1
  status=$?
fi
set -e
if ((status != 0)); then
  # pip's verdict and the conflict lines start at its first ERROR; whatever else failed, its last lines.
  if grep -q '^ERROR' "$work/pip.log"; then sed -n '/^ERROR/,$p' "$work/pip.log" >&2; else tail -n 30 "$work/pip.log" >&2; fi
  echo "check_resolution: the $flavor flavor does not resolve (pip exit $status, $((SECONDS - started))s)" >&2
  exit 1
fi
[[ -n "${KEEP_REPORT:-}" ]] && cp "$work/report.json" "$KEEP_REPORT"

"$PYTHON_BOOTSTRAP" - "$flavor" "$work/report.json" "$update" "$((SECONDS - started))" <<'PY'
"""Compare pip's report with the committed lock (or write the lock); print the summary."""

import json
import re
import sys
from pathlib import Path

flavor, report_path, update, seconds = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "true", sys.argv[4]
lock = Path("requirements") / f"lock-{flavor}.txt"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


report = json.loads(report_path.read_text())
# The local segment (torch's +cpu) is left out: the pin must match the CPU build and PyPI's alike.
resolved = {
    norm(item["metadata"]["name"]): item["metadata"]["version"].split("+")[0] for item in report["install"]
}
pins = {name: resolved[name] for name in ("torch", "vllm", "transformers") if name in resolved}
summary = f"{flavor}: {len(resolved)} packages resolve in {seconds}s" + "".join(f", {n}=={v}" for n, v in pins.items())
if update:
    header = (
        f"# The {flavor} image's packages, resolved by `bash scripts/check_resolution.sh {flavor} --update`\n"
        "# (scripts/requirements.py's input; the Dockerfile installs with this file as a constraint).\n"
    )
    lock.write_text(header + "".join(f"{name}=={resolved[name]}\n" for name in sorted(resolved)))
    print(f"{summary}; wrote {lock}")
    sys.exit(0)
locked = {}
for line in lock.read_text().splitlines() if lock.is_file() else []:
    if (line := line.split("#", 1)[0].strip()) and "==" in line:
        name, version = line.split("==", 1)
        locked[norm(name)] = version.strip()
missing = sorted(f"{name}=={version}" for name, version in resolved.items() if name not in locked)
unused = sorted(f"{name}=={locked[name]}" for name in locked.keys() - resolved.keys())
if unused:
    print(f"check_resolution: in {lock}, not needed here: {', '.join(unused)}", file=sys.stderr)
if missing:
    print(f"check_resolution: {lock} is stale", file=sys.stderr)
    for line in missing:
        print(f"  resolved, not in the lock: {line}", file=sys.stderr)
    print(f"  rewrite it with: bash scripts/check_resolution.sh {flavor} --update", file=sys.stderr)
    sys.exit(1)
print(summary)
PY
