"""Property-based tests (hypothesis): random override sets drawn from the schema, valid and invalid
values of every key, never give a traceback. `fit`/`validate --print-config` exit with 0 or 2 and
a rejected set gets one line naming a key it set; `ablate` config loading and the `sweep`
search-space check raise nothing but UserError, and a search space they accept never gives a
trial a config that fails to load.

The default run draws a bounded number of examples with a fixed seed (`derandomize`); the slow
variant (`pytest -m slow tests/test_config_fuzz.py`) draws many more. Set FUZZ_LOG=path to append
the number of sets tried by each test (the figures of issue 14).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.config.constraints import is_number
from vsr_lab.config.loading import allowed_choices, schema_fields
from vsr_lab.errors import UserError

from helpers.common import REPO

FULL = str(REPO / "ablations" / "full.yaml")
NO_GAN = str(REPO / "ablations" / "no_gan.yaml")

QUICK = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
LONG = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

FIELDS = [f for f in schema_fields() if "*" not in f.key]


def _select(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


NUMERIC_KEYS = [f.key for f in FIELDS if f.field.metadata.get("rules")]

# Values of every kind: edges of the usual rules, the extremes YAML and OmegaConf read as
# numbers (nan, inf, huge ints), and text that is no number at all.
EDGE_NUMBERS = [0, 1, -1, 2, 3, 4, 7, 8, 11, 16, 32, 64, 66, 96, 999, 1000, 2**31, 2**32, 2**63, -(2**63),
                0.0, 0.5, 1.0, 1.5, -0.5, 1e-12, 1e300, -1e300]
ODD_TEXT = ["nan", "inf", "-inf", ".inf", "abc", "''", "null", "true", "false", "yes", "[]", "[1, 2]", "[[1]]",
            "{}", "{a: 1}", "1e3", "0x10", "1_000", "${data.scale}", "${nope}", "${data}", "'='", "~", "-",
            "2021-01-01", "!!binary 0", "&a 1", "*a"]


def _text(value) -> str:
    """YAML text of a value, as a user would type it after `key=`."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, (list, dict, bool)) or value is None:
        return json.dumps(value)
    return str(value)


numbers = st.one_of(st.sampled_from(EDGE_NUMBERS), st.integers(-300, 300),
                    st.floats(allow_nan=True, allow_infinity=True, width=32))


