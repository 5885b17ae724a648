"""Prompt sets by name, hub id or file: the public safety and reasoning sets (a local copy in the data folder, else
their Hugging Face Hub copy), `hf:` hub sets, any CSV/JSONL/JSON/Parquet file, and jailbreak-template wrapping.
Used by SubmitPrompts, the CLI, evaluation and the trainer's overlap check.

    from shared.datasets import load_prompts, wrap_with_templates
    prompts = load_prompts("advbench", limit=20, seed=0)        # list[common_pb2.Prompt]
    prompts = wrap_with_templates(prompts, load_templates("jailbreak-train"), seed=0)
"""

from shared.datasets.catalog import (
    DATASETS,
    DatasetSpec,
    dataset_names,
    dataset_rows,
    load_prompts,
    local_copy,
)
from shared.datasets.files import DatasetError, read_rows
from shared.datasets.folder import default_data_dir, resolve_data_dir
from shared.datasets.templates import SLOT, Template, load_templates, wrap_with_templates

__all__ = [
    "DATASETS",
    "SLOT",
    "DatasetError",
    "DatasetSpec",
    "Template",
    "dataset_names",
    "dataset_rows",
    "default_data_dir",
    "load_prompts",
    "load_templates",
    "local_copy",
    "read_rows",
    "resolve_data_dir",
    "wrap_with_templates",
]
