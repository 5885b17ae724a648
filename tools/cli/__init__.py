"""The `intervene` console script: one click group, a module per area of commands."""
