"""Runs the judge service: `python -m services.judge` (settings from INTERVENE_* variables)."""

from services.judge.server import main

main()
