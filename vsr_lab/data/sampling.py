"""Exactly as many training draws as the run asks for, whatever the dataset's size.

Lightning caps an epoch at the loader's length, so a 3-clip folder at batch size 2 would train
one batch per epoch however many `trainer.val_every` asked for. `DrawSampler` instead yields
`num_samples` draws per epoch from an endless stream: the dataset's items in a random order,
reshuffled at every pass, so each item is drawn equally often. Draw d of item i is yielded as
the index `i + len(dataset) * d`; datasets read it as item `index % len` and give every draw its
own randomness (window, crop, flips, degradation), so a repeated clip is a new sample. The stream
depends only on (seed, position), and an epoch starts at the position of the draws done so far
(`start_at`; by default epoch * draws per epoch), so a resumed run continues it exactly, also when
the resume changes the epoch length (`trainer.val_every`). Under DDP, process r of w takes
positions r, r + w, r + 2w, ... of each epoch's draws.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def split_index(index: int, size: int) -> tuple[int, int]:
    """(item, draw) of a sampler index: the dataset's item and the draw number."""
    return index % size, index // size


class DrawSampler(DistributedSampler):
    """`num_samples` indices per epoch (over all `num_replicas` processes, this one being `rank`)
    over a dataset of `size` items (see module docstring). A DistributedSampler subclass only so
    that Lightning neither wraps nor replaces it under DDP; it needs no process group."""

    def __init__(self, size: int, num_samples: int, seed: int | Sequence[int] = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:  # noqa: D107 - DistributedSampler.__init__ would need a process group
        if size <= 0:
            raise ValueError("DrawSampler needs a non-empty dataset")
        if num_samples % num_replicas:
            raise ValueError(f"{num_samples} draws do not split evenly over {num_replicas} processes")
        self.size = size
        self.num_samples = num_samples
        self.num_replicas, self.rank = num_replicas, rank
        self.seed = [seed] if isinstance(seed, int) else list(seed)
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch: epoch e covers stream positions
        [e * num_samples, (e + 1) * num_samples) unless `start_at` says otherwise."""
        self.start = epoch * self.num_samples

    def start_at(self, position: int) -> None:
        """The next epoch starts at stream `position` (the draws of all processes done so far)."""
        self.start = position

    def _pass(self, number: int) -> np.ndarray:
        return np.random.default_rng(np.random.SeedSequence([*self.seed, number])).permutation(self.size)

    def __iter__(self) -> Iterator[int]:
        first = self.start
        number, order = -1, None
        for position in range(first + self.rank, first + self.num_samples, self.num_replicas):
            pass_number, offset = divmod(position, self.size)
            if pass_number != number:
                number, order = pass_number, self._pass(pass_number)
            yield int(order[offset]) + self.size * position

    def __len__(self) -> int:
        return self.num_samples // self.num_replicas


class TrainingDraws(Dataset):
    """The training view of a dataset for `DrawSampler`: index `i + len * d` is draw d of item i
    (`dataset.draw(i, d)` where the dataset has it, e.g. folder clips, else item i as is), and the
    GT becomes the training target `target(gt)` when one is given (e.g. unsharp masking)."""

    def __init__(self, dataset: Dataset, target: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.dataset = dataset
        self.target = target

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        item_index, draw = split_index(index, len(self.dataset))
        item = self.dataset.draw(item_index, draw) if hasattr(self.dataset, "draw") else self.dataset[item_index]
        if self.target is not None:
            item = {**item, "gt": self.target(item["gt"])}
        return item
