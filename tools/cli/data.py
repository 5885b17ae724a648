"""`intervene data`: where the named sets are (`list`), local copies for machines without hub access (`fetch`), and
which prompts of evaluation sets also occur in a training set (`overlap`: exact, or by word n-grams).

    intervene data list                                            # each set: local copy or hub id
    intervene data fetch strongreject jbb xstest-safe gsm8k --out /mnt/data   # then INTERVENE_DATA_DIR=/mnt/data
    intervene data overlap advbench strongreject jbb               # 25 and 11 exact
    intervene data overlap pairs.jsonl strongreject harmbench-test --json
    intervene data overlap star1 harmbench-test harmbench-val --fail-on-overlap   # exit 1 when any overlap

Prints ids and counts, never prompt text (the sets hold harmful requests) unless --show-text is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from shared.datasets import DATASETS, DatasetError, local_copy, resolve_data_dir
from shared.datasets.fetch import fetch
from shared.datasets.templates import NAMED_TEMPLATES
from shared.evaluation.overlap import DEFAULT_NGRAM, DEFAULT_THRESHOLD, SetOverlap, find_overlap, load_prompt_set

DATA_DIR_HELP = (
    "Data folder of the named sets' local copies (default: $INTERVENE_DATA_DIR, else ~/.local/share/intervene/data)."
)


@click.group("data")
def data() -> None:
    """Prompt sets: where they are, local copies from the hub, overlaps between training and evaluation data."""


@data.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=DATA_DIR_HELP)
def list_sets(data_dir: Path | None) -> None:
    """Each named set and where it is read from: its local copy when there is one, else its hub copy."""
    click.echo(f"data folder: {resolve_data_dir(data_dir)}")
    width = max(map(len, [*DATASETS, *NAMED_TEMPLATES]))
    for name, spec in sorted(DATASETS.items()):
        path = local_copy(name, data_dir)
        if spec.builtin:
            where = "built in"
        elif path is not None and path.is_file():
            where = f"local copy {path}"
        elif spec.hub:
            where = "hub " + ", ".join(source.describe() for source in spec.hub)
        else:
            where = f"missing (no hub copy: put the file at {path})"
        click.echo(f"{name:<{width}}  {where}")
    for name, relative in NAMED_TEMPLATES.items():
        path = resolve_data_dir(data_dir) / relative
        where = f"local copy {path}" if path.is_file() else f"missing (no hub copy: put the file at {path})"
        click.echo(f"{name:<{width}}  {where}")


@data.command("fetch")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the copies to, in the data folder's layout (default: the data folder).",
)
def fetch_sets(names: tuple[str, ...], out: Path | None) -> None:
    """Write local copies of named sets (or hf:ORG/NAME[/CONFIG][@REV][:SPLIT] sets) read from the Hugging Face Hub.

    Run it where the hub is reachable (HF_TOKEN for gated sets), then copy the folder to the machines without it
    and point INTERVENE_DATA_DIR (or --data-dir) at it. Prints the files and row counts, never their text.
    """
    folder = out or resolve_data_dir()
    failures = []
    for name in dict.fromkeys(names):
        try:
            copied = fetch(name, folder)
        except DatasetError as error:
            failures.append(f"{name}: {error.message}")
            continue
        click.echo(f"{name}: {copied.rows} rows from {copied.source} -> {copied.path}")
    if failures:
        raise click.ClickException("could not fetch\n  " + "\n  ".join(failures))
    click.echo(f"data folder written: {folder} (set INTERVENE_DATA_DIR={folder} where it is used)")


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
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=DATA_DIR_HELP)
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
