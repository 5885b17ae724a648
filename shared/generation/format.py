"""The reasoning format: how a prompt becomes the exact text the model continues, and how its output splits.

A rollout is `context ⊕ reasoning ⊕ close ⊕ response`. `context` is the chat template with the generation
prompt, followed by the think-open tag unless the template writes it itself (R1 distills, Qwen3). Reasoning
ends where the model writes the close tag, or where the service closes the block (`forced_close`) because the
reasoning budget ran out or the model ended its turn inside the block. Every back end uses these helpers, so
they split text the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.config.generation import GenerationSettings
from shared.protos.intervene.v1 import common_pb2

_PROBE_TEXT = "Hello"


@dataclass(frozen=True)
class ReasoningFormat:
    """Tag strings of the think block and whether the chat template opens it."""

    think_open: str = "<think>\n"
    think_close: str = "</think>"
    forced_close: str = "\n</think>\n\n"
    template_opens_think: bool = False

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, settings: GenerationSettings) -> ReasoningFormat:
        """The format of `settings`, detecting from the chat template whether it opens the think block."""
        if settings.template_opens_think == "auto":
            opens = template_opens_think(tokenizer, settings.think_open)
        else:
            opens = settings.template_opens_think == "yes"
        return cls(settings.think_open, settings.think_close, settings.forced_close, opens)

    def context(self, tokenizer: Any, prompt: common_pb2.Prompt) -> str:
        """The exact text the reasoning continues: the chat-formatted prompt with the think block opened."""
        text = render_chat(tokenizer, prompt.text, prompt.system)
        if self.template_opens_think:
            return text
        return text + self.think_open

    def split(self, generated: str, in_reasoning: bool) -> tuple[str, str, bool]:
        """(reasoning, response, tag found) of text decoded after a context.

        Reasoning loses trailing whitespace and the response leading whitespace, so a forced close and a
        model's own `</think>\\n\\n` give the same fields. Outside reasoning the text is the response, verbatim.
        """
        if not in_reasoning:
            return "", generated, False
        index = generated.find(self.think_close)
        if index < 0:
            return generated, "", False
        return generated[:index].rstrip(), generated[index + len(self.think_close) :].lstrip(), True


def chat_messages(user: str, system: str = "") -> list[dict[str, str]]:
    """The chat turns of a prompt: an optional system turn, then the user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return messages


def render_chat(tokenizer: Any, user: str, system: str = "") -> str:
    """The chat template applied to one user turn (and an optional system turn), generation prompt added."""
    messages = chat_messages(user, system)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # A base model without a template: plain text turns, so that the service still works with it.
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join([*lines, "Assistant: "])


def template_opens_think(tokenizer: Any, think_open: str) -> bool:
    """True when the rendered generation prompt already ends with the think-open tag."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    rendered = render_chat(tokenizer, _PROBE_TEXT)
    return rendered.rstrip().endswith(think_open.strip())


@dataclass(frozen=True)
class Sampling:
    """Resolved decoding settings of one request (no unset fields left)."""

    temperature: float
    top_p: float
    max_reasoning_tokens: int
    max_response_tokens: int
    seed: int | None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def resolve_sampling(params: common_pb2.SamplingParams, settings: GenerationSettings) -> Sampling:
    """Fill unset fields of `params` with the configured defaults (validate first: see validation.py)."""
    return Sampling(
        temperature=params.temperature if params.HasField("temperature") else settings.temperature,
        top_p=params.top_p if params.HasField("top_p") else settings.top_p,
        max_reasoning_tokens=(
            params.max_reasoning_tokens if params.HasField("max_reasoning_tokens") else settings.max_reasoning_tokens
        ),
        max_response_tokens=(
            params.max_response_tokens if params.HasField("max_response_tokens") else settings.max_response_tokens
        ),
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(params.stop),
    )


def derive_seed(seed: int | None, *keys: object) -> int | None:
    """A 63-bit seed for one sequence from the request seed and its position (branch, sample index).

    Each sequence gets its own generator, so its samples do not depend on what it was batched with.
    """
    if seed is None:
        return None
    digest = hashlib.sha256(":".join(str(part) for part in (seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` cut before the first stop string it contains, and whether one was found."""
    cut = min((index for s in stop if s and (index := text.find(s)) >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


def without_partial_tag(text: str, tag: str) -> str:
    """`text` without a trailing start of `tag` (e.g. "</thi"), which may still become the whole tag."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return text[:-size]
    return text
