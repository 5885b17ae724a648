"""Shipped classifier judge model files (package data), written by `intervene judge fit`."""
