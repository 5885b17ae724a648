"""Entry point of the `intervene` console script; each area registers its commands here."""

from __future__ import annotations

import click

from tools.cli.data import data
from tools.cli.demo import demo
from tools.cli.evaluate import evaluate
from tools.cli.judge import judge
from tools.cli.pairs import pairs
from tools.cli.queues import queues
from tools.cli.reproduce import reproduce
from tools.cli.rollout import rollout
from tools.cli.serve import serve
from tools.cli.stack import down, status, up
from tools.cli.submit import submit
from tools.cli.train import train


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
