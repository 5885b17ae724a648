"""The `transformers` back end: the embedded default, on the CPU or a CUDA device, with PEFT adapters.

Why a decode loop of its own rather than `model.generate`: the intervention workload continues each rollout in
six trigger branches that share a long prefix. Here every group's shared prefix is prefilled ONCE (one forward
pass), its KV cache is copied along the batch to every row of the group, each row's own tokens (the trigger
text) are prefilled in one batched forward, and all rows of all groups then decode together. Rows leave the
batch as they finish. The shared prefix is the longest common *token* prefix of the rows' full texts, so the
continuation starts exactly after each row's text however BPE merges at the prefix/branch boundary.

Layout of row r in the batch (the attention mask is 0 on padding; position ids count real tokens only):
    [left padding to the longest group prefix][group prefix][row tokens][right padding][decoded tokens...]
"""

from __future__ import annotations

import inspect
import threading
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

from shared.config.generation import GenerationSettings
from shared.generation.backends.base import Decoded, GenerationBackend, Row, TextCallback
from shared.generation.control import UNCONTROLLED, RequestControl
from shared.generation.format import truncate_at_stop
from shared.protos.intervene.v1 import common_pb2

_REASONING = common_pb2.SEGMENT_REASONING
_RESPONSE = common_pb2.SEGMENT_RESPONSE


@dataclass
class _State:
    """Decoding state of one row."""

    row: Row
    in_reasoning: bool
    length: int  # real tokens in the sequence so far (the next position id)
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    forced: deque[int] = field(default_factory=deque)
    text: str = ""
    reasoning_tokens: int = 0
    response_tokens: int = 0
    closed_by_model: bool = False
    finish_reason: str = ""
    shown: tuple[str, str] = ("", "")


