"""The `openai` back end: any OpenAI-compatible server (e.g. `vllm serve` on a cluster).

Continue always completes raw text on /v1/completions, so that it keeps the exact text prefix; the chat template
is applied here, from the local tokenizer (`tokenizer`, else `model`, else the embedded model). Rollouts
(Generate, GenerateStream, rollout.requested) do the same by default; with `openai_api` `chat` they go to
/v1/chat/completions as the prompt's turns instead, and the reasoning comes from the answer's reasoning field, as
a served reasoning model gives it (openai_chat.py). One pooled httpx client sends calls concurrently (the server
batches them); connection errors, 429 and 5xx are retried with exponential backoff, other 4xx answers become
INVALID_ARGUMENT / NOT_FOUND with the server's message. A call whose caller can go away (`RequestControl`) is
streamed, so that once the caller is gone it closes its connection — the server aborts the request on disconnect —
and raises `Cancelled`; a chat call nobody can cancel (queue work) gets one JSON answer instead. Adapters are
loaded and unloaded through vLLM's `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` (the server needs
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora) and requested by name in the `model` field.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from shared.config.generation import GenerationSettings
from shared.generation.backends import openai_chat
from shared.generation.backends.base import Decoded, Row, TextCallback
from shared.generation.backends.openai_chat import RETRIED_STATUS, http_status_error
from shared.generation.backends.text import Call, Completion, TextCompletionBackend
from shared.generation.control import UNCONTROLLED, Cancelled, RequestControl
from shared.rpc.errors import ServiceError

_T = TypeVar("_T")


class OpenAIBackend(TextCompletionBackend):
    """A client of an OpenAI-compatible server (completions, and chat completions for rollouts in chat mode)."""

    name = "openai"

    def __init__(self, settings: GenerationSettings) -> None:
        from transformers import AutoTokenizer

        self.settings = settings
        headers = {}
        if settings.openai_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
        limits = httpx.Limits(
            max_connections=settings.openai_max_connections, max_keepalive_connections=settings.openai_max_connections
        )
        self._client = httpx.Client(
            base_url=settings.openai_base_url.rstrip("/"),
            headers=headers,
            timeout=settings.openai_timeout_s,
            limits=limits,
        )
        self._pool = ThreadPoolExecutor(settings.openai_max_connections, thread_name_prefix="openai-backend")
        model = settings.model or self._served_models()[0]
        # The chat template and token counts come from the served model's own tokenizer (a folder or hub id).
        super().__init__(settings, model, AutoTokenizer.from_pretrained(settings.tokenizer or model))
        self._context_limit = settings.max_context_tokens or self._served_context() or 4096

    @property
    def context_limit(self) -> int:
        return self._context_limit

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One HTTP call with retries on connection errors, 429 and 5xx; other errors become ServiceErrors."""
        delay = self.settings.openai_backoff_s
        for attempt in range(self.settings.openai_max_retries + 1):
            last = attempt == self.settings.openai_max_retries
            try:
                response = self._client.request(method, path, json=body)
            except httpx.TransportError as error:
                if last:
                    raise ServiceError.unavailable(f"model server {self._client.base_url}: {error}") from error
            else:
                if response.status_code < 400:
                    # Some endpoints (vLLM's load_lora_adapter) answer with plain text.
                    is_json = response.headers.get("content-type", "").startswith("application/json")
                    return response.json() if is_json else {}
                if response.status_code not in RETRIED_STATUS or last:
                    raise _status_error(response)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _served_models(self) -> list[str]:
        return [entry["id"] for entry in self._request("GET", "/models").get("data", [])]

    def _served_context(self) -> int | None:
        for entry in self._request("GET", "/models").get("data", []):
            if entry.get("id") == self.model_name and entry.get("max_model_len"):
                return int(entry["max_model_len"])
        return None

    def _load_adapter(self, name: str, path: str) -> None:
        if name in self._served_models():
            raise ServiceError.already_exists(f"name: adapter {name!r} is already served by the model server")
        self._request("POST", "/load_lora_adapter", {"lora_name": name, "lora_path": path})

    def _unload_adapter(self, name: str) -> None:
        self._request("POST", "/unload_lora_adapter", {"lora_name": name})

    def _complete(
        self, calls: Sequence[Call], adapter: str, *, control: RequestControl = UNCONTROLLED
    ) -> list[list[Completion]]:
        return list(self._pool.map(lambda call: self._complete_one(call, adapter, control), calls))

    def _complete_one(self, call: Call, adapter: str, control: RequestControl) -> list[Completion]:
        body: dict[str, Any] = {
            "model": adapter or self.model_name,
            "prompt": call.prompt,
            "n": call.n,
            "max_tokens": call.max_tokens,
            "temperature": call.temperature,
            "top_p": call.top_p,
        }
        if call.seed is not None:
            body["seed"] = call.seed
        if call.stop:
            body["stop"] = list(call.stop)
        choices = [choice for _, choice in sorted(self._stream_choices(body, control).items())]
        return [
            Completion(
                text=choice["text"],
                tokens=self.count_tokens(choice["text"]),
                finished=choice.get("finish_reason") == "stop",
                # vLLM says which stop string matched; other servers only say "stop", read as the string.
                stopped_at_string=choice.get("finish_reason") == "stop"
                and (isinstance(choice.get("stop_reason"), str) or "stop_reason" not in choice),
            )
            for choice in choices
        ]

    def _stream_choices(self, body: dict[str, Any], control: RequestControl) -> dict[int, dict[str, Any]]:
        """A streamed completion's choices by index (text joined, last finish and stop reasons), with retries."""
        read = lambda response: _read_stream(response, control)  # noqa: E731 - one call's reader
        return self._post("/completions", {**body, "stream": True}, read, retry_broken=True)

    def _post(self, path: str, body: dict[str, Any], read: Callable[[httpx.Response], _T], *, retry_broken: bool) -> _T:
        """POST `body` to `path` and `read` the answer. Connection errors, 429 and 5xx are retried with backoff;
        an answer that breaks off is asked again only with `retry_broken` (when none of it was passed on)."""
        delay = self.settings.openai_backoff_s
        for attempt in range(self.settings.openai_max_retries + 1):
            last = attempt == self.settings.openai_max_retries
            try:
                with self._client.stream("POST", path, json=body) as response:
                    if response.status_code < 400:
                        try:
                            return read(response)
                        except httpx.TransportError as error:
                            if retry_broken and not last:
                                raise
                            raise ServiceError.unavailable(
                                f"model server {self._client.base_url}: the answer broke off: {error}"
                            ) from error
                    response.read()
                    if response.status_code not in RETRIED_STATUS or last:
                        raise _status_error(response)
            except httpx.TransportError as error:
                if last:
                    raise ServiceError.unavailable(f"model server {self._client.base_url}: {error}") from error
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- chat mode: rollouts from /v1/chat/completions ------------------------------------------------------------

    def _decode(
        self,
        rows: Sequence[Row],
        adapter: str,
        on_text: TextCallback | None = None,
        *,
        control: RequestControl = UNCONTROLLED,
    ) -> list[Decoded]:
        # Rows that carry their prompt are rollouts (a Continue's never do): in chat mode they go to the chat API.
        if self.settings.openai_api == "chat" and all(row.prompt is not None for row in rows):
            return self._chat(rows, adapter, on_text, control)
        return super()._decode(rows, adapter, on_text, control=control)

    def _chat(
        self, rows: Sequence[Row], adapter: str, on_text: TextCallback | None, control: RequestControl
    ) -> list[Decoded]:
        """One chat call per sample, so that the server's `usage` counts that sample alone; greedy rows of one
        prompt and sampling share a call (their samples would be equal)."""
        members: dict[Any, list[int]] = {}
        for index, row in enumerate(rows):
            key = (row.text, row.sampling) if row.sampling.greedy else index
            members.setdefault(key, []).append(index)

        def one(owners: list[int]) -> Decoded:
            report = None if on_text is None else functools.partial(_report_to_rows, on_text, owners)
            return self._chat_one(rows[owners[0]], adapter, report, control)

        groups = list(members.values())
        results: list[Decoded | None] = [None] * len(rows)
        for owners, decoded in zip(groups, self._pool.map(one, groups), strict=True):
            for owner in owners:
                results[owner] = decoded
        return [result for result in results if result is not None]

    def _chat_one(self, row: Row, adapter: str, report: openai_chat.Report | None, control: RequestControl) -> Decoded:
        sampling = row.sampling
        if sampling.max_reasoning_tokens + sampling.max_response_tokens == 0:
            return Decoded("", "", False, 0, 0, "length")
        # One answer holds both parts and the close tag between them (a forced one counts as output too).
        budget = sampling.max_reasoning_tokens + self.count_tokens(self.format.forced_close)
        budget = max(1, min(budget + sampling.max_response_tokens, self.context_limit - self.count_tokens(row.text)))
        parsed = self.settings.openai_reasoning_parser
        streamed = control.can_end
        model = adapter or self.model_name
        body = openai_chat.request_body(row, model, budget, thinking_budget=parsed, stream=streamed)

        def answer() -> openai_chat.ChatAnswer:
            return openai_chat.ChatAnswer(self.format, parsed=parsed, stop=sampling.stop, report=report)

        if streamed:
            # Text already passed on cannot be taken back: a broken stream is asked again only when none was.
            read = lambda response: openai_chat.read_events(response, answer(), control)  # noqa: E731
            joined = self._post("/chat/completions", body, read, retry_broken=report is None)
        else:
            read = lambda response: openai_chat.read_message(response, answer())  # noqa: E731
            joined = self._post("/chat/completions", body, read, retry_broken=True)
        return joined.result(self.count_tokens, sampling.max_reasoning_tokens)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()


def _report_to_rows(on_text: TextCallback, rows: list[int], text: str, segment: int) -> None:
    """Report one call's text for every row it stands for."""
    for row in rows:
        on_text(row, text, segment)


def _read_stream(response: httpx.Response, control: RequestControl) -> dict[int, dict[str, Any]]:
    """Join a completions event stream's chunks; stops reading (the caller closes the connection) once
    `control` ends."""
    choices: dict[int, dict[str, Any]] = {}
    for line in response.iter_lines():
        if not control.active():
            raise Cancelled("the caller went away; the completion's connection is closed")
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            break
        event = json.loads(data)
        openai_chat.raise_for_error(event)
        for chunk in event.get("choices", []):
            choice = choices.setdefault(chunk.get("index", 0), {"text": ""})
            choice["text"] += chunk.get("text") or ""
            for key in ("finish_reason", "stop_reason"):
                if key in chunk and (chunk[key] is not None or key not in choice):
                    choice[key] = chunk[key]
    return choices


def _status_error(response: httpx.Response) -> ServiceError:
    try:
        detail = response.json().get("error", {}).get("message") or response.text
    except ValueError:
        detail = response.text
    return http_status_error(response.status_code, detail, f"model server {response.request.url.path}")
