"""Versioned pattern files of the rules judge (package data)."""
