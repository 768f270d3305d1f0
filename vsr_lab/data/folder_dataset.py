"""Clips of real video on disk: frame folders (REDS layout) or video files, one item per clip.

LR frames come either from a parallel tree of the same clip names (paired data, such as REDS
train_sharp_bicubic) or from a degradation applied to the GT crop. Every random choice of an
item (temporal window and interval, crop, flips, time reversal, and the degradation's own
draws) comes from one generator seeded by (seed, index, epoch, draw), so an item is the same
whatever the worker or the order, and each training draw of a clip is a new sample.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from vsr_lab.data.degradations.bicubic import BicubicDegradation
from vsr_lab.errors import UserError
from vsr_lab.media.clip_reader import clip_info, read_clip
from vsr_lab.media.paths import find_clips
from vsr_lab.registry import DATA_SOURCES

SPLITS = ("train", "val")


class FolderClipDataset(torch.utils.data.Dataset):
    """Real clips as contract items {"lr", "gt", "name"} (no flow: real video has none).

    train: a random window of `num_frames` frames taken every k-th frame (k drawn from
    `intervals`), a random crop aligned on the LR grid (`crop_size` at HR, crop_size / scale at
    LR), and the same random flips (`hflip`, `vflip`) and time reversal (`reverse`) for every
    frame of the clip; call `set_epoch` each epoch, or use `draw(index, d)` for the d-th draw.
    val: the first `num_frames` frames (all if None or 0) and a centre crop if `crop_size` is set.
    Without LR clips, LR = degradation(GT, rng) (the `vsr_lab.data.degradations` signature;
    default bicubic x`scale`) after cropping and flipping, and GT is trimmed at the bottom/right
    to a multiple of `scale`. With `lr_root` / `lr_clips`, GT must be exactly `scale` x LR.
    Clips come from `root` (see `find_clips`) or `clips` (name -> path, e.g. a dataset's list).
    With `lazy`, clip headers are read when first used (large datasets: Vimeo-90K has 64 612
    clips); otherwise every clip is checked now. Clips are read for each item, so a video's window
    costs a seek (decord) or a decode from the start (PyAV fallback).
    """

    def __init__(self, root: str | os.PathLike | None, num_frames: int, scale: int = 4, crop_size: int | None = None,
                 split: str = "train", degradation: Callable | None = None, lr_root: str | None = None,
                 seed: int = 0, clips: Mapping[str, Path] | None = None, lr_clips: Mapping[str, Path] | None = None,
                 hflip: bool = True, vflip: bool = False, reverse: bool = False, intervals: Sequence[int] = (1,),
                 lazy: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split == "train" and not num_frames:
            raise ValueError("the train split needs num_frames >= 1")
        if crop_size is not None and (crop_size <= 0 or crop_size % scale):
            raise ValueError(f"crop_size {crop_size} must be a positive multiple of scale {scale}")
        if not intervals or min(intervals) < 1:
            raise ValueError(f"frame intervals must be >= 1, got {list(intervals)}")
        self.num_frames = num_frames or None
        self.scale = scale
        self.crop_size = crop_size
        self.split = split
        self.degradation = BicubicDegradation(scale) if degradation is None else degradation
        self.seed = seed
        self.epoch = 0
        self.augment = {"hflip": hflip, "vflip": vflip, "reverse": reverse}
        self.intervals = tuple(int(k) for k in intervals)
        clips = dict(clips) if clips is not None else find_clips(root)
        self.names = list(clips)
        self.gt_paths = list(clips.values())
        if lr_clips is not None:
            self.lr_paths = self._match_lr(dict(lr_clips), "the LR list")
        elif lr_root is not None:
            self.lr_paths = self._match_lr(find_clips(lr_root), str(lr_root))
        else:
            self.lr_paths = None
        self._infos: dict[int, object] = {}
        for index in range(1 if lazy else len(self.names)):
            self.info(index)

    def _match_lr(self, lr_clips: dict[str, Path], where: str) -> list[Path]:
        missing = [n for n in self.names if n not in lr_clips]
        if missing:
            raise UserError(f"no LR clip in {where} for GT clip(s) {', '.join(missing[:5])}")
        return [lr_clips[n] for n in self.names]

    def info(self, index: int):
        """Frame count and size of clip `index`, read (and checked) on first use."""
        if index not in self._infos:
            self._infos[index] = clip_info(self.gt_paths[index])
            self._check_clip(index)
        return self._infos[index]

    @property
    def infos(self) -> list:
        return [self.info(i) for i in range(len(self.names))]

    def _check_clip(self, index: int) -> None:
        gt_path, gt = self.gt_paths[index], self._infos[index]
        needed = self.num_frames and (self.num_frames - 1) * min(self.intervals) + 1
        if needed and gt.num_frames < needed:
            what = f"num_frames={self.num_frames}" + (f" at interval {min(self.intervals)}" if needed > self.num_frames else "")
            raise UserError(f"clip {gt_path} has {gt.num_frames} frames, fewer than {what}")
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
        return self.draw(index, 0)

    def _window(self, rng: np.random.Generator, num_frames: int, length: int, train: bool) -> list[int]:
        """Frame indices of the item: `length` frames every k-th (k drawn from the intervals that fit)."""
        if not train:
            return list(range(length))
        fitting = [k for k in self.intervals if (length - 1) * k + 1 <= num_frames] or [1]
        k = fitting[int(rng.integers(len(fitting)))] if len(fitting) > 1 else fitting[0]
        span = (length - 1) * k + 1
        start = int(rng.integers(0, num_frames - span + 1))
        return list(range(start, start + span, k))

    def draw(self, index: int, draw: int) -> dict:
        """Draw number `draw` of clip `index` (0 is `dataset[index]`): its own window, crop,
        flips and degradation, from a generator seeded by (seed, index, epoch, draw)."""
        if not 0 <= index < len(self.names):
            raise IndexError(f"clip index {index} out of range for {len(self.names)} clips")
        train = self.split == "train"
        key = [self.seed, index, self.epoch if train else 0] + ([draw] if draw else [])
        rng = np.random.default_rng(np.random.SeedSequence(key))
        info = self.info(index)
        length = self.num_frames or info.num_frames
        frames = self._window(rng, info.num_frames, length, train)
        start, stop = frames[0], frames[-1] + 1
        pick = [f - start for f in frames]
        gt = read_clip(self.gt_paths[index], start, stop - start)[pick]
        lr = read_clip(self.lr_paths[index], start, stop - start)[pick] if self.lr_paths is not None else None

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
        if train:
            for flag, dim in (("hflip", -1), ("vflip", -2), ("reverse", 0)):
                if self.augment[flag] and rng.random() < 0.5:
                    gt = gt.flip(dim)
                    lr = lr.flip(dim) if lr is not None else None
        if lr is None:
            lr = self.degradation(gt.contiguous(), rng)
        return {"lr": lr.contiguous(), "gt": gt.contiguous(), "name": self.names[index]}


def folder_options(cfg, train: bool) -> dict:
    """FolderClipDataset settings shared by the folder-type sources (folder, reds, vimeo90k)."""
    d = cfg.data
    a = d.augment
    return dict(num_frames=d.num_frames if train else d.val_frames, scale=d.scale,
                crop_size=d.hr_size if train else None, split="train" if train else "val", seed=d.seed,
                hflip=a.hflip, vflip=a.vflip, reverse=a.reverse, intervals=list(a.frame_intervals))


def split_roots(cfg, split: str) -> tuple[str | None, str | None, str]:
    """(root, lr_root, config key of root) of `split` for clip-folder sources."""
    d = cfg.data
    return {"train": (d.root, d.lr_root, "data.root"), "val": (d.val_root, d.val_lr_root, "data.val_root"),
            "test": (d.test_root, d.test_lr_root, "data.test_root")}[split]


@DATA_SOURCES.register("folder")
def build_folder(cfg, split: str, degradation) -> FolderClipDataset:
    """`data.source: folder`: clips under `data.root` (train), `data.val_root` (val) and
    `data.test_root` (test: held out, never the validation clips)."""
    root, lr_root, key = split_roots(cfg, split)
    if not root:
        raise UserError(f"config: data.source is '{cfg.data.source}' but {key} is not set"
                        + (" (the test split is held out: it never reads data.val_root)" if split == "test" else ""))
    return FolderClipDataset(root, degradation=degradation, lr_root=lr_root, **folder_options(cfg, split == "train"))
