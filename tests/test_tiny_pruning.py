"""The tiny preset's stages: attention blocks become the identity, encoder and decoder widths are
slimmed keeping the kept channels' weights, and each stage lowers the FLOPs."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from helpers.distill import tiny_cfg

from vsr_lab.errors import UserError
from vsr_lab.models.build import build_unpruned_generator
from vsr_lab.models.pruning import apply_pruning, build_stages
from vsr_lab.models.pruning.structural import SkipTransformer

LR = (8, 8)


@pytest.fixture(scope="module")
def unpruned():
    torch.manual_seed(0)
    gen = build_unpruned_generator(tiny_cfg()).eval()
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return gen


def _out(gen):
    g = torch.Generator().manual_seed(1)
    lr, prev = torch.rand(1, 3, *LR, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        return gen.forward_frame(lr, prev).hr


def test_attention_blocks_become_the_identity(unpruned):
    gen, [report] = apply_pruning(copy.deepcopy(unpruned), tiny_cfg("model.pruning.stages=[attention_blocks]"), LR)
    unet = gen.backbone.unet
    assert not any(isinstance(m, Transformer2DModel) for m in unet.modules())
    skips = [m for m in unet.modules() if isinstance(m, SkipTransformer)]
    assert len(skips) == 4 and report.note == "4 transformer blocks removed"
    x = torch.randn(1, 16, 4, 4)
    assert skips[0](x, encoder_hidden_states=None, return_dict=False)[0] is x
    assert report.gflops_after < report.gflops_before and report.params_after < report.params_before
    assert not torch.allclose(_out(gen), _out(unpruned))


@pytest.mark.parametrize("stage,part", [("encoder_channels", "encoder"), ("decoder_channels", "decoder")])
def test_chain_widths_keep_whole_groups_of_the_kept_weights(unpruned, stage, part):
    cfg = tiny_cfg(f"model.pruning.stages=[{stage}]", "model.pruning.encoder_ratio=0.5",
                   "model.pruning.decoder_ratio=0.5")
    gen, [report] = apply_pruning(copy.deepcopy(unpruned), cfg, LR)
    full, cut = getattr(unpruned, part).body, getattr(gen, part).body
    assert cut.conv_in.out_channels == full.conv_in.out_channels // 2
    assert cut.conv_in.in_channels == full.conv_in.in_channels  # chain ends untouched
    assert cut.conv_out.out_channels == full.conv_out.out_channels
    rows = full.conv_in.weight.flatten(1)
    assert all((rows == r).all(1).any() for r in cut.conv_in.weight.flatten(1))
    norm = cut.blocks[0].norm1
    assert norm.num_channels == cut.conv_in.out_channels and norm.num_channels % norm.num_groups == 0
    assert "widths [16] -> [8]" in report.note
    assert report.gflops_after < report.gflops_before and _out(gen).shape == (1, 3, 32, 32)


def test_encoder_channels_on_sd21_needs_the_light_encoder_first():
    from helpers.sd21_narrow import narrow_cfg

    with pytest.raises(UserError, match="'encoder_channels' on sd21 slims the light encoder: list 'vae_encoder' before it"):
        build_stages(narrow_cfg(stages=["encoder_channels"]))
    assert [s.name for s in build_stages(narrow_cfg(stages=["vae_encoder", "encoder_channels"]))] == [
        "vae_encoder", "encoder_channels"]
