"""The labelled judge corpus (see README.md); tools/corpus/build.py writes its composed train.jsonl and dev.jsonl."""
