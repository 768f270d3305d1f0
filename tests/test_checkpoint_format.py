"""Checkpoints across versions: the tiny checkpoint kept in tests/fixtures (written by this code,
`python tests/fixtures/make_checkpoint.py`) loads, validates and resumes; a newer format, a
format no longer read, or a checkpoint of another model is one line naming the file, with what
changed."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from vsr_lab.cli import main
from vsr_lab.training import checkpoints
from vsr_lab.training.checkpoints import CHECKPOINT_FORMAT, CKPT_KEY
from vsr_lab.training.runner import read_checkpoint_meta

from helpers.common import REPO

FIXTURES = REPO / "tests" / "fixtures"
FIXTURE = FIXTURES / "tiny_format1.ckpt"
QUIET = ["trainer.progress_bar=false", "tracking.enabled=false"]


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("note: ")]  # one-time notes (tLP skipped) are not errors
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _copy_with(tmp_path, name: str, **section) -> str:
    """The fixture with some keys of its vsr_lab section replaced."""
    ckpt = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    ckpt[CKPT_KEY].update(section)
    path = tmp_path / name
    torch.save(ckpt, path)
    return str(path)


def test_the_current_format_has_a_small_fixture():
    current = FIXTURES / f"tiny_format{CHECKPOINT_FORMAT}.ckpt"
    assert current.is_file(), "a new checkpoint format needs its fixture: python tests/fixtures/make_checkpoint.py"
    assert current.stat().st_size < 800_000
    meta = read_checkpoint_meta(str(FIXTURE))
    assert meta["format_version"] == 1 and meta["format_note"] == checkpoints.FORMAT_CHANGES[1]
    assert meta["config"]["model"]["backbone"]["block_out_channels"] == [8, 8]


def test_the_fixture_validates_with_its_own_config(tmp_path, capsys):
    assert main(["validate", "--ckpt", str(FIXTURE), f"output_dir={tmp_path}", *QUIET]) == 0
    out = capsys.readouterr().out
    assert "val/psnr" in out and "val/ewarp" in out


def test_the_fixture_resumes_training(tmp_path):
    """fit --ckpt: weights, optimizer states and the batch count of format 1 are read back."""
    ckpt = _copy_with(tmp_path, "resume.ckpt", run_dir=str(tmp_path / "run"))
    config = tmp_path / "config.yaml"
    config.write_text(OmegaConf.to_yaml(OmegaConf.create(read_checkpoint_meta(ckpt)["config"])))
    assert main(["fit", "--config", str(config), "--ckpt", ckpt, "trainer.max_batches=2", *QUIET]) == 0
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"] == 2
    assert resumed[CKPT_KEY]["format_version"] == CHECKPOINT_FORMAT


def test_a_newer_format_says_what_changed(tmp_path, capsys):
    ckpt = _copy_with(tmp_path, "future.ckpt", format_version=CHECKPOINT_FORMAT + 1,
                      format_note="critics moved under discriminators.*")
    assert main(["validate", "--ckpt", ckpt, f"output_dir={tmp_path}", *QUIET]) == 2
    line = _one_error_line(capsys)
    assert f"future.ckpt: checkpoint format {CHECKPOINT_FORMAT + 1} is newer than this vsr_lab reads" in line
    assert "critics moved under discriminators.*" in line and "Upgrade vsr_lab" in line


def test_a_format_no_longer_read_says_what_changed_since(tmp_path, monkeypatch, capsys):
    """What a later version would print for today's checkpoints once it stops reading them."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_FORMAT", 2)
    monkeypatch.setattr(checkpoints, "OLDEST_READABLE", 2)
    monkeypatch.setitem(checkpoints.FORMAT_CHANGES, 2, "generator weights renamed to model.*")
    assert main(["validate", "--ckpt", str(FIXTURE), f"output_dir={tmp_path}", *QUIET]) == 2
    line = _one_error_line(capsys)
    assert "tiny_format1.ckpt: checkpoint format 1 is no longer read (this vsr_lab reads 2-2)" in line
    assert "since then: format 2: generator weights renamed to model.*" in line


def test_a_checkpoint_of_another_model_is_one_line_before_any_run(tmp_path, capsys):
    args = ["validate", "--config", str(REPO / "ablations" / "full.yaml"), "--ckpt", str(FIXTURE),
            f"output_dir={tmp_path / 'runs'}", *QUIET]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert "tiny_format1.ckpt: does not fit the configured model" in line
    assert "model.backbone.block_out_channels ([8, 8] vs [32, 64])" in line and "more (omit --config" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("section, needle", [
    ({"format_version": "one"}, "'vsr_lab.format_version' must be a whole number; got 'one'"),
    ({"config": None}, "the 'vsr_lab' section lacks a config mapping"),
])
def test_a_damaged_section_is_one_line(tmp_path, capsys, section, needle):
    ckpt = _copy_with(tmp_path, "damaged.ckpt", **section)
    assert main(["validate", "--ckpt", ckpt, f"output_dir={tmp_path}", *QUIET]) == 2
    assert needle in _one_error_line(capsys)


def test_make_checkpoint_script_matches_the_fixture_layout():
    """The fixture's config is what the script's overrides give (so it can be remade for a new format)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_checkpoint", FIXTURES / "make_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from vsr_lab.config import flatten, load_config

    expected = flatten(load_config(REPO / "ablations" / "full.yaml", module.OVERRIDES))
    saved = flatten(OmegaConf.create(read_checkpoint_meta(str(FIXTURE))["config"]))
    # Keys added since the fixture was written take their defaults when it loads; every key it has
    # must be what the script gives (a renamed or re-defaulted key shows here).
    differ = {k for k in saved if expected.get(k, "<absent>") != saved[k]} - {"output_dir"}  # a temporary folder
    assert differ == set(), differ
