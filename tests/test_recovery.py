"""A student's recovery from its teacher is a fine-tuning (`model.teacher.recovery`): a fraction of
the training rate after a linear warm-up, the teacher's critics where they fit; each key changes
what trains, a bad value is one error line, and a loss the teacher never had is named."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.distill import BASE, FAST, tiny_cfg, write_teacher
from omegaconf import OmegaConf

from vsr_lab import cli
from vsr_lab.training.module import VSRModule
from vsr_lab.training.schedules import build_scheduler
from vsr_lab.training.teacher import loss_differences

GAN = ("loss.adversarial_latent.enabled=true", "loss.adversarial_pixel.enabled=true")


@pytest.fixture(scope="module")
def gan_teacher(tmp_path_factory):
    """A teacher checkpoint with both critics beside the generator (random, seeded weights)."""
    path = write_teacher(tmp_path_factory.mktemp("teacher") / "teacher.ckpt", *GAN)
    saved = torch.load(path, weights_only=True)
    torch.manual_seed(1)
    critics = VSRModule(OmegaConf.to_container(tiny_cfg(*GAN), resolve=True)).critics
    saved["state_dict"].update({f"critics.{k}": v + 0.1 for k, v in critics.state_dict().items()})
    torch.save(saved, path)
    return path


def _module(*overrides) -> VSRModule:
    torch.manual_seed(0)
    return VSRModule(OmegaConf.to_container(tiny_cfg(*overrides), resolve=True))


def _rates(module: VSRModule, batches: int) -> list[list[float]]:
    """Each optimizer's first-group lr for the first `batches` batches, as training steps them."""
    optimizers, schedulers = module.configure_optimizers()
    rates = []
    for _ in range(batches):
        rates.append([opt.param_groups[0]["lr"] for opt in optimizers])
        for opt in optimizers:
            opt.step()
        for sched in schedulers:
            sched.step()
    return rates


def test_warmup_rises_linearly_then_the_schedule_runs_over_the_rest():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = build_scheduler(opt, "cosine", 10, 0.1, warmup_batches=4)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    cosine = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * b / 6)) for b in range(6)]
    assert seen[4:] == pytest.approx(cosine)
    assert build_scheduler(opt, "constant", 10, 0.1) is None  # nothing to step
    constant = build_scheduler(opt, "constant", 10, 0.1, warmup_batches=1)
    assert constant.lr_lambdas[0](0) == 0.5 and constant.lr_lambdas[0](7) == 1.0


def test_a_plain_fit_keeps_the_training_rate():
    assert _rates(_module("trainer.max_batches=10", "trainer.val_every=10"), 1)[0] == [1e-3]


def test_a_student_fine_tunes_at_lr_ratio_after_warmup(gan_teacher):
    base = (f"model.teacher.ckpt={gan_teacher}", "trainer.max_batches=20", "trainer.val_every=20", *GAN)
    rates = _rates(_module(*base), 3)  # warm-up 0.1 x 20 = 2 batches; generator, latent critic, pixel critic
    assert rates[0] == pytest.approx([1e-4 / 3, 2e-5 / 3, 2e-5 / 3])
    assert rates[2] == pytest.approx([1e-4, 2e-5, 2e-5])
    rates = _rates(_module(*base, "model.teacher.recovery.lr_ratio=0.5", "model.teacher.recovery.warmup=0"), 1)
    assert rates[0] == pytest.approx([5e-4, 1e-4, 1e-4])
    # the teacher's critics are not used: fresh ones train at their own rate (still warmed up)
    fresh = _rates(_module(*base, "model.teacher.recovery.critics_from_teacher=false"), 1)
    assert fresh[0] == pytest.approx([1e-4 / 3, 2e-4 / 3, 2e-4 / 3])


def test_critics_start_from_the_teachers_where_they_fit(gan_teacher):
    saved = torch.load(gan_teacher, weights_only=True)["state_dict"]
    m = _module(f"model.teacher.ckpt={gan_teacher}", *GAN)
    assert m.carried_critics == ["latent", "pixel"]
    for k, v in m.critics.state_dict().items():
        assert torch.equal(v, saved[f"critics.{k}"]), k
    off = _module(f"model.teacher.ckpt={gan_teacher}", *GAN, "model.teacher.recovery.critics_from_teacher=false")
    assert off.carried_critics == []
    assert not any(torch.equal(v, saved[f"critics.{k}"]) for k, v in off.critics.state_dict().items()
                   if v.is_floating_point())
    # another architecture (wider pixel critic): that one starts fresh, the latent one is carried
    wide = _module(f"model.teacher.ckpt={gan_teacher}", *GAN, "discriminator.pixel.channels=16")
    assert wide.carried_critics == ["latent"]


def test_a_teacher_without_critics_leaves_the_students_fresh(tmp_path):
    plain = write_teacher(tmp_path / "plain.ckpt")
    m = _module(f"model.teacher.ckpt={plain}", *GAN)
    assert set(m.critics) == {"latent", "pixel"} and m.carried_critics == []


@pytest.mark.parametrize("override, message", [
    ("model.teacher.recovery.lr_ratio=0", "key 'model.teacher.recovery.lr_ratio' must be > 0; got 0.0"),
    ("model.teacher.recovery.lr_ratio=-0.1", "key 'model.teacher.recovery.lr_ratio' must be > 0; got -0.1"),
    ("model.teacher.recovery.warmup=1", "key 'model.teacher.recovery.warmup' must be"),
    ("model.teacher.recovery.warmup=1.5", "key 'model.teacher.recovery.warmup' must be"),
])
def test_bad_recovery_values_are_one_line_exit_2(capsys, override, message):
    code = cli.main(["fit", "--config", str(BASE), *FAST, override, "--print-config"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: command line: {message}"), err


def test_loss_differences_name_each_key_the_teacher_trained_without():
    teacher, student = tiny_cfg(), tiny_cfg(*GAN, "loss.temporal.weight=0.5")
    assert loss_differences(teacher, teacher) == []
    assert loss_differences(teacher, student) == [
        "loss.adversarial_latent.enabled: True (teacher: False)",
        "loss.adversarial_pixel.enabled: True (teacher: False)",
        "loss.temporal.weight: 0.5 (teacher: 0.2)"]
