"""The sentence splitter: hard cases and the offset round-trip property."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.judging.steps import prefix_before, split, step_texts


def _pieces(text: str) -> list[str]:
    return [text[start:end] for start, end in split(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Use tools, e.g. a hammer, i.e. not glue. Done.", ["Use tools, e.g. a hammer, i.e. not glue.", "Done."]),
        ("The U.S. Army is large. Dr. Smith agreed.", ["The U.S. Army is large.", "Dr. Smith agreed."]),
        ("She moved to the U.S. Then she left.", ["She moved to the U.S.", "Then she left."]),
        (
            "J. K. Rowling wrote it. The user wants X. Let me see.",
            ["J. K. Rowling wrote it.", "The user wants X.", "Let me see."],
        ),
        (
            "Pi is 3.14159 roughly. It costs $3.50. Version 1.2.3 ships.",
            ["Pi is 3.14159 roughly.", "It costs $3.50.", "Version 1.2.3 ships."],
        ),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ('"Is it safe?" she asked. No.', ['"Is it safe?" she asked.', "No."]),
        ("(This is aside.) Next one.", ["(This is aside.)", "Next one."]),
        ("Hmm... maybe not. Wait... Actually yes.", ["Hmm... maybe not.", "Wait...", "Actually yes."]),
        ("No final punctuation here", ["No final punctuation here"]),
        ("这是第一句。这是第二句！第三句？End.", ["这是第一句。", "这是第二句！", "第三句？", "End."]),  # noqa: RUF001 - CJK punctuation is the point
        ("日本語の文です。「引用です。」次の文。", ["日本語の文です。", "「引用です。」", "次の文。"]),
        ("Das ist z.B. gut. Er kam an. ¿Qué pasa? Nada.", ["Das ist z.B. gut.", "Er kam an.", "¿Qué pasa?", "Nada."]),
        ("Он пришёл. Она ушла.", ["Он пришёл.", "Она ушла."]),
        ("यह पहला वाक्य है। यह दूसरा है।", ["यह पहला वाक्य है।", "यह दूसरा है।"]),
        (
            "apples, pears, etc. and more. Also etc. Then stop.",
            ["apples, pears, etc. and more.", "Also etc.", "Then stop."],
        ),
        ("A line that is\nhard wrapped here. Next.", ["A line that is\nhard wrapped here.", "Next."]),
        (
            "See No. 5 and Fig. 2 there. The answer is no. Then stop.",
            ["See No. 5 and Fig. 2 there.", "The answer is no.", "Then stop."],
        ),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert step_texts(text) == expected


def test_numbered_list_keeps_its_markers() -> None:
    text = "Plan:\n1. Gather the facts.\n2. Weigh the harm\n3. Decide\n\nDone."
    assert step_texts(text) == ["Plan:", "1. Gather the facts.", "2. Weigh the harm", "3. Decide", "Done."]


def test_bullets_and_headings() -> None:
    text = "## Options\n- first option\n- second option\n**Verdict**\nRefuse it."
    assert step_texts(text) == ["## Options", "- first option", "- second option", "**Verdict**", "Refuse it."]


def test_code_block_is_one_step() -> None:
    code = "```python\nx = 1. \n\nprint(x)! \n```\n"
    text = "Here is code:\n" + code + "That was it."
    assert _pieces(text) == ["Here is code:\n", code, "That was it."]


def test_unclosed_code_block_runs_to_the_end() -> None:
    text = "Look.\n~~~\nprint(1). More.\n"
    assert _pieces(text) == ["Look.\n", "~~~\nprint(1). More.\n"]


def test_whitespace_belongs_to_the_preceding_step() -> None:
    text = "  \n\nLeading space.  Trailing.   \n\n"
    assert _pieces(text) == ["  \n\nLeading space.  ", "Trailing.   \n\n"]


@pytest.mark.parametrize("text", ["", " ", "\n\t \n"])
def test_blank_text_has_no_steps(text: str) -> None:
    assert split(text) == []


def test_prefix_before_a_step() -> None:
    text = "I see the request. I'll start by doing it. Then more."
    assert prefix_before(text, 2) == "I see the request. "
    assert prefix_before(text, 1) == ""
    with pytest.raises(ValueError, match="out of range"):
        prefix_before(text, 4)


_ALPHABET = st.sampled_from(
    [
        *"abcXYZ .!?\u2026\u3002\uff01\uff1f\n\t\"'\u201d)]:-*#`~0123456789",
        *("e.g.", "U.S.", "Dr.", "```", "\n\n", "1. ", "etc.", "\u3002\u300d"),
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join) | st.text(max_size=200))
def test_offsets_reassemble_the_text(text: str) -> None:
    spans = split(text)
    if text.strip() == "":
        assert spans == []
        return
    assert "".join(text[start:end] for start, end in spans) == text
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start
    for start, end in spans:
        assert text[start:end].strip(), "every step holds a non-whitespace character"
    # Deterministic: splitting the same text again gives the same steps.
    assert split(text) == spans
