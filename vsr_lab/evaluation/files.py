"""Score output files on disk, against ground-truth files or without: `python -m vsr_lab evaluate`.

`--pred` and `--gt` are each one clip (a video file or a folder of frames) or a folder of clips
(sub-folders of frames and/or video files, matched by name: `000.mp4` pairs with `000/`).
Several `--pred` outputs are scored in one call into one table, a row per output named by its
file stem or folder name; `--lr` (the LR clips they were made from) adds a `bicubic` and a
`lanczos` row, made in memory and scored exactly as the outputs are.
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

import math
from pathlib import Path

from omegaconf import OmegaConf

from vsr_lab.config.schema import MetricsConfig
from vsr_lab.data.pristine import niqe_local_params
from vsr_lab.errors import UserError
from vsr_lab.evaluation.score_cache import ScoreCache
from vsr_lab.media.clip_reader import clip_info, read_clip
from vsr_lab.media.paths import clips_at
from vsr_lab.metrics.lpips import load_lpips
from vsr_lab.metrics.perceptual.catalog import metric_spec
from vsr_lab.metrics.perceptual.metric import build_metrics
from vsr_lab.metrics.scoring import mean_over_clips, score_clip
from vsr_lab.models.flow import FlowEstimator, build_flow_estimator
from vsr_lab.ops.resize import bicubic_upsample, lanczos_upsample
from vsr_lab.registry import FLOW_ESTIMATORS


# Flows that can be estimated on files on disk (not the dataset's exact flow).
EWARP_FLOWS = tuple(n for n in FLOW_ESTIMATORS if n != "gt")
DEFAULT_METRICS = tuple(MetricsConfig().perceptual)  # the same as validation's
# The rows `--lr` adds: classical resizers of the LR clips, x the scale the GT size implies.
BASELINES = {"bicubic": bicubic_upsample, "lanczos": lanczos_upsample}
BASELINE_METHODS = {"bicubic": "torch bicubic (a = -0.75), the model's residual base",
                    "lanczos": "OpenCV INTER_LANCZOS4 (a = 4)"}


def pair_clips(pred: str | Path, gt: str | Path | None, flag: str = "--pred") -> list[tuple[str, Path, Path | None]]:
    """(name, pred clip, gt clip) for every GT clip; both sides must hold the same clip names.
    Without `gt`, every clip of `pred` with None. `flag` names `pred`'s option in errors."""
    if gt is None:
        return [(name, p, None) for name, p in sorted(clips_at(pred).items())]
    preds, gts = clips_at(pred), clips_at(gt)
    if len(preds) == len(gts) == 1:
        (name, p), (_, g) = next(iter(preds.items())), next(iter(gts.items()))
        return [(name, p, g)]
    missing, extra = sorted(set(gts) - set(preds)), sorted(set(preds) - set(gts))
    if missing or extra:
        raise UserError(f"{flag} {pred} and --gt {gt} hold different clips: "
                        f"missing from {flag[2:]} {missing[:5]}, not in gt {extra[:5]}")
    return [(name, preds[name], gts[name]) for name in sorted(gts)]


def _same_length(name: str, path: Path, gt_path: Path, flag: str = ""):
    """The two clips' `ClipInfo`s, after checking they hold the same number of frames."""
    info, g = clip_info(path), clip_info(gt_path)
    if info.num_frames != g.num_frames:
        raise UserError(f"clip {name}: {flag}{path} has {info.num_frames} frames but {gt_path} has {g.num_frames}")
    return info, g


def _check_same_shape(name: str, pred_path: Path, gt_path: Path) -> None:
    p, g = _same_length(name, pred_path, gt_path)
    if (p.height, p.width) != (g.height, g.width):
        raise UserError(f"clip {name}: {pred_path} is {p.width}x{p.height} but {gt_path} is {g.width}x{g.height}")


