"""Named registries: each preset, stage, estimator, degradation or data source adds itself here
where it is defined (`@REGISTRY.register("name")`), and the config's choice lists read them.

A registry knows the package whose modules define its entries and imports them on first lookup,
so adding an entry is one new module (or one decorated class) and nothing else. Plain Python:
this module imports nothing of vsr_lab, so any layer may use it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> entry (a class or a builder function) for one kind of component."""

    def __init__(self, kind: str, package: str):
        self.kind = kind          # what an entry is, for error messages ("flow estimator")
        self.package = package    # the package whose modules register entries
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry
        return add

    def _load(self) -> None:
        """Import every module of the defining package, so each has registered itself."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", []), package.__name__ + "."):
            importlib.import_module(info.name)

    def names(self) -> tuple[str, ...]:
        self._load()
        return tuple(self._entries)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# The registries of vsr_lab, each with the package whose modules fill it. Declared here, at the
# bottom, so that the config layer can list choices without importing the layers above it.
GENERATOR_PRESETS: Registry = Registry("generator preset", "vsr_lab.models.backbone")
PRUNING_STAGES: Registry = Registry("pruning stage", "vsr_lab.models.pruning")
FLOW_ESTIMATORS: Registry = Registry("flow estimator", "vsr_lab.models.flow")
DEGRADATIONS: Registry = Registry("degradation", "vsr_lab.data.degradations")
DEGRADATION_STAGES: Registry = Registry("degradation stage", "vsr_lab.data.degradations")
DATA_SOURCES: Registry = Registry("data source", "vsr_lab.data")
BUILTIN_PHOTOS: Registry = Registry("built-in photo", "vsr_lab.data.synthetic")
RECONSTRUCTION_LOSSES: Registry = Registry("reconstruction loss", "vsr_lab.losses.reconstruction")
ADVERSARIAL_LOSSES: Registry = Registry("adversarial loss", "vsr_lab.losses.adversarial")
LR_SCHEDULES: Registry = Registry("learning-rate schedule", "vsr_lab.training.schedules")
STUDY_SAMPLERS: Registry = Registry("Optuna sampler", "vsr_lab.studies.samplers")
STUDY_PRUNERS: Registry = Registry("Optuna pruner", "vsr_lab.studies.samplers")
COLOR_FIXES: Registry = Registry("colour fix", "vsr_lab.inference.color_fix")
PERCEPTUAL_METRICS: Registry = Registry("perceptual metric", "vsr_lab.metrics.perceptual")
PERCEPTUAL_LOSSES: Registry = Registry("perceptual loss", "vsr_lab.losses.perceptual")
CHANNEL_IMPORTANCE: Registry = Registry("channel importance", "vsr_lab.models.pruning")
