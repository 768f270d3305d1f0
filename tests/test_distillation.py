"""Teacher-student recovery: the student is cut from the frozen teacher, distillation losses are
exact where they can be checked, no gradient or checkpoint key reaches the teacher, and a teacher
that cannot hold the student is one error."""

from __future__ import annotations

import pytest
import torch
from helpers.distill import BASE, FAST, tiny_cfg, write_teacher
from omegaconf import OmegaConf

from vsr_lab import cli
from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.errors import UserError
from vsr_lab.losses.distillation import FeatureDistiller
from vsr_lab.models.backbone.tiny import build_tiny_unet
from vsr_lab.training.module import VSRModule

STAGES = "model.pruning.stages=[time_embedding,unet_channels,decoder_channels,encoder_channels]"


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    return write_teacher(tmp_path_factory.mktemp("teacher") / "teacher.ckpt")


def _module(*overrides) -> VSRModule:
    torch.manual_seed(0)
    return VSRModule(OmegaConf.to_container(tiny_cfg(*overrides), resolve=True))


def _batch(cfg):
    batch = next(iter(VSRDataModule(cfg).train_dataloader()))
    return batch


def _losses(module):
    batch = _batch(module.cfg)
    provider = module._flow_provider(batch)
    if module.distiller is not None:
        module.distiller.recording = True
    hr, latent = module.run_clip(batch, 0, provider)
    return module._distillation_losses(batch, provider, hr, latent)


def test_student_equal_to_teacher_has_zero_distillation_loss(teacher_ckpt):
    m = _module(f"model.teacher.ckpt={teacher_ckpt}", "model.teacher.latent_weight=1",
                "model.teacher.feature_weight=1")
    teacher = m.teacher
    for (name, p), q in zip(m.generator.named_parameters(), teacher.parameters()):
        assert torch.equal(p, q), name
    losses = _losses(m)
    assert set(losses) == {"distill_pixel", "distill_latent", "distill_feature"}
    assert all(v.item() == 0.0 for v in losses.values())
    assert len(m.distiller.proj) == 0  # same widths: no projection


def test_pruned_student_keeps_teacher_weights_and_gradients_stop_at_the_teacher(teacher_ckpt):
    m = _module(f"model.teacher.ckpt={teacher_ckpt}", STAGES, "model.teacher.feature_weight=0.5")
    s_unet, t_unet = m.generator.backbone.unet, m.teacher.backbone.unet
    s_conv, t_conv = s_unet.down_blocks[0].resnets[0].conv1, t_unet.down_blocks[0].resnets[0].conv1
    assert s_conv.out_channels == t_conv.out_channels // 2
    rows = t_conv.weight.flatten(1)  # each kept row is one of the teacher's rows, bit for bit
    assert all((rows == r).all(1).any() for r in s_conv.weight.flatten(1))
    assert torch.equal(s_unet.conv_in.weight, t_unet.conv_in.weight)  # block interfaces are kept
    losses = _losses(m)
    assert all(v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in m.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.generator.parameters())


def test_checkpoint_state_holds_the_student_only(teacher_ckpt):
    m = _module(f"model.teacher.ckpt={teacher_ckpt}", STAGES, "model.teacher.feature_weight=0.5")
    keys = m.state_dict().keys()
    assert not any(k.startswith("teacher") for k in keys)
    n_generator = len(m.generator.state_dict())
    assert sum(k.startswith("generator.") for k in keys) == n_generator
    assert sum(k.startswith("distiller.") for k in keys) == 0  # equal widths: nothing learned there
    total = sum(p.numel() for p in m.parameters())
    assert total == sum(p.numel() for p in m.generator.parameters())  # no critic (no_gan), no teacher


def test_weights_zero_means_no_teacher_at_run_time(teacher_ckpt):
    m = _module(f"model.teacher.ckpt={teacher_ckpt}", STAGES, "model.teacher.pixel_weight=0")
    assert m.teacher is None and m.distiller is None
    # still cut from the teacher: each kept row of the slimmed encoder's first conv is the teacher's
    full = torch.load(teacher_ckpt, weights_only=True)["state_dict"]["generator.encoder.body.conv_in.weight"]
    kept = m.generator.encoder.body.conv_in.weight
    assert kept.shape[0] == full.shape[0] // 2
    assert all((full.flatten(1) == r).all(1).any() for r in kept.flatten(1))


def test_feature_projection_where_widths_differ():
    torch.manual_seed(0)
    student = build_tiny_unet(48, [16, 32], 1, 8, 32)
    teacher = build_tiny_unet(48, [32, 64], 1, 8, 32)
    d = FeatureDistiller(student, teacher)
    assert sorted(d.proj) == ["down_blocks_0", "down_blocks_1", "mid_block", "up_blocks_0", "up_blocks_1"]
    assert d.proj["down_blocks_0"].in_channels == 16 and d.proj["down_blocks_0"].out_channels == 32
    z = torch.randn(1, 48, 8, 8)
    ctx = torch.randn(1, 4, 32)
    d.recording = True
    student(z, 10, ctx)
    with torch.no_grad():
        teacher(z, 10, ctx)
    loss = d.loss()
    loss.backward()
    assert loss.item() > 0 and d.proj["mid_block"].weight.grad.abs().sum() > 0
    d.recording = False
    student(z, 10, ctx)  # not recording: nothing kept
    assert d._feats == {"student": [], "teacher": []}


