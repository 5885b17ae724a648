"""The `openai` back end: any OpenAI-compatible `/v1/completions` server (e.g. `vllm serve` on a cluster).

Raw-prompt completions, never chat completions, so that `Continue` keeps the exact text prefix; the chat template
is applied here, from the local tokenizer (`tokenizer`, else `model`, else the embedded model). One pooled
httpx client sends calls concurrently (the server batches them); connection errors, 429 and 5xx are retried
with exponential backoff, other 4xx answers become INVALID_ARGUMENT / NOT_FOUND with the server's message.
Completions are streamed, so that a call whose caller went away (`RequestControl`) closes its connection —
the server aborts the request on disconnect — and raises `Cancelled`. Adapters are loaded and unloaded through
vLLM's `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` (the server needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
and --enable-lora) and requested by name in the `model` field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from shared.config.generation import GenerationSettings
from shared.generation.backends.text import Call, Completion, TextCompletionBackend
from shared.generation.control import UNCONTROLLED, Cancelled, RequestControl
from shared.rpc.errors import ServiceError

_RETRIED_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIBackend(TextCompletionBackend):
    """A client of an OpenAI-compatible completions server."""

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
                    raise ServiceError.unavailable(f"completions server {self._client.base_url}: {error}") from error
            else:
                if response.status_code < 400:
                    # Some endpoints (vLLM's load_lora_adapter) answer with plain text.
                    is_json = response.headers.get("content-type", "").startswith("application/json")
                    return response.json() if is_json else {}
                if response.status_code not in _RETRIED_STATUS or last:
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
            raise ServiceError.already_exists(f"name: adapter {name!r} is already served by the completions server")
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
        delay = self.settings.openai_backoff_s
        for attempt in range(self.settings.openai_max_retries + 1):
            last = attempt == self.settings.openai_max_retries
            try:
                with self._client.stream("POST", "/completions", json={**body, "stream": True}) as response:
                    if response.status_code < 400:
                        return _read_stream(response, control)
                    response.read()
                    if response.status_code not in _RETRIED_STATUS or last:
                        raise _status_error(response)
            except httpx.TransportError as error:
                if last:
                    raise ServiceError.unavailable(f"completions server {self._client.base_url}: {error}") from error
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()


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
        for chunk in json.loads(data).get("choices", []):
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
    message = f"completions server answered {response.status_code}: {detail[:500]}"
    if response.status_code == 404:
        return ServiceError.not_found(message)
    if response.status_code in _RETRIED_STATUS:
        return ServiceError.unavailable(message)
    return ServiceError.invalid_argument("request", message)
