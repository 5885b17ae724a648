"""Chat mode of the `openai` back end: a rollout from /v1/chat/completions of a served reasoning model.

Why: reasoning models are served behind `vllm serve --reasoning-parser NAME`, whose chat answers carry the
reasoning apart from the response, in `choices[].message.reasoning` (`choices[].delta.reasoning` when streamed;
vLLM before 0.11, and servers that copied it, call the field `reasoning_content`, read when `reasoning` is absent).
This module builds one rollout's request and joins its answer — one JSON message, or server-sent deltas — into
the reasoning and response the completions path gives: the reasoning without think tags and surrounding
whitespace, the response without leading whitespace and cut at the request's stop strings (applied here: the
server would apply them to the reasoning too). Without a reasoning parser the server sends the raw text as
`content`, which is split here at the close tag. Text is reported only once it can no longer change (a partial
close tag, trailing whitespace and a possible start of a stop string are held back), so the streamed pieces join
to exactly the rollout's fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from shared.generation.backends.base import Decoded, Row
from shared.generation.control import Cancelled, RequestControl
from shared.generation.format import ReasoningFormat, chat_messages, truncate_at_stop, without_partial_tag
from shared.protos.intervene.v1 import common_pb2
from shared.rpc.errors import ServiceError

REASONING_FIELDS = ("reasoning", "reasoning_content")
"""Where servers put the parsed reasoning, preferred first."""

RETRIED_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP answers that may succeed when asked again (the back end retries them with backoff)."""

# (text, segment): how an answer reports text as it becomes final.
Report = Callable[[str, int], None]


def request_body(row: Row, model: str, max_tokens: int, *, thinking_budget: bool, stream: bool) -> dict[str, Any]:
    """The /v1/chat/completions body of one sample of `row` (which must carry its prompt)."""
    assert row.prompt is not None, "a chat call needs the row's prompt"
    sampling = row.sampling
    body: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(row.prompt.text, row.prompt.system),
        "max_tokens": max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if row.seed is not None and not sampling.greedy:
        body["seed"] = row.seed
    if thinking_budget:
        body["thinking_token_budget"] = sampling.max_reasoning_tokens
    return body


class ChatAnswer:
    """One chat answer, joined into reasoning and response as its parts arrive."""

    def __init__(
        self, reasoning_format: ReasoningFormat, *, parsed: bool, stop: tuple[str, ...], report: Report | None
    ) -> None:
        self._format = reasoning_format
        self._parsed = parsed
        self._stop = tuple(s for s in stop if s)
        self._report_to = report
        self._reasoning = ""
        self._content = ""
        self._shown = ["", ""]
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.stopped = False
        """A stop string ended the response: the rest of the answer is not wanted."""

    def add(self, part: dict[str, Any]) -> None:
        """Add a message or a delta: its reasoning field and its content."""
        reasoning = part.get(REASONING_FIELDS[0])
        if reasoning is None:
            reasoning = part.get(REASONING_FIELDS[1])
        self._reasoning += reasoning or ""
        self._content += part.get("content") or ""
        if self._report_to is not None or self._stop:
            self._update(final=False)

    def result(self, count_tokens: Callable[[str], int], reasoning_budget: int) -> Decoded:
        """The decoded row; token counts from the server's `usage` where it gave them, else counted here.

        The reasoning counts as closed by the model when the model left it within the budget (a reasoning parser
        ends it at the budget itself: it then counts as forced, as on the completions path).
        """
        reasoning, response, ended = self._update(final=True)
        cut = self.stopped
        details = self.usage.get("completion_tokens_details") or {}
        reasoning_tokens = details.get("reasoning_tokens")
        if not (self._parsed and isinstance(reasoning_tokens, int)):
            reasoning_tokens = count_tokens(reasoning)
        completion_tokens = self.usage.get("completion_tokens")
        if isinstance(completion_tokens, int) and not cut:
            response_tokens = max(0, completion_tokens - reasoning_tokens)
        else:
            response_tokens = count_tokens(response)
        return Decoded(
            reasoning=reasoning,
            response=response,
            reasoning_closed=ended and (not self._parsed or reasoning_tokens < reasoning_budget),
            reasoning_tokens=reasoning_tokens,
            response_tokens=response_tokens,
            finish_reason="length" if self.finish_reason == "length" and not cut else "stop",
        )

    def _parts(self, *, final: bool) -> tuple[str, str, bool, bool]:
        """(reasoning, response, whether the reasoning ended, whether a stop string ended the response), the texts
        as far as they can no longer change; all of them when `final`."""
        close = self._format.think_close
        if self._parsed:
            reasoning, response, ended = self._reasoning, self._content, bool(self._content)
        else:
            index = self._content.find(close)
            ended = index >= 0
            reasoning = self._content[:index] if ended else self._content
            response = self._content[index + len(close) :] if ended else ""
            if not ended and not final:
                reasoning = without_partial_tag(reasoning, close)
        reasoning = self._without_open_tag(reasoning, final=final or ended).rstrip()
        response = response.lstrip()
        response, found = truncate_at_stop(response, self._stop)
        if self._stop and not found and not final:
            response = response[: max(0, len(response) - max(len(s) for s in self._stop) + 1)]
        return reasoning, response, ended, found

    def _without_open_tag(self, reasoning: str, *, final: bool) -> str:
        """Reasoning without leading whitespace or a think-open tag the model wrote itself (Qwen3 does)."""
        text = reasoning.lstrip()
        tag = self._format.think_open.strip()
        if text.startswith(tag):
            return text[len(tag) :].lstrip()
        if not final and tag.startswith(text):
            return ""  # may still become the tag
        return text

    def _update(self, *, final: bool) -> tuple[str, str, bool]:
        """Note a stop string and report the text that became final; (reasoning, response, ended) so far."""
        reasoning, response, ended, found = self._parts(final=final)
        self.stopped = self.stopped or found
        if self._report_to is not None:
            for position, (segment, now) in enumerate(
                ((common_pb2.SEGMENT_REASONING, reasoning), (common_pb2.SEGMENT_RESPONSE, response))
            ):
                shown = self._shown[position]
                if len(now) > len(shown) and now.startswith(shown):
                    self._report_to(now[len(shown) :], segment)
                    self._shown[position] = now
        return reasoning, response, ended


