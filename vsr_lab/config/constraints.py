"""Value rules of single config keys (`> 0`, `in [0, 1]`, a power of two, an ordered pair, ...).

A `Rule` is a test plus the words that describe it, so a rejected value's error can say what was
expected. Schema fields carry their rules in their metadata (`checked(default, *rules)` in
config/schema.py); `load_config` checks every one before anything is built. Rules that relate
several keys (hr_size divisible by scale, ...) live in config/rules.py.
Plain Python: imports nothing of vsr_lab.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Rule:
    """`test(value)` is True for an allowed value; `text` completes "must be ..."."""

    text: str
    test: Callable[[Any], bool]

    def allows(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError, OverflowError):  # a value of the wrong kind breaks the rule
            return False


def is_number(value: Any) -> bool:
    """A finite int or float (bools, nan and inf are not numbers here)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))  # ints of any size


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


FINITE = Rule("a finite number", is_number)


def at_least(low: float) -> Rule:
    return Rule(f">= {_show(low)}", lambda v: is_number(v) and v >= low)


def above(low: float) -> Rule:
    return Rule(f"> {_show(low)}", lambda v: is_number(v) and v > low)


def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
    """low <= v <= high, either end optionally open: text like "in [0, 1)"."""
    def test(v):
        return (is_number(v) and (v > low if low_open else v >= low)
                and (v < high if high_open else v <= high))
    return Rule(f"in {'(' if low_open else '['}{_show(low)}, {_show(high)}{')' if high_open else ']'}", test)


POSITIVE = above(0)
NON_NEGATIVE = at_least(0)
FRACTION = between(0, 1)
SEED = between(0, 2**32 - 1)  # Lightning's seed_everything takes 32-bit unsigned seeds
POWER_OF_TWO = Rule("a power of two (1, 2, 4, 8, ...)",
                    lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0)


def each(rule: Rule, min_len: int = 1, length: int | None = None) -> Rule:
    """A list whose every item meets `rule` (exactly `length` items, or at least `min_len`)."""
    size = f"{length}" if length is not None else f"{min_len}+"
    def test(v):
        n_ok = len(v) == length if length is not None else len(v) >= min_len
        return isinstance(v, (list, tuple)) and n_ok and all(rule.allows(x) for x in v)
    return Rule(f"a list of {size} values each {rule.text}", test)


def ordered_pair(rule: Rule = FINITE) -> Rule:
    """[low, high] with low <= high, both meeting `rule` (a range a value is drawn from)."""
    def test(v):
        return (isinstance(v, (list, tuple)) and len(v) == 2 and all(rule.allows(x) for x in v)
                and v[0] <= v[1])
    return Rule(f"a pair [low, high] with low <= high, each {rule.text}", test)


def either(*rules: Rule) -> Rule:
    return Rule(" or ".join(r.text for r in rules), lambda v: any(r.allows(v) for r in rules))


def both(*rules: Rule) -> Rule:
    return Rule(" and ".join(r.text for r in rules), lambda v: all(r.allows(v) for r in rules))


def _lightning_devices(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v >= 1 or v == -1
    if isinstance(v, str):
        parts = [p.strip() for p in v.split(",") if p.strip()]
        return v == "auto" or v.strip() == "-1" or (bool(parts) and all(p.isdigit() for p in parts))
    if isinstance(v, (list, tuple)):
        return bool(v) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
    return False


# What Lightning's Trainer(devices=...) takes: a count, -1 (all), "auto", "0,1" or a list of indices.
DEVICES = Rule("a device count >= 1, -1 (all), 'auto', or device indices ('0,1' or [0, 1])",
               _lightning_devices)


def checked(default: Any, *rules: Rule):
    """A schema field whose value must meet every rule (None passes: Optional fields are typed so)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"rules": rules})
    return dataclasses.field(default=default, metadata={"rules": rules})
