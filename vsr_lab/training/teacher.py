"""The frozen teacher of `model.teacher` and the student made from it.

The teacher is any vsr_lab checkpoint (`ckpt`) or a config (`config`, e.g. the unpruned preset
with local pretrained weights), loaded the way `upscale` loads a model (inference/model_loading.py;
not imported from there, since inference depends on training). The student is the teacher
pruned by the student's stages that the teacher has not applied: it starts from the teacher's
kept weights and channels. Containment is checked against the architecture the student's config
describes, before anything trains.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vsr_lab.config.loading import load_config
from vsr_lab.errors import UserError
from vsr_lab.models.build import build_generator, build_unpruned_generator
from vsr_lab.models.lora import add_lora
from vsr_lab.models.pruning import Calibration, StageReport, apply_pruning
from vsr_lab.training.checkpoints import CKPT_KEY, load_checkpoint
from vsr_lab.training.lora_checkpoint import BASE_WEIGHTS_KEY, base_reference, restore_frozen

PREFIX = "generator."


def teacher_name(cfg: DictConfig) -> str:
    t = cfg.model.teacher
    return " + ".join(f"{k} {v}" for k, v in (("ckpt", t.ckpt), ("config", t.config)) if v)


def _saved_config(saved: dict) -> DictConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "teacher_config.yaml"
        path.write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
        return load_config(path)


def _load_generator(ckpt: str | None, config: str | None) -> tuple[nn.Module, DictConfig]:
    """(generator, config): `config` wins over the checkpoint's saved config; weights from `ckpt`."""
    data = load_checkpoint(ckpt) if ckpt else None
    if data is not None and "state_dict" not in data:
        raise UserError(f"model.teacher.ckpt {ckpt}: no state_dict in the checkpoint")
    cfg = load_config(config) if config else _saved_config(data[CKPT_KEY]["config"])
    torch.manual_seed(cfg.seed)  # a config teacher's random parts are the same every run
    generator = build_generator(cfg)
    if data is not None:
        if BASE_WEIGHTS_KEY in data:  # a LoRA checkpoint: adapters only, the base from its folder
            frozen = {PREFIX + n for n, p in generator.named_parameters() if not p.requires_grad}
            own = {PREFIX + k: v for k, v in generator.state_dict().items()}
            restore_frozen(data, frozen, own, base_reference(cfg.model.backbone) if frozen else {})
        state = {k[len(PREFIX):]: v for k, v in data["state_dict"].items() if k.startswith(PREFIX)}
        try:
            generator.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"model.teacher.ckpt {ckpt}: its generator weights do not fit its config "
                            f"({str(exc).splitlines()[0][:200]}...)") from None
    return generator, cfg


def load_teacher(cfg: DictConfig) -> tuple[nn.Module, DictConfig]:
    """(frozen teacher generator in eval mode, its config); a scale mismatch is one error."""
    t = cfg.model.teacher
    with torch.random.fork_rng():  # loading seeds with the teacher's seed; the student's run keeps its own
        teacher, tcfg = _load_generator(t.ckpt, t.config)
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
