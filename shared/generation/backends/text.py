"""Reasoning rollouts on engines that complete raw text prompts (vLLM in process, OpenAI-compatible servers).

Such an engine cannot be told "close the think block when the budget runs out", so a row decodes in two
phases: the reasoning, stopped at the close tag or at the reasoning budget; then the response, from the row's
text plus the reasoning plus the close tag (forced or the model's own, followed by a blank line) — the engine's
prefix cache makes that second prefill cheap. Rows of one text and sampling without their own seed go in one
request with `n` samples; seeded rows go one request each, so that sample j keeps its seed in any batch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.generation.backends.base import Decoded, GenerationBackend, Row, TextCallback
from shared.generation.control import UNCONTROLLED, Cancelled, RequestControl
from shared.generation.format import truncate_at_stop
from shared.protos.intervene.v1 import common_pb2


@dataclass(frozen=True)
class Call:
    """One completion request: n samples of `prompt`."""

    prompt: str
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]


@dataclass(frozen=True)
class Completion:
    """One sample of a call. `stopped_at_string` is False when the sequence ended (EOS) or ran out of tokens."""

    text: str
    tokens: int
    finished: bool
    stopped_at_string: bool


class TextCompletionBackend(GenerationBackend):
    """A back end whose engine completes text prompts; `_complete` is all a subclass adds."""

    @abc.abstractmethod
    def _complete(
        self, calls: Sequence[Call], adapter: str, *, control: RequestControl = UNCONTROLLED
    ) -> list[list[Completion]]:
        """Run the calls (concurrently where the engine can); each yields `call.n` completions.

        Once `control.active()` is False the engine's requests are aborted and `Cancelled` is raised.
        """

    def _decode(
        self,
        rows: Sequence[Row],
        adapter: str,
        on_text: TextCallback | None = None,
        *,
        control: RequestControl = UNCONTROLLED,
    ) -> list[Decoded]:
        close = self.format.think_close
        reasoning: list[Completion | None] = [None] * len(rows)
        thinking = [i for i, row in enumerate(rows) if row.in_reasoning and row.sampling.max_reasoning_tokens > 0]
        for i, completion in self._run(
            rows, thinking, adapter, lambda i: (rows[i].text, rows[i].sampling.max_reasoning_tokens, True), control
        ):
            reasoning[i] = completion
        if not control.active():
            raise Cancelled("the caller went away between the reasoning and the response")
        # The text each response continues: reasoning closed by the model (its tag) or by the service.
        heads: list[str] = []
        for row, completion in zip(rows, reasoning, strict=True):
            if not row.in_reasoning:
                heads.append("")
            elif completion is not None and completion.stopped_at_string:
                heads.append(completion.text + close + "\n\n")
            else:
                heads.append((completion.text if completion else "") + self.format.forced_close)
        if on_text is not None:
            for i, row in enumerate(rows):
                if row.in_reasoning:
                    on_text(i, self.format.split(heads[i], True)[0], common_pb2.SEGMENT_REASONING)
        if not control.active():
            raise Cancelled("the caller went away between the reasoning and the response")
        answering = [i for i, row in enumerate(rows) if row.sampling.max_response_tokens > 0]
        responses: list[Completion | None] = [None] * len(rows)
        for i, completion in self._run(
            rows,
            answering,
            adapter,
            lambda i: (rows[i].text + heads[i], rows[i].sampling.max_response_tokens, False),
            control,
        ):
            responses[i] = completion
        results = []
        for i, row in enumerate(rows):
            response = responses[i]
            text, stopped = truncate_at_stop(response.text if response else "", row.sampling.stop)
            reasoning_text, response_text, _ = self.format.split(heads[i] + text, row.in_reasoning)
            if on_text is not None and response_text:
                on_text(i, response_text, common_pb2.SEGMENT_RESPONSE)
            thought = reasoning[i]
            results.append(
                Decoded(
                    reasoning=reasoning_text,
                    response=response_text,
                    reasoning_closed=bool(thought and thought.stopped_at_string),
                    reasoning_tokens=thought.tokens if thought else 0,
                    response_tokens=response.tokens if response else 0,
                    finish_reason="stop" if stopped or (response and response.finished) else "length",
                )
            )
        return results

    def _run(
        self,
        rows: Sequence[Row],
        which: list[int],
        adapter: str,
        prompt_of: Callable[[int], tuple[str, int, bool]],
        control: RequestControl,
    ) -> list[tuple[int, Completion]]:
        """Complete the chosen rows, merging rows that would sample the same distribution.

        Unseeded rows sharing text and sampling become one call with n samples; greedy rows sharing text share
        one sample (engines refuse n > 1 without sampling, and the samples would be equal). `prompt_of(i)` gives
        row i's prompt, token budget and whether this is its reasoning phase.
        """
        close = self.format.think_close
        calls: list[Call] = []
        owners: list[list[int]] = []
        merged: dict[tuple, int] = {}
        for i in which:
            row = rows[i]
            prompt, budget, in_reasoning_phase = prompt_of(i)
            budget = max(1, min(budget, self.context_limit - self.count_tokens(prompt)))
            stop = (close,) if in_reasoning_phase else row.sampling.stop
            temperature, top_p = row.sampling.temperature, row.sampling.top_p
            key = (prompt, budget, temperature, top_p, stop)
            mergeable = row.seed is None or row.sampling.greedy
            if mergeable and key in merged:
                position = merged[key]
                call = calls[position]
                if not row.sampling.greedy:
                    calls[position] = Call(call.prompt, call.n + 1, budget, temperature, top_p, None, stop)
                owners[position].append(i)
                continue
            if mergeable:
                merged[key] = len(calls)
            calls.append(Call(prompt, 1, budget, temperature, top_p, None if row.sampling.greedy else row.seed, stop))
            owners.append([i])
        if not calls:
            return []
        out: list[tuple[int, Completion]] = []
        for members, completions in zip(owners, self._complete(calls, adapter, control=control), strict=True):
            if len(completions) < len(members):  # one greedy sample stands for every member
                completions = completions * len(members)
            out.extend(zip(members, completions, strict=True))
        return out
