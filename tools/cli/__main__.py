"""`python -m tools.cli` is the `intervene` console script."""

from tools.cli.main import cli

cli()
