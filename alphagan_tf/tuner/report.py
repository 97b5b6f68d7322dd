"""The record of a tuning run: every trial with its genotype, objective and error.

`write_report(tuner, out_dir)` writes, next to KerasTuner's own files:

    trials.csv          one line per trial (start order): status, FID, IS, ..., the best
                        FID so far, the op of every edge, and the error of a failed trial
    trials.png          FID per trial, best so far, failed trials marked
    trial_errors.txt    the full traceback of every failed trial
    best_genotype.json  the genotype of the best completed trial (our Genotype JSON;
                        `load_genotype` / `--genotype=` read it)
    tune_summary.json   counts, the best trial and the failed trials' errors

KerasTuner marks a trial whose `run_trial` raised as FAILED and carries on; a
failed trial is listed with its error here, never counted as done.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Sequence

from alphagan_tf.gan.space.genotypes import EDGE_NAMES, Genotype
from alphagan_tf.tuner.space import values_to_genotype
from alphagan_tf.utils import files

METRIC_COLUMNS = ("fid", "inception_score", "inception_score_std", "kid", "generator_params",
                  "train_seconds", "eval_seconds")


def _error_line(message: str | None) -> str:
    """The last line of a traceback: the exception type and message."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def trial_rows(tuner) -> list[dict]:
    """One dict per trial in start order: id, status, metrics, genotype values, error.

    Keys: "trial", "status" (COMPLETED, FAILED, INVALID, RUNNING...), "fid", ... (the
    metrics, NaN when absent), "epochs" (Hyperband), each edge name -> op, "error"
    (the exception line of a failed trial, "" otherwise) and "traceback".
    """
    oracle = tuner.oracle
    order = list(oracle.start_order) + [t for t in oracle.trials if t not in oracle.start_order]
    rows = []
    for trial_id in order:
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        row = {"trial": trial_id, "status": str(trial.status)}
        for name in METRIC_COLUMNS:
            value = math.nan
            if trial.metrics.exists(name):
                last = trial.metrics.get_last_value(name)
                value = float(last) if last is not None else math.nan
            row[name] = value
        row["epochs"] = values.get("tuner/epochs", "")
        for name in EDGE_NAMES:
            row[name] = values.get(name, "")
        failed = row["status"] != "COMPLETED" and row["status"] != "RUNNING"
        row["error"] = _error_line(trial.message) if failed else ""
        row["traceback"] = (trial.message or "") if failed else ""
        rows.append(row)
    return rows


def completed(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r["status"] == "COMPLETED" and math.isfinite(r["fid"])]


def failed(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r["status"] in ("FAILED", "INVALID")]


def best_row(rows: Sequence[dict]) -> dict | None:
    """The completed trial with the lowest FID (first on ties), or None."""
    done = completed(rows)
    return min(done, key=lambda r: r["fid"]) if done else None


def row_genotype(row: dict) -> Genotype:
    return values_to_genotype({name: row[name] for name in EDGE_NAMES})


def write_trials_csv(rows: Sequence[dict], path: str) -> str:
    """trials.csv: one line per trial with the best FID so far (tracebacks left out)."""
    columns = ["trial", "status", *METRIC_COLUMNS, "best_fid_so_far", "epochs", *EDGE_NAMES,
               "error"]
    best = math.inf
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            if row["status"] == "COMPLETED" and math.isfinite(row["fid"]):
                best = min(best, row["fid"])
            writer.writerow({**row, "best_fid_so_far": best if math.isfinite(best) else ""})
    os.replace(tmp, path)
    return path


