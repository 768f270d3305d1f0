"""Score output files on disk against ground-truth files: `python -m vsr_lab evaluate`.

`--pred` and `--gt` are each one clip (a video file or a folder of frames) or a folder of clips
(sub-folders of frames and/or video files, matched by name: `000.mp4` pairs with `000/`).
Every clip gets PSNR, SSIM, E*warp, tOF, flicker and, with local LPIPS weights, tLP; the
dataset score is the unweighted mean over clips (RESEARCH.md protocol). No ground-truth flow
exists on disk, so E*warp uses flow estimated on the scored clip itself with the
forward-backward occlusion test; the flow source of each metric is written into the result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import OmegaConf

from vsr_lab.data.clip_paths import clips_at
from vsr_lab.data.video_io import clip_info, read_clip
from vsr_lab.errors import UserError
from vsr_lab.metrics.lpips import load_lpips
from vsr_lab.metrics.scoring import mean_over_clips, score_clip
from vsr_lab.models.flow import FlowEstimator, build_flow_estimator
from vsr_lab.registry import FLOW_ESTIMATORS


# Flows that can be estimated on files on disk (not the dataset's exact flow).
EWARP_FLOWS = tuple(n for n in FLOW_ESTIMATORS if n != "gt")


def pair_clips(pred: str | Path, gt: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, pred clip, gt clip) for every GT clip; both sides must hold the same clip names."""
    preds, gts = clips_at(pred), clips_at(gt)
    if len(preds) == len(gts) == 1:
        (name, p), (_, g) = next(iter(preds.items())), next(iter(gts.items()))
        return [(name, p, g)]
    missing, extra = sorted(set(gts) - set(preds)), sorted(set(preds) - set(gts))
    if missing or extra:
        raise UserError(f"--pred {pred} and --gt {gt} hold different clips: "
                        f"missing from pred {missing[:5]}, not in gt {extra[:5]}")
    return [(name, preds[name], gts[name]) for name in sorted(gts)]


def _check_same_shape(name: str, pred_path: Path, gt_path: Path) -> None:
    p, g = clip_info(pred_path), clip_info(gt_path)
    if p.num_frames != g.num_frames:
        raise UserError(f"clip {name}: {pred_path} has {p.num_frames} frames but {gt_path} has {g.num_frames}")
    if (p.height, p.width) != (g.height, g.width):
        raise UserError(f"clip {name}: {pred_path} is {p.width}x{p.height} but {gt_path} is {g.width}x{g.height}")


def build_ewarp_estimator(flow: str, raft_weights: str | None = None, raft_size: str = "small") -> FlowEstimator:
    if flow not in EWARP_FLOWS:
        raise UserError(f"--flow must be one of {', '.join(EWARP_FLOWS)}; got {flow!r}")
    return build_flow_estimator(OmegaConf.create({"raft_weights": raft_weights, "raft_size": raft_size}), flow)


def evaluate_folders(pred: str | Path, gt: str | Path, flow: str = "farneback", raft_weights: str | None = None,
                     raft_size: str = "small", lpips_weights: str | None = None, lpips_net: str = "alex",
                     crop_border: int = 0, y_channel: bool = False) -> dict:
    """Scores per clip and their mean, with the settings and each metric's flow source."""
    pairs = pair_clips(pred, gt)
    for name, p, g in pairs:  # every size problem is reported before minutes of scoring
        _check_same_shape(name, p, g)
    estimator = build_ewarp_estimator(flow, raft_weights, raft_size)
    lpips = load_lpips(lpips_weights, lpips_net, key="--lpips-weights")
    clips = {}
    for name, p, g in pairs:
        try:
            pred_clip = read_clip(p)
            clips[name] = score_clip(pred_clip, read_clip(g), estimator.ewarp_flow(pred_clip), lpips,
                                     crop_border, y_channel)
        except ValueError as exc:  # e.g. frames too small for SSIM or the crop
            raise UserError(f"clip {name}: {exc}") from None
    color = "Y (BT.601)" if y_channel else "RGB"
    sources = {
        "psnr": f"{color}, crop {crop_border}", "ssim": f"{color}, crop {crop_border}",
        "ewarp": f"{flow} flow on pred (t -> t+1), forward-backward occlusion test; x1000",
        "tof": "farneback (TecoGAN settings) on pred and on gt pairs",
        "flicker": "no flow: mean |frame change| of pred vs gt, x100",
    }
    if lpips is not None:
        sources["tlp"] = f"no flow: LPIPS-{lpips_net} change of pred vs gt pairs, x100"
    return {"pred": str(pred), "gt": str(gt), "metrics": sources, "mean": mean_over_clips(list(clips.values())),
            "clips": clips}


def format_table(result: dict) -> str:
    keys = list(result["mean"])
    rows = [["clip", *keys]] + [[name, *(f"{s[k]:.4f}" for k in keys)] for name, s in result["clips"].items()]
    rows.append(["mean", *(f"{result['mean'][k]:.4f}" for k in keys)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def write_json(result: dict, path: str | Path) -> None:
    """JSON with nan written as null (strict JSON has no nan)."""
    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return x

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(clean(result), indent=2))
