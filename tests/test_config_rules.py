"""Value rules: every numeric key declares its range next to its field, rules across keys live in
config/rules.py, and a rejected value is one line naming the key, the value, the rule and the
file or "command line" it came from, before any model is built."""

from __future__ import annotations

import math
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.config import constraints as C
from vsr_lab.config.loading import rule_fields, schema_fields
from vsr_lab.config.rules import CROSS_RULES
from vsr_lab.errors import UserError

from helpers.common import REPO

FULL = str(REPO / "ablations" / "full.yaml")
_NUMBERS = (int, float)


def _is_numeric(tp) -> bool:
    """int, float, Optional of them, or a list of them (bool is its own type, not a number)."""
    if tp in _NUMBERS:
        return True
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return len(args) == 1 and _is_numeric(args[0])
    return origin in (list, tuple) and bool(args) and all(a in _NUMBERS for a in args)


def test_every_numeric_key_declares_a_rule():
    numeric = {f.key for f in schema_fields() if _is_numeric(f.type)}
    assert {"data.batch_size", "optim.betas", "sweep.params.*.low"} <= numeric  # the walk sees every kind
    missing = numeric - set(rule_fields())
    assert not missing, f"numeric keys without a rule (use checked(default, RULE) in schema.py): {sorted(missing)}"


def test_the_defaults_and_every_shipped_config_pass():
    load_config(None)
    for path in sorted(REPO.glob("experiments/*.yaml")) + sorted(REPO.glob("ablations/**/*.yaml")):
        load_config(path)


@pytest.mark.parametrize("rule, good, bad", [
    (C.POSITIVE, [1e-9, 3], [0, -1, math.nan, math.inf, True, "1"]),
    (C.NON_NEGATIVE, [0, 0.0, 7], [-1e-9, -math.inf, math.nan]),
    (C.FRACTION, [0, 0.5, 1], [-0.1, 1.0001, math.nan]),
    (C.between(0, 1, high_open=True), [0, 0.999], [1, 1.5]),
    (C.POWER_OF_TWO, [1, 2, 64], [0, 3, 6, -4, 2.0]),
    (C.SEED, [0, 2**32 - 1], [-1, 2**32]),
    (C.each(C.at_least(1)), [[1], [32, 64]], [[], [0, 4], 4, [1.5, math.nan]]),
    (C.each(C.FRACTION, length=2), [[0.9, 0.99]], [[0.9], [0.9, 0.99, 0.999], [0.9, 2]]),
    (C.ordered_pair(C.NON_NEGATIVE), [[0.1, 3.0], [2, 2]], [[3.0, 0.1], [-1, 2], [1], [1, math.inf]]),
    (C.DEVICES, [1, 4, -1, "auto", "0,1", [0, 1]], [0, -2, "gpu", "", [], [-1], True]),
])
def test_rules_accept_and_reject(rule, good, bad):
    assert all(rule.allows(v) for v in good), [v for v in good if not rule.allows(v)]
    assert not any(rule.allows(v) for v in bad), [v for v in bad if rule.allows(v)]
    assert rule.text  # the words an error shows


