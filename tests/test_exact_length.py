"""A fit trains exactly `trainer.max_batches` batches on any dataset size, resume included:
the draw sampler, and a 3-clip folder dataset trained and resumed."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from vsr_lab.config import load_config
from vsr_lab.data.sampling import DrawSampler, TrainingDraws, split_index
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.training.runner import fit

from helpers.common import REPO


def test_sampler_draws_every_clip_equally_often_and_each_draw_once():
    sampler = DrawSampler(3, 8, seed=4)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    stream = [i for e in epochs for i in e]
    assert len(sampler) == 8 and all(len(e) == 8 for e in epochs)
    items = [split_index(i, 3) for i in stream]
    assert [d for _, d in items] == list(range(24))  # draw numbers: the stream position, never repeated
    assert collections.Counter(i for i, _ in items) == {0: 8, 1: 8, 2: 8}  # 8 passes of the 3 clips
    for p in range(8):  # each pass is a permutation
        assert sorted(i for i, _ in items[3 * p:3 * p + 3]) == [0, 1, 2]
    again = DrawSampler(3, 8, seed=4)
    again.set_epoch(1)  # a resumed run continues the same stream
    assert list(again) == epochs[1]
    other = DrawSampler(3, 8, seed=5)
    other.set_epoch(1)
    assert list(other) != epochs[1]
    shares = [DrawSampler(3, 8, seed=4, num_replicas=2, rank=r) for r in (0, 1)]
    for share in shares:  # DDP: each process its half of the same draws
        share.set_epoch(1)
    assert [len(s) for s in shares] == [4, 4] and sorted(list(shares[0]) + list(shares[1])) == sorted(epochs[1])


def test_training_draws_give_a_repeated_clip_a_new_sample():
    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return self.draw(i, 0)

        def draw(self, i, d):
            return {"gt": torch.tensor([float(i), float(d)])}

    view = TrainingDraws(Clips(), target=lambda gt: gt * 10)
    assert torch.equal(view[1 + 2 * 5]["gt"], torch.tensor([10.0, 50.0]))
    assert len(view) == 2


@pytest.fixture
def three_clips(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        frames = [np.clip(rng.normal(128, 40, (32, 32, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
        write_frame_folder(frames, tmp_path / "clips" / name)
    return tmp_path / "clips"


def _folder_cfg(tiny_overrides, root, *extra):
    return load_config(REPO / "experiments" / "instavsr_tiny.yaml", tiny_overrides + [
        "data.source=folder", f"data.root={root}", f"data.val_root={root}", "data.val_frames=2",
        "data.num_frames=2", "data.hr_size=16", "data.batch_size=2", "tracking.enabled=false",
        "loss.adversarial_latent.enabled=false", "loss.adversarial_pixel.enabled=false", *extra])


@pytest.mark.slow  # two short fits (about a minute); .ci/run runs it
def test_a_three_clip_folder_trains_exactly_max_batches_and_resumes(tiny_overrides, three_clips):
    import lightning as L

    class Count(L.Callback):
        def __init__(self):
            self.batches, self.clips = 0, []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.batches += 1
            self.clips += list(batch["name"])

    count = Count()
    cfg = _folder_cfg(tiny_overrides, three_clips, "trainer.max_batches=6", "trainer.val_every=3")
    trainer, run = fit(cfg, "folder.yaml", extra_callbacks=[count])
    assert count.batches == 6 and trainer.lightning_module.batches_done == 6  # 12 draws of 3 clips
    assert collections.Counter(count.clips) == {"a": 4, "b": 4, "c": 4}
    resumed = Count()
    longer = _folder_cfg(tiny_overrides, three_clips, "trainer.max_batches=9", "trainer.val_every=3")
    trainer, _ = fit(longer, "folder.yaml", ckpt=str(run.run_dir / "checkpoints" / "last.ckpt"),
                     extra_callbacks=[resumed])
    assert resumed.batches == 3 and trainer.lightning_module.batches_done == 9
