"""Generator, one-step x0, critics and losses on tiny shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vsr_lab.config import load_config
from vsr_lab.losses.adversarial import discriminator_loss, generator_adv_loss, r1_penalty
from vsr_lab.losses.reconstruction import charbonnier
from vsr_lab.losses.temporal import masked_l1, temporal_consistency_loss
from vsr_lab.models.backbone.one_step import predict_x0, sd_alphas_cumprod
from vsr_lab.models.discriminators import PatchDiscriminator
from vsr_lab.models.build import build_generator

from helpers.common import TINY_OVERRIDES


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("t", [100, 999])
def test_predict_x0_inverts_the_forward_process(prediction_type, t):
    a = sd_alphas_cumprod()[t]
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    z = a.sqrt() * x0 + (1 - a).sqrt() * eps
    target = eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
    assert torch.allclose(predict_x0(z, target, a, prediction_type), x0, atol=2e-4)


def test_sd_schedule_values():
    a = sd_alphas_cumprod()
    assert a.shape == (1000,)
    assert abs(a[999].item() - 0.0047) < 1e-4 and abs(a[0].item() - 0.99915) < 1e-5


@pytest.mark.parametrize("recurrent", [True, False])
def test_untrained_generator_is_bicubic_and_shapes(recurrent):
    cfg = load_config(None, TINY_OVERRIDES + [f"model.recurrent.enabled={recurrent}"])
    gen = build_generator(cfg)
    lr = torch.rand(2, 3, 3, 8, 8)
    out = gen(lr, lambda t: torch.zeros(2, 2, 32, 32))
    assert out.shape == (2, 3, 3, 32, 32)
    bicubic = F.interpolate(lr.flatten(0, 1), scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(out.flatten(0, 1), bicubic, atol=1e-5)
    assert gen.encoder.body.conv_in.in_channels == (3 + 48 if recurrent else 3)


def test_recurrent_generator_uses_the_warped_previous_output():
    cfg = load_config(None, TINY_OVERRIDES)
    gen = build_generator(cfg)
    torch.nn.init.normal_(gen.encoder.body.conv_out.weight, std=0.05)
    lr = torch.rand(1, 2, 3, 8, 8)
    still = gen(lr, lambda t: torch.zeros(1, 2, 32, 32))
    moved = gen(lr, lambda t: torch.full((1, 2, 32, 32), 3.0))
    assert torch.equal(still[:, 0], moved[:, 0])           # frame 0 has no previous output
    assert (still[:, 1] - moved[:, 1]).abs().max() > 1e-4   # frame 1 depends on the flow


def test_tbptt_cuts_the_gradient_through_the_state():
    cfg = load_config(None, TINY_OVERRIDES)
    gen = build_generator(cfg)
    torch.nn.init.normal_(gen.encoder.body.conv_out.weight, std=0.05)
    lr = torch.rand(1, 3, 3, 8, 8, requires_grad=True)
    flows = lambda t: torch.zeros(1, 2, 32, 32)  # noqa: E731
    for tbptt, expect_grad in ((0, True), (1, False)):
        lr.grad = None
        outs = [o.hr for o in gen.iter_clip(lr, flows, tbptt)]
        outs[2].sum().backward()
        assert (lr.grad[:, 0].abs().sum() > 0) == expect_grad


def test_patch_critic_shapes_and_spectral_norm():
    d = PatchDiscriminator(3, channels=8, num_layers=3, norm="spectral")
    assert d(torch.rand(2, 3, 32, 32)).shape == (2, 1, 8, 8)
    assert any("parametrizations" in n for n, _ in d.named_parameters())
    assert not any("parametrizations" in n for n, _ in PatchDiscriminator(48, 8, 2, "none").named_parameters())


def test_loss_values_by_hand():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert math.isclose(charbonnier(a, b, eps=0.0).item(), 0.5, rel_tol=1e-6)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    c = b.clone()
    c[..., 0, 1] = 10.0  # masked out: must not count
    assert math.isclose(masked_l1(a, c, mask).item(), 0.5, rel_tol=1e-6)
    clip = b.expand(2, 3, 2, 2).unsqueeze(0)  # a static clip of 2 frames: no change to penalise
    assert temporal_consistency_loss(clip, clip, torch.zeros(1, 1, 2, 2, 2), torch.ones(1, 1, 1, 2, 2)).item() == 0.0
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert math.isclose(discriminator_loss(real, fake, "hinge").item(), 0.25 + 0.75)
    assert math.isclose(generator_adv_loss(fake, "hinge").item(), 0.75)
    ns = discriminator_loss(real, fake, "non_saturating").item()
    expected = (F.softplus(-real).mean() + F.softplus(fake).mean()).item()
    assert math.isclose(ns, expected, rel_tol=1e-6)


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.tensor([1.0, 2.0, 2.0])
    x = torch.rand(4, 3, requires_grad=True)
    assert math.isclose(r1_penalty(x @ w, x).item(), 9.0, rel_tol=1e-6)
