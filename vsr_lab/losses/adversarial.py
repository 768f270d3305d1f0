"""Adversarial losses (registered by name in `ADVERSARIAL_LOSSES`: `hinge`, `non_saturating`) and
the R1 penalty, shared by the latent and pixel critics."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from vsr_lab.registry import ADVERSARIAL_LOSSES


class AdversarialLoss(NamedTuple):
    """One GAN objective: the generator's and the critic's side."""

    generator: Callable[[torch.Tensor], torch.Tensor]                     # fake logits -> loss
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (real, fake logits) -> loss


ADVERSARIAL_LOSSES.register("hinge")(AdversarialLoss(
    generator=lambda fake: -fake.mean(),
    discriminator=lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
))
ADVERSARIAL_LOSSES.register("non_saturating")(AdversarialLoss(
    generator=lambda fake: F.softplus(-fake).mean(),
    discriminator=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
))


def generator_adv_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    return ADVERSARIAL_LOSSES.get(kind).generator(fake_logits)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    return ADVERSARIAL_LOSSES.get(kind).discriminator(real_logits, fake_logits)


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """E ||d D(x) / d x||^2 on real samples (Mescheder et al. 2018); x must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_input, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
