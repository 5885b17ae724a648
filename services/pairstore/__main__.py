"""Runs the pair store: `python -m services.pairstore` (settings from INTERVENE_* variables)."""

from services.pairstore.server import main

main()
