"""Prompt sets by name or file: the public safety and reasoning sets of `../shared/data`, any CSV/JSONL file,
and jailbreak-template wrapping. Used by SubmitPrompts, the CLI and evaluation.

    from shared.datasets import load_prompts, wrap_with_templates
    prompts = load_prompts("advbench", limit=20, seed=0)        # list[common_pb2.Prompt]
    prompts = wrap_with_templates(prompts, load_templates("jailbreak-train"), seed=0)
"""

from shared.datasets.catalog import DATASETS, DatasetSpec, dataset_names, load_prompts, resolve_data_dir
from shared.datasets.files import DatasetError, read_rows
from shared.datasets.templates import SLOT, Template, load_templates, wrap_with_templates

__all__ = [
    "DATASETS",
    "SLOT",
    "DatasetError",
    "DatasetSpec",
    "Template",
    "dataset_names",
    "load_prompts",
    "load_templates",
    "read_rows",
    "resolve_data_dir",
    "wrap_with_templates",
]
