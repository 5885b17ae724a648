"""Entry point of the `intervene` console script; each area registers its commands here."""

from __future__ import annotations

import click

from shared.cli.data import data
from shared.cli.demo import demo
from shared.cli.evaluate import evaluate
from shared.cli.judge import judge
from shared.cli.pairs import pairs
from shared.cli.queues import queues
from shared.cli.reproduce import reproduce
from shared.cli.rollout import rollout
from shared.cli.serve import serve
from shared.cli.stack import down, status, up
from shared.cli.submit import submit
from shared.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intervene")
def cli() -> None:
    """Intervene: safe reasoning for large reasoning models (Intervened Preference Optimization)."""


for command in (up, status, down, demo, evaluate, pairs, queues, serve):
    cli.add_command(command)
cli.add_command(data)
cli.add_command(judge)
cli.add_command(train)
cli.add_command(rollout)
cli.add_command(submit)
cli.add_command(reproduce)
