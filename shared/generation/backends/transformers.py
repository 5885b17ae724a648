"""The `transformers` back end: the embedded default, on the CPU or a CUDA device, with PEFT adapters.

Why a decode loop of its own rather than `model.generate`: the intervention workload continues each rollout in
six trigger branches that share a long prefix. Here every group's shared prefix is prefilled ONCE (one forward
pass), its KV cache is copied along the batch to every row of the group, each row's own tokens (the trigger
text) are prefilled in one batched forward, and all rows of all groups then decode together. The shared prefix
is the longest common *token* prefix of the rows' full texts, so the continuation starts exactly after each row's
text however BPE merges at the prefix/branch boundary.

Requests do not wait for each other: the scheduler (scheduler.py) owns the model on a thread of its own and,
between two decode steps, merges newly prefilled rows into the running batch (continuous batching), drops the
rows of callers that went away and pauses bulk rows while interactive work runs. This module is its engine:
prefill, one decode step, and merging and selecting batches of per-row KV caches.

Layout of row r in the batch (the attention mask is 0 on padding; position ids count real tokens only):
    [left padding to the longest row][group prefix][row tokens][right padding][decoded tokens...]
Every row's next token goes into the same last column; merging left-pads the shorter batch, and selecting rows
drops the leading columns that only padding of the rows left behind uses. The cache (kv_cache.py) keeps spare rows
and columns, so rows join and leave without copying the rows that stay. Per token, the Python work is constant:
each token id's text is decoded once per back end, the close tag is looked for only where the new token could
complete it, and streamed rows are detokenized a window at a time.
"""

from __future__ import annotations

import inspect
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shared.config.generation import GenerationSettings
from shared.generation.backends.base import Decoded, GenerationBackend, Row, TextCallback
from shared.generation.backends.kv_cache import BatchLayer
from shared.generation.backends.scheduler import Job, Scheduler, with_group_keys
from shared.generation.control import UNCONTROLLED, RequestControl
from shared.generation.format import truncate_at_stop, without_partial_tag
from shared.protos.intervene.v1 import common_pb2

_REASONING = common_pb2.SEGMENT_REASONING
_RESPONSE = common_pb2.SEGMENT_RESPONSE


@dataclass
class _Batch:
    """Rows decoding together with one adapter: their cache, attention mask and next-token logits.

    Row r's columns: [left padding][its prefix group][its own tokens][right padding][decoded tokens...]; the mask
    is 0 on padding, and every row's next token goes into the same (last) column.
    """

    adapter: str
    cache: Any
    mask: torch.Tensor
    logits: torch.Tensor
    states: list[_State]


