"""The one interface every generation back end implements, and the request handling they share.

Shaped like kubeflow/sdk's trainer back ends: `GenerationBackend` turns the service's protobuf requests into
*rows* (one text to continue, its sampling settings, its own seed, and a group key: rows of one group share
their text's prefix, so a back end may prefill it once) and back. A back end implements only `_decode` (a
batch of rows with one adapter), `load_adapter`, `unload_adapter`, the tokenizer and the context limit. Every public
call takes a `RequestControl`: once it says the caller went away, the back end drops that call's sequences and
raises `Cancelled`.

    backend = create_backend(GenerationSettings(auth_disabled=True))
    [response] = backend.continue_branches([continue_request])
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2

from shared.config.generation import GenerationSettings
from shared.generation import validation
from shared.generation.control import UNCONTROLLED, RequestControl
from shared.generation.format import ReasoningFormat, Sampling, derive_seed, resolve_sampling
from shared.protos.intervene.v1 import common_pb2, generation_pb2

# (row index in the batch, newly decoded text, segment) — how a back end reports text as it decodes.
TextCallback = Callable[[int, str, int], None]


@dataclass(frozen=True)
class Row:
    """One sequence to decode: the exact text it continues and how."""

    text: str
    group: int
    in_reasoning: bool
    sampling: Sampling
    seed: int | None
    prompt: common_pb2.Prompt | None = None
    """The chat turn `text` renders (rows of Generate and GenerateStream); None for a Continue's raw prefix."""


@dataclass(frozen=True)
class Decoded:
    """What one row decoded, split into reasoning and response."""

    reasoning: str
    response: str
    reasoning_closed: bool
    reasoning_tokens: int
    response_tokens: int
    finish_reason: str


