"""Python stubs generated from proto/intervene/v1 (regenerate with `make protos`; never edit by hand)."""
