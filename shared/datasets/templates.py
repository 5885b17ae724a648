"""Jailbreak templates: wrappers with an `[INSERT PROMPT HERE]` slot that the prompt replaces.

A template file is a CSV with a `prompt` column (and optionally `name`), as the Self-Reminder release ships
them, or any other file whose whole text is one template. Templates without the slot are skipped; a file
with none that has it is refused. The names `jailbreak-train`, `jailbreak-itw` and
`jailbreak-heldout` resolve against the data folder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from shared.datasets.catalog import resolve_data_dir
from shared.datasets.files import DatasetError, read_rows
from shared.protos.intervene.v1 import common_pb2

SLOT = "[INSERT PROMPT HERE]"

NAMED_TEMPLATES = {
    "jailbreak-train": "jailbreak_templates_self_reminder/jailbreak_prompts_train.csv",
    "jailbreak-itw": "jailbreak_templates_self_reminder/jailbreak_prompts_itw.csv",
    "jailbreak-heldout": "jailbreak_templates_self_reminder/jailbreak_prompts.csv",
}


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    def wrap(self, prompt: str) -> str:
        return self.text.replace(SLOT, prompt)


def load_templates(name_or_path: str, data_dir: Path | str | None = None) -> list[Template]:
    """The templates of a named set or a file; DatasetError (field `template_file`) when one lacks the slot."""
    named = NAMED_TEMPLATES.get(name_or_path)
    path = resolve_data_dir(data_dir) / named if named else Path(name_or_path)
    if not path.is_file():
        raise DatasetError(
            "template_file",
            f"no template file {name_or_path[:80]!r}: give a path or one of {', '.join(NAMED_TEMPLATES)}",
        )
    if path.suffix.lower() in (".csv", ".jsonl", ".json"):
        rows = read_rows(path, field="template_file")
        if rows and "prompt" not in rows[0]:
            raise DatasetError("template_file", f"{path} has no `prompt` column holding the templates")
        templates = [
            Template(str(row.get("name") or f"{path.stem}-{number}"), str(row["prompt"]))
            for number, row in enumerate(rows, 1)
            if str(row.get("prompt") or "").strip()
        ]
    else:
        try:
            templates = [Template(path.stem, path.read_text(encoding="utf-8"))]
        except UnicodeDecodeError as error:
            raise DatasetError("template_file", f"{path} is not UTF-8 text: {error}") from None
    usable = [template for template in templates if SLOT in template.text]
    if not usable:
        raise DatasetError(
            "template_file",
            f"no template of {path} holds the slot {SLOT} ({len(templates)} read); put the slot where the prompt goes",
        )
    # A file of many templates (the Self-Reminder sets hold a few continuation-style ones) keeps those with the
    # slot; a lone template without it was refused above.
    templates = usable
    return templates


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
