"""Named registries: each preset, stage, estimator, degradation or data source adds itself here
where it is defined (`@REGISTRY.register("name")`), and the config's choice lists read them.

Listing names must not import the modules that define them: the config layer checks every
name-valued key when a config loads, and those modules pull in Lightning, diffusers or Optuna
(seconds, for a `--print-config` or a typo). So a registry reads its names from the source of
its package: every `REGISTRY.register("literal name")` there is an entry, and the module it is
in is the one `get(name)` imports, alone. Registrations whose names are computed (a table of
pyiqa's metrics, the built-in photos) live in light modules the registry lists as `eager`, which
`names()` does import. `tests/test_registry.py` checks that what the source declares is exactly
what registers when every module is imported. Plain Python: this module imports nothing of
vsr_lab, so any layer may use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from functools import cached_property
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> entry (a class or a builder function) for one kind of component."""

    def __init__(self, kind: str, package: str, eager: tuple[str, ...] = (), fallback: str | None = None,
                 checks_config: bool = False):
        self.kind = kind          # what an entry is, for error messages ("flow estimator")
        self.package = package    # the package (or module) whose modules register entries
        self.eager = eager        # light modules with computed registrations, imported to list names
        self.fallback = fallback  # "module:function" registering names found only at run time (pyiqa's)
        self.checks_config = checks_config  # entries may have check_config(cfg, key, source) (config.loading)
        self.symbol = ""          # this registry's name in this module, set below
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._fell_back = False

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry
        return add

    @cached_property
    def declared(self) -> dict[str, str]:
        """name -> module, for every literal `SYMBOL.register("name")` in the package's source
        (its modules and its sub-packages' __init__, the modules `load_all` imports)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            return {}
        call = re.compile(rf"\b{self.symbol}\.register\(\s*[\"']([^\"']+)[\"']")
        found = {}
        for module, path in _module_files(self.package, spec):
            for name in call.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, module)
        return found

    def load_all(self) -> None:
        """Import every module of the defining package, so each has registered itself."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", []), package.__name__ + "."):
            importlib.import_module(info.name)
        self._import_eager()

    def _import_eager(self) -> None:
        for module in self.eager:
            importlib.import_module(module)

    def _fall_back(self) -> None:
        """Everything, the run-time registrations of `fallback` included (a name not found so far)."""
        self.load_all()
        if self.fallback and not self._fell_back:
            self._fell_back = True
            module, function = self.fallback.split(":")
            getattr(importlib.import_module(module), function)()

    def names(self) -> tuple[str, ...]:
        """The declared and eagerly registered names, and any registered since (no heavy import)."""
        self._import_eager()
        return tuple(dict.fromkeys([*self.declared, *self._entries]))

    def get(self, name: str) -> T:
        if name not in self._entries and name in self.declared:
            importlib.import_module(self.declared[name])  # the defining module alone
        if name not in self._entries:
            self._fall_back()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        if name in self.names():
            return True
        self._fall_back()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _module_files(package: str, spec) -> Iterator[tuple[str, Path]]:
    """(module name, source file) of a module, or of a package's modules and sub-packages."""
    if not spec.submodule_search_locations:
        yield package, Path(spec.origin)
        return
    for folder in spec.submodule_search_locations:
        for info in pkgutil.iter_modules([folder]):
            path = Path(folder) / (f"{info.name}/__init__.py" if info.ispkg else f"{info.name}.py")
            if path.is_file():
                yield f"{package}.{info.name}", path


# The registries of vsr_lab, each with the package whose modules fill it. Declared here, at the
# bottom, so that the config layer can list choices without importing the layers above it.
GENERATOR_PRESETS: Registry = Registry("generator preset", "vsr_lab.models.backbone")
PRUNING_STAGES: Registry = Registry("pruning stage", "vsr_lab.models.pruning")
FLOW_ESTIMATORS: Registry = Registry("flow estimator", "vsr_lab.models.flow")
DEGRADATIONS: Registry = Registry("degradation", "vsr_lab.data.degradations")
DEGRADATION_STAGES: Registry = Registry("degradation stage", "vsr_lab.data.degradations")
DATA_SOURCES: Registry = Registry("data source", "vsr_lab.data")
BUILTIN_PHOTOS: Registry = Registry("built-in photo", "vsr_lab.data.builtin_photos",
                                    eager=("vsr_lab.data.builtin_photos",), checks_config=True)
RECONSTRUCTION_LOSSES: Registry = Registry("reconstruction loss", "vsr_lab.losses.reconstruction")
ADVERSARIAL_LOSSES: Registry = Registry("adversarial loss", "vsr_lab.losses.adversarial")
LR_SCHEDULES: Registry = Registry("learning-rate schedule", "vsr_lab.training.schedules")
STUDY_SAMPLERS: Registry = Registry("Optuna sampler", "vsr_lab.studies.samplers")
STUDY_PRUNERS: Registry = Registry("Optuna pruner", "vsr_lab.studies.samplers")
COLOR_FIXES: Registry = Registry("colour fix", "vsr_lab.inference.color_fix")
PERCEPTUAL_METRICS: Registry = Registry("perceptual metric", "vsr_lab.metrics.perceptual",
                                        eager=("vsr_lab.metrics.perceptual.catalog",),
                                        fallback="vsr_lab.metrics.perceptual.catalog:register_installed_pyiqa",
                                        checks_config=True)
PERCEPTUAL_LOSSES: Registry = Registry("perceptual loss", "vsr_lab.losses.perceptual", checks_config=True)
CHANNEL_IMPORTANCE: Registry = Registry("channel importance", "vsr_lab.models.pruning")
REAL_CONDITIONS: Registry = Registry("realbench condition", "vsr_lab.benchmarks.realbench.conditions")

for _symbol, _registry in list(globals().items()):
    if isinstance(_registry, Registry):
        _registry.symbol = _symbol
