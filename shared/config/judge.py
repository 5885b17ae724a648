"""Settings of the judge service (`INTERVENE_*`): back end, its options, limits and the queue workers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from shared.config.base import ServiceSettings, _secret


class JudgeSettings(ServiceSettings):
    """The judge service: step labels, first cue h and verdicts for traces (gRPC and queues)."""

    port: int = Field(50052, ge=0, le=65535, description="gRPC port of the judge service.")
    judge_backend: Literal["rules", "classifier", "llm", "cascade"] = Field(
        "rules",
        description="Judge back end: rules (embedded default), classifier, llm, or cascade (the classifier, "
        "handing the traces it is unsure of to the llm judge when one is configured).",
    )
    judge_rules_patterns: str = Field(
        "rules-v1", description="Rules pattern set: a version shipped in shared/judging/patterns/ or a YAML path."
    )
    judge_classifier_model: Path | None = Field(
        None, description="Classifier model file written by `intervene judge fit`; unset uses the shipped one."
    )
    judge_classifier_encoder: str | None = Field(
        None, description="Sentence encoder of the classifier (package name, folder or hub id); unset: the model's."
    )
    judge_llm_base_url: str = Field(
        "", description="OpenAI-compatible base URL of the llm judge (e.g. http://vllm:8000/v1)."
    )
    judge_llm_model: str = Field("", description="Model name the llm judge's endpoint serves.")
    judge_llm_api_key: SecretStr | None = Field(None, description="API key of the llm judge's endpoint.")
    judge_llm_api_key_file: Path | None = Field(None, description="File holding the llm judge's API key.")
    judge_llm_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one llm judge request, in seconds.")
    judge_llm_retries: int = Field(2, ge=0, description="Retries of a failed llm judge request (backoff doubles).")
    judge_llm_answer_retries: int = Field(
        1, ge=0, description="Times the llm judge asks again after an answer that does not parse (then undetermined)."
    )
    judge_llm_prompts_dir: Path | None = Field(
        None,
        description="Folder whose detector.txt, reasoning.txt, response.txt, refusal.txt replace the llm judge's "
        "shipped prompts (each file optional); unset: the shipped ones.",
    )
    judge_cascade_threshold: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Cascade judge: traces whose classifier confidence in h is below this go to the llm judge.",
    )
    max_trace_chars: int = Field(
        200_000, ge=1, description="Longest reasoning or response (characters) a trace may have."
    )
    max_traces_per_call: int = Field(256, ge=1, description="Most traces one JudgeSteps call may carry.")
    consume_queue: bool = Field(
        True, description="Run the rollout.generated and continuation.generated queue workers beside the server."
    )

    def resolved_llm_api_key(self) -> str | None:
        """The llm judge's API key, from the file when one is named."""
        return _secret(self.judge_llm_api_key, self.judge_llm_api_key_file)