def _values_for(field) -> st.SearchStrategy[str]:
    """Override text for one schema field: mostly values of its own kind, often out of range."""
    meta, tp = field.field.metadata, field.type
    odd = st.sampled_from(ODD_TEXT)
    if "choices" in meta or "registry" in meta:
        names = list(allowed_choices(meta))
        name = st.sampled_from(names + ["bogus", "TINY", ""])
        if meta.get("each"):
            return st.one_of(st.lists(name, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"), odd)
        return st.one_of(name, numbers.map(_text), odd)
    if typing.get_origin(tp) is list or tp is typing.Any:
        return st.one_of(st.lists(numbers, max_size=4).map(_text), numbers.map(_text), odd)
    if tp is bool:
        return st.one_of(st.sampled_from(["true", "false", "True", "0", "1", "maybe"]), odd)
    if tp in (int, float) or typing.get_args(tp) and set(typing.get_args(tp)) & {int, float}:
        return st.one_of(numbers.map(_text), odd)
    return st.one_of(st.text(st.characters(codec="ascii", exclude_characters="\n\r\x00"), max_size=8), odd)


UNKNOWN_KEYS = ["data.batch_sise", "loss.temporall.weight", "data", "model", "data.motion", "sweep.params",
                "trainer.devices.x", "nope", "data.motion.max_shift.x", ""]


@st.composite
def override_sets(draw, max_size: int = 4) -> list[tuple[str, str]]:
    """A few (key, value text) pairs: schema keys with values of every kind, now and then an
    unknown key, a whole section or a sweep search space."""
    pairs = []
    for _ in range(draw(st.integers(1, max_size))):
        kind = draw(st.sampled_from(["numeric"] * 6 + ["any"] * 3 + ["unknown", "sweep"]))
        if kind == "unknown":
            pairs.append((draw(st.sampled_from(UNKNOWN_KEYS)), draw(st.sampled_from(ODD_TEXT + ["1"]))))
        elif kind == "sweep":
            pairs.append(("sweep.params", draw(search_spaces())))
        else:
            keys = NUMERIC_KEYS if kind == "numeric" else [f.key for f in FIELDS]
            key = draw(st.sampled_from(keys))
            field = next(f for f in FIELDS if f.key == key)
            current = _select(DEFAULTS, key)
            if kind == "numeric" and is_number(current) and draw(st.booleans()):  # near the valid value
                near = [current, current * 2, current // 2 if isinstance(current, int) else current / 2]
                pairs.append((key, _text(draw(st.sampled_from(near)))))
            else:
                pairs.append((field.key, draw(_values_for(field))))
    return pairs


DEFAULTS = load_config(FULL)
SCALAR_NUMERIC = [f for f in FIELDS if f.key in NUMERIC_KEYS and f.type in (int, float) and not f.key.startswith("sweep.")]


@st.composite
def plausible_space(draw) -> dict:
    """A distribution a user would write: the key's own type, around its current value."""
    field = draw(st.sampled_from(SCALAR_NUMERIC))
    current = _select(DEFAULTS, field.key)
    low = draw(st.sampled_from([current, current / 2, current - 1, 0, 1])) if field.type is float else \
        draw(st.sampled_from([current, current // 2, current - 1, 0, 1]))
    high = draw(st.sampled_from([current * 2 + 1, current + 1, low + 4, low * 8 + 1]))
    spec = {"type": "float" if field.type is float else "int", "low": low, "high": high}
    if field.type is int and draw(st.booleans()):
        spec["step"] = draw(st.sampled_from([1, 2, 4, 8]))
    elif draw(st.integers(0, 3)) == 0:
        spec["log"] = True
    return {field.key: spec}


@st.composite
def search_spaces(draw) -> str:
    """`sweep.params` as flow YAML: schema keys (and a few wrong ones) with random distributions,
    half of them plausible ones."""
    if draw(st.booleans()):
        params = draw(plausible_space())
        return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items()) + "}"
    key = draw(st.sampled_from(NUMERIC_KEYS + ["loss.reconstruction.type", "model.recurrent.enabled",
                                               "data", "sweep.seed", "nope.key", "model.pruning.stages"]))
    kind = draw(st.sampled_from(["float", "int", "categorical", "bogus"]))
    spec = {"type": kind}
    for name in ("low", "high", "step"):
        if draw(st.booleans()):
            spec[name] = draw(st.one_of(st.sampled_from(EDGE_NUMBERS), st.integers(-50, 300),
                                        st.floats(-10, 1000, allow_nan=False)))
    if draw(st.booleans()):
        spec["log"] = draw(st.booleans())
    if kind == "categorical" or draw(st.integers(0, 4)) == 0:
        spec["choices"] = draw(st.lists(st.one_of(st.sampled_from(EDGE_NUMBERS), st.sampled_from(
            ["l1", "charbonnier", "tiny", True, None, [1, 2]])), max_size=4))
    body = ", ".join(f"{k}: {json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else _text(v)}"
                     for k, v in spec.items())
    return f"{{{key}: {{{body}}}}}"


def _as_args(pairs) -> list[str]:
    return [f"{k}={v}" for k, v in pairs]


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)  # any exception but UserError propagates: a traceback fails the test
    return rc, out.getvalue(), err.getvalue()


def _single_invalid(pairs) -> str | None:
    """The key of the one pair whose value breaks its own field's rule (a number out of range),
    when every other pair is a schema key set to its default; else None."""
    bad = []
    for key, text in pairs:
        field = next((f for f in FIELDS if f.key == key), None)
        if field is None or not field.field.metadata.get("rules"):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        if field.type is int and not isinstance(value, int):  # `seed=0.0`: a type error, not a rule's
            return None
        if all(r.allows(value) for r in field.field.metadata["rules"]):
            if value != _select(DEFAULTS, key):
                return None
        else:
            bad.append(key)
    return bad[0] if len(bad) == 1 else None


def _check_cli(argv: list[str], pairs, tally: list) -> None:
    rc, out, err = _run(argv)
    tally.append(rc)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 0:
        assert out.startswith("seed:") and not err.strip(), (argv, err)
        return
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    message = lines[0]
    # The defaults and full.yaml are valid, so a rejection comes from an override: it names it
    assert any(k and k.split(".")[0] in message for k, _ in pairs) or "command line" in message, (argv, message)
    invalid = _single_invalid(pairs)
    if invalid is not None:
        assert f"key '{invalid}'" in message and message.startswith("error: command line: "), (argv, message)


TALLIES: dict[str, list] = {}


@pytest.fixture(scope="module", autouse=True)
def warm_and_log():
    """Load once before timing starts (registries import their modules); write the figures."""
    load_config(FULL)
    yield
    if os.environ.get("FUZZ_LOG"):
        with open(os.environ["FUZZ_LOG"], "a") as fh:
            for name, results in TALLIES.items():
                fh.write(json.dumps({"test": name, "sets": len(results),
                                     "accepted": sum(r == 0 for r in results),
                                     "rejected": sum(r == 2 for r in results)}) + "\n")


def _fit_print_config(pairs):
    _check_cli(["fit", "--config", FULL, *_as_args(pairs), "--print-config"], pairs,
               TALLIES.setdefault("fit --print-config", []))


def _validate_print_config(pairs):
    _check_cli(["validate", "--config", FULL, *_as_args(pairs), "--print-config"], pairs,
               TALLIES.setdefault("validate --print-config", []))


def _ablate_plan(pairs):
    from vsr_lab.ablation.cells import plan

    tally = TALLIES.setdefault("ablate plan", [])
    try:
        planned = plan([FULL, NO_GAN], 2, _as_args(pairs))
    except UserError as exc:
        tally.append(2)
        assert "\n" not in str(exc)
        return
    tally.append(0)
    assert len(planned.cells) == 4


def _search_space(data, space: str):
    """The space is refused with a UserError, or every value a trial could draw from it loads."""
    from vsr_lab.studies.search_space import override, parse_search_space

    tally = TALLIES.setdefault("sweep search space", [])
    try:
        params = parse_search_space(load_config(FULL, [f"sweep.params={space}"]), FULL)
    except UserError as exc:
        tally.append(2)
        assert "\n" not in str(exc)
        return
    tally.append(0)
    for p in params:
        if p.type == "float":
            value = data.draw(st.floats(p.low, p.high))
        elif p.type == "int":
            step = int(p.step or 1)
            value = int(p.low) + step * data.draw(st.integers(0, (int(p.high) - int(p.low)) // step))
        else:
            value = data.draw(st.sampled_from(p.choices))
        load_config(FULL, [override(p.key, value)])  # must not raise: the check promised it fits


@QUICK
@given(override_sets())
def test_fit_print_config_exits_0_or_2(pairs):
    _fit_print_config(pairs)


@QUICK
@given(override_sets())
def test_validate_print_config_exits_0_or_2(pairs):
    _validate_print_config(pairs)


@QUICK
@given(override_sets())
def test_ablate_config_loading_raises_only_user_errors(pairs):
    _ablate_plan(pairs)


@QUICK
@given(st.data(), search_spaces())
def test_sweep_search_space_is_refused_or_sound(data, space):
    _search_space(data, space)


def test_single_out_of_range_value_is_named():
    """The labelling the properties rely on sees an out-of-range value (a check of the check)."""
    assert _single_invalid([("data.batch_size", "-1")]) == "data.batch_size"
    assert _single_invalid([("data.batch_size", "-1"), ("seed", "0")]) == "data.batch_size"
    assert _single_invalid([("data.batch_size", "2")]) is None
    rc, _, err = _run(["fit", "--config", FULL, "seed=0", "optim.lr=-1e-300", "--print-config"])
    assert rc == 2 and "key 'optim.lr' must be > 0" in err


@pytest.mark.parametrize("pairs", [
    [("output_dir", "\x1e")],  # a control character that str.splitlines() breaks on
    [("data", "[]"), ("seed", "0"), ("data.motion.max_shift", "2.0")],  # a value, then sub-keys
    [("data", "[]"), ("data.batch_sise", "nan")],
    [("seed", "0.0"), ("data.scale", "0")],  # a float for an int key is refused before any rule
])
def test_cases_found_by_the_long_run(pairs):
    """Override sets the long run (`pytest -m slow tests/test_config_fuzz.py`) found giving a
    traceback or a two-line error: through `fit --print-config` and the ablation planner."""
    _fit_print_config(pairs)
    _ablate_plan(pairs)


@pytest.mark.slow
@LONG
@given(override_sets(max_size=8))
def test_long_fit_print_config_exits_0_or_2(pairs):
    _fit_print_config(pairs)


@pytest.mark.slow
@LONG
@given(override_sets(max_size=8))
def test_long_ablate_config_loading(pairs):
    _ablate_plan(pairs)


@pytest.mark.slow
@LONG
@given(st.data(), search_spaces())
def test_long_sweep_search_space(data, space):
    _search_space(data, space)
