"""Final answers of the reasoning sets (GSM8K, MATH-500): take the answer out of a model's output and decide whether
it equals the reference, so that capability checks (DESIGN §1.7) score accuracy the same way every time.

    reference = extract_gsm8k_reference(row["answer"])   # "18": the text after ####, commas removed
    predicted = extract_answer(output_text, "gsm8k")      # last \\boxed{}, else "the answer is X", else last number
    answers_match(predicted, reference, "gsm8k")          # True

Equivalence, in order: the normalised strings are equal (`normalize_answer` drops LaTeX spacing, \\left/\\right,
units, degrees, $ and %, a leading `x =`, and writes fractions and roots one way); tuples, intervals, matrices and
lists agree element by element (lists and sets in any order); both sides are the same exact rational (0.5 = \\frac12 =
1/2 = 0.50); or, where sympy is installed, both sides agree numerically (relative tolerance 1e-6) at three fixed
points of their variables. Sympy only ever sees a string built by our own LaTeX conversion and checked against a
whitelist of names and characters, and nothing is simplified, so no answer can run code or hang the grader.
"""

from __future__ import annotations

import cmath
import re
from collections.abc import Callable
from fractions import Fraction

KINDS = ("gsm8k", "math")
THINK_CLOSE = "</think>"
REL_TOL = 1e-6

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_PHRASE = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*(?P<rest>[^\n]+)|####\s*(?P<hashes>[^\n]+)", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|\\q?quad|\\displaystyle|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm|mathbf)\s*\{([^{}]*)\}")
_UNIT_AFTER_TEXT = re.compile(r"\\(?:text|mbox|mathrm)\s*\{[^{}]*\}(?:\^\{?\d\}?)?")
_UNIT_WORDS = re.compile(r"^(?P<value>.*?[\d}])\s+[a-zA-Z]{2,}\.?(?:\s+[a-zA-Z]{2,}\.?)*(?:\^\{?\d\}?)?$")
_LEADING_VARIABLE = re.compile(r"^[a-zA-Z]\s*(?:=|\\in)\s*(?=\S)")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")

# What a converted answer may contain before sympy parses it: names of this list, single letters, numbers, operators.
_SYMPY_NAMES = frozenset({"sqrt", "pi", "oo", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "I", "E"})
_SYMPY_CHARS = re.compile(r"^[0-9a-zA-Z+\-*/().,\s]+$")
_LATEX_FUNCTIONS = {
    "\\sin": "sin",
    "\\cos": "cos",
    "\\tan": "tan",
    "\\cot": "cot",
    "\\sec": "sec",
    "\\csc": "csc",
    "\\ln": "log",
    "\\log": "log",
    "\\exp": "exp",
}


def extract_gsm8k_reference(answer_field: str) -> str:
    """The reference answer of a GSM8K row: the text after `####` in its `answer` column, commas removed."""
    if "####" not in answer_field:
        raise ValueError("a GSM8K answer field ends with '#### <answer>'; this one has no '####'")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")


def extract_answer(text: str, kind: str) -> str | None:
    """The final answer in a model's output, or None when it gives none.

    Looks in the response (after `</think>`) first and in the reasoning when the response has no answer: the last
    `\\boxed{...}`/`\\fbox{...}`, else the last "the answer is X" / "Answer: X" / "#### X", else (gsm8k only) the
    last number of the text.
    """
    _check_kind(kind)
    if THINK_CLOSE in text:
        reasoning, response = text.rsplit(THINK_CLOSE, 1)
        parts = [response, reasoning.replace("<think>", "")]
    else:
        parts = [text]
    for part in parts:
        answer = _last_boxed(part) or _last_phrase(part, kind)
        if answer is None and kind == "gsm8k":
            answer = _last_number(part)
        if answer:
            return answer
    return None


