"""Builds the judge's composed corpus files in shared/judging/corpus/ (train.jsonl, dev.jsonl)."""
