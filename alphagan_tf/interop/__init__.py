"""Interoperability with the authors' PyTorch implementation (weights by name, checkpoints)."""
