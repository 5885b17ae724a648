"""The trainer: entrypoint of the training PyTorchJob (not a gRPC server)."""
