"""Lines a run prints about its progress."""

from __future__ import annotations

from typing import Iterable, Mapping


def format_metrics(metrics: Mapping[str, float], names: Iterable[str]) -> str:
    """'d_loss 0.1234  g_loss 0.5678' for the `names` present in `metrics` (absent ones skipped)."""
    return "  ".join(f"{name} {metrics[name]:.4f}" for name in names if name in metrics)