@dataclass
class _State:
    """Decoding state of one row."""

    row: Row
    in_reasoning: bool
    length: int  # real tokens in the sequence so far (the next position id)
    generator: torch.Generator | None
    job: Job
    index: int  # the row's position among its job's rows
    tokens: list[int] = field(default_factory=list)
    forced: deque[int] = field(default_factory=deque)
    text: str = ""
    reasoning_tokens: int = 0
    response_tokens: int = 0
    closed_by_model: bool = False
    finish_reason: str = ""
    shown: tuple[str, str] = ("", "")
    stream_text: str = ""  # text streamed so far, and the token offsets it was decoded up to (_streamed_text)
    stream_offsets: tuple[int, int] = (0, 0)


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
        self._token_text: dict[int, str] = {}
        # transformers 5.2x names the cache argument `cache`; earlier releases (vLLM's pin) `past_key_values`.
        parameters = inspect.signature(self._base_model.forward).parameters
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self.scheduler = Scheduler(self, settings.max_batch_sequences, settings.bulk_batch_share)
        self.scheduler.start()

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
        return self.scheduler.decode(rows, adapter, on_text, control)

    def close(self) -> None:
        self.scheduler.close()

    # -- the batch engine the scheduler drives (always on the scheduler's thread, inside `guard`) ---------------

    @contextmanager
    def guard(self) -> Iterator[None]:
        with self._lock, torch.inference_mode():
            yield

    def _forward(
        self, adapter: str, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, keep: Any
    ) -> Any:
        with self._adapter_scope(adapter):
            return self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=keep,
                **{self._cache_arg: cache},
            ).logits

    def prefill(self, entries: Sequence[tuple[Job, int, Row]], adapter: str) -> tuple[_Batch | None, list[_State]]:
        """A batch of new rows: each prefix group prefilled once, then every row's own tokens in one forward."""
        from transformers import DynamicCache

        rows = with_group_keys(entries)
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
            self._forward(adapter, ids, ones, torch.arange(len(tokens), device=self.device)[None], cache, 1)
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
        logits = self._forward(adapter, suffix_ids, mask, positions, cache, keep)
        logits = logits[torch.arange(batch, device=self.device), torch.searchsorted(keep, last)]
        # A batch whose rows had no shared prefix got plain layers from the forward: give them room to grow.
        cache.layers = [
            layer if isinstance(layer, BatchLayer) else BatchLayer.allocate(layer.keys, layer.values, capacity)
            for layer in cache.layers
        ]

        states = []
        for i, (row, (job, index, _)) in enumerate(zip(rows, entries, strict=True)):
            state = _State(row, row.in_reasoning, len(encoded[i]), _generator(row.seed, self.device), job, index)
            if state.in_reasoning and row.sampling.max_reasoning_tokens == 0:
                state.forced = deque(self._close_ids)
            elif not state.in_reasoning and row.sampling.max_response_tokens == 0:
                state.finish_reason = "length"
            states.append(state)
        decoding = _Batch(adapter, cache, mask, logits, states)
        finished = [state for state in states if state.finish_reason]
        if finished:
            return self.select(decoding, [p for p, state in enumerate(states) if not state.finish_reason]), finished
        return decoding, []

    def decode_step(self, batch: _Batch) -> tuple[_Batch | None, list[_State]]:
        """One token for every row of the batch; finished rows leave it."""
        chosen = self._sample(batch.logits, batch.states)
        for state, token in zip(batch.states, chosen, strict=True):
            self._advance(state, token)
            if state.job.on_text is not None:
                self._report(state.index, state, state.job.on_text)
        finished = [state for state in batch.states if state.finish_reason]
        if finished:
            remaining = self.select(batch, [p for p, state in enumerate(batch.states) if not state.finish_reason])
            if remaining is None:
                return None, finished
            batch = remaining
        ids = torch.tensor([[state.tokens[-1]] for state in batch.states], device=self.device)
        positions = torch.tensor([[state.length - 1] for state in batch.states], device=self.device)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.states), 1)], dim=1)
        batch.logits = self._forward(batch.adapter, ids, batch.mask, positions, batch.cache, 1)[:, -1]
        return batch, finished

    def select(self, batch: _Batch, positions: list[int]) -> _Batch | None:
        """The batch with only the rows at `positions` (ascending), without the padding columns no remaining row
        uses; `batch` is consumed. Rows from the end of the batch move into the slots of rows that left, so only
        they are copied, and the slots are reused by the rows that join next."""
        if not positions:
            return None
        kept = set(positions)
        count = len(positions)
        movers = iter(p for p in positions if p >= count)
        order = [slot if slot in kept else next(movers) for slot in range(count)]
        index = torch.tensor(order, device=self.device)
        mask = batch.mask[index]
        drop = _leading_padding(mask)
        for layer in batch.cache.layers:
            layer.keep(order, drop)
        states = [batch.states[p] for p in order]
        return _Batch(batch.adapter, batch.cache, mask[:, drop:], batch.logits[index], states)

    def take(self, batch: _Batch, positions: list[int]) -> _Batch:
        """A new batch with copies of the rows at `positions`; `batch` is unchanged."""
        from transformers import DynamicCache

        index = torch.tensor(positions, device=self.device)
        mask = batch.mask[index]
        drop = _leading_padding(mask)
        cache = DynamicCache()
        cache.layers = [layer.take(index, drop) for layer in batch.cache.layers]
        states = [batch.states[p] for p in positions]
        return _Batch(batch.adapter, cache, mask[:, drop:], batch.logits[index], states)

    def merge(self, first: _Batch, second: _Batch) -> _Batch:
        """One batch of both, in `first`'s cache (consumed with `second`): `second`'s rows are written into spare
        rows, right-aligned so that every row's next token shares a column; the shorter side is left-padded."""
        width = max(first.mask.shape[1], second.mask.shape[1])
        for mine, theirs in zip(first.cache.layers, second.cache.layers, strict=True):
            mine.absorb(theirs)
        masks = [torch.nn.functional.pad(b.mask, (width - b.mask.shape[1], 0)) for b in (first, second)]
        return _Batch(
            first.adapter,
            first.cache,
            torch.cat(masks),
            torch.cat([first.logits, second.logits]),
            [*first.states, *second.states],
        )

    def result(self, state: _State) -> Decoded:
        return self._result(state)

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
            layers.append(BatchLayer.allocate(torch.cat(keys)[row_group], torch.cat(values)[row_group], capacity))
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
            piece = self._append(state, token)
            state.reasoning_tokens += 1
            close = self.format.think_close
            # The tag was not in the text before this token: look only where this token could complete it.
            if state.text.find(close, max(0, len(state.text) - len(piece) - len(close) + 1)) >= 0:
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

    def _append(self, state: _State, token: int) -> str:
        """Add `token` to the row; returns its text (each token id is decoded once per back end)."""
        piece = self._token_text.get(token)
        if piece is None:
            piece = self._token_text[token] = self.tokenizer.decode([token])
        state.tokens.append(token)
        state.length += 1
        state.text += piece
        return piece

    def _response_text(self, state: _State) -> str:
        return self.format.split(state.text, state.row.in_reasoning)[1]

    def _report(self, row_index: int, state: _State, on_text: TextCallback) -> None:
        """Send the text that became visible: reasoning without a partial close tag or trailing whitespace (which
        the close tag may follow), then the response; the pieces join to exactly the rollout's fields."""
        text = self._streamed_text(state)
        reasoning, response, closed = self.format.split(text, state.row.in_reasoning)
        if state.row.in_reasoning and not closed:
            reasoning = without_partial_tag(reasoning, self.format.think_close).rstrip()
        shown = list(state.shown)
        for position, (segment, now) in enumerate(((_REASONING, reasoning), (_RESPONSE, response))):
            if len(now) > len(shown[position]) and now.startswith(shown[position]):
                on_text(row_index, now[len(shown[position]) :], segment)
                shown[position] = now
        state.shown = (shown[0], shown[1])

    def _streamed_text(self, state: _State) -> str:
        """The row's text so far, decoded a window at a time as vLLM's detokenizer does: the text of the tokens
        since the last checkpoint less that of the tokens before it, once it no longer ends in a partial
        character. Each step decodes a few tokens, not the whole sequence."""
        start, read = state.stream_offsets
        before = self.tokenizer.decode(state.tokens[start:read], skip_special_tokens=True)
        now = self.tokenizer.decode(state.tokens[start:], skip_special_tokens=True)
        if len(now) > len(before) and not now.endswith("\ufffd"):
            state.stream_text += now[len(before) :]
            state.stream_offsets = (read, len(state.tokens))
        return state.stream_text

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


def _leading_padding(mask: torch.Tensor) -> int:
    """Columns at the start of `mask` that no row uses."""
    used = mask.any(dim=0).nonzero()
    return int(used[0]) if len(used) else 0


def _common_prefix(sequences: list[list[int]]) -> int:
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for position in range(length):
        token = first[position]
        if any(s[position] != token for s in sequences):
            return position
    return length


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
