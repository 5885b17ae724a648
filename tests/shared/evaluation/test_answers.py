"""Answer extraction and equivalence on the real GSM8K and MATH-500 items of the public data folder: every GSM8K
reference in the spellings models use, MATH-500's worked solutions against their answers, hand-picked items with right
and wrong predictions, and model-style outputs with reasoning before the answer."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from shared.evaluation.answers import answers_match, extract_answer, extract_gsm8k_reference, normalize_answer
from tests.public_data import public_file

# Measured: 500 of 500 solutions give back their item's answer. One regression in 500 is allowed before this fails.
MATH500_AGREEMENT_FLOOR = 0.998


def _rows(relative: str) -> list[dict]:
    path = public_file(relative)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def gsm8k() -> list[dict]:
    return _rows("gsm8k/test.jsonl")


@pytest.fixture(scope="module")
def math500() -> dict[str, dict]:
    return {row["unique_id"]: row for row in _rows("math500/test.jsonl")}


def test_every_gsm8k_reference_matches_the_spellings_models_use(gsm8k):
    failures = []
    for row in gsm8k:
        reference = extract_gsm8k_reference(row["answer"])
        value = Fraction(reference)
        grouped = f"{int(value):,}" if value.denominator == 1 else reference
        spellings = [
            reference,
            f"First 12 + 3 = 15 and 15 / 5 = 3.\nThe answer is {reference}.",
            f"\\boxed{{{reference}}}",
            f"So she has {grouped} left. The answer is {grouped}",
            f"The answer is ${grouped}.",
            f"In total that is ${grouped}",
            row["answer"],
        ]
        for text in spellings:
            if not answers_match(extract_answer(text, "gsm8k"), reference, "gsm8k"):
                failures.append((reference, text[-40:]))
        wrong = str(value + 1 if value.denominator == 1 else value * 2)
        if answers_match(extract_answer(f"The answer is {wrong}.", "gsm8k"), reference, "gsm8k"):
            failures.append((reference, f"wrong {wrong} matched"))
    assert len(gsm8k) == 1319
    assert not failures, failures[:10]


def test_gsm8k_reference_drops_thousands_commas_and_needs_the_hashes():
    assert extract_gsm8k_reference("She pays 1,000 + 450,000 = 451,000.\n#### 1,450,000") == "1450000"
    with pytest.raises(ValueError, match="####"):
        extract_gsm8k_reference("no final line")


def test_math500_solutions_agree_with_their_answers(math500):
    disagreeing = [
        uid
        for uid, row in math500.items()
        if not answers_match(extract_answer(row["solution"], "math"), row["answer"], "math")
    ]
    rate = 1 - len(disagreeing) / len(math500)
    assert len(math500) == 500
    assert rate >= MATH500_AGREEMENT_FLOOR, f"agreement {rate:.3f}; disagreeing items: {disagreeing}"


def test_math500_rational_answers_do_not_match_a_neighbouring_value(math500):
    checked = 0
    for row in math500.values():
        try:
            value = Fraction(normalize_answer(row["answer"]))
        except ValueError:
            continue
        checked += 1
        for wrong in (value + 1, value - 1, value + Fraction(1, 1000), *([-value] if value else [])):
            assert not answers_match(str(wrong), row["answer"], "math"), (row["unique_id"], str(wrong))
    assert checked > 250


# unique_id: (predictions that are right, predictions that are wrong)
HAND_PICKED = {
    "test/precalculus/807.json": (["(3, \\pi/2)", "\\left(3,\\frac{\\pi}{2}\\right)"], ["(3, \\pi)", "(\\pi/2, 3)"]),
    "test/algebra/2584.json": (["14/3", "\\dfrac{14}{3}", "4\\frac{2}{3}"], ["4.67", "\\frac{3}{14}"]),
    "test/prealgebra/1742.json": (["0.33", "33/100", "\\frac{33}{100}", "0.330"], ["0.3", "\\frac{1}{3}"]),
    "test/geometry/826.json": (["\\frac{9}{5}", "1.8", "9/5"], ["\\frac{4}{5}", "1"]),
    "test/prealgebra/1003.json": (["\\frac{270}{7}", "270/7", "\\tfrac{270}{7}^\\circ"], ["270", "\\frac{7}{270}"]),
    "test/precalculus/927.json": (["90", "90^{\\circ}", "90 degrees", "90°"], ["45^\\circ", "180"]),
    "test/geometry/473.json": (["864", "864 square inches", "864 \\text{ in}^2"], ["846", "864\\pi"]),
    "test/prealgebra/1044.json": (["5.4", "5.40 cents", "\\$5.4"], ["54", "5.5"]),
    "test/counting_and_probability/737.json": (["58500", "58{,}500", "58,500"], ["58,000", "585"]),
    "test/counting_and_probability/508.json": (["10080", "10,080"], ["1080", "10,800"]),
    "test/algebra/2036.json": (["3 \\sqrt{13}", "\\sqrt{117}"], ["\\sqrt{39}", "13\\sqrt{3}"]),
    "test/prealgebra/1302.json": (["11\\sqrt{2}", "11 \\sqrt 2"], ["11", "2\\sqrt{11}"]),
    "test/precalculus/1199.json": (["\\pi"], ["3.14", "2\\pi"]),
    "test/intermediate_algebra/1111.json": (["20000/\\pi", "\\dfrac{20000}{\\pi}"], ["20000\\pi", "20000"]),
    "test/precalculus/1105.json": (["-\\pi/6", "-\\frac{\\pi}6"], ["\\frac{\\pi}{6}", "-\\frac{\\pi}{3}"]),
    "test/algebra/2486.json": (["(0.6, 8/3]", "\\left( \\frac35, \\frac83 \\right]"], ["[3/5, 8/3]", "(3/5, 8/3)"]),
    "test/precalculus/695.json": (["(-\\infty,0]", "x \\in (-\\infty, 0]"], ["(-\\infty, 0)", "(0, \\infty)"]),
    "test/algebra/101.json": (["[-2, 7]", "x\\in[-2,7]"], ["(-2,7)", "[-2,7)"]),
    "test/intermediate_algebra/1992.json": (["(0, 9)\\cup(9, 36)"], ["(0,36)", "(0,9)\\cup(9,36]"]),
    "test/intermediate_algebra/1388.json": (["1, -2", "-2, 1"], ["1, 2", "1"]),
    "test/precalculus/768.json": (["3\\pm2\\sqrt2", "3-2\\sqrt{2}, 3+2\\sqrt{2}"], ["3+2\\sqrt{2}", "3\\pm\\sqrt2"]),
    "test/precalculus/881.json": (
        ["\\begin{pmatrix}-18\\\\-49\\\\96\\end{pmatrix}"],
        ["\\begin{pmatrix} -18 \\\\ 49 \\\\ 96 \\end{pmatrix}", "(-18, -49)"],
    ),
    "test/precalculus/1300.json": (
        ["\\begin{pmatrix} -\\frac13 \\\\ \\frac{2}{3} \\\\ \\frac53 \\end{pmatrix}"],
        ["\\begin{pmatrix} 1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"],
    ),
    "test/algebra/2193.json": (["5", "x = 5"], ["x=-5", "-5"]),
    "test/precalculus/990.json": (["6-5i", "6 - 5 i"], ["6+5i", "5i-6"]),
    "test/intermediate_algebra/1994.json": (["p-q", "-q + p"], ["q - p", "p+q"]),
    "test/algebra/2735.json": (["\\frac{9a+11}{20}", "(11 + 9a)/20"], ["\\frac{11+9a}{2}", "\\frac{11+a}{20}"]),
    "test/number_theory/598.json": (["0.0000672", "6.72\\times10^{-5}"], ["0.000672", "672"]),
    "test/number_theory/847.json": (["4210_5", "4210_{5}"], ["4210_6", "4201_5"]),
    "test/algebra/1349.json": (["Evelyn", "\\text{evelyn}"], ["Navin", "Evelyn and Navin"]),
    "test/precalculus/452.json": (["(E)", "E", "\\textbf{(E)}"], ["(B)", "B"]),
    "test/intermediate_algebra/2015.json": (["\\{-2, 1\\pm\\sqrt5\\}"], ["\\{1\\pm\\sqrt{5}, 2\\}", "-2"]),
}


@pytest.mark.parametrize("unique_id", sorted(HAND_PICKED))
def test_hand_picked_math500_items_accept_right_and_reject_wrong_predictions(math500, unique_id):
    reference = math500[unique_id]["answer"]
    right, wrong = HAND_PICKED[unique_id]
    for prediction in right:
        assert answers_match(prediction, reference, "math"), (prediction, reference)
        boxed = f"<think>\nworking\n</think>\n\nSo the result is $\\boxed{{{prediction}}}$."
        assert answers_match(extract_answer(boxed, "math"), reference, "math"), (boxed, reference)
    for prediction in wrong:
        assert not answers_match(prediction, reference, "math"), (prediction, reference)


MODEL_OUTPUTS = [
    ("<think>\nFirst 3 + 4 = 7, then 7 * 2 = 14.\n</think>\n\nThe answer is 14.", "gsm8k", "14"),
    ("<think>\nok so 1,200 + 300\n</think>\nShe pays **$1,500** in total.", "gsm8k", "1500"),
    ("<think>\nSo we get \\boxed{42}.\n</think>\n\nI am not sure.", "gsm8k", "42"),
    ("<think>\nhmm 10 apples, 4 eaten\n</think>\n\n#### 6", "gsm8k", "6"),
    ("<think>\nThe budget ran out after 5 then 6", "gsm8k", "6"),
    (
        "<think>\n2 + 2 = 4\n</think>\n\nFinal Answer: The final answer is 18 dollars. I hope it is correct.",
        "gsm8k",
        "18",
    ),
    (
        "<think>compute</think>\n\nFinal Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
        "math",
        "\\frac12",
    ),
    (
        "<think>\nTry x = 3: \\boxed{\\frac{\\sqrt{3}}{3}} maybe.\n</think>\n\nHence \\boxed{\\dfrac{\\sqrt3}{2}}.",
        "math",
        "\\frac{\\sqrt{3}}{2}",
    ),
    ("Answer: 72 degrees", "math", "72^\\circ"),
    ("So the answer is \\fbox{$(1, 2)$}.", "math", "(1,2)"),
    ("We conclude \\boxed{\\left\\{ 1, 2 \\right\\}} holds, so \\boxed 7", "math", "7"),
]


@pytest.mark.parametrize(("text", "kind", "expected"), MODEL_OUTPUTS)
def test_model_style_outputs_give_their_answer(text, kind, expected):
    assert answers_match(extract_answer(text, kind), expected, kind)


def test_no_answer_is_none_and_never_matches():
    assert extract_answer("<think>\nno idea\n</think>\n\nI cannot solve this.", "math") is None
    assert extract_answer("I cannot solve this.", "gsm8k") is None
    assert not answers_match(None, "5", "math")
    assert not answers_match("  ", "5", "gsm8k")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="gsm8k, math"):
        extract_answer("42", "aime")
    with pytest.raises(ValueError, match="gsm8k, math"):
        answers_match("42", "42", "aime")
