"""`headroom`: how much any upscaler can hope to gain over bicubic on a
config's validation (or test) clips, before training anything.

Scores, on the clips and with the scoring path validation uses (`metrics.scoring.score_clip`):
- `bicubic`: the baseline every fit prints (`val/bicubic_psnr`);
- `linear`: a least-squares linear filter learnt from the first `--train-clips` training clips of
  the config (the same draws, degradation and target a fit trains on): a learnt baseline that uses
  nothing of the scored clips;
- two oracles, named as such, which fit the filter to the scored clips' own ground truth:
  one filter for all of them (`oracle_linear_split`: the best blind linear filter there), and one
  per clip (`oracle_linear_per_clip`: a filter that knows each clip's degradation).
A degradation where even the per-clip oracle gains little leaves little for a model to gain in
PSNR; a model below the learnt `linear` row is under-trained.
"""

from __future__ import annotations

import sys

from vsr_lab.console import live_bars
from vsr_lab.errors import UserError

METHODS = ("bicubic", "linear", "oracle_linear_split", "oracle_linear_per_clip")
SCORES = ("psnr", "ssim")


def measure(cfg, train_clips: int, support: int, split: str = "val", progress: bool = True) -> dict:
    """The scores of `METHODS` on `split`, as a JSON-ready dict (see module docstring)."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from vsr_lab.data.datamodule import VSRDataModule, training_target
    from vsr_lab.data.sampling import DrawSampler, TrainingDraws
    from vsr_lab.metrics.scoring import mean_over_clips, score_clip
    from vsr_lab.ops.linear_sr import NormalEquations, apply_filter
    from vsr_lab.ops.resize import bicubic_upsample

    if train_clips < 1:
        raise UserError(f"--train-clips must be at least 1, got {train_clips}")
    if support < 1 or support % 2 == 0:
        raise UserError(f"--support must be an odd number of LR pixels, got {support}")
    d = cfg.data
    scale = d.scale
    data = VSRDataModule(cfg)
    data.check(("train", split))  # a bad root or degradation is one error before the long part
    draws = DrawSampler(len(data.dataset("train")), train_clips, seed=(cfg.seed, d.seed))
    train = DataLoader(TrainingDraws(data.dataset("train"), training_target(cfg)), batch_size=1,
                       sampler=draws, num_workers=d.num_workers)
    learnt = NormalEquations(scale, support)
    bars = progress and live_bars(sys.stderr)  # no bar redraws in a log file
    for batch in tqdm(train, total=train_clips, unit="clip", desc="headroom: training clips", disable=not bars):
        learnt.add(batch["lr"][0], batch["gt"][0])
    weights = learnt.solve()

    clips = [(b["lr"][0], b["gt"][0]) for b in tqdm(
        data.val_dataloader() if split == "val" else data.test_dataloader(), unit="clip",
        desc=f"headroom: {split} clips", disable=not bars)]
    on_split = NormalEquations(scale, support)
    for lr, gt in clips:
        on_split.add(lr, gt)
    split_weights = on_split.solve()

    def per_clip(lr, gt):
        own = NormalEquations(scale, support)
        own.add(lr, gt)
        return apply_filter(lr, own.solve(), scale)

    upscalers = {
        "bicubic": lambda lr, gt: bicubic_upsample(lr, scale),
        "linear": lambda lr, gt: apply_filter(lr, weights, scale),
        "oracle_linear_split": lambda lr, gt: apply_filter(lr, split_weights, scale),
        "oracle_linear_per_clip": per_clip,
    }
    per_method = {}
    for name, upscale in upscalers.items():
        scores = [score_clip(upscale(lr, gt).clamp(0, 1), gt, None, crop_border=cfg.metrics.crop_border)
                  for lr, gt in clips]
        per_method[name] = {k: v for k, v in mean_over_clips(scores).items() if k in SCORES}
        per_method[name]["psnr_per_clip"] = [s["psnr"] for s in scores]
    return {"split": split, "clips": len(clips), "train_clips": train_clips, "support": support,
            "scale": scale, "crop_border": cfg.metrics.crop_border, "methods": per_method}


def format_table(result: dict) -> str:
    """The methods' mean scores and their PSNR difference to bicubic."""
    split, base = result["split"], result["methods"]["bicubic"]["psnr"]
    labels = {
        "bicubic": "bicubic",
        "linear": f"linear, learnt from {result['train_clips']} training clips",
        "oracle_linear_split": f"oracle: one linear filter fitted on the {split} clips",
        "oracle_linear_per_clip": f"oracle: a linear filter fitted on each {split} clip",
    }
    width = max(len(v) for v in labels.values())
    psnr, ssim = f"{split}/psnr", f"{split}/ssim"
    lines = [f"{'method':<{width}}  {psnr}  {ssim}  psnr vs bicubic"]
    for name in METHODS:
        s = result["methods"][name]
        diff = "" if name == "bicubic" else f"{s['psnr'] - base:+.2f} dB"
        row = f"{labels[name]:<{width}}  {s['psnr']:>{len(psnr)}.2f}  {s['ssim']:>{len(ssim)}.4f}  {diff}"
        lines.append(row.rstrip())
    return "\n".join(lines)
