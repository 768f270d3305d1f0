"""Clips of real video on disk: frame folders (REDS layout) or video files, one item per clip.

LR frames come either from a parallel tree of the same clip names (paired data, such as REDS
train_sharp_bicubic) or from a degradation applied to the GT crop. Every random choice of an
item (temporal window, crop, flip, and the degradation's own draws) comes from one generator
seeded by (seed, index, epoch), so an item is the same whatever the worker or the order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vsr_lab.data.degradations.bicubic import BicubicDegradation
from vsr_lab.data.clip_paths import find_clips
from vsr_lab.data.video_io import clip_info, read_clip
from vsr_lab.errors import UserError
from vsr_lab.registry import DATA_SOURCES

SPLITS = ("train", "val")


class FolderClipDataset(torch.utils.data.Dataset):
    """Real clips as contract items {"lr", "gt", "name"} (no flow: real video has none).

    train: a random window of `num_frames`, a random crop aligned on the LR grid (`crop_size` at
    HR, crop_size / scale at LR) and a random horizontal flip; call `set_epoch` each epoch.
    val: the first `num_frames` frames (all if None or 0) and a centre crop if `crop_size` is set.
    Without `lr_root`, LR = degradation(GT, rng) (the `vsr_lab.data.degradations` signature; default
    bicubic x`scale`) after cropping and flipping, and GT is trimmed at the bottom/right to a
    multiple of `scale`. With `lr_root`, GT must be exactly `scale` x LR.
    Clips are read for each item, so a video's window costs a seek (decord) or a decode from
    the start (PyAV fallback).
    """

    def __init__(self, root: str | os.PathLike, num_frames: int, scale: int = 4, crop_size: int | None = None,
                 split: str = "train", degradation: Callable | None = None, lr_root: str | None = None,
                 seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split == "train" and not num_frames:
            raise ValueError("the train split needs num_frames >= 1")
        if crop_size is not None and (crop_size <= 0 or crop_size % scale):
            raise ValueError(f"crop_size {crop_size} must be a positive multiple of scale {scale}")
        self.num_frames = num_frames or None
        self.scale = scale
        self.crop_size = crop_size
        self.split = split
        self.degradation = BicubicDegradation(scale) if degradation is None else degradation
        self.seed = seed
        self.epoch = 0
        clips = find_clips(root)
        self.names = list(clips)
        self.gt_paths = list(clips.values())
        self.lr_paths = self._match_lr(Path(lr_root)) if lr_root is not None else None
        self.infos = [clip_info(p) for p in self.gt_paths]
        for index in range(len(self.names)):
            self._check_clip(index)

    def _match_lr(self, lr_root: Path) -> list[Path]:
        lr_clips = find_clips(lr_root)
        missing = [n for n in self.names if n not in lr_clips]
        if missing:
            raise UserError(f"no LR clip in {lr_root} for GT clip(s) {', '.join(missing[:5])}")
        return [lr_clips[n] for n in self.names]

    def _check_clip(self, index: int) -> None:
        gt_path, gt = self.gt_paths[index], self.infos[index]
        if self.num_frames and gt.num_frames < self.num_frames:
            raise UserError(f"clip {gt_path} has {gt.num_frames} frames, fewer than num_frames={self.num_frames}")
        if self.lr_paths is not None:
            lr_path = self.lr_paths[index]
            lr = clip_info(lr_path)
            if (gt.height, gt.width) != (lr.height * self.scale, lr.width * self.scale):
                raise UserError(f"GT clip {gt_path} is {gt.width}x{gt.height} but LR clip {lr_path} is "
                                f"{lr.width}x{lr.height}: not exactly x{self.scale}")
            if gt.num_frames != lr.num_frames:
                raise UserError(f"GT clip {gt_path} has {gt.num_frames} frames but LR clip {lr_path} "
                                f"has {lr.num_frames}")
        if self.crop_size is not None and min(gt.height, gt.width) < self.crop_size:
            raise UserError(f"clip {gt_path} ({gt.width}x{gt.height}) is smaller than crop_size={self.crop_size}")

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows, crops and flips. DataLoader workers hold copies of the dataset:
        they see the new epoch only if they are re-created (persistent_workers=False)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        train = self.split == "train"
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index, self.epoch if train else 0]))
        info = self.infos[index]
        length = self.num_frames or info.num_frames
        start = int(rng.integers(0, info.num_frames - length + 1)) if train else 0
        gt = read_clip(self.gt_paths[index], start, length)
        lr = read_clip(self.lr_paths[index], start, length) if self.lr_paths is not None else None

        s = self.scale
        h, w = info.height // s, info.width // s  # LR grid; GT is trimmed to (h * s, w * s)
        top, left = 0, 0
        if self.crop_size is not None:
            c = self.crop_size // s
            if train:
                top, left = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
            else:
                top, left = (h - c) // 2, (w - c) // 2
            h, w = c, c
        gt = gt[..., top * s:(top + h) * s, left * s:(left + w) * s]
        if lr is not None:
            lr = lr[..., top:top + h, left:left + w]
        if train and rng.random() < 0.5:
            gt = gt.flip(-1)
            if lr is not None:
                lr = lr.flip(-1)
        if lr is None:
            lr = self.degradation(gt, rng)
        return {"lr": lr.contiguous(), "gt": gt.contiguous(), "name": self.names[index]}


@DATA_SOURCES.register("folder")
def build_folder(cfg, split: str, degradation) -> FolderClipDataset:
    """`data.source: folder`: clips under `data.root` (train) or `data.val_root` (val, test)."""
    d = cfg.data
    train = split == "train"
    root, lr_root = (d.root, d.lr_root) if train else (d.val_root, d.val_lr_root)
    key = "data.root" if train else "data.val_root"
    if not root:
        raise UserError(f"config: data.source is 'folder' but {key} is not set")
    return FolderClipDataset(
        root, num_frames=d.num_frames if train else d.val_frames, scale=d.scale,
        crop_size=d.hr_size if train else None, split="train" if train else "val",
        degradation=degradation, lr_root=lr_root, seed=d.seed,
    )
