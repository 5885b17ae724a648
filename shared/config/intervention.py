"""Settings of the intervention service (`INTERVENE_*`): peers, trigger pool, rounds, limits, datasets."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from shared.config.base import ServiceSettings

# Defaults the intervention library shares (shared/intervention/checks.py and decisions.py import them from here).
# A safe branch this similar to the rejected suffix, or more, makes no pair; the checks' docstring says why 0.6.
DEFAULT_MAX_SIMILARITY = 0.6
# Pairs kept per intervened rollout (the paper keeps the first safe branch).
DEFAULT_MAX_PAIRS_PER_ROLLOUT = 1
# Text between the reasoning and the response in pairs' suffixes; the generation service writes the
# same string when it closes a think block (INTERVENE_FORCED_CLOSE).
DEFAULT_REASONING_CLOSE = "\n</think>\n\n"


class InterventionSettings(ServiceSettings):
    """The intervention service: safe rollouts, bulk jobs and the queue workers that join the pipeline."""

    port: int = Field(50053, ge=0, le=65535, description="gRPC port of the intervention service.")
    generation_address: str = Field(
        "127.0.0.1:50051", description="host:port of the generation service (SafeRollout calls it directly)."
    )
    judge_address: str = Field(
        "127.0.0.1:50052", description="host:port of the judge service (SafeRollout calls it directly)."
    )
    pairstore_address: str | None = Field(
        "127.0.0.1:50054",
        description="host:port of the pair store, where SafeRollout stores its pairs; unset sends them to "
        "`pair.created` instead.",
    )
    pairstore_group: str = Field(
        "pairstore",
        description="Consumer group of the pair store on `pair.created`: a job is done once it has taken the job's "
        "pairs.",
    )
    peer_tls: bool = Field(False, description="Dial generation, judge and pair store over TLS (system roots).")
    peer_ca_file: Path | None = Field(None, description="PEM CA bundle that signed the peers' certificates.")
    peer_cert_file: Path | None = Field(
        None, description="PEM client certificate presented to the peers, for peers that demand mTLS."
    )
    peer_key_file: Path | None = Field(None, description="PEM private key of `peer_cert_file`.")

    trigger_pool: str = Field(
        "default-v1", description="Trigger pool: a built-in name (`default-v1`) or the path of a pool JSON file."
    )
    triggers_per_rollout: int = Field(
        0, ge=0, description="Triggers tried per intervention, in pool order; 0 tries every trigger of the pool."
    )
    max_rounds: int = Field(1, ge=1, description="Default intervention rounds per rollout (the paper trains with one).")
    limit_rounds: int = Field(5, ge=1, description="Most rounds a request may ask for.")
    pair_checks: bool = Field(
        True,
        description="Check each pair before it is stored: the rejected side is no refusal, the chosen side turned "
        "(no cue after the trigger, not a near-copy of the rejected), at most `max_pairs_per_rollout` per rollout.",
    )
    pair_max_similarity: float = Field(
        DEFAULT_MAX_SIMILARITY,
        gt=0,
        le=1,
        description="A safe branch whose text after the trigger has this word-level similarity (difflib ratio) or "
        "more to the rejected suffix makes no pair: it said the trigger and carried on as before.",
    )
    max_pairs_per_rollout: int = Field(
        DEFAULT_MAX_PAIRS_PER_ROLLOUT,
        ge=0,
        description="Pairs kept per intervened rollout, the first safe branches in trigger-pool order (the paper "
        "keeps the first); 0 keeps every safe branch.",
    )

    uncued_cut_step: int = Field(
        0,
        ge=0,
        description="Unsafe traces in which the judge found no compliance cue from step 2 on (a small model that "
        "complies from its first sentence, a judge that labels no cues): 0 makes no pair, as the paper's detector "
        "answers 0; N >= 2 cuts at the trace's first step from 2 on labelled unsafe, else at step N.",
    )

    over_refusal_contrast: bool = Field(
        False,
        description="Over-refusal jobs in which no sample of a prompt refused (a model that never refuses gives no "
        "helpful ≻ refusal pair): branch its first helpful sample before step 2 with the triggers and store its own "
        "suffix ≻ a trigger branch (one that refused if any; the trigger said on a benign prompt is the over-refusal), "
        "so the harmful pairs' triggers are not learnt for benign prompts.",
    )

    @field_validator("uncued_cut_step")
    @classmethod
    def _uncued_cut_step_is_0_or_at_least_2(cls, value: int) -> int:
        if value == 1:
            raise ValueError("uncued_cut_step is 1; give 0 (off) or a step >= 2 (the paper never cuts before step 2)")
        return value

    reasoning_close: str = Field(
        DEFAULT_REASONING_CLOSE,
        description="Text between reasoning and response in pairs' suffixes (the generation service's forced_close).",
    )

    max_prompt_chars: int = Field(16_000, ge=1, description="Longest prompt text (after template wrapping).")
    max_prompts_per_job: int = Field(100_000, ge=1, description="Most prompts one SubmitPrompts call may queue.")
    rollout_window: int = Field(
        1024,
        ge=1,
        description="Most rollouts of bulk jobs in flight at once (queued, generating, judging or being corrected), "
        "over all jobs; the rest wait as stored prompts and are queued as earlier ones finish, so queues stay "
        "this small whatever a job's size.",
    )
    limit_samples_per_prompt: int = Field(16, ge=1, description="Most rollouts per prompt a job may ask for.")
    benign_samples_per_prompt: int = Field(
        4, ge=2, description="Rollouts per prompt of a benign (over-refusal) job when the request leaves it unset."
    )
    data_dir: Path | None = Field(
        None,
        description="Data folder holding local copies of the named datasets (advbench, strongreject, xstest-safe, "
        "...; `intervene data fetch` writes them); unset: `$XDG_DATA_HOME/intervene/data`, else "
        "`~/.local/share/intervene/data`. A set with no local copy is read from the Hugging Face Hub (HF_TOKEN, "
        "HF_HOME). Dataset paths given in requests are read on the server.",
    )
    job_ttl_seconds: int = Field(7 * 24 * 3600, ge=60, description="How long a finished job's state stays in Redis.")

    min_deadline_seconds: float = Field(
        1.0, gt=0, description="SafeRollout refuses calls whose deadline leaves less than this (DEADLINE_EXCEEDED)."
    )
    peer_timeout_seconds: float = Field(
        600.0, gt=0, description="Longest wait for one generation or judge call when the client set no deadline."
    )
    watch_interval_seconds: float = Field(0.5, gt=0, description="How often WatchJob re-reads a job's counts.")

    consume_queue: bool = Field(
        True, description="Run the rollout.judged / continuation.judged workers (the bulk pipeline) beside the server."
    )
    queue_group: str = Field("intervention", description="Consumer group of the pipeline's workers.")
    progress_group: str = Field(
        "intervention-progress",
        description="Consumer group that counts rollout.generated / continuation.generated entries per job.",
    )
    key_prefix: str = Field("intervene:jobs", description="Prefix of every Redis key the job state uses.")

    @model_validator(mode="after")
    def _peer_identity_complete(self) -> InterventionSettings:
        if (self.peer_cert_file is None) != (self.peer_key_file is None):
            raise ValueError(
                "set both INTERVENE_PEER_CERT_FILE and INTERVENE_PEER_KEY_FILE (mTLS to peers), or neither"
            )
        return self
