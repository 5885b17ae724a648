"""The local copy of the public data sets that tests read, and the skip for tests that need them.

The data folder is INTERVENE_DATA_DIR when the run sets it, else the `shared/data` folder beside the clone (CI lays
one there); tests/conftest.py points INTERVENE_DATA_DIR at the latter so the product's own default resolution finds
it. On a bare clone without it, the tests that need a public set skip and say which file is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC_DATA = Path(os.environ.get("INTERVENE_DATA_DIR") or REPO.parent / "shared" / "data")


def public_file(relative: str) -> Path:
    """A file of the public data folder, or a skip naming it when it is not there."""
    path = PUBLIC_DATA / relative
    if not path.is_file():
        pytest.skip(f"needs the public data sets: {path} is missing (set INTERVENE_DATA_DIR to a folder holding them)")
    return path


def needs_public_data(*names: str) -> pytest.MarkDecorator:
    """Skips a test unless the local copy of every named set is in the public data folder."""
    from shared.datasets import local_copy

    missing = [name for name in names if not local_copy(name, PUBLIC_DATA).is_file()]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"needs the public data sets {', '.join(missing)}, not copied under {PUBLIC_DATA} "
        "(set INTERVENE_DATA_DIR to a folder holding them)",
    )
