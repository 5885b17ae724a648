"""The labelled judge corpus (train.jsonl, dev.jsonl; see README.md) and the script that writes it."""
