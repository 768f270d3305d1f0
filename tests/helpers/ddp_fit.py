"""`fit` as a script that records, per process, the clips it trained and scored (for test_scaleout_ddp).

Run as `python tests/helpers/ddp_fit.py RECORD_DIR [--ckpt C] key=value ...`; with trainer.devices=2 and
trainer.strategy=ddp, Lightning's launcher starts this same command again for rank 1, as it does
for `python -m vsr_lab fit`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L

from vsr_lab.config import load_config
from vsr_lab.training.runner import fit


class RecordClips(L.Callback):
    """Names of the clips each training batch and each validation of this process saw."""

    def __init__(self, out: Path):
        self.out = out
        self.train: list[dict] = []
        self.val: list[list[str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append({"epoch": trainer.current_epoch, "batches_done": pl_module.batches_done,
                           "names": list(batch["name"])})

    def on_validation_epoch_start(self, trainer, pl_module):
        self.val.append([])

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val[-1].extend(batch["name"])

    def on_fit_end(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "train": self.train,
                  "val": self.val, "batches_done": pl_module.batches_done}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def main(argv: list[str]) -> None:
    out, rest = Path(argv[0]), argv[1:]
    ckpt = None
    if rest[:1] == ["--ckpt"]:
        ckpt, rest = rest[1], rest[2:]
    cfg = load_config(None, rest)
    fit(cfg, "ddp_fit", ckpt=ckpt, extra_callbacks=[RecordClips(out)])


if __name__ == "__main__":
    main(sys.argv[1:])
