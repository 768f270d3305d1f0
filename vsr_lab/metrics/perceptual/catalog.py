"""The perceptual metrics a config may name (`metrics.perceptual`, `evaluate --metrics`), each
registered in `PERCEPTUAL_METRICS` with what it compares, its direction and its weight files.

Every pyiqa metric is available under pyiqa's name (listed from pyiqa_table.py, so listing and
checking names imports no pyiqa), plus `niqe_local` (our NIQE model, fitted on the sample clips'
training photos). For the metrics papers in this field report, the files pyiqa
would download are listed here (names from pyiqa 0.1.16's sources), so a missing one is reported
when the config is loaded; for any other pyiqa name a missing file is found when the metric is
built (before training), by the same offline guard (`weights.py`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from vsr_lab.errors import UserError
from vsr_lab.metrics.perceptual.pyiqa_table import PYIQA_METRICS
from vsr_lab.registry import PERCEPTUAL_METRICS

# Sub-folders of a weights folder: the layout of a torch hub directory (e.g. ~/.cache/torch/hub),
# which is where pyiqa, torchvision and pyiqa's CLIP look for their files.
PYIQA, TORCHVISION, CLIP = "pyiqa", "checkpoints", "clip"


@dataclass(frozen=True)
class WeightFile:
    folder: str  # PYIQA, TORCHVISION or CLIP
    name: str  # the file name pyiqa / torchvision would download
    holds: str  # what is in it, for error messages

    def path(self, weights_dir: str | Path) -> Path:
        return Path(weights_dir).expanduser() / self.folder / self.name


@dataclass(frozen=True)
class MetricSpec:
    """One perceptual metric: `reference` (full-reference: needs the ground truth),
    `lower_better`, and the weight files it needs (`files_known`: False for pyiqa names outside
    the table below, whose files are found when the metric is built)."""

    name: str
    reference: bool
    lower_better: bool
    files: tuple[WeightFile, ...] = ()
    files_known: bool = True
    pyiqa_name: str | None = None  # None: not a pyiqa metric (niqe_local)
    note: str = field(default="", compare=False)

    def missing_files(self, weights_dir: str | None, pretrained: str | None = None) -> list[str]:
        """One line per file the metric needs and cannot find (a `pretrained` path replaces the
        metric's own pyiqa file)."""
        missing = []
        if pretrained is not None:
            if not Path(pretrained).expanduser().is_file():
                missing.append(f"{self.name!r} needs {pretrained} (metrics.pretrained.{self.name}): file not found")
        for f in self.files:
            if pretrained is not None and f.folder == PYIQA:
                continue
            if weights_dir is None:
                missing.append(f"{self.name!r} needs the weight file {f.folder}/{f.name} ({f.holds}); "
                               "set metrics.weights_dir to the folder that holds it")
            elif not f.path(weights_dir).is_file():
                missing.append(f"{self.name!r} needs the weight file {f.path(weights_dir)} ({f.holds}): not found")
        return missing

    @staticmethod
    def check_config(cfg, key: str, source: str) -> None:
        """Config-load check (called by `config.loading` for each chosen name): every listed
        metric has its weight files, so a missing one stops the run before any training."""
        metrics = cfg.metrics  # metrics.batch_size >= 1: the schema's rule (config/schema.py)
        pretrained = dict(metrics.pretrained or {})
        for name in metrics.perceptual:
            spec = PERCEPTUAL_METRICS.get(name)
            problems = spec.missing_files(metrics.weights_dir, pretrained.get(name))
            if problems:
                raise UserError(f"{source}: key '{key}': {problems[0]}")
        unknown = sorted(set(pretrained) - set(metrics.perceptual))
        if unknown:
            raise UserError(f"{source}: key 'metrics.pretrained': {unknown[0]!r} is not in metrics.perceptual")


_ALEX = WeightFile(TORCHVISION, "alexnet-owt-7be5be79.pth", "torchvision AlexNet, ImageNet")
_VGG16 = WeightFile(TORCHVISION, "vgg16-397923af.pth", "torchvision VGG16, ImageNet")
# name -> files pyiqa 0.1.16 loads when the metric is built with its defaults.
KNOWN_FILES: dict[str, tuple[WeightFile, ...]] = {
    "lpips": (WeightFile(PYIQA, "LPIPS_v0.1_alex-df73285e.pth", "LPIPS linear layers"), _ALEX),
    "lpips-vgg": (WeightFile(PYIQA, "LPIPS_v0.1_vgg-a78928a0.pth", "LPIPS linear layers"), _VGG16),
    "dists": (WeightFile(PYIQA, "DISTS_weights-f5e65c96.pth", "DISTS alpha and beta"), _VGG16),
    "niqe": (WeightFile(PYIQA, "niqe_modelparameters.mat", "the published NIQE pristine model"),),
    "brisque": (WeightFile(PYIQA, "brisque_svm_weights.pth", "BRISQUE SVR"),),
    "piqe": (),
    "musiq": (WeightFile(PYIQA, "musiq_koniq_ckpt-e95806b9.pth", "MUSIQ trained on KonIQ"),),
    "clipiqa": (WeightFile(CLIP, "RN50.pt", "OpenAI CLIP RN50"),),
    "maniqa": (WeightFile(PYIQA, "ckpt_koniq10k.pt", "MANIQA trained on KonIQ"),),
}
# maniqa also builds timm's vit_base_patch8_224 with pretrained=True, which timm reads from the
# Hugging Face cache (HF_HOME), not from the weights folder.
NOTES = {"maniqa": "also needs timm's vit_base_patch8_224 in the Hugging Face cache"}


# Scored by `metrics.image` with the BasicSR protocol and logged as val/psnr, val/ssim: pyiqa's
# versions (other conventions) would be logged under the same names.
BUILT_IN = ("psnr", "ssim")


def _register_pyiqa_metric(name: str, reference: bool, lower_better: bool) -> None:
    PERCEPTUAL_METRICS.register(name)(MetricSpec(
        name, reference=reference, lower_better=lower_better, files=KNOWN_FILES.get(name, ()),
        files_known=name in KNOWN_FILES, pyiqa_name=name, note=NOTES.get(name, "")))


def register_installed_pyiqa() -> None:
    """Register the installed pyiqa's frame metrics that PYIQA_METRICS does not list (a newer
    pyiqa's); the registry calls this only for a name it does not know (seconds: imports pyiqa)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    for name, cfg in DEFAULT_CONFIGS.items():
        if cfg.get("metric_mode") in ("FR", "NR") and name not in BUILT_IN and name not in PYIQA_METRICS:
            _register_pyiqa_metric(name, cfg["metric_mode"] == "FR", bool(cfg.get("lower_better", False)))


for _name, (_reference, _lower_better) in PYIQA_METRICS.items():
    _register_pyiqa_metric(_name, _reference, _lower_better)
# Our NIQE model (niqe_local.py); its parameter file is `metrics.pretrained.niqe_local` (a
# `niqe-fit` output) or, by default, the built-in fit (`vsr_lab.data.pristine`).
PERCEPTUAL_METRICS.register("niqe_local")(MetricSpec(
    "niqe_local", reference=False, lower_better=True, files=(), pyiqa_name=None,
    note="NIQE fitted on the sample clips' training photos (32-pixel blocks)"))


def metric_spec(name: str, key: str = "metrics.perceptual") -> MetricSpec:
    """The spec of `name`, or a UserError naming `key` with the closest names."""
    if name in PERCEPTUAL_METRICS:
        return PERCEPTUAL_METRICS.get(name)
    raise UserError(f"{key}: unknown perceptual metric {name!r}{suggestion(name)}")


def suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, PERCEPTUAL_METRICS.names(), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        f" (one of {len(PERCEPTUAL_METRICS.names())} names; see pyiqa.list_models() and 'niqe_local')"


def lower_is_better(name: str) -> bool | None:
    """Direction of a metric by name (None when it is not a perceptual metric)."""
    return PERCEPTUAL_METRICS.get(name).lower_better if name in PERCEPTUAL_METRICS else None