def _fake_fit(calls: list):
    def fit(cfg, config_path=None, ckpt=None, **kwargs):
        calls.append(cfg)
        return None, SimpleNamespace(name="fake", run_dir=Path("runs/fake"), mlflow_run_id=None, summary="fake run")
    return fit


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=-1", "command line: key 'data.batch_size' must be >= 1; got -1"),
    ("loss.temporal.weight=-1", "command line: key 'loss.temporal.weight' must be >= 0; got -1.0"),
    ("discriminator.pixel.lr=0", "command line: key 'discriminator.pixel.lr' must be > 0; got 0.0"),
    ("data.hr_size=66", "command line: key 'data.hr_size' must be a multiple of data.scale (4)"),
])
def test_issue_cases_are_one_line_exit_2_before_any_model(monkeypatch, capsys, override, message):
    """The four cases of issue 14 through the real command line; `fit` (which builds the model)
    is replaced by a recorder, which a valid config does reach."""
    import vsr_lab.training.runner as runner

    calls: list = []
    monkeypatch.setattr(runner, "fit", _fake_fit(calls))
    assert main(["fit", "--config", FULL, override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}"), err
    assert calls == []
    assert main(["fit", "--config", FULL, "data.batch_size=2"]) == 0 and len(calls) == 1  # the patch is live


def test_the_error_names_the_file_that_set_the_value(tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text(f"extends: {FULL}\ndata: {{batch_size: 0}}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nseed: 3\n")
    with pytest.raises(UserError, match=rf"^{parent}: key 'data.batch_size' must be >= 1; got 0$"):
        load_config(child)
    # fixed on the command line: fine; a cross-key error blames the layer that set the last of its keys
    assert load_config(child, ["data.batch_size=2"]).data.batch_size == 2
    (tmp_path / "scale3.yaml").write_text(f"extends: {FULL}\ndata: {{scale: 3}}\n")
    with pytest.raises(UserError, match=r"scale3.yaml: key 'data.hr_size' must be a multiple of data.scale \(3\)"):
        load_config(tmp_path / "scale3.yaml")
    with pytest.raises(UserError, match=r"^command line: key 'data.hr_size' must be a multiple"):
        load_config(tmp_path / "scale3.yaml", ["data.hr_size=62"])
    assert load_config(tmp_path / "scale3.yaml", ["data.hr_size=63", "data.val_hr_size=63"]).data.hr_size == 63


def test_an_interpolation_that_does_not_resolve_blames_its_key_and_layer():
    """OmegaConf names no key when an interpolation replaces a whole section; the error still does."""
    with pytest.raises(UserError, match=r"^command line: key 'model': Invalid type assigned"):
        load_config(FULL, ["model=${data.scale}"])
    with pytest.raises(UserError, match=r"^command line: key 'loss': Interpolation key 'nope' not found"):
        load_config(FULL, ["loss=${nope}"])


def test_nan_and_infinity_are_refused():
    with pytest.raises(UserError, match="key 'optim.lr' must be > 0; got nan"):
        load_config(FULL, ["optim.lr=nan"])
    with pytest.raises(UserError, match="key 'loss.temporal.weight' must be >= 0; got inf"):
        load_config(FULL, ["loss.temporal.weight=inf"])
    with pytest.raises(UserError, match=r"key 'sweep.params.optim.lr.high' must be a finite number; got inf"):
        load_config(FULL, ["sweep.params={optim.lr: {type: float, low: 0.001, high: .inf}}"])


# One config breaking each rule of config/rules.py (by its function name): a new rule needs a case.
CROSS_CASES = {
    "hr_size_divisible_by_scale": (["data.hr_size=66"], "key 'data.hr_size' must be a multiple of data.scale (4)"),
    "degrade_size_holds_the_crop": (["data.degrade_size=130"], "key 'data.degrade_size' must be at least "
                                                               "data.hr_size (64) and a multiple of data.scale (4)"),
    "val_hr_size_divisible_by_scale": (["data.val_hr_size=90"], "key 'data.val_hr_size' must be a multiple"),
    "batch_fits_the_clips": (["data.train_clips=3"], "key 'data.batch_size' (4) must not exceed data.train_clips (3)"),
    "temporal_loss_needs_two_frames": (["data.num_frames=1"], "key 'data.num_frames' must be >= 2 while"),
    "temporal_metrics_need_two_frames": (["data.val_frames=0"], "key 'data.val_frames' must be >= 2"),
    "scored_frames_hold_the_ssim_window": (["metrics.crop_border=43"], "leaves 10 px of the 96-px validation"),
    "latent_critic_fits_the_crop": (["data.hr_size=8"], "key 'discriminator.latent.num_layers' (3)"),
    "pixel_critic_fits_the_crop": (["discriminator.pixel.num_layers=8"], "needs >= 128 px; data.hr_size=64 gives"),
    "attention_heads_fit_the_channels": (["model.backbone.attention_head_dim=33"], "must not exceed the narrowest"),
    "validation_divides_training": (["trainer.max_batches=500"], "key 'trainer.max_batches' (500) must be a multiple"),
    "grace_outlasts_heartbeat": (["sweep.grace_period=30"], "key 'sweep.grace_period' (30 s) must exceed"),
    "niqe_local_fits_the_frames": (["data.val_hr_size=24"], "scores 32-px blocks, but data.val_hr_size is 24"),
    "synthetic_training_has_photos": (["data.train_photos=[]"], "key 'data.train_photos' is empty"),
}
# Configs next to the edge that every rule lets through.
CROSS_OK = [
    ["data.degrade_size=64"], ["data.degrade_size=256"],
    ["data.num_frames=1", "loss.temporal.enabled=false"],
    ["data.source=folder", "data.val_frames=0", "data.val_hr_size=90"],
    ["data.hr_size=16", "data.val_hr_size=12", "data.train_clips=4", "metrics.perceptual=[]"],
    ["data.hr_size=8", "loss.adversarial_latent.enabled=false", "discriminator.pixel.num_layers=4"],
    ["discriminator.pixel.num_layers=8", "loss.adversarial_pixel.enabled=false"],
    ["model.backbone.preset=sd21", "data.scale=2", "data.hr_size=32", "discriminator.latent.num_layers=3"],
    ["model.backbone.attention_head_dim=32", "model.backbone.block_out_channels=[32]",
     "trainer.max_batches=100", "trainer.val_every=1000"],
    ["metrics.crop_border=42", "sweep.grace_period=31"],
    ["data.val_hr_size=24", "metrics.perceptual=[piqe]"],
    ["data.val_hr_size=32"],
    ["data.train_photos=[moon]"],
]


def test_niqe_block_matches_the_metric():
    from vsr_lab.config.rules import NIQE_LOCAL_BLOCK
    from vsr_lab.metrics.perceptual.niqe_local import LOCAL_BLOCK

    assert NIQE_LOCAL_BLOCK == LOCAL_BLOCK


def test_every_cross_rule_has_a_failing_case():
    assert {r.check.__name__ for r in CROSS_RULES} == set(CROSS_CASES)


@pytest.mark.parametrize("name", sorted(CROSS_CASES))
def test_cross_rule_rejects_with_one_line(name):
    overrides, needle = CROSS_CASES[name]
    with pytest.raises(UserError) as err:
        load_config(FULL, overrides)
    msg = str(err.value)
    assert msg.startswith("command line: ") and needle in msg and "\n" not in msg, msg
    rule = next(r for r in CROSS_RULES if r.check.__name__ == name)
    assert all(key in msg for key in rule.keys), msg  # the user sees every key that takes part


@pytest.mark.parametrize("overrides", CROSS_OK)
def test_cross_rules_allow_the_edge(overrides):
    load_config(FULL, overrides)


def test_training_length_rule_is_the_one_fit_uses():
    from vsr_lab.config.rules import validation_divides_training
    from vsr_lab.training.runner import training_epochs

    cfg = load_config(FULL, ["trainer.max_batches=600", "trainer.val_every=200"])
    assert validation_divides_training(cfg) is None and training_epochs(cfg) == (3, 200)
    cfg.trainer.val_every = 7
    with pytest.raises(UserError, match="must be a multiple of trainer.val_every"):
        training_epochs(cfg)


def test_search_space_checks_every_int_a_study_can_pick():
    from vsr_lab.studies.search_space import parse_search_space

    sweep = REPO / "experiments" / "sweep_tiny.yaml"

    def space(spec: str):
        return parse_search_space(load_config(sweep, [f"sweep.params={{{spec}}}"]), str(sweep))

    with pytest.raises(UserError, match=r"value 33: .*key 'data.hr_size' must be a multiple of data.scale"):
        space("data.hr_size: {type: int, low: 32, high: 64}")
    params = {p.key: p for p in space("data.hr_size: {type: int, low: 32, high: 64, step: 4}")}
    assert params["data.hr_size"].candidates() == list(range(32, 65, 4))
    with pytest.raises(UserError, match=r"value -0.5: .*key 'loss.temporal.weight' must be >= 0; got -0.5"):
        space("loss.temporal.weight: {type: float, low: -0.5, high: 1}")
    with pytest.raises(UserError, match="type: int"):
        space("data.batch_size: {type: float, low: 1, high: 4}")
