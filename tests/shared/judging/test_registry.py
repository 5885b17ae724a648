"""Judge options from the judge service's settings."""

from __future__ import annotations

from pathlib import Path

from shared.config.judge import JudgeSettings
from shared.judging.registry import JudgeOptions


def test_settings_reach_the_back_end(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret\n")
    settings = JudgeSettings(
        auth_disabled=True,
        judge_backend="classifier",
        judge_classifier_model=tmp_path / "model.json",
        judge_llm_api_key_file=key_file,
        judge_llm_retries=5,
        judge_llm_answer_retries=3,
        judge_llm_prompts_dir=tmp_path,
        judge_cascade_threshold=0.6,
    )
    options = JudgeOptions.from_settings(settings)
    assert (options.llm_answer_retries, options.llm_prompts_dir, options.cascade_threshold) == (3, tmp_path, 0.6)
    assert options.classifier_model == tmp_path / "model.json"
    assert options.llm_api_key == "secret" and options.llm_retries == 5
