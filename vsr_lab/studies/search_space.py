"""The config's `sweep:` section turned into Optuna suggestions, checked before any training.

Every searched key must exist in the config and every value the study could pick (low, high,
each choice, each int of a range) must pass the typed schema, the choice lists and the value rules
(config/constraints.py, config/rules.py) at that key, so a typo or a wrong
type fails on the command line instead of in trial 17.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vsr_lab.config.loading import parse_overrides, resolved, validate_data
from vsr_lab.errors import UserError

DIRECTIONS = ("minimize", "maximize")
PARAM_TYPES = ("float", "int", "categorical")
_SCALARS = (type(None), bool, int, float, str)
_ABSENT = object()
MAX_CHECKED_INTS = 256


def override(key: str, value: Any) -> str:
    """A dot-list override whose value YAML reads back as the same value (lists included)."""
    return f"{key}={json.dumps(value)}"


@dataclass(frozen=True)
class SearchParam:
    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        if all(isinstance(c, _SCALARS) for c in self.choices):
            return trial.suggest_categorical(self.key, list(self.choices))
        # Optuna stores scalars only: lists (e.g. pruning stages) are searched by their JSON text.
        return json.loads(trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices]))

    def candidates(self) -> list:
        """Values checked against the config before the study starts: every choice, the ends of a
        float range (the schema's numeric rules are intervals), and the first MAX_CHECKED_INTS
        values of an int range and its last (so `step` meets rules like hr_size % scale)."""
        if self.type == "float":
            return [self.low, self.high]
        if self.type == "int":
            low, step = int(self.low), int(self.step or 1)
            count = (int(self.high) - low) // step + 1
            first = list(range(low, low + step * min(count, MAX_CHECKED_INTS), step))
            return first if count <= MAX_CHECKED_INTS else first + [low + step * (count - 1)]
        return list(self.choices)


def _param(key: str, spec: DictConfig, where: str) -> SearchParam:
    kind = spec.type
    if kind not in PARAM_TYPES:
        raise UserError(f"{where}: type must be one of {', '.join(PARAM_TYPES)}; got {kind!r}")
    if kind == "categorical":
        if not spec.choices or spec.low is not None or spec.high is not None:
            raise UserError(f"{where}: a categorical parameter needs a non-empty `choices` list and no low/high")
        return SearchParam(key, kind, choices=tuple(OmegaConf.to_container(spec.choices)))
    if spec.low is None or spec.high is None or spec.choices is not None:
        raise UserError(f"{where}: a {kind} parameter needs `low` and `high` (and no `choices`)")
    if not spec.low < spec.high:
        raise UserError(f"{where}: low ({spec.low}) must be below high ({spec.high})")
    if spec.log and (spec.low <= 0 or spec.step is not None):
        raise UserError(f"{where}: `log: true` needs low > 0 and no `step`")
    if kind == "int" and not all(float(v).is_integer() for v in (spec.low, spec.high, spec.step or 1)):
        raise UserError(f"{where}: an int parameter needs whole numbers for low, high and step")
    return SearchParam(key, kind, spec.low, spec.high, spec.log, spec.step)


def _set(data: dict, key: str, value: Any) -> dict:
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return data


def _check_against_config(cfg: DictConfig, param: SearchParam, where: str) -> None:
    current = OmegaConf.select(cfg, param.key, default=_ABSENT)
    if current is _ABSENT or param.key.split(".")[0] == "sweep":
        raise UserError(f"{where}: {param.key!r} is not a config key")
    if isinstance(current, DictConfig):
        raise UserError(f"{where}: {param.key!r} is a section; search one of its keys")
    if param.type == "float" and isinstance(current, int) and not isinstance(current, bool):
        # a float range would pass its whole-number ends, then draw 2.5 in some trial
        raise UserError(f"{where}: {param.key!r} holds whole numbers; search it with `type: int`")
    # The ints of a range share their type: after the first passes the schema, only the value
    # rules are checked, on a plain copy (much faster than a merge), unless interpolations
    # could carry the value to other keys.
    plain = None
    for value in param.candidates():
        if param.type == "int":
            value = int(value)
        source = f"{where}: value {value!r}"
        if plain is None:
            try:
                trial_cfg = OmegaConf.merge(cfg, parse_overrides([override(param.key, value)]))
            except (OmegaConfBaseException, UserError) as exc:
                raise UserError(f"{where}: value {value!r} does not fit {param.key!r} "
                                f"({str(exc).splitlines()[0]})") from None
            data = resolved(trial_cfg, source)
            if param.type == "int" and "${" not in str(OmegaConf.to_container(cfg, resolve=False)):
                plain = data
            validate_data(data, source, trial_cfg)
        else:
            validate_data(_set(copy.deepcopy(plain), param.key, value), source)


def check_objectives(cfg: DictConfig, source: str) -> None:
    s = cfg.sweep
    if not s.objectives:
        raise UserError(f"{source}: key 'sweep.objectives' is empty; name at least one metric, e.g. val/psnr")
    if len(s.directions) != len(s.objectives):
        raise UserError(f"{source}: key 'sweep.directions' needs one direction per objective "
                        f"({len(s.objectives)} objectives, {len(s.directions)} directions)")
    for d in s.directions:
        if d not in DIRECTIONS:
            raise UserError(f"{source}: key 'sweep.directions': {d!r} must be one of {', '.join(DIRECTIONS)}")
    for o in s.objectives:
        if not o.startswith("val/"):
            raise UserError(f"{source}: key 'sweep.objectives': {o!r} must be a validation metric such as val/psnr")
    if len(set(s.objectives)) != len(s.objectives):
        raise UserError(f"{source}: key 'sweep.objectives' names a metric twice")
    if len(s.objectives) > 1 and s.pruner != "none":  # Optuna prunes on one reported value per step
        raise UserError(f"{source}: key 'sweep.pruner': {s.pruner!r} prunes single-objective studies only; "
                        f"with {len(s.objectives)} objectives set sweep.pruner: none")


def parse_search_space(cfg: DictConfig, source: str) -> list[SearchParam]:
    """The checked search space of `cfg.sweep` (objectives, directions and every param)."""
    check_objectives(cfg, source)
    if not cfg.sweep.params:
        raise UserError(f"{source}: key 'sweep.params' is empty; map config keys to distributions to search")
    params = []
    for key, spec in cfg.sweep.params.items():
        where = f"{source}: key 'sweep.params.{key}'"
        param = _param(str(key), spec, where)
        _check_against_config(cfg, param, where)
        params.append(param)
    return params
