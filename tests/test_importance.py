"""Channel importance: data-driven scorers see what weights cannot (a channel that never fires),
every scorer is a registry entry of the config, and the choice shows in the stage's report."""

from __future__ import annotations

import pytest
import torch
from helpers.distill import tiny_cfg

from vsr_lab.config.loading import load_config
from vsr_lab.config.schema import PruningConfig
from vsr_lab.errors import UserError
from vsr_lab.models.build import build_unpruned_generator
from vsr_lab.models.flow import build_flow_estimator
from vsr_lab.models.pruning import apply_pruning
from vsr_lab.models.pruning.importance import build_importance
from vsr_lab.registry import CHANNEL_IMPORTANCE
from vsr_lab.training.calibration import calibration_clips


@pytest.fixture(scope="module")
def setup():
    cfg = tiny_cfg("model.pruning.calibration_clips=1")
    torch.manual_seed(0)
    gen = build_unpruned_generator(cfg)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
        block = gen.backbone.unet.down_blocks[0].resnets[0]
        size = block.norm2.num_channels // block.norm2.num_groups
        # group 1 never fires: a large gain (weight norms rank it first) and a bias that keeps
        # SiLU's input near -50 on any data
        block.norm2.weight[size:2 * size] = 5.0
        block.norm2.bias[size:2 * size] = -50.0
    calib = calibration_clips(cfg, build_flow_estimator(cfg.model.flow), cfg.model.recurrent.enabled)
    return cfg, gen, calib, list(range(size, 2 * size))


def test_registry_is_the_config_choice_list():
    assert set(CHANNEL_IMPORTANCE.names()) == {"weight_norm", "activation", "taylor"}
    field = PruningConfig.__dataclass_fields__["importance"]
    assert field.metadata["registry"] is CHANNEL_IMPORTANCE
    with pytest.raises(Exception, match="importance"):
        load_config("ablations/no_gan.yaml", ["model.pruning.importance=random"])


@pytest.mark.parametrize("name", ["activation", "taylor"])
def test_data_driven_scores_rank_a_dead_channel_last(setup, name):
    cfg, gen, calib, dead = setup
    assert calib.clips == 1
    scorer = build_importance(name, calib)
    scorer.prepare(gen)
    block = gen.backbone.unet.down_blocks[0].resnets[0]
    score = scorer.resnet_hidden(block)
    assert score.shape == (block.conv2.in_channels,)
    assert score[dead].max() < 1e-6 * score.max()
    assert set(score.argsort()[:len(dead)].tolist()) == set(dead)
    # weight norms alone rank the same channels first
    wn = build_importance("weight_norm", None).resnet_hidden(block)
    assert set(wn.argsort(descending=True)[:len(dead)].tolist()) == set(dead)


def test_pruning_keeps_or_drops_the_dead_group_by_importance(setup):
    import copy

    cfg, gen, calib, dead = setup
    kept = {}
    for name in ("weight_norm", "activation"):
        c = tiny_cfg("model.pruning.stages=[unet_channels]", "model.pruning.unet_ratio=0.5",
                     f"model.pruning.importance={name}", "model.pruning.calibration_clips=1")
        pruned, reports = apply_pruning(copy.deepcopy(gen), c, calibration=calib)
        block = pruned.backbone.unet.down_blocks[0].resnets[0]
        kept[name] = block.norm2.bias.detach()
        assert f"importance {name}" in reports[0].note
    assert (kept["weight_norm"] == -50).any()  # the gain-heavy dead group survives weight norms
    assert not (kept["activation"] == -50).any()  # and is dropped by activations
    assert "on 1 calibration clip:" in reports[0].note


def test_data_driven_importance_needs_calibration():
    with pytest.raises(ValueError, match="needs calibration clips"):
        build_importance("taylor", None)
    with pytest.raises(UserError, match="model.pruning.calibration_clips"):
        tiny_cfg("model.pruning.importance=taylor", "model.pruning.calibration_clips=0")
