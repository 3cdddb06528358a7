"""Experiments built from the zoo's models and training loop (the paper's claims, re-measured)."""
