"""Score output files on disk, against ground-truth files or without: `python -m vsr_lab evaluate`.

`--pred` and `--gt` are each one clip (a video file or a folder of frames) or a folder of clips
(sub-folders of frames and/or video files, matched by name: `000.mp4` pairs with `000/`).
With `--gt`, every clip gets PSNR, SSIM, E*warp, tOF, flicker, tOF by TecoGAN's procedure
(`tof_tecogan`, the tOF of published tables; always, as it needs no weights and its Farneback
flows add only a few percent to the scoring time), with local LPIPS weights tLP, and the
perceptual metrics of `--metrics`. Without `--gt` (real videos), only what needs no ground
truth: E*warp, `flicker_nr` and the no-reference perceptual metrics. The dataset score is the
unweighted mean over clips (RESEARCH.md protocol). E*warp uses the motion of the GT clip
(`ewarp_on="gt"`, the default, as validation does): flow estimated on the GT frames with the
forward-backward occlusion test, so every method is scored against the same motion (Lai et al.
take it from the source video); `ewarp_on="pred"`, and any scoring without `--gt`, estimates it
on the scored clip instead. The source of each metric is written into the result.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from omegaconf import OmegaConf

from vsr_lab.config.schema import MetricsConfig
from vsr_lab.data.clip_paths import clips_at
from vsr_lab.data.pristine import niqe_local_params
from vsr_lab.data.video_io import clip_info, read_clip
from vsr_lab.errors import UserError
from vsr_lab.metrics.lpips import load_lpips
from vsr_lab.metrics.perceptual.catalog import metric_spec
from vsr_lab.metrics.perceptual.metric import build_metrics
from vsr_lab.metrics.scoring import mean_over_clips, score_clip
from vsr_lab.models.flow import FlowEstimator, build_flow_estimator
from vsr_lab.registry import FLOW_ESTIMATORS


# Flows that can be estimated on files on disk (not the dataset's exact flow).
EWARP_FLOWS = tuple(n for n in FLOW_ESTIMATORS if n != "gt")
DEFAULT_METRICS = tuple(MetricsConfig().perceptual)  # the same as validation's


def pair_clips(pred: str | Path, gt: str | Path | None) -> list[tuple[str, Path, Path | None]]:
    """(name, pred clip, gt clip) for every GT clip; both sides must hold the same clip names.
    Without `gt`, every clip of `pred` with None."""
    if gt is None:
        return [(name, p, None) for name, p in sorted(clips_at(pred).items())]
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


EWARP_ON = ("gt", "pred")


def check_metric_names(metrics, with_gt: bool) -> list[str]:
    """The names of `--metrics`, each known; a full-reference one without `--gt` is an error."""
    names = [m for m in metrics if m]
    for name in names:
        spec = metric_spec(name, "--metrics")
        if spec.reference and not with_gt:
            raise UserError(f"--metrics: {name!r} is a full-reference metric and needs --gt; "
                            "without ground truth use no-reference metrics (e.g. piqe, niqe_local)")
    return names


def evaluate_folders(pred: str | Path, gt: str | Path | None, flow: str = "farneback", raft_weights: str | None = None,
                     raft_size: str = "small", lpips_weights: str | None = None, lpips_net: str = "alex",
                     crop_border: int = 0, y_channel: bool = False, metrics=DEFAULT_METRICS,
                     weights_dir: str | None = None, pretrained: dict[str, str] | None = None,
                     cache_dir: str | None = None, ewarp_on: str = "gt") -> dict:
    """Scores per clip and their mean, with the settings and each metric's source.

    `metrics`: perceptual metric names (`metrics.perceptual` of a config); `weights_dir` and
    `pretrained` as `metrics.weights_dir` / `metrics.pretrained`. `gt=None`: no-reference scoring.
    """
    if ewarp_on not in EWARP_ON:
        raise UserError(f"--ewarp-on must be one of {', '.join(EWARP_ON)}; got {ewarp_on!r}")
    ewarp_on = ewarp_on if gt is not None else "pred"  # no GT clip: the scored clip's own motion
    names = check_metric_names(metrics, gt is not None)
    pairs = pair_clips(pred, gt)
    for name, p, g in pairs:  # every size problem is reported before minutes of scoring
        if g is not None:
            _check_same_shape(name, p, g)
    estimator = build_ewarp_estimator(flow, raft_weights, raft_size)
    lpips = load_lpips(lpips_weights, lpips_net, key="--lpips-weights") if gt is not None else None
    pretrained = dict(pretrained or {})
    builtin_niqe = "niqe_local" in names and "niqe_local" not in pretrained
    if builtin_niqe:
        pretrained["niqe_local"] = str(niqe_local_params(cache_dir))
    perceptual = build_metrics(names, weights_dir, pretrained, key="--metrics")
    clips = {}
    for name, p, g in pairs:
        try:
            pred_clip = read_clip(p)
            gt_clip = None if g is None else read_clip(g)
            motion = estimator.ewarp_flow(gt_clip if ewarp_on == "gt" else pred_clip)
            clips[name] = score_clip(pred_clip, gt_clip, motion, lpips, crop_border, y_channel, perceptual,
                                     with_tof_tecogan=True)
        except ValueError as exc:  # e.g. frames too small for SSIM or the crop
            raise UserError(f"clip {name} ({p} vs {g}): {exc}") from None
    color = "Y (BT.601)" if y_channel else "RGB"
    sources = {"ewarp": f"{flow} flow on {ewarp_on} (t -> t+1), forward-backward occlusion test; x1000"}
    if gt is not None:
        sources.update({
            "psnr": f"{color}, crop {crop_border}", "ssim": f"{color}, crop {crop_border}",
            "tof": "farneback (TecoGAN settings) on pred and on gt pairs, every pair, whole frame",
            "tof_tecogan": ("TecoGAN metrics.py: first and last 2 frames dropped, farneback on pred and gt "
                            "pairs, flows centre-cropped (crop_8x8), mean L2 norm of the difference; pixels"),
            "flicker": "no flow: mean |frame change| of pred vs gt, x100",
        })
        if lpips is not None:
            sources["tlp"] = f"no flow: LPIPS-{lpips_net} change of pred vs gt pairs, x100"
    else:
        sources["flicker_nr"] = ("no flow, no gt: |mean brightness of frame t - mean of its neighbours' means|, "
                                 "x100 (global flicker only)")
    for m in perceptual:
        kind = "full-reference, vs gt" if m.spec.reference else "no-reference, pred only"
        niqe_model = "fitted on the sample clips' training photos" if builtin_niqe else pretrained.get("niqe_local")
        origin = {"niqe_local": f"NIQE model {niqe_model}"}
        sources[m.name] = (f"{kind}; per frame, mean over frames; {'lower' if m.spec.lower_better else 'higher'} "
                           f"is better; {origin.get(m.name, 'pyiqa')}")
    return {"pred": str(pred), "gt": None if gt is None else str(gt), "reference": gt is not None,
            "metrics": sources, "mean": mean_over_clips(list(clips.values())), "clips": clips}


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

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")  # renamed when whole: a crash never leaves half a file
    tmp.write_text(json.dumps(clean(result), indent=2))
    os.replace(tmp, path)
