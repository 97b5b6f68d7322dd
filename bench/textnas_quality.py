"""What a TextNAS search is worth: retrain its architecture on several seeds beside the controls.

Every architecture of the comparison (the searches' `architecture.json` files, a preset,
uniformly random ones as `random:<seed>`) is retrained with one recipe (a
`python -m alphagan_tf.textnas.train` flagfile) on every seed; each run evaluates dev
during training, keeps the best dev weights and reads test once. Then per
architecture: test and dev accuracy, mean and sd over seeds, the retraining's CPU
time, and a paired comparison with a reference architecture (the same seed both ways).

    python bench/textnas_quality.py --train_flagfile=configs/train_sst2.cfg \\
        --architectures=enas=configs/architectures/sst2_enas.json,darts=configs/architectures/sst2_darts.json,random:0,random:1,random:2 \\
        --seeds=0,1,2 --reference=enas --jobs=2 --threads_per_job=1 --workdir=runs/textnas_quality_sst2

Resumable: each (architecture, seed) is its own train workdir under WORKDIR/runs/ with
bench_timing.json once finished; rerunning the command skips what is done and resumes
a half-trained run from its checkpoint. Writes WORKDIR/summary.json, summary.md (the
tables) and quality.png (test accuracy per architecture, seeds as points).

Never part of the test run's timings; nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import re
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)

from search_quality import paired_difference, run_timed, summarize  # noqa: E402  (bench/search_quality.py)

from alphagan_tf.utils import files  # noqa: E402


def parse_architectures(text: str) -> list[tuple[str, str]]:
    """'enas=a.json,random:0,textnas_paper' -> [("enas", "a.json"), ("random:0", "random:0"), ...]."""
    entries = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, separator, source = item.partition("=")
        entries.append((label, source) if separator and source else (item, item))
    labels = [label for label, _ in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--architectures: labels must be unique. Received: {labels}")
    return entries


def parse_baselines(items: list[str]) -> dict[str, float]:
    """['CNN-rand=82.7'] -> {"CNN-rand": 82.7}: published accuracies drawn as lines."""
    baselines = {}
    for item in items:
        name, separator, value = item.rpartition("=")
        try:
            baselines[name] = float(value)
        except ValueError:
            separator = ""
        if not (separator and name):
            raise ValueError(f"--baseline must be NAME=ACCURACY. Received: {item!r}")
    return baselines


def architecture_summary(ops: list[str], skips: int | None = None) -> str:
    """'5 bi_gru, 4 conv_3, ...' (most frequent first, ties by name), plus the skip count."""
    counts = collections.Counter(ops)
    text = ", ".join(f"{n} {op}" for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return text + (f"; {skips} skips" if skips is not None else "")


def run_dir(args, label: str, seed: int) -> str:
    return os.path.join(args.workdir, "runs", f"{label.replace(':', '_')}_seed{seed}")


def train_command(args, source: str, seed: int, directory: str) -> list[str]:
    return [sys.executable, "-m", "alphagan_tf.textnas.train", f"--flagfile={args.train_flagfile}",
            f"--architecture={source}", f"--seed={seed}", f"--workdir={directory}",
            *args.train_flag]


def read_result(args, label: str, seed: int) -> dict | None:
    """{"label", "seed", "test", "dev", "cpu_s", ...} of a finished run (None otherwise)."""
    directory = run_dir(args, label, seed)
    results_path = os.path.join(directory, "results.json")
    timing_path = os.path.join(directory, "bench_timing.json")
    if not (os.path.exists(results_path) and os.path.exists(timing_path)):
        return None
    with open(results_path) as f:
        results = json.load(f)
    with open(timing_path) as f:
        timing = json.load(f)
    with open(os.path.join(directory, "architecture.json")) as f:
        skips = sum(len(layer["skips"]) for layer in json.load(f)["layers"])
    return {"label": label, "seed": seed, "test": 100 * results["test_accuracy"],
            "dev": 100 * results["dev_accuracy"], "best_step": results["best_step"],
            "steps": results["steps"], "parameters": results["num_parameters"],
            "ops": results["ops"], "skips": skips, **timing}


def checkpoint_step(directory: str) -> int:
    """Step of the newest retraining checkpoint in a run directory (0: none, a fresh start)."""
    checkpoints = os.path.join(directory, "checkpoints")
    names = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
    return max((int(match.group(1)) for name in names
                if (match := re.fullmatch(r"ckpt-(\d+)\.index", name))), default=0)


def train(args, label: str, source: str, seed: int) -> dict:
    """Runs (or resumes) one retraining as a subprocess; returns its result.

    bench_timing.json holds the CPU of this process only, so a run resumed from a
    checkpoint records `resumed_from_step` and is left out of the CPU column.
    """
    if (result := read_result(args, label, seed)) is not None:
        return result
    directory = run_dir(args, label, seed)
    os.makedirs(directory, exist_ok=True)
    resumed_from_step = checkpoint_step(directory)
    wall_s, cpu_s = run_timed(train_command(args, source, seed, directory),
                              os.path.join(directory, "train.log"), args.threads_per_job,
                              f"{label} seed {seed}")
    files.write_json_atomic(os.path.join(directory, "bench_timing.json"),
                            {"wall_s": wall_s, "cpu_s": cpu_s, "resumed_from_step": resumed_from_step})
    if (result := read_result(args, label, seed)) is None:  # e.g. stopped by --max_steps
        raise RuntimeError(f"{label} seed {seed}: training ended without results.json; "
                           f"see {os.path.join(directory, 'train.log')}")
    return result


def _mean_sd(entry: dict) -> str:
    """'83.17 (1.51)'; one seed has no sd: '83.17 (-)'."""
    return f"{entry['mean']:.2f} ({entry['sd']:.2f})" if entry["n"] > 1 else f"{entry['mean']:.2f} (-)"


def markdown_tables(results: list[dict], reference: str | None, sources: dict[str, str]) -> str:
    """Test and dev accuracy mean (sd) per architecture, then test paired with the reference."""
    labels = [label for label in sources if any(r["label"] == label for r in results)]
    test, dev = summarize(results, "test"), summarize(results, "dev")
    seeds = sorted({int(r["seed"]) for r in results})
    by_key = {(r["label"], int(r["seed"])): r for r in results}
    lines = ["| architecture | ops | parameters | " + " | ".join(f"seed {s}: test (dev)" for s in seeds)
             + " | seeds | test mean (sd) | dev mean (sd) | CPU-min per run |",
             "|---|---|---:|" + "---|" * len(seeds) + "---:|---:|---:|---:|"]
    for label in labels:
        runs = [by_key[(label, s)] for s in seeds if (label, s) in by_key]
        cells = [f"{by_key[(label, s)]['test']:.2f} ({by_key[(label, s)]['dev']:.2f})"
                 if (label, s) in by_key else "" for s in seeds]
        whole = [r["cpu_s"] for r in runs if not r.get("resumed_from_step")]
        cpu = f"{sum(whole) / len(whole) / 60:.1f}" if whole else "-"
        cpu += f" ({len(whole)} of {len(runs)})" if len(whole) < len(runs) else ""
        lines.append(f"| {label} | {architecture_summary(runs[0]['ops'], runs[0]['skips'])} | {runs[0]['parameters']:,} | "
                     + " | ".join(cells) + f" | {test[label]['n']} | {_mean_sd(test[label])} | "
                     f"{_mean_sd(dev[label])} | {cpu} |")
    if any(r.get("resumed_from_step") for r in results):
        lines += ["", "CPU-min per run: the mean over the runs that started from scratch, "
                  "(k of n) when some resumed from a checkpoint (their CPU is the resumed part only)."]
    if reference in test:
        lines += ["", f"Paired with `{reference}` (same seed): test accuracy minus `{reference}`'s; "
                  "t = mean / (sd / sqrt(n)); the last column: seeds for |t| = 2 at the measured "
                  "mean and sd.", "",
                  "| architecture | " + " | ".join(f"seed {s}" for s in seeds)
                  + " | mean | sd | t | seeds for abs(t)=2 |",
                  "|---|" + "---:|" * (len(seeds) + 4)]
        ref_values = test[reference]["values"]
        for label in labels:
            if label == reference:
                continue
            values = test[label]["values"]
            paired = paired_difference(values, ref_values)
            per_seed = [f"{values[s] - ref_values[s]:+.2f}" if s in values and s in ref_values
                        else "" for s in seeds]
            lines.append(f"| {label} | " + " | ".join(per_seed)
                         + f" | {paired['mean']:+.2f} | {paired['sd']:.2f} | {paired['t']:.2f}"
                         + f" | {paired['seeds_for_t2']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], labels: list[str], path: str, title: str,
         baselines: dict[str, float] | None = None) -> None:
    """Test accuracy per architecture: seeds as points, the mean as a bar; baselines as lines."""
    from matplotlib.figure import Figure

    table = summarize(results, "test")
    labels = [label for label in labels if label in table]
    figure = Figure(figsize=(1.1 * len(labels) + 2, 4))
    axes = figure.subplots()
    for i, label in enumerate(labels):
        values = list(table[label]["values"].values())
        axes.bar(i, table[label]["mean"], color="#c7e9c0", width=0.6)
        axes.scatter([i] * len(values), values, color="#006d2c", zorder=3, s=18)
    for name, value in (baselines or {}).items():
        axes.axhline(value, color="#636363", linestyle="--", linewidth=1)
        axes.text(0.99, value, name, transform=axes.get_yaxis_transform(), ha="right",
                  va="bottom", fontsize=8, color="#636363")
    values = [v for entry in table.values() for v in entry["values"].values()]
    values += list((baselines or {}).values())
    low, high = min(values), max(values)
    axes.set_ylim(low - 2, high + 1)
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_ylabel("test accuracy (%), higher is better")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_summary(args, results: list[dict], sources: dict[str, str]) -> str:
    tables = markdown_tables(results, args.reference, sources)
    files.write_json_atomic(os.path.join(args.workdir, "summary.json"),
                            {"args": vars(args), "sources": sources, "results": results,
                             "test": summarize(results, "test")})
    files.write_text_atomic(os.path.join(args.workdir, "summary.md"), tables)
    plot(results, list(sources), os.path.join(args.workdir, "quality.png"),
         f"{os.path.basename(args.train_flagfile)}: seeds as points, mean as bar",
         parse_baselines(args.baseline))
    return tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", required=True,
                        help="label=path, a preset or random:<seed>, comma-separated.")
    parser.add_argument("--seeds", default="0,1,2", help="retraining seeds, comma-separated.")
    parser.add_argument("--train_flagfile", required=True, help="the retraining recipe.")
    parser.add_argument("--train_flag", action="append", default=[],
                        help="an extra train flag (repeatable), e.g. --train_flag=--sst_dir=DIR.")
    parser.add_argument("--reference", default=None, help="label of the paired comparisons.")
    parser.add_argument("--baseline", action="append", default=[],
                        help="NAME=ACCURACY drawn as a line in quality.png (repeatable), "
                        "e.g. --baseline=CNN-rand=82.7.")
    parser.add_argument("--jobs", type=int, default=1, help="retrainings run at once.")
    parser.add_argument("--threads_per_job", type=int, default=0,
                        help="TF intra-op threads of each retraining (0: TF's default).")
    parser.add_argument("--summary_only", action="store_true",
                        help="only summarize the runs finished so far.")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    args.train_flagfile = os.path.abspath(args.train_flagfile)
    args.workdir = os.path.abspath(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    sources = dict(parse_architectures(args.architectures))
    try:
        parse_baselines(args.baseline)
    except ValueError as error:
        parser.error(str(error))
    if args.reference is not None and args.reference not in sources:
        parser.error(f"--reference {args.reference!r} is not one of the labels {list(sources)}.")
    # Paths relative to where the command runs; the retrainings run in ROOT.
    sources = {label: os.path.abspath(source) if os.path.exists(source) else source
               for label, source in sources.items()}
    os.makedirs(args.workdir, exist_ok=True)
    jobs = [(label, source, seed) for seed in seeds for label, source in sources.items()]
    if args.summary_only:
        results = [r for r in (read_result(args, label, seed) for label, _, seed in jobs) if r]
        print(f"{len(results)} of {len(jobs)} retrainings finished so far", flush=True)
        if results:
            print(write_summary(args, results, sources), end="")
        return 0
    print(f"{len(sources)} architectures x {len(seeds)} seeds = {len(jobs)} retrainings "
          f"({args.jobs} at once)", flush=True)
    results, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(train, args, label, source, seed): (label, seed)
                   for label, source, seed in jobs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            try:
                result = future.result()
            except RuntimeError as error:  # one failed run does not stop the others
                failures.append(str(error))
                print(f"[{done}/{len(jobs)}] {error}", flush=True)
                continue
            results.append(result)
            print(f"[{done}/{len(jobs)}] {result['label']} seed {result['seed']}: test "
                  f"{result['test']:.2f} (dev {result['dev']:.2f}, best step {result['best_step']} "
                  f"of {result['steps']}; {result['cpu_s'] / 60:.1f} CPU-min)", flush=True)
            write_summary(args, results, sources)  # the summary so far, after every run
    if results:
        print(write_summary(args, results, sources), end="")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
