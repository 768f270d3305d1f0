"""The command line: one-line errors with exit code 2, help on every command, --print-config."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.common import REPO


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsr_lab", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=120)


@pytest.mark.parametrize("args, needle", [
    (["fit", "--config", "ablations/does_not_exist.yaml"], "does_not_exist.yaml"),
    (["fit", "--config", "ablations/full.yaml", "loss.temporall.weight=1"], "loss.temporall"),
    (["fit", "--config", "ablations/full.yaml", "trainer.max_batches=ten"], "trainer.max_batches"),
    (["validate", "--ckpt", "no/such.ckpt"], "no/such.ckpt"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, needle):
    proc = run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback():
    proc = run_cli("--debug", "fit", "--config", "missing.yaml")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "UserError" in proc.stderr


def test_bad_checkpoint_is_one_clear_line(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = run_cli("fit", "--config", "ablations/full.yaml", "--ckpt", str(bad))
    assert proc.returncode == 2 and "broken.ckpt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_help_for_each_command(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0 and "--config" in proc.stdout and "key=value" in proc.stdout


def test_print_config_shows_the_resolved_values():
    proc = run_cli("fit", "--config", "ablations/no_pixel_gan.yaml", "seed=11", "--print-config")
    assert proc.returncode == 0
    assert "seed: 11" in proc.stdout
    assert "adversarial_pixel:\n    enabled: false" in proc.stdout
