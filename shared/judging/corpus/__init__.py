"""The labelled judge corpus (see README.md); the tools in tools/corpus/ write its files."""
