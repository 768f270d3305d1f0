"""Pruning stages on an SD-shaped narrow model: exact stages are exact, kept weights are copied."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock, FeedForward
from diffusers.models.resnet import ResnetBlock2D
from helpers.sd21_narrow import ALL_STAGES, narrow_cfg

from vsr_lab.errors import UserError
from vsr_lab.models.backbone.sd21 import TextConditionedUNet
from vsr_lab.models.build import build_generator, build_unpruned_generator
from vsr_lab.models.pruning import apply_pruning
from vsr_lab.models.pruning.channels import keep_whole_groups
from vsr_lab.models.pruning.exact import NoTimeEmbedding
from vsr_lab.models.pruning.structural import LightLatentEncoder

LR_HW = (16, 16)


@pytest.fixture(scope="module")
def unpruned():
    torch.manual_seed(0)
    return build_unpruned_generator(narrow_cfg()).eval()


def _frame(gen, seed=1):
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(1, 3, *LR_HW, generator=g)
    prev = torch.rand(1, 3, LR_HW[0] * 4, LR_HW[1] * 4, generator=g)
    with torch.no_grad():
        return gen.forward_frame(lr, prev).hr


def _prune(gen, stages, *overrides, count_flops=False):
    return apply_pruning(copy.deepcopy(gen), narrow_cfg(*overrides, stages=stages), LR_HW if count_flops else None)


@pytest.mark.parametrize("stages", [["text_encoder"], ["time_embedding"], ["text_encoder", "time_embedding"]])
def test_exact_stages_leave_the_output_unchanged(unpruned, stages):
    ref = _frame(unpruned)
    gen, reports = _prune(unpruned, stages)
    out = _frame(gen)
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-5
    assert all(r.exact for r in reports)
    assert all(r.params_after < r.params_before for r in reports)
    if "text_encoder" in stages:
        assert not isinstance(gen.backbone, TextConditionedUNet)
        assert not any("text_encoder" in n for n, _ in gen.named_parameters())
    if "time_embedding" in stages:
        unet = gen.backbone.unet
        assert isinstance(unet.time_embedding, NoTimeEmbedding)
        assert all(m.time_emb_proj is None for m in unet.modules() if isinstance(m, ResnetBlock2D))


def test_every_stage_reports_its_cost_and_all_stages_compose(unpruned):
    gen, reports = _prune(unpruned, ALL_STAGES, count_flops=True)
    assert [r.stage for r in reports] == ALL_STAGES
    for before, after in zip(reports, reports[1:]):  # each stage starts where the previous one ended
        assert after.params_before == before.params_after and after.gflops_before == before.gflops_after
    by = {r.stage: r for r in reports}
    for name in ("cross_attention", "vae_encoder", "unet_channels", "decoder_channels"):
        assert not by[name].exact and by[name].params_after < by[name].params_before
        assert by[name].gflops_after < by[name].gflops_before
    assert by["time_embedding"].gflops_after <= by["time_embedding"].gflops_before
    assert reports[-1].gflops_after < reports[0].gflops_before / 8
    out = _frame(gen)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    assert isinstance(gen.encoder, LightLatentEncoder)
    blocks = [m for m in gen.backbone.unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert blocks and all(b.attn2 is None for b in blocks) and gen.backbone.context is None


def test_function_changing_stages_change_the_output(unpruned):
    ref = _frame(unpruned)
    for stage in ("cross_attention", "vae_encoder", "unet_channels", "decoder_channels"):
        gen, _ = _prune(unpruned, [stage])
        assert (_frame(gen) - ref).abs().max() > 1e-4, stage


def test_unet_channel_pruning_copies_kept_weights_and_drops_whole_groups(unpruned):
    gen, _ = _prune(unpruned, ["unet_channels"], "model.pruning.unet_ratio=0.5")
    old_blocks = [m for m in unpruned.backbone.unet.modules() if isinstance(m, ResnetBlock2D)]
    new_blocks = [m for m in gen.backbone.unet.modules() if isinstance(m, ResnetBlock2D)]
    for old, new in zip(old_blocks, new_blocks):
        groups = old.norm2.num_groups
        score = old.norm2.weight.abs() * old.conv2.weight.transpose(0, 1).flatten(1).norm(dim=1)
        idx = keep_whole_groups(score, groups, 0.5)
        assert new.conv1.out_channels == old.conv1.out_channels // 2 == len(idx)
        assert new.norm2.num_groups == groups // 2
        assert torch.equal(new.conv1.weight, old.conv1.weight[idx])
        assert torch.equal(new.conv1.bias, old.conv1.bias[idx])
        assert torch.equal(new.time_emb_proj.weight, old.time_emb_proj.weight[idx])
        assert torch.equal(new.conv2.weight, old.conv2.weight[:, idx])
        assert torch.equal(new.norm2.weight, old.norm2.weight[idx])
        # whole groups kept: the block equals the original with the dropped channels' weights zeroed
        masked = copy.deepcopy(old)
        dropped = torch.ones(old.conv1.out_channels, dtype=torch.bool)
        dropped[idx] = False
        with torch.no_grad():
            masked.conv2.weight[:, dropped] = 0
            x = torch.randn(1, old.conv1.in_channels, 8, 8)
            temb = torch.randn(1, old.time_emb_proj.in_features)
            torch.testing.assert_close(new(x, temb), masked(x, temb), rtol=1e-5, atol=1e-5)
    old_ff = next(m for m in unpruned.backbone.unet.modules() if isinstance(m, FeedForward))
    new_ff = next(m for m in gen.backbone.unet.modules() if isinstance(m, FeedForward))
    inner = old_ff.net[2].in_features
    kept = [j for j in range(inner) if any(torch.equal(new_ff.net[2].weight[:, i], old_ff.net[2].weight[:, j])
                                            for i in range(new_ff.net[2].in_features))]
    assert len(kept) == new_ff.net[2].in_features == inner // 2
    value_gate = old_ff.net[0].proj.weight
    assert torch.equal(new_ff.net[0].proj.weight, value_gate[kept + [j + inner for j in kept]])


def test_decoder_channel_pruning_copies_kept_weights(unpruned):
    gen, _ = _prune(unpruned, ["decoder_channels"], "model.pruning.decoder_ratio=0.5")
    old, new = unpruned.decoder.decoder, gen.decoder.decoder
    assert new.conv_in.out_channels == old.conv_in.out_channels // 2 and new.conv_in.in_channels == 4
    assert new.conv_out.out_channels == 3 and new.conv_out.in_channels == old.conv_out.in_channels // 2
    # the width-64 stream: conv_in's kept rows select the same channels everywhere that width appears
    rows = [next(j for j in range(old.conv_in.out_channels)
                 if torch.equal(new.conv_in.weight[i], old.conv_in.weight[j])) for i in range(new.conv_in.out_channels)]
    idx = torch.tensor(rows)
    attn_old, attn_new = old.mid_block.attentions[0], new.mid_block.attentions[0]
    assert torch.equal(attn_new.to_q.weight, attn_old.to_q.weight[idx][:, idx])
    assert torch.equal(attn_new.group_norm.weight, attn_old.group_norm.weight[idx])
    size = old.conv_norm_out.num_channels // old.conv_norm_out.num_groups
    assert all(len({int(i) // size for i in idx[k:k + size]}) == 1 for k in range(0, len(idx), size))


def test_keep_whole_groups_picks_the_highest_scoring_groups():
    score = torch.tensor([0.1, 0.1, 5.0, 5.0, 1.0, 1.0, 0.0, 9.0])
    assert keep_whole_groups(score, 4, 0.5).tolist() == [2, 3, 6, 7]
    assert keep_whole_groups(score, 4, 0.01).tolist() == [2, 3]  # group sums 0.2, 10, 2, 9


def test_bad_stage_lists_are_one_error_naming_the_key():
    with pytest.raises(UserError, match="key 'model.pruning.stages': 'vae' is not one of .*unet_channels"):
        build_generator(narrow_cfg(stages=["vae"]))
    with pytest.raises(UserError, match="listed twice"):
        build_generator(narrow_cfg(stages=["text_encoder", "text_encoder"]))
    with pytest.raises(UserError, match="model.pruning.unet_ratio"):
        build_generator(narrow_cfg("model.pruning.unet_ratio=0", stages=["unet_channels"]))
    from vsr_lab.config import load_config
    with pytest.raises(UserError, match="'vae_encoder' needs model.backbone.preset=sd21"):
        build_generator(load_config(None, ["model.pruning.stages=[vae_encoder]"]))


def test_tiny_preset_takes_the_generic_stages():
    from vsr_lab.config import load_config

    torch.manual_seed(0)
    cfg = load_config(None, ["model.pruning.stages=[time_embedding,cross_attention,unet_channels]"])
    gen = build_generator(cfg)
    out = gen(torch.rand(1, 2, 3, 8, 8), lambda t: torch.zeros(1, 2, 32, 32))
    assert out.shape == (1, 2, 3, 32, 32) and torch.isfinite(out).all()
