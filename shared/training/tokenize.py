"""Pair tokenisation with TRL's token boundary, so our log-probs and `DPOTrainer`'s score the same tokens.

The conditioning ``s = context + prefix`` and each suffix are *not* tokenised separately and concatenated (BPE merges
across the boundary would give token sequences the model never sees at inference). As TRL 1.16 does for text pairs,
we tokenise ``s``, ``s + chosen`` and ``s + rejected`` as whole strings (the suffixes end with the EOS token, added
when missing) and cut at ``n`` = the length of the longest common token prefix of the three. The shared prefix is
``ids(s)[:n]``; each suffix is the rest of its full tokenisation. Usually ``n = len(ids(s))``; when a merge crosses the
boundary, the merged token belongs to the suffixes (counted as ``boundary_merges``).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


class PairTokenError(ValueError):
    """A pair that cannot be trained on; `reason` is the counter it is skipped under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class TokenizedPair:
    """Token ids of one pair: the shared prefix (conditioning) and the two suffixes."""

    pair_id: str
    prefix_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    alpha: float = 0.0
    boundary_merged: bool = False
    truncated: bool = False

    @property
    def tokens(self) -> int:
        """Tokens of the packed pair: prefix once, both suffixes."""
        return len(self.prefix_ids) + len(self.chosen_ids) + len(self.rejected_ids)


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(
    tokenizer: PreTrainedTokenizerBase,
    pair_id: str,
    conditioning: str,
    chosen: str,
    rejected: str,
    append_eos: bool = True,
    max_prefix_tokens: int | None = None,
    max_suffix_tokens: int | None = None,
) -> TokenizedPair:
    """Tokenise one pair (see the module docstring). Raises `PairTokenError` for a pair to skip.

    Suffixes longer than `max_suffix_tokens` keep their start (`truncated` is set); a prefix longer than
    `max_prefix_tokens` makes the pair unusable (the suffixes would lose what they are conditioned on).
    """
    if not chosen.strip() or not rejected.strip():
        raise PairTokenError("empty_suffix", f"pair {pair_id}: chosen or rejected suffix is empty")
    if chosen == rejected:
        raise PairTokenError("identical_suffixes", f"pair {pair_id}: chosen and rejected suffixes are identical")
    eos = tokenizer.eos_token or ""
    if append_eos and eos:
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
    prompt_ids = tokenizer(text=conditioning)["input_ids"]
    full_chosen = tokenizer(text=conditioning + chosen)["input_ids"]
    full_rejected = tokenizer(text=conditioning + rejected)["input_ids"]
    n = min(_common_prefix_length(prompt_ids, full_chosen), _common_prefix_length(prompt_ids, full_rejected))
    if n == 0:
        raise PairTokenError("empty_prefix", f"pair {pair_id}: the conditioning (context + prefix) has no tokens")
    chosen_ids, rejected_ids = full_chosen[n:], full_rejected[n:]
    if not chosen_ids or not rejected_ids:
        raise PairTokenError("empty_suffix", f"pair {pair_id}: a suffix has no tokens after the shared prefix")
    if max_prefix_tokens is not None and n > max_prefix_tokens:
        raise PairTokenError(
            "prefix_too_long", f"pair {pair_id}: {n} conditioning tokens > max_prefix_tokens={max_prefix_tokens}"
        )
    truncated = False
    if max_suffix_tokens is not None and max(len(chosen_ids), len(rejected_ids)) > max_suffix_tokens:
        chosen_ids, rejected_ids = chosen_ids[:max_suffix_tokens], rejected_ids[:max_suffix_tokens]
        truncated = True
        if chosen_ids == rejected_ids:
            raise PairTokenError(
                "identical_after_truncation",
                f"pair {pair_id}: suffixes are identical within max_suffix_tokens={max_suffix_tokens}",
            )
    return TokenizedPair(
        pair_id=pair_id,
        prefix_ids=prompt_ids[:n],
        chosen_ids=chosen_ids,
        rejected_ids=rejected_ids,
        boundary_merged=n < len(prompt_ids),
        truncated=truncated,
    )