def lr_scale(name: str, lr_path: Path, gt_path: Path) -> int:
    """The whole factor that takes the LR clip's size to the GT clip's (one clear error if none)."""
    lr, g = _same_length(name, lr_path, gt_path, flag="--lr ")
    scale = g.height // lr.height if lr.height else 0
    if scale < 1 or (lr.height * scale, lr.width * scale) != (g.height, g.width):
        raise UserError(f"clip {name}: --lr {lr_path} is {lr.width}x{lr.height}, which does not divide the GT "
                        f"size {g.width}x{g.height} ({gt_path}) by one whole scale")
    return scale


def output_names(preds) -> dict[str, Path]:
    """{row name: output path}: an output is named as a clip is, by its file stem or folder name."""
    named: dict[str, Path] = {}
    for path in map(Path, preds):
        name = path.stem if path.is_file() else path.resolve().name
        if name in named:
            raise UserError(f"--pred: two outputs are named {name!r} ({named[name]} and {path}); "
                            "each row is named by its file stem or folder name, so rename one")
        named[name] = path
    return named


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


def _rows(preds, gt: str | Path | None, lr: str | Path | None) -> tuple[dict, dict[str, str]]:
    """({row: [(clip, source path, gt path)]}, {row: what it scores}), every clip pairing and size
    checked: the outputs in the order given, then the `BASELINES` made from `lr`'s clips."""
    if lr is not None and gt is None:
        raise UserError("--lr needs --gt: the bicubic and lanczos rows are scored against the ground truth")
    outputs = output_names(preds)
    rows = {name: pair_clips(path, gt) for name, path in outputs.items()}
    for pairs in rows.values():
        for clip, p, g in pairs:
            if g is not None:
                _check_same_shape(clip, p, g)
    names = {row: [clip for clip, _, _ in pairs] for row, pairs in rows.items()}
    if gt is None and any(len(n) > 1 for n in names.values()) and len({tuple(n) for n in names.values()}) > 1:
        raise UserError(f"--pred: {', '.join(map(str, outputs.values()))} hold different clips; "
                        "without --gt each row must average the same clips")
    described = {name: str(path) for name, path in outputs.items()}
    if lr is not None:
        clash = sorted(set(outputs) & set(BASELINES))
        if clash:
            raise UserError(f"--pred: an output is named {clash[0]!r} ({outputs[clash[0]]}), the name of a row "
                            "--lr adds; rename it")
        lr_pairs = pair_clips(lr, gt, flag="--lr")
        scales = sorted({lr_scale(clip, lr_path, g) for clip, lr_path, g in lr_pairs})
        for name in BASELINES:
            rows[name] = lr_pairs
            described[name] = f"{name} x{'/'.join(map(str, scales))} of {lr}: {BASELINE_METHODS[name]}"
    return rows, described


