"""The frozen teacher of `model.teacher` and the student made from it.

The teacher is any vsr_lab checkpoint (`ckpt`) or a config (`config`, e.g. the unpruned preset
with local pretrained weights), loaded as `upscale` loads a model (training/generator_loading.py). The student is the teacher
pruned by the student's stages that the teacher has not applied: it starts from the teacher's
kept weights and channels. Containment is checked against the architecture the student's config
describes, before anything trains.

The student's training is a recovery (`model.teacher.recovery`): a fine-tuning of trained weights,
whose critics start from the teacher checkpoint's where their architecture matches.
"""

from __future__ import annotations

import copy

import torch
from omegaconf import DictConfig
from torch import nn

from vsr_lab.config.loading import flatten
from vsr_lab.errors import UserError
from vsr_lab.models.build import build_unpruned_generator
from vsr_lab.models.lora import add_lora
from vsr_lab.models.pruning import Calibration, StageReport, apply_pruning
from vsr_lab.training.generator_loading import load_generator, read_checkpoint

PREFIX = "generator."


def teacher_name(cfg: DictConfig) -> str:
    t = cfg.model.teacher
    return " + ".join(f"{k} {v}" for k, v in (("ckpt", t.ckpt), ("config", t.config)) if v)


def load_teacher(cfg: DictConfig) -> tuple[nn.Module, DictConfig]:
    """(frozen teacher generator in eval mode, its config); a scale mismatch is one error."""
    t = cfg.model.teacher
    with torch.random.fork_rng():  # loading seeds with the teacher's seed; the student's run keeps its own
        teacher, tcfg = load_generator(t.ckpt, t.config, what="model.teacher: give ckpt, config, or both")
    if tcfg.data.scale != cfg.data.scale:
        raise UserError(f"model.teacher: the teacher ({teacher_name(cfg)}) is a x{tcfg.data.scale} model "
                        f"and the student is x{cfg.data.scale} (data.scale)")
    teacher.requires_grad_(False)
    return teacher.eval(), tcfg


def _shapes(module: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def student_from_teacher(teacher: nn.Module, tcfg: DictConfig, cfg: DictConfig,
                         calibration: Calibration | None = None) -> tuple[nn.Module, list[StageReport]]:
    """The configured student, cut from a copy of the teacher (its kept weights and channels)."""
    t_stages, s_stages = list(tcfg.model.pruning.stages), list(cfg.model.pruning.stages)
    who = f"the teacher ({teacher_name(cfg)}, preset {tcfg.model.backbone.preset}, stages {t_stages})"
    student_desc = f"the student (preset {cfg.model.backbone.preset}, stages {s_stages})"
    if s_stages[:len(t_stages)] != t_stages:
        raise UserError(f"model.teacher: {who} does not contain {student_desc}: the student's stages must "
                        "start with the teacher's")
    student = copy.deepcopy(teacher).requires_grad_(True).train()
    student, reports = apply_pruning(student, cfg, calibration=calibration, skip=len(t_stages))
    reference = _shapes(apply_pruning(build_unpruned_generator(cfg), cfg)[0])
    got = _shapes(student)
    for key in sorted(set(reference) | set(got)):
        if reference.get(key) != got.get(key):
            raise UserError(f"model.teacher: {who} does not contain the channels of {student_desc}: "
                            f"{key} is {got.get(key)} when cut from the teacher, {reference.get(key)} in the student")
    if cfg.model.backbone.lora.enabled:
        add_lora(student, cfg)
    return student, reports


def carry_critics(critics: nn.ModuleDict, cfg: DictConfig) -> list[str]:
    """Load each of `critics` from the teacher checkpoint's critic of the same space when every
    weight's name and shape match; the spaces carried over (the others keep their fresh weights)."""
    if not critics or not cfg.model.teacher.ckpt:
        return []
    state = read_checkpoint(cfg.model.teacher.ckpt)["state_dict"]
    carried = []
    for space, critic in critics.items():
        prefix = f"critics.{space}."
        saved = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if _shapes(critic) == {k: tuple(v.shape) for k, v in saved.items()}:
            critic.load_state_dict(saved)
            carried.append(space)
    return carried


def loss_differences(teacher_cfg: DictConfig, cfg: DictConfig) -> list[str]:
    """`loss.*` settings of `cfg` that differ from those the teacher was trained with, as
    `key: value (teacher: value)`: a student recovered under other losses (adversarial terms the
    teacher never had) is not measured against the same objective."""
    theirs, ours = ({k: v for k, v in flatten(c).items() if k.startswith("loss.")} for c in (teacher_cfg, cfg))
    return [f"{k}: {ours.get(k)} (teacher: {theirs.get(k)})" for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)]