def normalize_answer(text: str) -> str:
    """One spelling of an answer: no LaTeX spacing, units, degrees, $, %, \\left/\\right or leading `x =`;
    `\\dfrac`/`\\tfrac`/`\\frac12` become `\\frac{1}{2}`, `\\sqrt2` becomes `\\sqrt{2}`, thousands lose their commas
    and spaces go."""
    s = text.strip()
    boxed = _last_boxed(s)
    if boxed is not None and s.startswith(_BOX_COMMANDS):
        s = boxed
    s = _strip_math_delimiters(s).replace("\n", " ")
    s = _SPACING.sub(" ", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    whole_text = re.fullmatch(r"\s*" + _TEXT_COMMAND.pattern + r"\s*", s)
    if whole_text:
        s = whole_text.group(1)
    elif _UNIT_AFTER_TEXT.sub("", s).strip():
        s = _UNIT_AFTER_TEXT.sub("", s)
    s = s.strip().rstrip(".").strip()
    unit = _UNIT_WORDS.match(s)
    if unit:
        s = unit.group("value")
    s = _LEADING_VARIABLE.sub("", s)
    s = s.replace(" ", "")
    s = _fix_sqrt(_fix_fracs(s))
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)
    s = re.sub(r"\^\{(\w)\}", r"^\1", s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    simple_fraction = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if simple_fraction:
        s = f"\\frac{{{simple_fraction.group(1)}}}{{{simple_fraction.group(2)}}}"
    s = re.sub(r"^(-?)\.(\d)", r"\g<1>0.\2", s)
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)
    choice = _CHOICE.fullmatch(s)
    return choice.group(1).upper() if choice else s


def answers_match(predicted: str | None, reference: str, kind: str) -> bool:
    """Whether `predicted` (from `extract_answer`) is the same answer as `reference`."""
    _check_kind(kind)
    if predicted is None or not predicted.strip():
        return False
    return _equivalent(normalize_answer(predicted), normalize_answer(reference))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"answer kind {kind!r} is not one of {', '.join(KINDS)}")


def _equivalent(a: str, b: str) -> bool:
    if a == b:
        return True
    if re.fullmatch(r"[A-Za-z ]+", a) and re.fullmatch(r"[A-Za-z ]+", b):
        return a.casefold() == b.casefold()
    parts_a, parts_b = _elements(a), _elements(b)
    if parts_a is not None or parts_b is not None:
        return parts_a is not None and parts_b is not None and _same_elements(parts_a, parts_b)
    rational_a, rational_b = _rational(a), _rational(b)
    if rational_a is not None and rational_b is not None:
        return rational_a == rational_b
    return _sympy_equal(a, b)


def _same_elements(a: tuple[str, list[str]], b: tuple[str, list[str]]) -> bool:
    (shape_a, items_a), (shape_b, items_b) = a, b
    if shape_a != shape_b or len(items_a) != len(items_b):
        return False
    if shape_a not in ("list", "set"):
        return all(_equivalent(x, y) for x, y in zip(items_a, items_b, strict=True))
    unmatched = list(items_b)
    for item in items_a:
        match = next((index for index, other in enumerate(unmatched) if _equivalent(item, other)), None)
        if match is None:
            return False
        unmatched.pop(match)
    return True


def _elements(s: str) -> tuple[str, list[str]] | None:
    """(shape, items) of a tuple, interval, matrix, set, union or plain list; None for a single value.

    Shapes keep what makes two answers differ: an interval's brackets, `(a,b)` against `[a,b]`; lists and sets
    compare in any order, the others in order.
    """
    matrix = re.fullmatch(r"\\begin\{[pbv]?matrix\}(.*)\\end\{[pbv]?matrix\}", s)
    if matrix:
        return "matrix", [cell for row in matrix.group(1).split("\\\\") for cell in row.split("&")]
    union = _split_top(s, "\\cup")
    if len(union) > 1:
        return "union", union
    plus_minus = _split_top(s, "\\pm")
    if len(plus_minus) == 2 and plus_minus[0]:
        return "list", [f"{plus_minus[0]}+{plus_minus[1]}", f"{plus_minus[0]}-{plus_minus[1]}"]
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set", _split_top(s[2:-2], ",")
    if len(s) > 2 and s[0] in "([" and s[-1] in ")]" and _balanced(s[1:-1]):
        items = _split_top(s[1:-1], ",")
        if len(items) > 1:
            return s[0] + s[-1], items
    items = _split_top(s, ",")
    return ("list", items) if len(items) > 1 else None


