"""Load a config file: `extends:` chains, dot-list overrides, schema checks, errors that name the file.

A file may say `extends: ../experiments/instavsr_tiny.yaml` (relative to itself, chains allowed);
its keys are merged over its parent's, then `key=value` overrides from the command line. Each layer
is merged onto the typed schema separately, so an unknown key or wrong type is reported with the
file (or "command line") it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Iterable, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vsr_lab.config.schema import VSRConfig
from vsr_lab.errors import UserError

EXTENDS_KEY = "extends"

def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must hold a mapping of keys, not {type(data).__name__}")
    return data


def config_layers(path: str | Path) -> list[tuple[str, dict]]:
    """The files of an `extends:` chain, root first, each as (path, mapping without `extends`)."""
    layers: list[tuple[str, dict]] = []
    seen: set[Path] = set()
    current: Path | None = Path(path).expanduser().resolve()
    while current is not None:
        if current in seen:
            raise UserError(f"{current}: `extends:` cycle")
        seen.add(current)
        data = _read_yaml(current)
        parent = data.pop(EXTENDS_KEY, None)
        layers.append((str(current), data))
        if parent is None:
            current = None
        elif not isinstance(parent, str):
            raise UserError(f"{current}: `extends` must be a path, got {parent!r}")
        else:
            current = (current.parent / parent).resolve()
    return layers[::-1]


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    msg = str(exc).splitlines()[0]
    return f"key '{key}': {msg}" if key else msg


def _merge_layer(base: DictConfig, layer, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as exc:
        raise UserError(f"{source}: {_describe(exc)}") from None


def parse_overrides(overrides: Iterable[str]) -> DictConfig:
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"command line: override '{item}' is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(overrides)
    except OmegaConfBaseException as exc:
        raise UserError(f"command line: {_describe(exc)}") from None


def choice_fields(cls=VSRConfig, prefix: str = "") -> dict[str, dict]:
    """Dotted key -> field metadata, for every schema field whose value is a name from a set."""
    out: dict[str, dict] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if "choices" in f.metadata or "registry" in f.metadata:
            out[key] = dict(f.metadata)
        elif isinstance(f.type, type) and dataclasses.is_dataclass(f.type):
            out.update(choice_fields(f.type, key + "."))
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                out.update(choice_fields(type(value), key + "."))
    return out


def allowed_choices(meta: dict) -> tuple[str, ...]:
    return tuple(meta["registry"].names()) if "registry" in meta else tuple(meta["choices"])


def _listed(allowed: tuple[str, ...], item) -> str:
    """The allowed names, or for a long list (pyiqa's metrics) the closest ones."""
    if len(allowed) <= 20:
        return ", ".join(allowed)
    close = difflib.get_close_matches(str(item), allowed, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"the {len(allowed)} registered names{hint}"


def validate_choices(cfg: DictConfig, source: str = "config") -> None:
    """Every name-valued key holds one of its allowed names (a registry's entries or a fixed set).

    A registry entry with a `check_config(cfg, key, source)` method is then asked to check the
    rest of the config it needs (e.g. a metric's weight files), so that fails at load time too.
    """
    for key, meta in choice_fields().items():
        value = OmegaConf.select(cfg, key)
        allowed = allowed_choices(meta)
        for item in (value if meta.get("each") else [value]):
            if item not in allowed and meta.get("each"):
                raise UserError(f"{source}: key '{key}': {item!r} is not one of {_listed(allowed, item)}")
            if item not in allowed:
                raise UserError(f"{source}: key '{key}' must be one of {_listed(allowed, item)}; got {item!r}")
    for key, meta in choice_fields().items():
        value = OmegaConf.select(cfg, key)
        checks = {getattr(meta["registry"].get(item), "check_config", None)
                  for item in (value if meta.get("each") else [value])} if "registry" in meta else set()
        for check in checks - {None}:
            check(cfg, key, source)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Schema defaults <- each file of the `extends:` chain <- command-line overrides."""
    cfg = OmegaConf.structured(VSRConfig)
    if path is not None:
        for source, data in config_layers(path):
            cfg = _merge_layer(cfg, data, source)
    if overrides:
        cfg = _merge_layer(cfg, parse_overrides(overrides), "command line")
    validate_choices(cfg, str(path) if path else "config")
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML (saved with every run, printed by --print-config)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def flatten(cfg: DictConfig) -> dict[str, object]:
    """Dotted key -> value, for MLflow params."""
    out: dict[str, object] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out