def test_other_scale_is_one_error_naming_both(teacher_ckpt, tmp_path, capsys):
    x2 = write_teacher(tmp_path / "x2.ckpt", "data.scale=2")
    with pytest.raises(UserError, match=r"teacher \(ckpt .*x2.ckpt.*\) is a x2 model and the student is x4"):
        _module(f"model.teacher.ckpt={x2}")
    code = cli.main(["fit", "--config", str(BASE), *FAST, f"model.teacher.ckpt={x2}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "x2 model" in err[0]


def test_teacher_without_the_students_channels_is_one_error(teacher_ckpt, tmp_path):
    with pytest.raises(UserError, match=r"does not contain the channels of the student.*conv_in.bias is \(16,\) when cut from the teacher, \(32,\) in the student"):
        _module(f"model.teacher.ckpt={teacher_ckpt}", "model.backbone.block_out_channels=[32,64]")
    pruned = write_teacher(tmp_path / "pruned.ckpt", "model.pruning.stages=[unet_channels]")
    with pytest.raises(UserError, match=r"stages \['unet_channels'\]\) does not contain the student.*"
                                        r"must start with the teacher's"):
        _module(f"model.teacher.ckpt={pruned}", "model.pruning.stages=[time_embedding]")


@pytest.mark.slow
def test_fit_with_a_teacher_saves_a_student_only_checkpoint(teacher_ckpt, tmp_path):
    import shutil

    from vsr_lab.training.generator_loading import load_generator
    from vsr_lab.training.runner import evaluate, fit

    teacher_copy = tmp_path / "teacher_copy.ckpt"
    shutil.copy(teacher_ckpt, teacher_copy)
    cfg = tiny_cfg(f"model.teacher.ckpt={teacher_copy}", STAGES, "model.teacher.latent_weight=0.5",
                   f"output_dir={tmp_path}", "tracking.run_name=student", "metrics.perceptual=[]")
    _, run = fit(cfg)
    ckpt = torch.load(tmp_path / "student" / "checkpoints" / "last.ckpt", weights_only=True)
    keys = set(ckpt["state_dict"])
    assert not any(k.startswith("teacher") for k in keys) and any(k.startswith("generator.") for k in keys)
    teacher = torch.load(teacher_ckpt, weights_only=True)["state_dict"]
    assert len([k for k in keys if k.startswith("generator.")]) < len(teacher)  # time embedding folded away
    # upscale reads it like any checkpoint: the configured (pruned) architecture, the trained weights
    gen, _ = load_generator(str(tmp_path / "student" / "checkpoints" / "last.ckpt"), None)
    conv = gen.backbone.unet.down_blocks[0].resnets[0].conv1
    assert torch.equal(conv.weight, ckpt["state_dict"]["generator.backbone.unet.down_blocks.0.resnets.0.conv1.weight"])
    assert run.history and run.history[-1]["val/psnr"] > 0
    # `validate --ckpt` scores the student as the fit did, with its teacher's file gone
    teacher_copy.unlink()
    scores = evaluate(cfg, "validate", str(tmp_path / "student" / "checkpoints" / "last.ckpt"))
    assert scores["val/psnr"] == pytest.approx(run.history[-1]["val/psnr"], abs=1e-5)


def test_loading_the_teacher_leaves_the_students_random_stream_alone(teacher_ckpt):
    from vsr_lab.training.teacher import load_teacher

    torch.manual_seed(5)
    state = torch.get_rng_state()
    load_teacher(tiny_cfg(f"model.teacher.ckpt={teacher_ckpt}", "seed=5"))
    assert torch.equal(torch.get_rng_state(), state)  # a student's seed changes its run


def test_teacher_from_a_config_file(tmp_path):
    from vsr_lab.config.loading import to_yaml
    from vsr_lab.models.build import build_generator
    from vsr_lab.training.teacher import load_teacher

    path = tmp_path / "teacher.yaml"
    path.write_text(to_yaml(tiny_cfg("seed=3")))
    teacher, tcfg = load_teacher(tiny_cfg(f"model.teacher.config={path}"))
    torch.manual_seed(3)  # a config teacher's random parts are drawn from its own seed
    ref = build_generator(tcfg)
    assert tcfg.seed == 3 and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), ref.state_dict().values()))


def test_sd_shaped_teacher_holds_all_six_stages(tmp_path):
    from helpers.sd21_narrow import ALL_STAGES, narrow_cfg

    from vsr_lab.training.teacher import load_teacher, student_from_teacher

    torch.manual_seed(0)
    tcfg = narrow_cfg(stages=["text_encoder"], text_encoder=True)
    from vsr_lab.models.build import build_generator

    gen = build_generator(tcfg)
    path = tmp_path / "sd.ckpt"
    section = {"config": OmegaConf.to_container(tcfg, resolve=True), "run_name": "sd", "run_dir": str(tmp_path)}
    torch.save({"vsr_lab": section, "state_dict": {f"generator.{k}": v for k, v in gen.state_dict().items()}}, path)
    cfg = narrow_cfg(f"model.teacher.ckpt={path}", stages=ALL_STAGES, text_encoder=True)
    teacher, loaded = load_teacher(cfg)
    student, reports = student_from_teacher(teacher, loaded, cfg)
    assert [r.stage for r in reports] == ALL_STAGES[1:]  # the teacher's own stage is not applied twice
    up = student.backbone.unet.up_blocks[1].resnets[0].conv1
    t_up = teacher.backbone.unet.up_blocks[1].resnets[0].conv1
    assert up.out_channels < t_up.out_channels
    assert all((t_up.weight.flatten(1) == r).all(1).any() for r in up.weight.detach().flatten(1))
