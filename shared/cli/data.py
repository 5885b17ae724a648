"""`intervene data overlap`: which prompts of evaluation sets also occur in a training set (exact, or by word n-grams).

    intervene data overlap advbench strongreject jbb               # 25 and 11 exact, as ../shared/data/README.md says
    intervene data overlap pairs.jsonl strongreject harmbench-test --json
    intervene data overlap star1 harmbench-test harmbench-val --fail-on-overlap   # exit 1 when any overlap

Prints ids, never prompt text (the sets hold harmful requests) unless --show-text is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from shared.datasets import DatasetError
from shared.evaluation.overlap import DEFAULT_NGRAM, DEFAULT_THRESHOLD, SetOverlap, find_overlap, load_prompt_set


@click.group("data")
def data() -> None:
    """Prompt sets: overlaps between training and evaluation data."""


@data.command("overlap")
@click.argument("train")
@click.argument("eval_sets", nargs=-1, required=True, metavar="EVAL [EVAL...]")
@click.option("--ngram", type=click.IntRange(min=1), default=DEFAULT_NGRAM, show_default=True, help="Words per n-gram.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Share of the shorter prompt's n-grams the other must contain.",
)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder of the named data sets.")
@click.option("--show-text", is_flag=True, help="Also print the overlapping prompts' text (harmful content).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
@click.option("--fail-on-overlap", is_flag=True, help="Exit with status 1 when any overlap is found.")
def overlap(
    train: str,
    eval_sets: tuple[str, ...],
    ngram: int,
    threshold: float,
    data_dir: Path | None,
    show_text: bool,
    as_json: bool,
    fail_on_overlap: bool,
) -> None:
    """Prompts of each EVAL set that also occur in TRAIN (a data set name, a prompt file or an exported pairs file)."""
    try:
        train_set = load_prompt_set(train, data_dir)
        results = [find_overlap(train_set, load_prompt_set(name, data_dir), ngram, threshold) for name in eval_sets]
    except DatasetError as error:
        raise click.UsageError(error.message) from None
    if as_json:
        body = {
            "train": {"name": train_set.name, "prompts": len(train_set)},
            "ngram": ngram,
            "threshold": threshold,
            "eval": [result.as_dict(show_text) for result in results],
        }
        click.echo(json.dumps(body, indent=2))
    else:
        _print_table(train_set.name, len(train_set), results, show_text)
    if fail_on_overlap and any(result.matches for result in results):
        raise SystemExit(1)


def _print_table(train: str, size: int, results: list[SetOverlap], show_text: bool) -> None:
    first = results[0]
    click.echo(
        f"train: {train} ({size} prompts); overlap = same text after normalising, or >= {first.threshold:g} of the "
        f"shorter prompt's word {first.ngram}-grams shared (n-gram counts include exact ones)"
    )
    width = max(len("eval set"), *(len(result.eval) for result in results))
    click.echo(f"{'eval set':<{width}}  {'prompts':>7}  {'exact':>5}  {'n-gram':>6}")
    for result in results:
        click.echo(f"{result.eval:<{width}}  {result.eval_size:>7}  {result.exact:>5}  {result.near:>6}")
    for result in results:
        for method in ("exact", "ngram"):
            ids = [match.id for match in result.matches if match.method == method]
            if ids:
                click.echo(f"{result.eval} {method}: {' '.join(ids)}")
        if show_text:
            for match in result.matches:
                click.echo(f"{result.eval} {match.id} ({match.method}, {match.score:.2f}): {match.text}")
