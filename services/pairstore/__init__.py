"""The pair store service: durable, idempotent storage and sharded export of preference pairs."""
