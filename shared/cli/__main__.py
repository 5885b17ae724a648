"""`python -m shared.cli` is the `intervene` console script."""

from shared.cli.main import cli

cli()
