"""LightningDataModule: the clips of the data source named by `data.source` (a registry entry)."""

from __future__ import annotations

import lightning as L
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
        return DataLoader(self.dataset(split), batch_size=batch_size, shuffle=shuffle,
                          num_workers=workers, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.cfg.data.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", 1, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", 1, shuffle=False)
