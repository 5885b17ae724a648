"""Suffix DPO training (DESIGN §1.5): loss, prefix-shared log-probs, reference cache, data, checkpoints, the loop."""
