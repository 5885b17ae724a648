"""Jailbreak templates: wrappers with an `[INSERT PROMPT HERE]` slot that the prompt replaces.

A template file is a CSV with a `prompt` column (and optionally `name`), as the Self-Reminder release ships
them, or any other file whose whole text is one template. Templates without the slot are skipped; a file
with none that has it is refused. The names `jailbreak-train`, `jailbreak-itw` and
`jailbreak-heldout` resolve against the data folder (the Self-Reminder release has no hub copy); an
`hf:ORG/NAME[:SPLIT]` set with a `prompt` column (and optionally `name`) is read from the hub.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.datasets.catalog import dataset_rows
from shared.datasets.files import DatasetError, read_rows
from shared.datasets.folder import DATA_DIR_ENV, resolve_data_dir
from shared.protos.intervene.v1 import common_pb2

SLOT = "[INSERT PROMPT HERE]"

NAMED_TEMPLATES = {
    "jailbreak-train": "jailbreak_templates_self_reminder/jailbreak_prompts_train.csv",
    "jailbreak-itw": "jailbreak_templates_self_reminder/jailbreak_prompts_itw.csv",
    "jailbreak-heldout": "jailbreak_templates_self_reminder/jailbreak_prompts.csv",
}
NO_HUB_TEMPLATES = (
    "the Self-Reminder jailbreak templates (yjw1029/Self-Reminder-Data, data/jailbreak_prompts*.csv) have no "
    "Hugging Face Hub copy"
)


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    def wrap(self, prompt: str) -> str:
        return self.text.replace(SLOT, prompt)


def load_templates(name_or_path: str, data_dir: Path | str | None = None) -> list[Template]:
    """The templates of a named set, an `hf:` set or a file; DatasetError (field `template_file`) when one lacks the
    slot or the set cannot be found."""
    named = NAMED_TEMPLATES.get(name_or_path)
    if name_or_path.startswith("hf:"):
        try:
            rows, origin = dataset_rows(name_or_path, data_dir)
        except DatasetError as error:
            raise DatasetError("template_file", error.message) from None
        templates = _from_rows(rows, origin, name_or_path.removeprefix("hf:").replace("/", "-"))
    else:
        path = resolve_data_dir(data_dir) / named if named else Path(name_or_path)
        if named and not path.is_file():
            raise DatasetError(
                "template_file",
                f"templates {name_or_path!r} have no local copy at {path} (data folder {resolve_data_dir(data_dir)}: "
                f"--data-dir or {DATA_DIR_ENV}), and {NO_HUB_TEMPLATES}. Copy those CSV files to "
                f"{path.parent}, or give a template file or an hf: set with a `prompt` column",
            )
        if not path.is_file():
            raise DatasetError(
                "template_file",
                f"no template file {name_or_path[:80]!r}: give a path, an hf: set or one of "
                f"{', '.join(NAMED_TEMPLATES)}",
            )
        templates = _from_file(path)
    usable = [template for template in templates if SLOT in template.text]
    if not usable:
        raise DatasetError(
            "template_file",
            f"no template of {name_or_path[:80]} holds the slot {SLOT} ({len(templates)} read); put the slot where "
            "the prompt goes",
        )
    # A file of many templates (the Self-Reminder sets hold a few continuation-style ones) keeps those with the
    # slot; a lone template without it was refused above.
    return usable


def _from_file(path: Path) -> list[Template]:
    if path.suffix.lower() in (".csv", ".jsonl", ".json", ".parquet"):
        return _from_rows(read_rows(path, field="template_file"), str(path), path.stem)
    try:
        return [Template(path.stem, path.read_text(encoding="utf-8"))]
    except UnicodeDecodeError as error:
        raise DatasetError("template_file", f"{path} is not UTF-8 text: {error}") from None


def _from_rows(rows: list[dict[str, Any]], origin: str, stem: str) -> list[Template]:
    if rows and "prompt" not in rows[0]:
        raise DatasetError("template_file", f"{origin} has no `prompt` column holding the templates")
    return [
        Template(str(row.get("name") or f"{stem}-{number}"), str(row["prompt"]))
        for number, row in enumerate(rows, 1)
        if str(row.get("prompt") or "").strip()
    ]


def wrap_with_templates(
    prompts: list[common_pb2.Prompt], templates: list[Template], seed: int = 0
) -> list[common_pb2.Prompt]:
    """Each prompt wrapped by one template drawn with `seed`; ids and labels record which one."""
    rng = random.Random(seed)
    wrapped = []
    for prompt in prompts:
        template = templates[rng.randrange(len(templates))]
        copy = common_pb2.Prompt()
        copy.CopyFrom(prompt)
        copy.text = template.wrap(prompt.text)
        copy.template = template.name
        copy.id = f"{prompt.id}@{template.name}"
        wrapped.append(copy)
    return wrapped