def _score_rows(rows: dict, with_gt: bool, with_lr: bool, estimator: FlowEstimator, ewarp_on: str,
                score, cache: ScoreCache | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{row: {clip: scores}}, GT clip by GT clip: each is read, and its motion estimated, once for
    all rows; a baseline row upscales the LR clip (read once) by the GT/LR size ratio, or comes
    from `cache` when it holds that row of these LR and GT clips."""
    by_gt: dict[Path, list] = {}  # GT clip (without GT: the output's own clip) -> its rows
    for row, pairs in rows.items():
        for clip, p, g in pairs:
            by_gt.setdefault(g or p, []).append((row, clip, p))
    scores: dict[str, dict] = {row: {} for row in rows}
    cache = cache if with_gt and with_lr else None  # only baseline rows against a GT are cached
    for key, members in by_gt.items():
        if cache is not None:
            members = _from_cache(cache, members, key, scores)
            if not members:
                continue
        row, clip, p = members[0]  # the clip an error in reading the GT clip or its motion names
        try:
            gt_clip = read_clip(key) if with_gt else None
            gt_motion = estimator.ewarp_flow(gt_clip) if ewarp_on == "gt" else None
            lr_clip = None
            for row, clip, p in members:
                if with_lr and row in BASELINES:
                    lr_clip = read_clip(p) if lr_clip is None else lr_clip
                    pred_clip = BASELINES[row](lr_clip, gt_clip.shape[-1] // lr_clip.shape[-1])
                else:
                    pred_clip = read_clip(p)
                motion = gt_motion if ewarp_on == "gt" else estimator.ewarp_flow(pred_clip)
                scores[row][clip] = score(pred_clip, gt_clip, motion)
                if cache is not None and row in BASELINES:
                    cache.put(cache.key(row, p, key), scores[row][clip])
        except ValueError as exc:  # e.g. frames too small for SSIM or the crop
            raise UserError(f"clip {clip} ({p} vs {key if with_gt else None}): {exc}") from None
    return scores


def _from_cache(cache: ScoreCache, members: list, gt_clip: Path, scores: dict) -> list:
    """Fill `scores` with the baseline rows of one GT clip that `cache` holds; the members left to score."""
    left = []
    for row, clip, p in members:
        cached = cache.get(cache.key(row, p, gt_clip)) if row in BASELINES else None
        if cached is None:
            left.append((row, clip, p))
        else:
            scores[row][clip] = cached
    return left


def _sources(flow: str, ewarp_on: str, with_gt: bool, y_channel: bool, crop_border: int,
             lpips_net: str | None, perceptual, niqe_model: str | None) -> dict[str, str]:
    """Where each reported metric comes from, as the result states it (`lpips_net`: None without tLP)."""
    color = "Y (BT.601)" if y_channel else "RGB"
    sources = {"ewarp": f"{flow} flow on {ewarp_on} (t -> t+1), forward-backward occlusion test; x1000"}
    if with_gt:
        sources.update({
            "psnr": f"{color}, crop {crop_border}", "ssim": f"{color}, crop {crop_border}",
            "tof": "farneback (TecoGAN settings) on pred and on gt pairs, every pair, whole frame",
            "tof_tecogan": ("TecoGAN metrics.py: first and last 2 frames dropped, farneback on pred and gt "
                            "pairs, flows centre-cropped (crop_8x8), mean L2 norm of the difference; pixels"),
            "flicker": "no flow: mean |frame change| of pred vs gt, x100",
        })
        if lpips_net is not None:
            sources["tlp"] = f"no flow: LPIPS-{lpips_net} change of pred vs gt pairs, x100"
    else:
        sources["flicker_nr"] = ("no flow, no gt: |mean brightness of frame t - mean of its neighbours' means|, "
                                 "x100 (global flicker only)")
    for m in perceptual:
        kind = "full-reference, vs gt" if m.spec.reference else "no-reference, pred only"
        origin = {"niqe_local": f"NIQE model {niqe_model}"}
        sources[m.name] = (f"{kind}; per frame, mean over frames; {'lower' if m.spec.lower_better else 'higher'} "
                           f"is better; {origin.get(m.name, 'pyiqa')}")
    return sources


def evaluate_outputs(preds, gt: str | Path | None, lr: str | Path | None = None, flow: str = "farneback",
                     raft_weights: str | None = None, raft_size: str = "small", lpips_weights: str | None = None,
                     lpips_net: str = "alex", crop_border: int = 0, y_channel: bool = False,
                     metrics=DEFAULT_METRICS, weights_dir: str | None = None,
                     pretrained: dict[str, str] | None = None, cache_dir: str | None = None,
                     ewarp_on: str = "gt", with_psnr_y: bool = False, score_cache: str | Path | None = None) -> dict:
    """Scores of several outputs of the same clips: {"gt", "lr", "reference", "metrics" (each one's
    source), "outputs": {row: {"pred", "mean", "clips"}}}, a row per output in `preds` and, with
    `lr`, a `bicubic` and a `lanczos` row (see `BASELINES`).

    Every row is scored as `evaluate_folders` scores one output; clip by clip, so each GT clip is
    read and its motion estimated once for all rows. `metrics`: perceptual metric names
    (`metrics.perceptual` of a config); `weights_dir` and `pretrained` as `metrics.weights_dir` /
    `metrics.pretrained`. `gt=None`: no-reference scoring. `with_psnr_y`: a `psnr_y` (BT.601 Y)
    column beside RGB `psnr`. `score_cache`: a folder where the baseline rows' scores are kept
    (`score_cache.ScoreCache`), for benches that score the same LR again and again; the result
    then says how many came from it.
    """
    if ewarp_on not in EWARP_ON:
        raise UserError(f"--ewarp-on must be one of {', '.join(EWARP_ON)}; got {ewarp_on!r}")
    ewarp_on = ewarp_on if gt is not None else "pred"  # no GT clip: the scored clip's own motion
    names = check_metric_names(metrics, gt is not None)
    rows, described = _rows(preds, gt, lr)  # every pairing and size problem before minutes of scoring
    estimator = build_ewarp_estimator(flow, raft_weights, raft_size)
    lpips = load_lpips(lpips_weights, lpips_net, key="--lpips-weights") if gt is not None else None
    pretrained = dict(pretrained or {})
    builtin_niqe = "niqe_local" in names and "niqe_local" not in pretrained
    if builtin_niqe:
        pretrained["niqe_local"] = str(niqe_local_params(cache_dir))
    perceptual = build_metrics(names, weights_dir, pretrained, key="--metrics")

    def score(pred_clip, gt_clip, motion) -> dict[str, float]:
        return score_clip(pred_clip, gt_clip, motion, lpips, crop_border, y_channel, perceptual,
                          with_tof_tecogan=True, with_psnr_y=with_psnr_y)

    cache = None
    if score_cache is not None:
        cache = ScoreCache(score_cache, {
            "flow": flow, "raft_weights": raft_weights, "raft_size": raft_size, "lpips_weights": lpips_weights,
            "lpips_net": lpips_net, "crop_border": crop_border, "y_channel": y_channel, "metrics": names,
            "weights_dir": weights_dir, "pretrained": pretrained, "ewarp_on": ewarp_on, "with_psnr_y": with_psnr_y})
    scores = _score_rows(rows, gt is not None, lr is not None, estimator, ewarp_on, score, cache)
    niqe_model = "fitted on the sample clips' training photos" if builtin_niqe else pretrained.get("niqe_local")
    sources = _sources(flow, ewarp_on, gt is not None, y_channel, crop_border,
                       lpips_net if lpips is not None else None, perceptual, niqe_model)
    if with_psnr_y and gt is not None:
        sources["psnr_y"] = f"Y (BT.601), crop {crop_border}"
    outputs = {row: {"pred": described[row], "mean": mean_over_clips(list(clips.values())), "clips": clips}
               for row, clips in scores.items()}
    result = {"gt": None if gt is None else str(gt), "lr": None if lr is None else str(lr), "reference": gt is not None,
              "metrics": sources, "outputs": outputs}
    if cache is not None:
        result["score_cache"] = cache.record()
    return result


def evaluate_folders(pred: str | Path, gt: str | Path | None, **settings) -> dict:
    """Scores per clip of one output and their mean, with the settings and each metric's source:
    {"pred", "gt", "reference", "metrics", "mean", "clips"}. `settings` as `evaluate_outputs`."""
    result = evaluate_outputs([pred], gt, **settings)
    (row,) = result["outputs"].values()
    return {"pred": str(pred), "gt": result["gt"], "reference": result["reference"], "metrics": result["metrics"],
            "mean": row["mean"], "clips": row["clips"]}


def _table(first: str, rows: list[tuple[str, dict]]) -> str:
    keys = list(dict.fromkeys(k for _, scores in rows for k in scores))
    cells = [[first, *keys]] + [[name, *(f"{scores.get(k, math.nan):.4f}" for k in keys)] for name, scores in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells)


def format_table(result: dict) -> str:
    """One output (`evaluate_folders`): a row per clip and their mean. Several
    (`evaluate_outputs`): a row per output, its mean over clips."""
    if "outputs" in result:
        return _table("output", [(name, row["mean"]) for name, row in result["outputs"].items()])
    return _table("clip", [*result["clips"].items(), ("mean", result["mean"])])
