"""Load a config file: `extends:` chains, dot-list overrides, schema checks, errors that name the file.

A file may say `extends: ../experiments/instavsr_tiny.yaml` (relative to itself, chains allowed);
its keys are merged over its parent's, then `key=value` overrides from the command line. Each layer
is merged onto the typed schema separately, so an unknown key or wrong type is reported with the
file (or "command line") it came from. Then every value is checked against the rule declared
next to its field and the rules across keys (config/rules.py), still before anything is built.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import glob
import typing
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vsr_lab.config.rules import first_broken_rule
from vsr_lab.config.schema import VSRConfig
from vsr_lab.errors import UserError

EXTENDS_KEY = "extends"
# libyaml's safe loader when PyYAML has it: the same documents, parsed 10x faster than pure Python
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
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


@functools.lru_cache(maxsize=1)
def _schema_defaults() -> DictConfig:
    """The typed schema with its defaults, built once (building it takes most of a load)."""
    return OmegaConf.structured(VSRConfig)


def _merge_layer(base: DictConfig, layer, source: str) -> DictConfig:
    """`layer` merged into `base` in place (OmegaConf.merge would copy the whole tree each time)."""
    try:
        base.merge_with(layer)
        return base
    except OmegaConfBaseException as exc:
        if getattr(exc, "full_key", None):
            raise UserError(f"{source}: {_describe(exc)}") from None
        raise UserError(f"{source}: key '{_failing_key(base, layer)}': {_describe(exc)}") from None
    except (TypeError, ValueError) as exc:  # OmegaConf's own for e.g. a list merged onto a section
        raise UserError(f"{source}: key '{_failing_key(base, layer)}': {str(exc).splitlines()[0]}") from None


def _failing_key(base: DictConfig, layer) -> str:
    """The first key of `layer` that cannot be merged alone (for an error OmegaConf gives no key)."""
    data = OmegaConf.to_container(layer) if isinstance(layer, DictConfig) else layer
    for path in _leaf_paths(data):
        single: Any = _value_at_path(data, path)
        for part in reversed(path):
            single = {part: single}
        try:
            OmegaConf.merge(base, single)
        except Exception:  # noqa: BLE001 - any failure marks this key
            return ".".join(path)
    return "?"


def _value_at_path(data, path: tuple):
    for part in path:
        data = data[part]
    return data


def parse_overrides(overrides: Iterable[str]) -> DictConfig:
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"command line: override {item!r} is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(overrides)
    except OmegaConfBaseException as exc:
        raise UserError(f"command line: {_describe(exc)}") from None
    except (TypeError, ValueError) as exc:  # `data=[] data.seed=1`: a key set to a value, then given sub-keys
        for n, item in enumerate(overrides):
            try:
                OmegaConf.from_dotlist(overrides[:n + 1])
            except (TypeError, ValueError):
                raise UserError(f"command line: override {item!r} does not combine with the overrides "
                                f"before it ({exc})") from None
        raise UserError(f"command line: the overrides do not combine ({exc})") from None
    except yaml.YAMLError as exc:  # the value after `=` is read as YAML: `*a`, `!!binary 0`, ...
        first = str(exc).splitlines()[0]
        for item in overrides:
            try:
                OmegaConf.from_dotlist([item])
            except (yaml.YAMLError, OmegaConfBaseException):
                raise UserError(f"command line: override {item!r}: the value is not valid YAML ({first})") from None
        raise UserError(f"command line: the overrides are not valid YAML ({first})") from None


@dataclasses.dataclass(frozen=True)
class SchemaField:
    """One leaf of the schema: its dotted key (`*` for each entry of a mapping section such as
    `sweep.params.*.low`), the dataclass field and its resolved type."""

    key: str
    field: dataclasses.Field
    type: Any


def _section_type(tp) -> type | None:
    """The dataclass of a nested section (or of each entry of a Dict[str, dataclass]), else None."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    return None


@functools.lru_cache(maxsize=None)
def schema_fields(cls=VSRConfig, prefix: str = "") -> tuple[SchemaField, ...]:
    """Every leaf field of the schema, depth first, with its dotted key (cached: the schema is fixed)."""
    hints = typing.get_type_hints(cls)
    out: list[SchemaField] = []
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if _section_type(tp):
            out += schema_fields(tp, key + ".")
        elif typing.get_origin(tp) is dict and _section_type(typing.get_args(tp)[1]):
            out += schema_fields(typing.get_args(tp)[1], key + ".*.")
        else:
            out.append(SchemaField(key, f, tp))
    return tuple(out)


