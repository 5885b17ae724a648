"""Runs the generation service: `python -m services.generation` (settings from INTERVENE_* variables)."""

from services.generation.server import main

main()
