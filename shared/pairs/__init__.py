"""Preference pairs: their ids, durable storage in Redis and export in TRL's format."""
