"""Regenerates the Python gRPC stubs from proto/ (`make protos`), or checks that they are current.

protoc writes imports as `from intervene.v1 import x_pb2`; the stubs live inside the `shared`
package, so those imports are rewritten to `from shared.protos.intervene.v1 import x_pb2`.

    python -m shared.protos.generate           # rewrite shared/protos/intervene/v1
    python -m shared.protos.generate --check   # exit 1 when the committed stubs are stale
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
STUB_ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = Path("intervene") / "v1"
_IMPORT = re.compile(r"^from intervene\.v1 import", re.MULTILINE)


def generate(out_dir: Path) -> None:
    """Runs protoc over every .proto under proto/ and writes the rewritten stubs to `out_dir`."""
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see its message above")
    for package in (out_dir / "intervene", out_dir / PACKAGE_DIR):
        (package / "__init__.py").write_text('"""Generated from proto/; do not edit."""\n')
    for stub in (out_dir / PACKAGE_DIR).glob("*.py*"):
        stub.write_text(_IMPORT.sub("from shared.protos.intervene.v1 import", stub.read_text()))


def _stale_files(fresh: Path) -> list[str]:
    committed = STUB_ROOT / PACKAGE_DIR
    fresh_pkg = fresh / PACKAGE_DIR
    names = {p.name for p in fresh_pkg.iterdir()} | (
        {p.name for p in committed.iterdir() if p.is_file()} if committed.exists() else set()
    )
    return sorted(
        name
        for name in names
        if not (committed / name).exists()
        or not (fresh_pkg / name).exists()
        or not filecmp.cmp(committed / name, fresh_pkg / name, shallow=False)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that committed stubs are current")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if options.check:
            stale = _stale_files(fresh)
            if stale:
                print(f"stale generated stubs: {', '.join(stale)}; run `make protos` and commit", file=sys.stderr)
                return 1
            print("generated stubs are current")
            return 0
        shutil.rmtree(STUB_ROOT / "intervene", ignore_errors=True)
        shutil.copytree(fresh / "intervene", STUB_ROOT / "intervene")
    print(f"wrote stubs to {STUB_ROOT / PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
