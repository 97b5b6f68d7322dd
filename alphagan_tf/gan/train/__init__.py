"""Retraining a derived generator: its config, the step, the run loop, EMA, R1, losses."""