class TransformersBackend(GenerationBackend):
    """A causal LM loaded with transformers; see the module docstring for how branches share a prefill."""

    name = "transformers"

    def __init__(self, settings: GenerationSettings) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = settings.model or _embedded_dir()
        self.device = torch.device(_device(settings.device))
        dtype = _dtype(settings.dtype, self.device)
        tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer or path)
        super().__init__(settings, str(settings.model or "SmolLM2-135M-Instruct"), tokenizer)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self._base_model = self.model
        self._lock = threading.Lock()
        config = self.model.config
        self._context_limit = settings.max_context_tokens or int(getattr(config, "max_position_embeddings", 4096))
        self._eos = _eos_ids(self.model, tokenizer)
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self._eos)
        self._close_ids = tokenizer(self.format.forced_close, add_special_tokens=False)["input_ids"]
        # transformers 5.2x names the cache argument `cache`; earlier releases (vLLM's pin) `past_key_values`.
        parameters = inspect.signature(self._base_model.forward).parameters
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"

    @property
    def context_limit(self) -> int:
        return self._context_limit

    def _load_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        with self._lock:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self._base_model, path, adapter_name=name).eval()

    def _unload_adapter(self, name: str) -> None:
        with self._lock:
            if len(self.model.peft_config) == 1:  # the last one: back to the plain model
                self.model = self.model.unload().eval()
            else:
                self.model.delete_adapter(name)

    def _adapter_scope(self, adapter: str) -> AbstractContextManager[Any]:
        from peft import PeftModel

        if not isinstance(self.model, PeftModel):
            return nullcontext()
        if not adapter:
            return self.model.disable_adapter()
        self.model.set_adapter(adapter)
        return nullcontext()

    def _decode(
        self,
        rows: Sequence[Row],
        adapter: str,
        on_text: TextCallback | None = None,
        *,
        control: RequestControl = UNCONTROLLED,
    ) -> list[Decoded]:
        results: list[Decoded] = []
        with self._lock, torch.inference_mode(), self._adapter_scope(adapter):
            for start in range(0, len(rows), self.settings.max_batch_sequences):
                chunk = rows[start : start + self.settings.max_batch_sequences]
                callback = None if on_text is None else _offset(on_text, start)
                results.extend(self._decode_batch(chunk, callback))
        return results

    # -- the batched decode -----------------------------------------------------------------------------------

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, keep: Any) -> Any:
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=keep,
            **{self._cache_arg: cache},
        ).logits

    def _decode_batch(self, rows: Sequence[Row], on_text: TextCallback | None) -> list[Decoded]:
        from transformers import DynamicCache

        encoded = [self.tokenizer(row.text, add_special_tokens=False)["input_ids"] for row in rows]
        groups: dict[int, list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(row.group, []).append(index)
        # Each group's shared prefix: the longest common token prefix, leaving every row at least one token of its
        # own so that each row gets its first logits from the batched suffix pass.
        shared: dict[int, list[int]] = {}
        for key, members in groups.items():
            common = _common_prefix([encoded[i] for i in members])
            shared[key] = encoded[members[0]][: min(common, min(len(encoded[i]) for i in members) - 1)]

        # One forward pass per group prefix; its KV cache is then copied to each row of the group.
        group_order = list(groups)
        prefix_len = max(len(shared[key]) for key in group_order)
        group_caches = []
        for key in group_order:
            tokens = shared[key]
            if not tokens:
                group_caches.append(None)
                continue
            cache = DynamicCache()
            ids = torch.tensor([tokens], device=self.device)
            ones = torch.ones_like(ids)
            self._forward(ids, ones, torch.arange(len(tokens), device=self.device)[None], cache, 1)
            group_caches.append(cache)
        row_group = torch.tensor([group_order.index(row.group) for row in rows], device=self.device)
        suffixes = [encoded[i][len(shared[row.group]) :] for i, row in enumerate(rows)]
        suffix_len = max(len(s) for s in suffixes)
        most_new = max(
            r.sampling.max_reasoning_tokens + len(self._close_ids) + r.sampling.max_response_tokens for r in rows
        )
        capacity = prefix_len + suffix_len + min(most_new, self._context_limit) + 1
        lengths = [len(shared[k]) for k in group_order]
        cache = self._batched_cache(group_caches, lengths, prefix_len, row_group, capacity)

        batch = len(rows)
        prefix_mask = torch.zeros(batch, prefix_len, dtype=torch.long, device=self.device)
        suffix_ids = torch.full((batch, suffix_len), self._pad, dtype=torch.long, device=self.device)
        suffix_mask = torch.zeros(batch, suffix_len, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            prefix_mask[i, prefix_len - len(shared[row.group]) :] = 1
            suffix_ids[i, : len(suffixes[i])] = torch.tensor(suffixes[i])
            suffix_mask[i, : len(suffixes[i])] = 1
        mask = torch.cat([prefix_mask, suffix_mask], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, prefix_len:]
        # Right padding keeps every padded query attending to real keys; the logits wanted are at each row's last
        # real token, and only the distinct such positions are projected onto the vocabulary.
        last = torch.tensor([len(s) - 1 for s in suffixes], device=self.device)
        keep = torch.unique(last)
        logits = self._forward(suffix_ids, mask, positions, cache, keep)
        logits = logits[torch.arange(batch, device=self.device), torch.searchsorted(keep, last)]

        states = [
            _State(row, row.in_reasoning, len(encoded[i]), _generator(row.seed, self.device))
            for i, row in enumerate(rows)
        ]
        for state in states:
            if state.in_reasoning and state.row.sampling.max_reasoning_tokens == 0:
                state.forced = deque(self._close_ids)
            elif not state.in_reasoning and state.row.sampling.max_response_tokens == 0:
                state.finish_reason = "length"
        active = [i for i, s in enumerate(states) if not s.finish_reason]
        if len(active) < batch:
            cache.batch_select_indices(torch.tensor(active, device=self.device))
            mask, logits = mask[active], logits[active]
        while active:
            chosen = self._sample(logits, [states[i] for i in active])
            for row_index, token in zip(active, chosen, strict=True):
                self._advance(states[row_index], token)
                if on_text is not None:
                    self._report(row_index, states[row_index], on_text)
            still = [position for position, i in enumerate(active) if not states[i].finish_reason]
            if len(still) < len(active):
                if not still:
                    break
                index = torch.tensor(still, device=self.device)
                cache.batch_select_indices(index)
                mask = mask[index]
                active = [active[p] for p in still]
            ids = torch.tensor([[states[i].tokens[-1]] for i in active], device=self.device)
            positions = torch.tensor([[states[i].length - 1] for i in active], device=self.device)
            mask = torch.cat([mask, torch.ones(len(active), 1, dtype=mask.dtype, device=self.device)], dim=1)
            logits = self._forward(ids, mask, positions, cache, 1)[:, -1]
        return [self._result(state) for state in states]

    def _batched_cache(
        self, caches: list[Any], lengths: list[int], width: int, row_group: torch.Tensor, capacity: int
    ) -> Any:
        """A cache of the whole batch: each row gets its group's prefix keys/values, left-padded to `width`.

        Its layers are preallocated for `capacity` positions, so decoding writes in place instead of
        re-concatenating the whole cache at every step (what DynamicCache does).
        """
        from transformers import DynamicCache

        batched = DynamicCache()
        template = next((c for c in caches if c is not None), None)
        if template is None:
            return batched
        layers = []
        for layer_index, layer in enumerate(template.layers):
            keys, values = [], []
            for cache, length in zip(caches, lengths, strict=True):
                shape = list(layer.keys.shape)
                shape[2] = width - length
                pad = layer.keys.new_zeros(shape)
                if cache is None:
                    keys.append(pad)
                    values.append(pad)
                else:
                    keys.append(torch.cat([pad, cache.layers[layer_index].keys], dim=2))
                    values.append(torch.cat([pad, cache.layers[layer_index].values], dim=2))
            layers.append(_PreallocatedLayer(torch.cat(keys)[row_group], torch.cat(values)[row_group], capacity))
        batched.layers = layers
        return batched

    def _sample(self, logits: torch.Tensor, states: list[_State]) -> list[int]:
        """Next token of each row: greedy at temperature 0, else top-p sampling with the row's own generator."""
        logits = logits.float()
        chosen = logits.argmax(dim=-1)
        sampled = [i for i, s in enumerate(states) if not s.row.sampling.greedy and not s.forced]
        if sampled:
            temperature = torch.tensor([states[i].row.sampling.temperature for i in sampled], device=logits.device)
            top_p = torch.tensor([states[i].row.sampling.top_p for i in sampled], device=logits.device)
            probs = torch.softmax(logits[sampled] / temperature[:, None], dim=-1)
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest set of tokens whose mass reaches top_p (the first token always stays).
            drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p[:, None]
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            unseeded = [j for j, i in enumerate(sampled) if states[i].generator is None]
            picks = torch.empty(len(sampled), dtype=torch.long, device=logits.device)
            if unseeded:
                picks[unseeded] = torch.multinomial(sorted_probs[unseeded], 1).squeeze(1)
            for j, i in enumerate(sampled):
                if states[i].generator is not None:
                    picks[j] = torch.multinomial(sorted_probs[j], 1, generator=states[i].generator)[0]
            chosen[sampled] = order.gather(1, picks[:, None]).squeeze(1)
        return chosen.tolist()

    def _advance(self, state: _State, token: int) -> None:
        """Apply one decoded token to a row: close tags, budgets, forced close, end of sequence, stop strings."""
        sampling = state.row.sampling
        if state.forced:
            token = state.forced.popleft()
            self._append(state, token)
            if not state.forced:
                state.in_reasoning = False
                if sampling.max_response_tokens == 0:
                    state.finish_reason = "length"
        elif state.in_reasoning:
            if token in self._eos:
                # The model ended its turn inside the think block: close it and let it answer.
                state.forced = deque(self._close_ids)
                self._advance(state, token)
                return
            self._append(state, token)
            state.reasoning_tokens += 1
            if self.format.think_close in state.text:
                state.in_reasoning = False
                state.closed_by_model = True
                if sampling.max_response_tokens == 0:
                    state.finish_reason = "length"
            elif state.reasoning_tokens >= sampling.max_reasoning_tokens:
                state.forced = deque(self._close_ids)
        elif token in self._eos:
            state.finish_reason = "stop"
            return
        else:
            self._append(state, token)
            state.response_tokens += 1
            if sampling.stop and truncate_at_stop(self._response_text(state), sampling.stop)[1]:
                state.finish_reason = "stop"
            elif state.response_tokens >= sampling.max_response_tokens:
                state.finish_reason = "length"
        if not state.finish_reason and state.length >= self._context_limit:
            state.finish_reason = "length"

    def _append(self, state: _State, token: int) -> None:
        state.tokens.append(token)
        state.length += 1
        state.text += self.tokenizer.decode([token])

    def _response_text(self, state: _State) -> str:
        return self.format.split(state.text, state.row.in_reasoning)[1]

    def _report(self, row_index: int, state: _State, on_text: TextCallback) -> None:
        """Send the text that became visible: reasoning without a partial close tag, then the response."""
        text = self.tokenizer.decode(state.tokens, skip_special_tokens=True)
        reasoning, response, closed = self.format.split(text, state.row.in_reasoning)
        if state.row.in_reasoning and not closed:
            reasoning = _without_partial_tag(reasoning, self.format.think_close)
        shown = list(state.shown)
        for position, (segment, now) in enumerate(((_REASONING, reasoning), (_RESPONSE, response))):
            if len(now) > len(shown[position]) and now.startswith(shown[position]):
                on_text(row_index, now[len(shown[position]) :], segment)
                shown[position] = now
        state.shown = (shown[0], shown[1])

    def _result(self, state: _State) -> Decoded:
        text = self.tokenizer.decode(state.tokens, skip_special_tokens=True)
        reasoning, response, _ = self.format.split(text, state.row.in_reasoning)
        response, _ = truncate_at_stop(response, state.row.sampling.stop)
        return Decoded(
            reasoning=reasoning,
            response=response,
            reasoning_closed=state.closed_by_model,
            reasoning_tokens=state.reasoning_tokens,
            response_tokens=state.response_tokens,
            finish_reason=state.finish_reason or "length",
        )


class _PreallocatedLayer(DynamicLayer):
    """A cache layer with room for `capacity` positions: an update writes in place and returns views."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        super().__init__()
        batch, heads, length, dim = keys.shape
        self._keys = keys.new_empty(batch, heads, max(capacity, length), dim)
        self._values = values.new_empty(batch, heads, max(capacity, length), values.shape[-1])
        self._keys[:, :, :length] = keys
        self._values[:, :, :length] = values
        self._length = length
        self.device, self.dtype, self.is_initialized = keys.device, keys.dtype, True
        self._expose()

    def _expose(self) -> None:
        self.keys = self._keys[:, :, : self._length]
        self.values = self._values[:, :, : self._length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[2]:
            grow = max(end, 2 * self._keys.shape[2]) - self._keys.shape[2]
            self._keys = torch.cat(
                [self._keys, self._keys.new_empty(*self._keys.shape[:2], grow, self._keys.shape[3])], 2
            )
            self._values = torch.cat(
                [self._values, self._values.new_empty(*self._values.shape[:2], grow, self._values.shape[3])], 2
            )
        self._keys[:, :, self._length : end] = key_states
        self._values[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys = self._keys[indices]
        self._values = self._values[indices]
        self._expose()


def _common_prefix(sequences: list[list[int]]) -> int:
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for position in range(length):
        token = first[position]
        if any(s[position] != token for s in sequences):
            return position
    return length


def _without_partial_tag(text: str, tag: str) -> str:
    """`text` without a trailing start of `tag` (e.g. "</thi"), which may still become the close tag."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return text[:-size]
    return text


def _offset(on_text: TextCallback, start: int) -> TextCallback:
    return lambda index, text, segment: on_text(index + start, text, segment)


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return ids


def _device(setting: str) -> str:
    if setting != "auto":
        return setting
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting != "auto":
        return getattr(torch, setting)
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _embedded_dir() -> str:
    from shared.models.embedded import embedded_model_dir

    return str(Path(embedded_model_dir()))