class GenerationBackend(abc.ABC):
    """A policy model that samples rollouts and continues exact text prefixes."""

    name: str = ""

    def __init__(self, settings: GenerationSettings, model_name: str, tokenizer: Any) -> None:
        self.settings = settings
        self.model_name = model_name
        self.tokenizer = tokenizer
        self.format = ReasoningFormat.for_tokenizer(tokenizer, settings)
        self._adapter_lock = threading.Lock()
        self._adapters: dict[str, generation_pb2.Adapter] = {}
        # Unloaded names stay taken: a name stands for one set of weights (engines cache by name).
        self._retired_adapters: set[str] = set()

    # -- what each back end implements ------------------------------------------------------------------------

    @abc.abstractmethod
    def _decode(
        self,
        rows: Sequence[Row],
        adapter: str,
        on_text: TextCallback | None = None,
        *,
        control: RequestControl = UNCONTROLLED,
    ) -> list[Decoded]:
        """Decode every row (all with `adapter`, "" for the base model); rows of one group share a prefix.

        Raises `Cancelled` once `control.active()` turns False, having dropped the rows and freed their cache.
        """

    @abc.abstractmethod
    def _load_adapter(self, name: str, path: str) -> None:
        """Make the PEFT adapter at `path` usable under `name` (the name is new: checked by the caller)."""

    @abc.abstractmethod
    def _unload_adapter(self, name: str) -> None:
        """Release the loaded adapter `name` (checked by the caller); requests naming it are refused from now."""

    @property
    @abc.abstractmethod
    def context_limit(self) -> int:
        """Most tokens a sequence (prompt plus generation) may hold."""

    def close(self) -> None:  # noqa: B027 - optional hook: most back ends hold nothing to release
        """Release engines, pools and threads."""

    # -- shared behaviour ---------------------------------------------------------------------------------------

    @property
    def adapters(self) -> dict[str, generation_pb2.Adapter]:
        """Loaded adapters by name."""
        return self._adapters

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def load_adapter(self, name: str, path: str) -> generation_pb2.Adapter:
        """Load a LoRA adapter under a new name; a loaded or unloaded name is refused (ALREADY_EXISTS)."""
        validation.check_adapter_name(name, path)
        with self._adapter_lock:
            if name in self.adapters:
                raise validation.already_exists(name)
            if name in self._retired_adapters:
                raise validation.retired_adapter(name)
            try:
                self._load_adapter(name, path)
            except (OSError, ValueError) as error:
                raise validation.unloadable_adapter(path, error) from error
            adapter = generation_pb2.Adapter(name=name, path=path, base_model=self.model_name)
            self.adapters[name] = adapter
            return adapter

    def unload_adapter(self, name: str) -> generation_pb2.Adapter:
        """Unload a loaded adapter (NOT_FOUND otherwise); its name cannot be loaded again."""
        with self._adapter_lock:
            if name not in self.adapters:
                raise validation.not_loaded(name, sorted(self.adapters))
            self._unload_adapter(name)
            self._retired_adapters.add(name)
            return self.adapters.pop(name)

    def list_adapters(self) -> list[generation_pb2.Adapter]:
        return [self.adapters[name] for name in sorted(self.adapters)]

    def context(self, prompt: common_pb2.Prompt) -> str:
        """The exact text a rollout of `prompt` starts from (chat template, think block opened)."""
        return self.format.context(self.tokenizer, prompt)

    def generate(
        self, requests: Sequence[generation_pb2.GenerateRequest], *, control: RequestControl = UNCONTROLLED
    ) -> list[generation_pb2.GenerateResponse]:
        """Answer several Generate requests, batched together per adapter.

        Sample j of a prompt uses the seed derived from (seed, j), so a request's samples do not depend on what
        else was in the batch.
        """
        jobs: list[tuple[str, list[Row], list[tuple[int, common_pb2.Prompt, str]]]] = []
        group = 0
        for request in requests:
            validation.check_generate(request, self)
            sampling = resolve_sampling(request.sampling, self.settings)
            rows, meta = [], []
            for prompt in request.prompts:
                context = self.context(prompt)
                validation.check_context(context, "prompts", self)
                for index in range(max(request.n, 1)):
                    rows.append(Row(context, group, True, sampling, derive_seed(sampling.seed, index), prompt))
                    meta.append((index, prompt, context))
                group += 1
            jobs.append((request.adapter, rows, meta))
        decoded = self._decode_jobs([(adapter, rows) for adapter, rows, _ in jobs], control=control)
        return [
            generation_pb2.GenerateResponse(
                rollouts=[
                    self._rollout(prompt, context, adapter, out)
                    for (_, prompt, context), out in zip(meta, outs, strict=True)
                ]
            )
            for (adapter, _, meta), outs in zip(jobs, decoded, strict=True)
        ]

    def continue_branches(
        self, requests: Sequence[generation_pb2.ContinueRequest], *, control: RequestControl = UNCONTROLLED
    ) -> list[generation_pb2.ContinueResponse]:
        """Answer several Continue requests; each request's branches share its prefix's prefill."""
        jobs: list[tuple[str, list[Row], list[tuple[str, int]]]] = []
        for group, request in enumerate(requests):
            validation.check_continue(request, self)
            sampling = resolve_sampling(request.sampling, self.settings)
            branches = list(request.branches) or [generation_pb2.ContinueBranch(id="", text="")]
            rows, meta = [], []
            for branch_index, branch in enumerate(branches):
                text = request.prefix + branch.text
                validation.check_context(text, "prefix" if not request.branches else f"branches[{branch_index}]", self)
                for index in range(max(request.n, 1)):
                    seed = derive_seed(sampling.seed, branch_index, index)
                    rows.append(Row(text, group, request.in_reasoning, sampling, seed))
                    meta.append((branch.id, index))
            jobs.append((request.adapter, rows, meta))
        decoded = self._decode_jobs([(adapter, rows) for adapter, rows, _ in jobs], control=control)
        return [
            generation_pb2.ContinueResponse(
                continuations=[
                    generation_pb2.Continuation(
                        branch_id=branch_id,
                        sample_index=index,
                        reasoning=out.reasoning,
                        response=out.response,
                        reasoning_closed=out.reasoning_closed,
                        reasoning_tokens=out.reasoning_tokens,
                        response_tokens=out.response_tokens,
                        finish_reason=out.finish_reason,
                    )
                    for (branch_id, index), out in zip(meta, outs, strict=True)
                ]
            )
            for (_, _, meta), outs in zip(jobs, decoded, strict=True)
        ]

    def stream(
        self, request: generation_pb2.GenerateStreamRequest, *, control: RequestControl = UNCONTROLLED
    ) -> Iterator[generation_pb2.GenerateStreamResponse]:
        """Decode one rollout, yielding text as it comes; the last message carries the whole rollout.

        Decoding runs on a worker thread so that the caller receives pieces while the model runs; it stops when
        `control` ends or when the caller closes this iterator.
        """
        import queue

        generate = generation_pb2.GenerateRequest(
            prompts=[request.prompt], n=1, sampling=request.sampling, adapter=request.adapter
        )
        validation.check_generate(generate, self)
        sampling = resolve_sampling(request.sampling, self.settings)
        context = self.context(request.prompt)
        validation.check_context(context, "prompt", self)
        row = Row(context, 0, True, sampling, derive_seed(sampling.seed, 0), request.prompt)
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        closed = threading.Event()
        worker_control = RequestControl(
            control.priority, lambda: not closed.is_set() and control.active(), control.deadline
        )

        def work() -> None:
            try:
                [out] = self._decode_jobs(
                    [(request.adapter, [row])],
                    on_text=lambda _, text, seg: pieces.put(("text", (text, seg))),
                    control=worker_control,
                )[0]
                pieces.put(("done", out))
            except BaseException as error:  # handed to the caller's thread, which raises it
                pieces.put(("error", error))

        worker = threading.Thread(target=work, name="generation-stream", daemon=True)
        worker.start()
        held: list[tuple[str, Any]] = []
        try:
            while True:
                kind, value = held.pop() if held else pieces.get()
                if kind == "text":
                    text, segment = value
                    # A reader that fell behind gets what piled up of one segment as one message, not a message
                    # per decode step: fewer messages to build and send while the batch decodes.
                    while not held:
                        try:
                            following = pieces.get_nowait()
                        except queue.Empty:
                            break
                        if following[0] == "text" and following[1][1] == segment:
                            text += following[1][0]
                        else:
                            held.append(following)
                    yield generation_pb2.GenerateStreamResponse(text=text, segment=segment)
                elif kind == "error":
                    raise value
                else:
                    yield generation_pb2.GenerateStreamResponse(
                        rollout=self._rollout(request.prompt, context, request.adapter, value)
                    )
                    return
        finally:
            closed.set()  # a caller that stops reading stops the decoding

    def _decode_jobs(
        self,
        jobs: Sequence[tuple[str, list[Row]]],
        on_text: TextCallback | None = None,
        *,
        control: RequestControl = UNCONTROLLED,
    ) -> list[list[Decoded]]:
        """Decode the rows of several requests, one `_decode` call per adapter, results in request order."""
        results: list[list[Decoded]] = [[] for _ in jobs]
        by_adapter: dict[str, list[int]] = {}
        for position, (adapter, _) in enumerate(jobs):
            if adapter and adapter not in self.adapters:
                raise validation.unknown_adapter(adapter, sorted(self.adapters))
            by_adapter.setdefault(adapter, []).append(position)
        for adapter, positions in by_adapter.items():
            rows = [row for position in positions for row in jobs[position][1]]
            outs = self._decode(rows, adapter, on_text, control=control)
            start = 0
            for position in positions:
                count = len(jobs[position][1])
                results[position] = outs[start : start + count]
                start += count
        return results

    def _rollout(self, prompt: common_pb2.Prompt, context: str, adapter: str, out: Decoded) -> common_pb2.Rollout:
        created = timestamp_pb2.Timestamp()
        created.GetCurrentTime()
        return common_pb2.Rollout(
            prompt=prompt,
            context=context,
            reasoning=out.reasoning,
            response=out.response,
            reasoning_closed=out.reasoning_closed,
            model=self.model_name,
            adapter=adapter,
            reasoning_tokens=out.reasoning_tokens,
            response_tokens=out.response_tokens,
            finish_reason=out.finish_reason,
            created_at=created,
        )


def create_backend(settings: GenerationSettings) -> GenerationBackend:
    """The back end `settings.generation_backend` names, with the configured adapters loaded."""
    if settings.generation_backend == "transformers":
        from shared.generation.backends.transformers import TransformersBackend

        backend: GenerationBackend = TransformersBackend(settings)
    elif settings.generation_backend == "vllm":
        from shared.generation.backends.vllm import VLLMBackend

        backend = VLLMBackend(settings)
    else:
        from shared.generation.backends.openai import OpenAIBackend

        backend = OpenAIBackend(settings)
    for name, path in settings.adapters.items():
        backend.load_adapter(name, path)
    return backend
