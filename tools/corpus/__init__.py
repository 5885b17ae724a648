"""The judge corpus's authoring tools: they write the files of shared/judging/corpus/ (see its README.md)."""
