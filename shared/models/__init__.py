"""Model loading shared by generation, training and evaluation."""
