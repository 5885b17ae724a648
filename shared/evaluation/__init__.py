"""Evaluation (DESIGN §1.7): scoring a model on held-out sets, and the checks that keep those sets out of training."""
