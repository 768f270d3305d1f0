"""Seed study of the temporal machinery: full vs no_flow_reg vs no_recurrence.

Trains each config for each seed with `vsr_lab.training.runner.fit` (no MLflow), reads the final
validation metrics and writes one JSON file (every run, plus mean and standard deviation per
config). A short stand-in for `python -m vsr_lab ablate`, kept for the issue's experiment:

    nice -n 5 python experiments/temporal_study.py --out runs/temporal_study.json \\
        data.batch_size=2 trainer.max_batches=160 trainer.val_every=160 data.val_clips=6

(one process per seed with `--seeds N` runs them in parallel; `--merge` joins their files).
Results of that run: experiments/temporal_study_results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from vsr_lab.config import load_config
from vsr_lab.training.runner import fit

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("ablations/full.yaml", "ablations/no_flow_reg.yaml", "ablations/no_recurrence.yaml")
KEYS = ("psnr", "ssim", "ewarp", "tof", "flicker")


def train_and_score(config: str, seed: int, overrides: list[str], output_dir: str) -> dict[str, float]:
    """Final validation metrics of one fit of `config` with `seed`."""
    cfg = load_config(REPO / config, [*overrides, f"seed={seed}", "tracking.enabled=false",
                                      "trainer.progress_bar=false", f"output_dir={output_dir}"])
    trainer, _ = fit(cfg, config)
    metrics = trainer.callback_metrics
    return {k: float(metrics[f"val/{k}"]) for k in KEYS} | \
        {f"bicubic_{k}": float(metrics[f"val/bicubic_{k}"]) for k in KEYS if f"val/bicubic_{k}" in metrics}


def summarise(runs: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """config -> metric -> {mean, std (sample), n}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for config in dict.fromkeys(r["config"] for r in runs):
        values = [r["metrics"] for r in runs if r["config"] == config]
        out[config] = {}
        for key in KEYS:
            xs = [v[key] for v in values if not math.isnan(v[key])]
            out[config][key] = {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                                "n": len(xs)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="runs/temporal_study.json")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="combine earlier outputs (e.g. one per seed) into --out")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        runs = [r for part in parts for r in part["runs"]]
        Path(args.out).write_text(json.dumps({"overrides": parts[0]["overrides"], "runs": runs,
                                              "summary": summarise(runs)}, indent=2))
        for config, stats in summarise(runs).items():
            print(config, "  ".join(f"{k} {s['mean']:.4g}±{s['std']:.2g}" for k, s in stats.items()))
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for config in args.configs:
                start = time.time()
                metrics = train_and_score(config, seed, args.overrides, tmp)
                runs.append({"config": config, "seed": seed, "seconds": round(time.time() - start, 1),
                             "metrics": metrics})
                print(json.dumps(runs[-1]), flush=True)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"overrides": args.overrides, "runs": runs,
                                                      "summary": summarise(runs)}, indent=2))
    for config, stats in summarise(runs).items():
        print(config, "  ".join(f"{k} {s['mean']:.4g}±{s['std']:.2g}" for k, s in stats.items()))


if __name__ == "__main__":
    main()
