"""Builds a judge back end by name from plain options, so the service, the queue worker, the CLI and the
benchmark construct judges the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.config.judge import JudgeSettings
from shared.judging.base import Judge

BACKENDS = ("rules", "classifier", "llm", "cascade")
# Graders others use (shared/judging/graders.py): evaluation judges over an OpenAI-compatible endpoint (the llm_*
# options), which score harm but give no compliance cues, so they never build pairs.
GRADER_BACKENDS = ("strongreject", "harmbench", "llamaguard")


@dataclass(frozen=True)
class JudgeOptions:
    """Everything a back end may need; each back end reads its own fields."""

    rules_patterns: str = "rules-v1"
    classifier_model: Path | None = None
    classifier_encoder: str | None = None
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str | None = None
    llm_timeout_seconds: float = 30.0
    llm_retries: int = 2
    llm_answer_retries: int = 1
    llm_prompts_dir: Path | None = None
    cascade_threshold: float = 0.8

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> JudgeOptions:
        """The options the judge service's settings give."""
        return cls(
            rules_patterns=settings.judge_rules_patterns,
            classifier_model=settings.judge_classifier_model,
            classifier_encoder=settings.judge_classifier_encoder,
            llm_base_url=settings.judge_llm_base_url,
            llm_model=settings.judge_llm_model,
            llm_api_key=settings.resolved_llm_api_key(),
            llm_timeout_seconds=settings.judge_llm_timeout_seconds,
            llm_retries=settings.judge_llm_retries,
            llm_answer_retries=settings.judge_llm_answer_retries,
            llm_prompts_dir=settings.judge_llm_prompts_dir,
            cascade_threshold=settings.judge_cascade_threshold,
        )


def make_judge(backend: str, options: JudgeOptions | None = None) -> Judge:
    """A judge of the named back end; `ValueError` says which names exist and what is missing."""
    options = options or JudgeOptions()
    if backend == "rules":
        from shared.judging.rules import RulesJudge

        return RulesJudge(options.rules_patterns)
    if backend == "classifier":
        from shared.judging.classifier import ClassifierJudge

        return ClassifierJudge.load(options.classifier_model, encoder=options.classifier_encoder)
    if backend == "llm":
        return _llm(options)
    if backend == "cascade":
        from shared.judging.cascade import CascadeJudge
        from shared.judging.classifier import ClassifierJudge

        fast = ClassifierJudge.load(options.classifier_model, encoder=options.classifier_encoder)
        slow = _llm(options) if options.llm_base_url or options.llm_model else None
        return CascadeJudge(fast, slow, options.cascade_threshold)
    if backend in GRADER_BACKENDS:
        from shared.judging.graders import GRADERS

        if not options.llm_base_url or not options.llm_model:
            raise ValueError(
                f"the {backend} grader needs an OpenAI-compatible endpoint serving its model: give its base URL "
                "(e.g. http://host:8000/v1) and model name (--llm-url / --llm-model)"
            )
        return GRADERS[backend](
            options.llm_base_url,
            options.llm_model,
            api_key=options.llm_api_key,
            timeout_seconds=max(options.llm_timeout_seconds, 60.0),
            retries=options.llm_retries,
        )
    choices = (*BACKENDS, *GRADER_BACKENDS)
    raise ValueError(f"unknown judge back end {backend!r}: choose one of {', '.join(choices)}")


def _llm(options: JudgeOptions) -> Judge:
    from shared.judging.llm import LlmJudge, load_prompts

    if not options.llm_base_url or not options.llm_model:
        raise ValueError(
            "the llm judge needs an OpenAI-compatible endpoint: set its base URL (e.g. http://host:8000/v1) "
            "and model name (INTERVENE_JUDGE_LLM_BASE_URL / INTERVENE_JUDGE_LLM_MODEL, or --llm-url / --llm-model)"
        )
    return LlmJudge(
        options.llm_base_url,
        options.llm_model,
        api_key=options.llm_api_key,
        timeout_seconds=options.llm_timeout_seconds,
        retries=options.llm_retries,
        answer_retries=options.llm_answer_retries,
        prompts=load_prompts(options.llm_prompts_dir),
    )