def _split_top(s: str, separator: str) -> list[str]:
    """`s` split at `separator` where it is outside every bracket."""
    items, depth, start, index = [], 0, 0, 0
    while index < len(s):
        char = s[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(separator, index):
            items.append(s[start:index])
            index += len(separator)
            start = index
            continue
        index += 1
    items.append(s[start:])
    return items


def _balanced(s: str) -> bool:
    depth = 0
    for char in s:
        depth += (char in "([{") - (char in ")]}")
        if depth < 0:
            return False
    return depth == 0


def _rational(s: str) -> Fraction | None:
    """The exact value of an integer, decimal, fraction, `a/b` or mixed number (`1\\frac{4}{5}` = 9/5)."""
    if re.fullmatch(r"-?\d+(?:\.\d+)?", s):
        return Fraction(s)
    fraction = re.fullmatch(r"(-?)(\d+)?\\frac\{(-?\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}", s)
    if fraction:
        sign, whole, numerator, denominator = fraction.groups()
        if Fraction(denominator) == 0:
            return None
        value = Fraction(whole or 0) + Fraction(numerator) / Fraction(denominator)
        return -value if sign else value
    ratio = re.fullmatch(r"(-?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)", s)
    if ratio and Fraction(ratio.group(2)) != 0:
        return Fraction(ratio.group(1)) / Fraction(ratio.group(2))
    return None


def _last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` or `\\fbox{...}` (braces balanced), or of `\\boxed 5`."""
    starts = sorted((text.rfind(command), command) for command in _BOX_COMMANDS)
    for start, command in reversed(starts):
        while start >= 0:
            content = _boxed_at(text, start + len(command))
            if content is not None:
                return content
            start = text.rfind(command, 0, start)
    return None


def _boxed_at(text: str, index: int) -> str | None:
    if index < len(text) and text[index] == " ":
        plain = re.match(r"\s+([^\s$]+)", text[index:])
        return plain.group(1) if plain else None
    if index >= len(text) or text[index] != "{":
        return None
    depth = 0
    for position in range(index, len(text)):
        depth += (text[position] == "{") - (text[position] == "}")
        if depth == 0:
            content = text[index + 1 : position].strip()
            return content or None
    return None


def _last_phrase(text: str, kind: str) -> str | None:
    matches = list(_PHRASE.finditer(text))
    for match in reversed(matches):
        candidate = _clean_phrase(match.group("rest") or match.group("hashes"))
        if kind == "gsm8k" and candidate and _rational(normalize_answer(candidate)) is None:
            candidate = _last_number(candidate, first=True)
        if candidate:
            return candidate
    return None


def _clean_phrase(rest: str) -> str:
    math = re.search(r"\$([^$]+)\$|\\\((.+?)\\\)", rest)
    if math:
        return (math.group(1) or math.group(2)).strip()
    sentence = re.split(r"(?<![\d.])\.(?:\s|$)|\.\s|;\s", rest, maxsplit=1)[0]
    return sentence.strip().strip("*").strip()


def _last_number(text: str, first: bool = False) -> str | None:
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    return (numbers[0] if first else numbers[-1]).replace(",", "")


def _strip_math_delimiters(s: str) -> str:
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) > len(opener) + len(closer) and s.startswith(opener) and s.endswith(closer):
            return s[len(opener) : -len(closer)].strip()
    return s


def _fix_fracs(s: str) -> str:
    """`\\frac12`, `\\frac1{2}`, `\\frac{1}2` → `\\frac{1}{2}` (one-character arguments get braces)."""
    return _fix_command_args(s, "\\frac", 2)


def _fix_sqrt(s: str) -> str:
    return _fix_command_args(s, "\\sqrt", 1)


def _fix_command_args(s: str, command: str, count: int) -> str:
    pieces = s.split(command)
    out = pieces[0]
    for piece in pieces[1:]:
        out += command
        rest = piece
        for _ in range(count):
            if rest.startswith(("{", "[")):
                closing = _matching(rest)
                if closing is None:
                    break
                out += rest[: closing + 1]
                rest = rest[closing + 1 :]
            elif rest:
                command_arg = re.match(r"\\[a-zA-Z]+|.", rest)
                out += "{" + command_arg.group(0) + "}"
                rest = rest[command_arg.end() :]
        out += rest
    return out


def _matching(s: str) -> int | None:
    """Index of the bracket closing the one `s` starts with."""
    opener = s[0]
    closer = "}" if opener == "{" else "]"
    depth = 0
    for index, char in enumerate(s):
        depth += (char == opener) - (char == closer)
        if depth == 0:
            return index
    return None


def _to_sympy_source(s: str) -> str | None:
    """A sympy expression string for a LaTeX answer, or None when it holds something outside the whitelist."""
    s = _replace_command(s, "\\frac", 2, lambda a, b: f"(({a})/({b}))")
    s = _replace_command(s, "\\sqrt", 1, lambda a: f"sqrt({a})")
    if s is None:
        return None
    for latex, name in _LATEX_FUNCTIONS.items():
        s = s.replace(latex, name)
    s = s.replace("\\pi", " pi ").replace("\\infty", " oo ").replace("\\cdot", "*").replace("\\times", "*")
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    if "\\" in s or not _SYMPY_CHARS.fullmatch(s) or len(s) > 200 or re.search(r"\*\*\s*\(?\s*\d{4,}", s):
        return None
    names = set(re.findall(r"[A-Za-z]+", s))
    if any(len(name) > 1 and name not in _SYMPY_NAMES for name in names):
        return None
    return re.sub(r"(?<![A-Za-z])i(?![A-Za-z])", "I", s)


def _replace_command(s: str | None, command: str, count: int, build: Callable[..., str]) -> str | None:
    """`s` with every `command{a}{b}` replaced by `build(a, b)` (innermost arguments converted first)."""
    while s is not None and command in s:
        start = s.rfind(command)
        rest = s[start + len(command) :]
        args = []
        for _ in range(count):
            if not rest.startswith("{"):
                return None
            closing = _matching(rest)
            if closing is None:
                return None
            args.append(rest[1:closing])
            rest = rest[closing + 1 :]
        s = s[:start] + build(*args) + rest
    return s


def _sympy_equal(a: str, b: str) -> bool:
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            convert_xor,
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )
    except ImportError:
        return False
    source_a, source_b = _to_sympy_source(a), _to_sympy_source(b)
    if source_a is None or source_b is None:
        return False
    transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
    names = {name: getattr(sympy, name) for name in _SYMPY_NAMES}
    letters = set(re.findall(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])", source_a + " " + source_b)) - {"I", "E"}
    names.update({letter: sympy.Symbol(letter) for letter in letters})
    try:
        # Unevaluated trees: evalf works numerically, so 9^{9^{9}} never becomes an exact integer.
        expr_a = parse_expr(source_a, local_dict=names, transformations=transformations, evaluate=False)
        expr_b = parse_expr(source_b, local_dict=names, transformations=transformations, evaluate=False)
        symbols = sorted(expr_a.free_symbols | expr_b.free_symbols, key=str)
        points = [{symbol: 0.37 + 0.61 * k + 0.13 * j for j, symbol in enumerate(symbols)} for k in range(3)]
        for point in points if symbols else [{}]:
            value_a = complex(expr_a.evalf(subs=point))
            value_b = complex(expr_b.evalf(subs=point))
            if not (cmath.isfinite(value_a) and cmath.isfinite(value_b)):
                if value_a != value_b:
                    return False
            elif abs(value_a - value_b) > REL_TOL * max(abs(value_a), abs(value_b), 1e-9):
                return False
        return True
    except (TypeError, ValueError, ZeroDivisionError, SyntaxError, AttributeError, OverflowError, sympy.SympifyError):
        return False
