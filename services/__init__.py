"""The Intervene services: thin gRPC servers and queue workers over the `shared` library."""
