"""Constants every test module may import: the repository root and the overrides that shrink any
experiment to a few seconds of CPU work (conftest.py's fixtures build on them)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY_OVERRIDES = [
    "data.hr_size=32", "data.num_frames=3", "data.batch_size=2",
    "data.val_clips=1", "data.val_frames=3", "data.val_hr_size=32",
    "trainer.max_batches=2", "trainer.val_every=2", "trainer.progress_bar=false",
    "model.backbone.block_out_channels=[16,32]", "model.backbone.encoder_channels=16",
    "model.backbone.decoder_channels=16", "tracking.log_images=1",
]
