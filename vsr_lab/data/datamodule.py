"""LightningDataModule: the clips of the data source named by `data.source` (a registry entry).

Under DDP, Lightning gives the training loader a DistributedSampler (each process its own share
of the shuffled clips, so `data.batch_size` is per process). Validation and test clips are split
without padding (Lightning's default sampler repeats clips to even out the shares, which would
score some twice): each clip is scored once, and the metrics are averaged over all processes.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from vsr_lab.data.degradations import build_degradation
from vsr_lab.registry import DATA_SOURCES


def build_dataset(cfg: DictConfig, split: str) -> Dataset:
    """The `split` (train / val / test) dataset of `data.source`, LR made by `data.degradation`."""
    return DATA_SOURCES.get(cfg.data.source)(cfg, split, build_degradation(cfg))


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
        dataset = self.dataset(split)
        trainer = self.trainer
        if not shuffle and trainer is not None and trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size,
                                                   rank=trainer.global_rank, shuffle=False)
            return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                          num_workers=workers, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.cfg.data.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", 1, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", 1, shuffle=False)
