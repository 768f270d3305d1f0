"""One scoring path: `validate` and `evaluate` give the same metrics on the same frames.

The validation outputs of a model are written to PNG frame folders (with the GT clips), scored by
`evaluate`, and compared with what `validate` logged for the same model and clips. With the
default `metrics.ewarp_flow: gt`, both take E*warp's motion from the GT clip (estimated on the GT
frames, since a folder dataset has no exact flow); with `pred`, both estimate it on the output.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from vsr_lab.config import load_config
from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.evaluation.files import evaluate_folders
from vsr_lab.training.module import VSRModule


@pytest.mark.parametrize("ewarp_on", ["gt", "pred"])
def test_validate_and_evaluate_agree_on_the_same_frames(tiny_overrides, tmp_path, ewarp_on):
    clips = SyntheticClipDataset("val", num_clips=2, num_frames=4, hr_size=48, seed=3)
    for i in range(2):  # real clips on disk: no exact flow, as for any folder dataset
        write_frame_folder(clips[i]["gt"], tmp_path / "gt" / f"{i:03d}")
    overrides = tiny_overrides + ["data.source=folder", f"data.root={tmp_path / 'gt'}",
                                  f"data.val_root={tmp_path / 'gt'}", "data.val_frames=4",
                                  f"metrics.ewarp_flow={ewarp_on}", "model.flow.estimator=dis", "seed=3"]
    cfg = load_config("experiments/instavsr_tiny.yaml", overrides)
    torch.manual_seed(0)
    module = VSRModule(OmegaConf.to_container(cfg, resolve=True))
    with torch.no_grad():  # non-trivial weights, so the output is not plain bicubic
        for p in module.generator.parameters():
            p.add_(0.02 * torch.randn_like(p))
    module.eval()
    for i, batch in enumerate(VSRDataModule(cfg).val_dataloader()):
        with torch.no_grad():
            hr, _ = module.run_clip(batch)
        write_frame_folder(hr[0].clamp(0, 1), tmp_path / "pred" / f"{i:03d}")
    on_disk = evaluate_folders(tmp_path / "pred", tmp_path / "gt", flow="farneback", ewarp_on=ewarp_on)["mean"]

    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, accelerator="cpu")
    logged = trainer.validate(module, datamodule=VSRDataModule(cfg), verbose=False)[0]
    for key in ("psnr", "ssim", "ewarp", "tof", "flicker", "piqe", "niqe_local"):  # perceptual: the defaults
        assert logged[f"val/{key}"] == pytest.approx(on_disk[key], rel=1e-5, abs=1e-6), key
    assert logged["val/psnr"] != pytest.approx(logged["val/bicubic_psnr"], abs=1e-3)  # a real model, not bicubic
