"""What `realbench` reports: a table of the model minus bicubic per condition (Y-PSNR first), a table
per footage clip, the JSON of everything, and the metrics of a `realbench` run nested under the
checkpoint's fit in MLflow (as `validate --ckpt` logs)."""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric

from vsr_lab.json_output import write_json
from vsr_lab.tracking.runs import tracking_client
from vsr_lab.training.runner import open_evaluation_run

# (score, column) of the differences shown after the Y-PSNR ones; lower is better from E*warp on
DIFFERENCES = (("psnr", "PSNR"), ("ssim", "SSIM"), ("ewarp", "E*warp"), ("flicker", "flicker"), ("tof", "tOF"),
               ("niqe_local", "niqe_local"), ("piqe", "piqe"))
FOOTAGE_SCORES = (("niqe_local", "niqe_local"), ("piqe", "piqe"), ("flicker_nr", "flicker_nr"),
                  ("ewarp", "E*warp (own motion)"))
STAGE = "realbench"
JSON_NAME, TABLE_NAME = "realbench.json", "realbench.txt"


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _signed(value: float | None, digits: int = 2) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def condition_table(result: dict) -> str:
    s = result["settings"]
    head = (f"model minus bicubic of the same decoded LR frames, mean over {len(s['clips'])} clips "
            f"({s['size'][0]}x{s['size'][1]}, {s['frames']} frames, x{s['scale']}); PSNR in dB (Y: BT.601 luma); "
            "E*warp, flicker, tOF, niqe_local, piqe: lower is better")
    rows = [["condition", "model Y-PSNR", "bicubic Y-PSNR", "Y-PSNR", "vs lanczos", "worst clip",
             *(name for _, name in DIFFERENCES)]]
    for name, c in result["conditions"].items():
        model, bicubic = c["outputs"]["model"]["mean"], c["outputs"]["bicubic"]["mean"]
        worst = c["worst_clip"]
        rows.append([name, f"{model['psnr_y']:.2f}", f"{bicubic['psnr_y']:.2f}",
                     _signed(c["model_minus_bicubic"]["psnr_y"]), _signed(c["model_minus_lanczos"]["psnr_y"]),
                     f"{_signed(worst['psnr_y_minus_bicubic'])} ({worst['clip']})",
                     *(_signed(c["model_minus_bicubic"].get(key, math.nan), 2 if key == "psnr" else 4)
                       for key, _ in DIFFERENCES)])
    return head + "\n" + _aligned(rows)


def footage_table(name: str, footage: dict) -> str:
    crop = footage["crop"]
    head = (f"footage {name}: first {footage['frames']} frames of {footage['source']}, centre "
            f"{crop['width']}x{crop['height']} crop of {footage['source_size'][0]}x{footage['source_size'][1]}, "
            "no ground truth (lower is better)")
    rows = [["method", *(column for _, column in FOOTAGE_SCORES)]]
    for method, out in footage["outputs"].items():
        rows.append([method, *(f"{out['mean'].get(key, math.nan):.4f}" for key, _ in FOOTAGE_SCORES)])
    return head + "\n" + _aligned(rows)


def format_report(result: dict) -> str:
    parts = [condition_table(result)] if result["conditions"] else []
    parts += [footage_table(name, f) for name, f in result["footage"].items()]
    wall, cpu = result["seconds"], result["cpu_seconds"]
    parts.append(f"bench time {wall['total']:.0f} s, {cpu['total']:.0f} CPU-s (" +
                 ", ".join(f"{k} {wall[k]:.0f} s / {cpu[k]:.0f} CPU-s" for k in wall if k != "total") + ")")
    return "\n\n".join(parts)


def mlflow_metrics(result: dict) -> dict[str, float]:
    """realbench/<condition>/ypsnr_gain (model minus bicubic), ..._vs_lanczos, ..._worst_clip, and
    every mean score as realbench/<condition>/<score> (model) and .../<bicubic|lanczos>_<score>;
    the footage's under realbench/footage/<name>/; nan left out."""
    metrics = {}

    def means(prefix: str, outputs: dict) -> None:
        for row, out in outputs.items():
            for key, value in out["mean"].items():
                metrics[prefix + (key if row == "model" else f"{row}_{key}")] = value

    for name, c in result["conditions"].items():
        prefix = f"realbench/{name}/"
        metrics[prefix + "ypsnr_gain"] = c["model_minus_bicubic"]["psnr_y"]
        metrics[prefix + "ypsnr_gain_vs_lanczos"] = c["model_minus_lanczos"]["psnr_y"]
        metrics[prefix + "ypsnr_gain_worst_clip"] = c["worst_clip"]["psnr_y_minus_bicubic"]
        means(prefix, c["outputs"])
    for name, footage in result["footage"].items():
        means(f"realbench/footage/{name}/", footage["outputs"])
    metrics["realbench/seconds"] = result["seconds"]["total"]
    metrics["realbench/cpu_seconds"] = result["cpu_seconds"]["total"]
    return {k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(v)}


def write_report(result: dict, table: str, folder: Path) -> None:
    """JSON_NAME and TABLE_NAME into `folder` (each written whole or not at all)."""
    write_json(result, folder / JSON_NAME)
    partial = folder / f".{TABLE_NAME}.partial"
    partial.write_text(table + "\n")
    os.replace(partial, folder / TABLE_NAME)


def log_to_mlflow(result: dict, table: str, cfg, ckpt: str | None, meta: dict | None) -> str:
    """Log the metrics, the JSON and the table to a run nested under the checkpoint's fit; returns
    where they went, or why they were not logged."""
    run_id, where = open_evaluation_run(cfg, STAGE, ckpt, meta)
    if run_id is None:
        return where
    client = tracking_client(cfg.tracking.tracking_uri)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in mlflow_metrics(result).items()]
    for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        write_report(result, table, Path(tmp))
        for name in (JSON_NAME, TABLE_NAME):
            client.log_artifact(run_id, str(Path(tmp) / name))
    client.set_terminated(run_id, "FINISHED")
    return where
