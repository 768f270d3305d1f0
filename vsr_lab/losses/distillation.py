"""Teacher-student distillation losses: output L1 (frames, x0 latents) and UNet feature L1.

Features are the outputs of the UNet's blocks (each down block, the mid block, each up block),
taken by forward hooks on the student's and the teacher's UNet. Block interfaces keep their width
under channel pruning, so they match one to one; where a student's width differs from the
teacher's, a learned 1x1 convolution maps the student's feature to the teacher's width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def output_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance to the teacher's output (no gradient reaches the teacher)."""
    return F.l1_loss(student, teacher.detach())


def block_widths(unet: nn.Module) -> dict[str, int]:
    """Output width of each UNet block, by module name (diffusers UNet2DConditionModel layout)."""
    widths = list(unet.config.block_out_channels)
    points = {f"down_blocks.{i}": w for i, w in enumerate(widths)}
    if getattr(unet, "mid_block", None) is not None:
        points["mid_block"] = widths[-1]
    points.update({f"up_blocks.{i}": w for i, w in enumerate(reversed(widths))})
    return points


class FeatureDistiller(nn.Module):
    """Records block outputs of a student and a teacher UNet while `recording` is on, and returns
    the mean L1 between matching ones. Only the projections are submodules: the UNets are reached
    through hooks, so neither network is saved with the distiller."""

    def __init__(self, student_unet: nn.Module, teacher_unet: nn.Module):
        super().__init__()
        s_points, t_points = block_widths(student_unet), block_widths(teacher_unet)
        if list(s_points) != list(t_points):
            raise ValueError(f"feature distillation: the UNets' blocks differ ({list(s_points)} vs {list(t_points)})")
        self.points = list(s_points)
        self.proj = nn.ModuleDict({
            name.replace(".", "_"): nn.Conv2d(s_points[name], t_points[name], 1)
            for name in self.points if s_points[name] != t_points[name]})
        self.recording = False
        self._feats: dict[str, list[torch.Tensor]] = {"student": [], "teacher": []}
        self._handles = [self._hook(student_unet, "student"), self._hook(teacher_unet, "teacher")]

    def _hook(self, unet: nn.Module, who: str) -> list:
        modules = dict(unet.named_modules())
        handles = []
        for name in self.points:
            def record(module, args, output, name=name):
                if self.recording:
                    out = output[0] if isinstance(output, tuple) else output
                    self._feats[who].append((name, out))
            handles.append(modules[name].register_forward_hook(record))
        return handles

    def clear(self) -> None:
        self._feats = {"student": [], "teacher": []}

    def loss(self) -> torch.Tensor:
        """Mean over recorded (frame, block) pairs of L1(projected student feature, teacher feature)."""
        student, teacher = self._feats["student"], self._feats["teacher"]
        self.clear()
        if not student or len(student) != len(teacher):
            raise RuntimeError(f"feature distillation: {len(student)} student and {len(teacher)} teacher features")
        terms = []
        for (name, s), (t_name, t) in zip(student, teacher):
            key = name.replace(".", "_")
            if key in self.proj:
                s = self.proj[key](s)
            terms.append(F.l1_loss(s, t.detach()))
        return torch.stack(terms).mean()

    def remove(self) -> None:
        for group in self._handles:
            for h in group:
                h.remove()
