"""`intervene train`: suffix DPO training on this machine, in the foreground (torchrun with N processes).

Settings are the trainer's INTERVENE_TRAINER_* fields (shared/config/trainer.py), from the environment, from the
shortcut options below, or from `--set FIELD=VALUE`; they are checked before anything starts:

    intervene train --pairs pairs.jsonl --adapter-name policy-v2 --nproc 2
    intervene train --pair-store 127.0.0.1:50054 --set beta=0.2 --set lora_r=32 --promote
    intervene train --pairs pairs.jsonl --dry-run          # print the torchrun command and its environment

Running the same command again resumes from the run's latest checkpoint. `intervene train submit|logs|wait|delete`
(tools/cli/train_submit.py) run the same job on Kubernetes as a PyTorchJob, built from the same `TrainJob`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click
from pydantic import ValidationError

from shared.config.trainer import TrainerSettings
from tools.cli.train_submit import add_job_commands
from tools.launch.job import TrainJob, parse_overrides, settings_env
from tools.launch.local import torchrun_command


def local_job(settings: TrainerSettings, nproc: int) -> tuple[list[str], dict[str, str]]:
    """The torchrun command and the environment (this one plus the settings as variables) of a local run."""
    job = TrainJob(name="local", env=settings_env(settings), nproc_per_node=nproc)
    return torchrun_command(job), {**os.environ, **job.env}


@click.group("train", invoke_without_command=True)
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True, help="Processes (torchrun).")
@click.option("--pairs", "pairs_file", type=click.Path(path_type=Path, dir_okay=False), help="Exported pairs file.")
@click.option("--pair-store", help="Pair store address host:port (instead of --pairs).")
@click.option("--model", help="Base model folder or hub id (default: the embedded SmolLM2).")
@click.option("--adapter-name", help="Versioned adapter name, e.g. policy-v2.")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), help="Run folder.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Optimizer steps (default: the epochs).")
@click.option("--promote", is_flag=True, default=None, help="Load the adapter into the generation service at the end.")
@click.option(
    "--allow-eval-overlap", is_flag=True, default=None, help="Keep pairs whose prompt is in an evaluation set."
)
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Any trainer setting (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the command and the INTERVENE_TRAINER_* variables; run nothing.")
@click.pass_context
def train(ctx: click.Context, nproc: int, overrides: tuple[str, ...], dry_run: bool, **shortcuts: object) -> None:
    """Train a LoRA adapter with suffix DPO on this machine (or use a subcommand for cluster jobs)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        fields = {k: v for k, v in shortcuts.items() if v is not None}
        fields.update(parse_overrides(overrides))
        settings = TrainerSettings(**fields)
    except (ValueError, ValidationError) as error:
        raise click.UsageError(f"trainer settings: {error}") from error
    command, env = local_job(settings, nproc)
    if dry_run:
        for name, value in sorted(settings_env(settings).items()):
            click.echo(f"{name}={value}")
        click.echo(" ".join(command))
        return
    # Imported here: the training stack pulls in torch, which `intervene --help` should not wait for.
    from shared.training.loop import TrainingInputError, preflight

    try:
        preflight(settings)
    except TrainingInputError as error:
        raise click.UsageError(str(error)) from error
    code = subprocess.run(command, env=env, check=False).returncode
    if code != 0:
        raise click.ClickException(
            f"training exited with status {code}: the trainer's message is above; run the same command again to "
            "resume from the latest checkpoint"
        )


add_job_commands(train)
