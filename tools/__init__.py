"""The operator's tools: the `intervene` console script, the local stack, training launchers, the corpus builder.

They import the library (`shared/`); the library and the services never import them.
"""