def read_message(response: httpx.Response, answer: ChatAnswer) -> ChatAnswer:
    """Read a whole (non-streamed) chat completion into `answer`."""
    response.read()
    body = _json(response.text)
    raise_for_error(body)
    choices = body.get("choices") or []
    if not choices:
        raise ServiceError.unavailable("the chat completions server answered without a choice")
    answer.add(choices[0].get("message") or {})
    answer.finish_reason = choices[0].get("finish_reason")
    answer.usage = body.get("usage") or {}
    return answer


def read_events(response: httpx.Response, answer: ChatAnswer, control: RequestControl) -> ChatAnswer:
    """Read a streamed chat completion into `answer`, stopping (the caller then closes the connection, which makes
    the server abort the request) once `control` ends or a stop string ended the response."""
    for line in response.iter_lines():
        if not control.active():
            raise Cancelled("the caller went away; the chat completion's connection is closed")
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            break
        event = _json(data)
        raise_for_error(event)
        for choice in event.get("choices") or []:
            answer.add(choice.get("delta") or {})
            if choice.get("finish_reason") is not None:
                answer.finish_reason = choice["finish_reason"]
        if event.get("usage"):
            answer.usage = event["usage"]
        if answer.stopped:
            return answer
    if answer.finish_reason is None:
        raise ServiceError.unavailable("the chat completions server ended the stream before the answer finished")
    return answer


def http_status_error(code: int, detail: str, where: str) -> ServiceError:
    """The gRPC status of a server's error answer: 404 NOT_FOUND; 429, 5xx and the other retried codes
    UNAVAILABLE (the client may retry); any other INVALID_ARGUMENT."""
    message = f"{where} answered {code}: {detail[:500]}"
    if code == 404:
        return ServiceError.not_found(message)
    if code in RETRIED_STATUS:
        return ServiceError.unavailable(message)
    return ServiceError.invalid_argument("request", message)


def raise_for_error(body: dict[str, Any]) -> None:
    """An error the server sent in place of an answer (vLLM does so mid-stream) as a ServiceError."""
    error = body.get("error")
    if not error:
        return
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    detail = str(error.get("message") or error)
    raise http_status_error(code if isinstance(code, int) else 500, detail, "the chat completions server")


def _json(text: str) -> dict[str, Any]:
    """A JSON object the server sent (never quoted in errors: it may hold model text)."""
    try:
        body = json.loads(text)
    except ValueError as error:
        raise ServiceError.unavailable(f"the chat server sent {len(text)} characters that are not JSON") from error
    if not isinstance(body, dict):
        raise ServiceError.unavailable("the chat server sent JSON that is not an object")
    return body
