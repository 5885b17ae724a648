"""The judge service: step labels, first compliance cue and verdicts over gRPC and the work queues."""
