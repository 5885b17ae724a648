"""Writes pairs as rows in TRL's preference format (`prompt`, `chosen`, `rejected`) plus metadata.

`prompt` is the chat-formatted user turn with the think tag opened (the pair's `context`) followed by
the shared reasoning prefix, so TRL's prompt masking trains only on the suffixes after the
divergence step. The metadata columns carry the provenance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.pairs.store import kind_name
from shared.protos.intervene.v1 import common_pb2

FORMATS = ("jsonl", "parquet")
_INT_COLUMNS = frozenset({"divergence_step", "divergence_offset", "round"})


def to_row(pair: common_pb2.Pair) -> dict[str, Any]:
    """One export row: TRL columns first, then provenance."""
    provenance = pair.provenance
    return {
        "prompt": pair.context + pair.prefix,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "id": pair.id,
        "kind": kind_name(pair.kind),
        "context": pair.context,
        "prefix": pair.prefix,
        "user_prompt": pair.prompt.text,
        "system_prompt": pair.prompt.system,
        "prompt_id": pair.prompt.id,
        "dataset": pair.prompt.dataset,
        "template": pair.prompt.template,
        "rollout_id": provenance.rollout_id,
        "continuation_id": provenance.continuation_id,
        "divergence_step": provenance.divergence_step,
        "divergence_offset": provenance.divergence_offset,
        "trigger_id": provenance.trigger_id,
        "trigger_pool_version": provenance.trigger_pool_version,
        "round": provenance.round,
        "model": provenance.model,
        "adapter": provenance.adapter,
        "judge_name": provenance.judge_name,
        "judge_version": provenance.judge_version,
        "rejected_reasoning_verdict": _verdict(provenance.rejected_reasoning_verdict),
        "rejected_response_verdict": _verdict(provenance.rejected_response_verdict),
        "chosen_reasoning_verdict": _verdict(provenance.chosen_reasoning_verdict),
        "chosen_response_verdict": _verdict(provenance.chosen_response_verdict),
        "job_id": provenance.job_id,
        "created_at": provenance.created_at.ToJsonString() if provenance.HasField("created_at") else "",
    }


def _verdict(value: int) -> str:
    return common_pb2.Verdict.Name(value).removeprefix("VERDICT_").lower()


def write_pairs(pairs: Iterable[common_pb2.Pair], path: Path, fmt: str) -> int:
    """Writes `pairs` to `path` as JSONL or Parquet through a temporary file; returns the row count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        count = _write_jsonl(pairs, partial) if fmt == "jsonl" else _write_parquet(pairs, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return count


def _write_jsonl(pairs: Iterable[common_pb2.Pair], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(to_row(pair), ensure_ascii=False) + "\n")
            count += 1
    return count


def _write_parquet(pairs: Iterable[common_pb2.Pair], path: Path) -> int:
    rows = [to_row(pair) for pair in pairs]
    schema = pa.schema(
        [(name, pa.int32() if name in _INT_COLUMNS else pa.string()) for name in to_row(common_pb2.Pair())]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return len(rows)