def plot_trials(rows: Sequence[dict], path: str, title: str = "") -> str:
    """trials.png: FID of every trial, the best so far, failed trials marked."""
    # matplotlib: loaded only to draw
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib: loaded only to draw
    import matplotlib.pyplot as plt

    xs = [int(r["trial"]) if str(r["trial"]).isdigit() else i for i, r in enumerate(rows)]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    done = [(x, r["fid"]) for x, r in zip(xs, rows)
            if r["status"] == "COMPLETED" and math.isfinite(r["fid"])]
    best, best_line = math.inf, []
    for x, r in zip(xs, rows):
        if r["status"] == "COMPLETED" and math.isfinite(r["fid"]):
            best = min(best, r["fid"])
        best_line.append(best if math.isfinite(best) else math.nan)
    if done:
        ax.scatter([x for x, _ in done], [y for _, y in done], s=18, label="trial FID")
        ax.step(xs, best_line, where="post", color="C1", label="best so far")
    bad = [x for x, r in zip(xs, rows) if r["status"] in ("FAILED", "INVALID")]
    if bad:
        top = max([y for _, y in done], default=1.0)
        ax.scatter(bad, [top] * len(bad), marker="x", color="red", label="failed")
    ax.set_xlabel("trial id")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(title or f"{len(done)} completed, {len(bad)} failed of {len(rows)} trials",
                 fontsize=9)
    ax.grid(alpha=0.3)
    if done or bad:
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_report(tuner, out_dir: str, stopped_reason: str = "") -> dict:
    """Writes the files of the module docstring; returns the summary dict.

    Args:
        tuner: a KerasTuner tuner after (or during an interrupted) `search`.
        out_dir: where to write them.
        stopped_reason: why the search ended early (KerasTuner's RuntimeError text), if so.

    Returns:
        {"trials", "completed", "failed", "running", "best": {...} or None,
         "failures": [{"trial", "error"}], "stopped_reason"}.
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = trial_rows(tuner)
    write_trials_csv(rows, os.path.join(out_dir, "trials.csv"))
    plot_trials(rows, os.path.join(out_dir, "trials.png"))
    bad = failed(rows)
    errors_path = os.path.join(out_dir, "trial_errors.txt")
    if bad:
        files.write_text_atomic(errors_path, "\n".join(
            f"=== trial {r['trial']} {r['status']}\n{r['traceback'].rstrip()}\n" for r in bad))
    elif os.path.exists(errors_path):
        os.remove(errors_path)
    best = best_row(rows)
    best_summary = None
    if best is not None:
        genotype = row_genotype(best)
        genotype.save(os.path.join(out_dir, "best_genotype.json"))
        best_summary = {"trial": best["trial"], "fid": best["fid"],
                        "inception_score": best["inception_score"],
                        "genotype": genotype.to_dict()}
    summary = {
        "trials": len(rows),
        "completed": len(completed(rows)),
        "failed": len(bad),
        "running": sum(r["status"] == "RUNNING" for r in rows),
        "best": best_summary,
        "failures": [{"trial": r["trial"], "status": r["status"], "error": r["error"]}
                     for r in bad],
        "stopped_reason": stopped_reason,
    }
    files.write_json_atomic(os.path.join(out_dir, "tune_summary.json"), summary)
    return summary


def format_summary(summary: dict, rows: Sequence[dict] | None = None) -> str:
    """Human-readable lines: one per trial (when `rows` given), then the totals."""
    lines = []
    if rows:
        lines.append(f"{'trial':<7}{'status':<11}{'FID':>9}{'IS':>8}  error")
        for r in rows:
            fid = f"{r['fid']:.3f}" if math.isfinite(r["fid"]) else "-"
            is_ = f"{r['inception_score']:.3f}" if math.isfinite(r["inception_score"]) else "-"
            lines.append(f"{r['trial']:<7}{r['status']:<11}{fid:>9}{is_:>8}  {r['error']}")
    lines.append(
        f"{summary['completed']} completed, {summary['failed']} FAILED, "
        f"{summary['running']} interrupted of {summary['trials']} trials."
    )
    for f in summary["failures"]:
        lines.append(f"FAILED trial {f['trial']}: {f['error']}")
    if summary["stopped_reason"]:
        lines.append("KerasTuner stopped the search: "
                     + summary["stopped_reason"].strip().splitlines()[0])
    if summary["best"]:
        b = summary["best"]
        lines.append(f"best: trial {b['trial']} FID {b['fid']:.4f} IS {b['inception_score']:.4f}")
    else:
        lines.append("No trial completed: no best genotype.")
    return "\n".join(lines)
