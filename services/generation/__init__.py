"""The generation service: rollouts and exact-prefix continuations over gRPC and the work queues."""
