"""The Intervene library: the algorithm, queues, RPC scaffolding and configuration every service imports."""
