"""LightningDataModule: the clips of the data source named by `data.source` (a registry entry).

Training draws exactly `trainer.val_every` batches per epoch and per process from any dataset
size (sampling.py), so `trainer.max_batches` is the number of batches trained, on a 3-clip folder
as on 100 000 sample clips. Under DDP each process takes its own share of the draws (so
`data.batch_size` is per process). Validation and test clips are split without padding
(Lightning's default sampler repeats clips to even out the shares, which would score some
twice): each clip is scored once, and the metrics are averaged over all processes.
"""

from __future__ import annotations

from functools import partial

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from vsr_lab.data.degradations import build_degradation
from vsr_lab.data.degradations.sharpen import usm_sharpen
from vsr_lab.data.sampling import DrawSampler, TrainingDraws
from vsr_lab.registry import DATA_SOURCES


def build_dataset(cfg: DictConfig, split: str) -> Dataset:
    """The `split` (train / val / test) dataset of `data.source`, LR made by `data.degradation`."""
    return DATA_SOURCES.get(cfg.data.source)(cfg, split, build_degradation(cfg))


def training_target(cfg: DictConfig):
    """The training target made of the GT (`data.degradation.usm_gt`), or None for the GT itself."""
    usm = cfg.data.degradation.usm_gt
    if not usm.enabled:
        return None
    return partial(usm_sharpen, weight=usm.weight, kernel_size=usm.kernel_size, threshold=usm.threshold)


def batches_per_epoch(cfg: DictConfig) -> int:
    """Validation runs every `trainer.val_every` batches: that is one epoch."""
    return min(cfg.trainer.val_every, cfg.trainer.max_batches)


class VSRDataModule(L.LightningDataModule):
    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.cfg = cfg
        self._datasets: dict[str, Dataset] = {}

    def dataset(self, split: str) -> Dataset:
        if split not in self._datasets:
            self._datasets[split] = build_dataset(self.cfg, split)
        return self._datasets[split]

    def check(self, splits=("train", "val")) -> None:
        """Build the datasets now, so a bad root, an empty folder or a bad degradation setting is
        one error before any run or training starts."""
        for split in splits:
            self.dataset(split)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        base = self.dataset("train")
        d = self.cfg.data
        world, rank = self._world()
        # a DistributedSampler subclass, so Lightning keeps it under DDP and sets its epoch
        sampler = DrawSampler(len(base), batches_per_epoch(self.cfg) * d.batch_size * world,
                              seed=(self.cfg.seed, d.seed), num_replicas=world, rank=rank)
        return DataLoader(TrainingDraws(base, training_target(self.cfg)), batch_size=d.batch_size,
                          sampler=sampler, num_workers=d.num_workers, drop_last=True)

    def _eval_loader(self, split: str) -> DataLoader:
        workers = self.cfg.data.num_workers
        dataset = self.dataset(split)
        world, rank = self._world()
        if world > 1:
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
            return DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=workers)
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
