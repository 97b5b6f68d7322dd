"""Retraining a TextNAS architecture: its config, the loop, the classification steps, the export."""
