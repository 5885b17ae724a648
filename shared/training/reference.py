"""Reference log-probs πref(suffix | s): the same weights with the LoRA adapter disabled, computed once per pair.

The reference never changes during a run, so each pair's two summed log-probs are computed the first time the pair
is seen and kept in memory and on disk (JSON lines, one file per rank, appended and flushed per batch; a torn last
line after a crash is ignored). Entries are keyed by the pair id, a digest of its token ids (so a change of
tokenizer, EOS or length limits misses the cache) and a fingerprint of the base model's weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from shared.training.logprobs import score_batch
from shared.training.packing import PackedBatch
from shared.training.tokenize import TokenizedPair


def model_fingerprint(model: nn.Module, extra: str = "") -> str:
    """A short digest of the base model: its config and a sample of every weight tensor (adapters excluded)."""
    from shared.training.logprobs import causal_lm_of

    lm = causal_lm_of(model)
    digest = hashlib.sha256(extra.encode())
    config = getattr(lm, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in lm.state_dict().items():
        if "lora_" in name:
            continue
        digest.update(name.encode())
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)].float().cpu()
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def pair_key(pair: TokenizedPair) -> str:
    """Cache key of one tokenised pair: id plus a digest of exactly the tokens that are scored."""
    tokens = json.dumps([pair.prefix_ids, pair.chosen_ids, pair.rejected_ids], separators=(",", ":"))
    return f"{pair.pair_id}:{hashlib.sha256(tokens.encode()).hexdigest()[:16]}"


class ReferenceCache:
    """In-memory and on-disk store of (chosen, rejected) summed reference log-probs per pair."""

    def __init__(self, directory: Path | None, fingerprint: str, rank: int = 0) -> None:
        self.values: dict[str, tuple[float, float]] = {}
        self.computed = 0
        self._file = None
        if directory is None:
            return
        folder = Path(directory) / fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("rank-*.jsonl")):
            for line in path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError, KeyError):
                    entry = json.loads(line)
                    self.values[entry["key"]] = (float(entry["chosen"]), float(entry["rejected"]))
        self._file = (folder / f"rank-{rank}.jsonl").open("a")

    def missing(self, pairs: list[TokenizedPair]) -> list[TokenizedPair]:
        """The pairs whose reference log-probs are not cached yet."""
        return [p for p in pairs if pair_key(p) not in self.values]

    def put(self, pairs: list[TokenizedPair], chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        """Store computed values (written through to disk when a directory was given)."""
        lines = []
        for pair, c, r in zip(pairs, chosen.tolist(), rejected.tolist(), strict=True):
            key = pair_key(pair)
            self.values[key] = (c, r)
            lines.append(json.dumps({"key": key, "chosen": c, "rejected": r}))
        self.computed += len(pairs)
        if self._file is not None and lines:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()

    def get(self, pairs: list[TokenizedPair], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached (chosen, rejected) log-probs of `pairs`, as float32 tensors on `device`."""
        values = [self.values[pair_key(p)] for p in pairs]
        chosen = torch.tensor([v[0] for v in values], dtype=torch.float32, device=device)
        rejected = torch.tensor([v[1] for v in values], dtype=torch.float32, device=device)
        return chosen, rejected

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def adapter_disabled(model: nn.Module) -> contextlib.AbstractContextManager:
    """Context in which a peft model runs as its base model (a no-op for a model without adapters)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "model", inner)
    if hasattr(inner, "disable_adapter"):
        return inner.disable_adapter()
    return contextlib.nullcontext()


def compute_reference(scorer: nn.Module, batch: PackedBatch, autocast: contextlib.AbstractContextManager) -> tuple:
    """Summed (chosen, rejected) reference log-probs of a packed batch: no gradient, adapter disabled."""
    with torch.no_grad(), adapter_disabled(scorer), autocast:
        logps = score_batch(scorer, batch)
    return logps.chosen.float(), logps.rejected.float()
