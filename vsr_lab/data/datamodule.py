"""LightningDataModule: built-in sample clips or clips on disk, chosen by `data.source`."""

from __future__ import annotations

import lightning as L
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from vsr_lab.data.degradations import BicubicDegradation
from vsr_lab.errors import UserError

# Seed offset that makes the synthetic test clips independent of the validation clips.
TEST_SEED_OFFSET = 1000


def build_degradation(cfg: DictConfig):
    if cfg.data.degradation.type == "bicubic":
        return BicubicDegradation(cfg.data.scale)
    raise UserError(f"config: unknown data.degradation.type {cfg.data.degradation.type!r}")


def build_dataset(cfg: DictConfig, split: str) -> Dataset:
    d = cfg.data
    degradation = build_degradation(cfg)
    if d.source == "synthetic":
        from vsr_lab.data.synthetic import SyntheticClipDataset

        train = split == "train"
        return SyntheticClipDataset(
            split="train" if train else "val",
            num_clips=d.train_clips if train else d.val_clips,
            num_frames=d.num_frames if train else d.val_frames,
            hr_size=d.hr_size if train else d.val_hr_size,
            scale=d.scale,
            seed=d.seed + (TEST_SEED_OFFSET if split == "test" else 0),
            degradation=degradation,
            max_shift=d.motion.max_shift, max_zoom=d.motion.max_zoom,
            max_rotation_deg=d.motion.max_rotation_deg, min_detail=d.min_detail,
        )
    from vsr_lab.data.folder_dataset import FolderClipDataset

    root, lr_root = (d.root, d.lr_root) if split == "train" else (d.val_root, d.val_lr_root)
    key = "data.root" if split == "train" else "data.val_root"
    if not root:
        raise UserError(f"config: data.source is 'folder' but {key} is not set")
    return FolderClipDataset(
        root, num_frames=d.num_frames if split == "train" else d.val_frames, scale=d.scale,
        crop_size=d.hr_size if split == "train" else None, split="train" if split == "train" else "val",
        degradation=degradation, lr_root=lr_root, seed=d.seed,
    )


class VSRDataModule(L.LightningDataModule):
    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.cfg = cfg
        self._datasets: dict[str, Dataset] = {}

    def dataset(self, split: str) -> Dataset:
        if split not in self._datasets:
            self._datasets[split] = build_dataset(self.cfg, split)
        return self._datasets[split]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.cfg.data.num_workers
        return DataLoader(self.dataset(split), batch_size=batch_size, shuffle=shuffle,
                          num_workers=workers, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.cfg.data.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", 1, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", 1, shuffle=False)
