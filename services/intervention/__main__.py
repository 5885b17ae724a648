"""Runs the intervention service: `python -m services.intervention` (settings from INTERVENE_* variables)."""

from services.intervention.server import main

main()