def choice_fields(cls=VSRConfig, prefix: str = "") -> dict[str, dict]:
    """Dotted key -> field metadata, for every schema field whose value is a name from a set."""
    return {f.key: dict(f.field.metadata) for f in schema_fields(cls, prefix)
            if "choices" in f.field.metadata or "registry" in f.field.metadata}


def rule_fields(cls=VSRConfig, prefix: str = "") -> dict[str, tuple]:
    """Dotted key -> value rules (config/constraints.py) of every field that declares some."""
    return {f.key: f.field.metadata["rules"] for f in schema_fields(cls, prefix) if f.field.metadata.get("rules")}


def allowed_choices(meta: dict) -> tuple[str, ...]:
    return tuple(meta["registry"].names()) if "registry" in meta else tuple(meta["choices"])


def _listed(allowed: tuple[str, ...], item) -> str:
    """The allowed names, or for a long list (pyiqa's metrics) the closest ones."""
    if len(allowed) <= 20:
        return ", ".join(allowed)
    close = difflib.get_close_matches(str(item), allowed, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"the {len(allowed)} registered names{hint}"


class Sources:
    """Which layer (a file of the `extends:` chain, or "command line") last set each key, so an
    error names where the bad value came from; keys no layer set are named by `default`."""

    def __init__(self, layers: Sequence[tuple[str, Any]] = (), default: str = "defaults"):
        self.default = default
        self.layers = [(name, set(_leaf_paths(data))) for name, data in layers]

    @classmethod
    def single(cls, name: str) -> "Sources":
        return cls((), name)

    def of(self, key: str | tuple) -> tuple[int, str]:
        """(layer index, name) of the last layer that set `key` or a section holding it."""
        path = tuple(key.split(".")) if isinstance(key, str) else tuple(key)
        for index in range(len(self.layers) - 1, -1, -1):
            name, leaves = self.layers[index]
            if any(path[:n] in leaves for n in range(1, len(path) + 1)):
                return index, name
        return -1, self.default

    def latest(self, keys: Iterable[str]) -> str:
        """The name of the layer that set the last of `keys` (the one a cross-key error blames)."""
        return max((self.of(k) for k in keys), key=lambda item: item[0])[1]


def _leaf_paths(node, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node)
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaf_paths(v, path + (str(k),))
    elif path:
        yield path


def _values_at(data, parts: Sequence[str], path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) for a dotted schema key's parts in a plain config mapping; `*` matches every
    entry of a mapping section (whose own keys may hold dots, like sweep.params' config keys)."""
    if not parts:
        yield path, data
        return
    if not isinstance(data, dict):
        return
    head, rest = parts[0], parts[1:]
    for k in (data if head == "*" else [head] if head in data else []):
        yield from _values_at(data[k], rest, path + (str(k),))


def _as_sources(sources: "Sources | str") -> Sources:
    return Sources.single(sources) if isinstance(sources, str) else sources


class ConfigView:
    """Read-only attribute access (`cfg.data.scale`, `cfg.discriminator["pixel"]`) to a plain
    resolved config, for the rules: building it costs nothing, unlike a DictConfig."""

    __slots__ = ("_data",)

    def __init__(self, data: dict):
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str):
        value = self._data[name]
        return ConfigView(value) if isinstance(value, dict) else value

    def __contains__(self, name: str) -> bool:
        return name in self._data


def resolved(cfg: DictConfig, sources: "Sources | str" = "config") -> dict:
    """The config as plain Python values, interpolations resolved (an error names the key)."""
    sources = _as_sources(sources)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve or fit its key
        named = getattr(exc, "full_key", None)  # _describe names it
        key = named or _unresolvable_key(cfg)
        message = _describe(exc) if named or not key else f"key '{key}': {_describe(exc)}"
        raise UserError(f"{sources.of(key)[1] if key else sources.default}: {message}") from None


def _unresolvable_key(cfg: DictConfig, prefix: str = "") -> str:
    """The first interpolation in `cfg` that does not resolve (OmegaConf names no key when an
    interpolation replaces a whole section, e.g. `model=${data.scale}`); "" if none is found."""
    for name in cfg.keys() if isinstance(cfg, DictConfig) else ():
        key = f"{prefix}{name}"
        if OmegaConf.is_interpolation(cfg, name):
            try:
                cfg[name]
            except OmegaConfBaseException:
                return key
        else:
            node = cfg[name]  # not an interpolation: reading it resolves nothing
            if isinstance(node, DictConfig):
                found = _unresolvable_key(node, key + ".")
                if found:
                    return found
    return ""


def validate_values(data: dict, sources: "Sources | str" = "config") -> None:
    """Every numeric key meets the rules declared next to its field (None passes: the schema's
    types already decide where None is allowed)."""
    sources = _as_sources(sources)
    for key, rules in rule_fields().items():
        for path, value in _values_at(data, key.split(".")):
            for rule in rules:
                if value is not None and not rule.allows(value):
                    raise UserError(f"{sources.of(path)[1]}: key '{'.'.join(path)}' must be {rule.text}; "
                                    f"got {value!r}")


def validate_choices(data: dict, sources: "Sources | str" = "config") -> None:
    """Every name-valued key holds one of its allowed names (a registry's entries or a fixed set)."""
    sources = _as_sources(sources)
    for key, meta in choice_fields().items():
        allowed = allowed_choices(meta)
        for path, value in _values_at(data, key.split(".")):
            source = sources.of(path)[1]
            for item in (value if meta.get("each") else [value]):
                if item not in allowed and "registry" in meta and item in meta["registry"]:
                    continue  # found only at run time (a newer pyiqa's metric): the registry looked it up
                if item not in allowed and meta.get("each"):
                    raise UserError(f"{source}: key '{key}': {item!r} is not one of {_listed(allowed, item)}")
                if item not in allowed:
                    raise UserError(f"{source}: key '{key}' must be one of {_listed(allowed, item)}; got {item!r}")


def run_registry_checks(cfg: DictConfig, data: dict, sources: "Sources | str" = "config") -> None:
    """A registry entry with a `check_config(cfg, key, source)` method is asked to check the rest
    of the config it needs (e.g. a metric's weight files), so that fails at load time too."""
    sources = _as_sources(sources)
    for key, meta in choice_fields().items():
        if "registry" not in meta or not meta["registry"].checks_config:
            continue
        for path, value in _values_at(data, key.split(".")):
            checks = {getattr(meta["registry"].get(item), "check_config", None)
                      for item in (value if meta.get("each") else [value])}
            for check in checks - {None}:
                check(cfg, key, sources.of(path)[1])


def validate_data(data: dict, sources: "Sources | str" = "config", cfg: DictConfig | None = None) -> None:
    """All checks of a resolved config: each key's own rule, each name-valued key's choices (and,
    given the DictConfig, its registry entry's own check), then the rules across keys (config/rules.py)."""
    sources = _as_sources(sources)
    validate_values(data, sources)
    validate_choices(data, sources)
    if cfg is not None:
        run_registry_checks(cfg, data, sources)
    broken = first_broken_rule(ConfigView(data))
    if broken is not None:
        keys, message = broken
        raise UserError(f"{sources.latest(keys)}: {message}")


def validate_config(cfg: DictConfig, sources: "Sources | str" = "config") -> None:
    """`validate_data` of a loaded config, before anything is built."""
    validate_data(resolved(cfg, sources), sources, cfg)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Schema defaults <- each file of the `extends:` chain <- command-line overrides, checked."""
    layers: list[tuple[str, Any]] = config_layers(path) if path is not None else []
    return _load_layers(layers, overrides, str(path) if path else "defaults")


def load_saved_config(source: str, data: dict, overrides: Sequence[str] = ()) -> DictConfig:
    """Schema defaults <- a config saved elsewhere (a checkpoint's; `source` names it in errors)
    <- command-line overrides, checked like a file."""
    return _load_layers([(source, data)], overrides, source)


def _load_layers(layers: list[tuple[str, Any]], overrides: Sequence[str], name: str) -> DictConfig:
    cfg = copy.deepcopy(_schema_defaults())
    for source, data in layers:
        cfg = _merge_layer(cfg, data, source)
    if overrides:
        parsed = parse_overrides(overrides)
        cfg = _merge_layer(cfg, parsed, "command line")
        layers.append(("command line", parsed))
    validate_config(cfg, Sources(layers, name))
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


def expand_configs(pattern: str) -> list[str]:
    """Config files matching a glob, or several globs separated by commas."""
    paths: set[str] = set()
    for part in filter(None, (p.strip() for p in pattern.split(","))):
        matches = [str(Path(p).resolve()) for p in glob.glob(part) if p.endswith((".yaml", ".yml"))]
        if not matches:
            raise UserError(f"--configs: no YAML file matches {part!r}")
        paths.update(matches)
    if not paths:
        raise UserError(f"--configs: no YAML file matches {pattern!r}")
    return sorted(paths)
