"""What a fit and an upscale print: off a terminal (a file, a CI or SLURM log) plain lines, one per
validation, no bar redraws or escape codes; on a terminal one bar, no nested validation bars; third
-party chatter (Lightning's checkpoint-folder warning on resume, Optuna's per-trial lines) filtered."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

from helpers.common import REPO, TINY_OVERRIDES

CONFIG = str(REPO / "ablations" / "no_pixel_gan.yaml")
SHOWN = [o for o in TINY_OVERRIDES if not o.startswith("trainer.progress_bar")] + [
    "trainer.max_batches=6", "trainer.val_every=2", "tracking.enabled=false"]


def _run(args: list[str], cwd, tty: bool = False) -> tuple[str, str]:
    """(stdout, stderr) of `python -m vsr_lab ARGS`, stdout a file or, with `tty`, a terminal."""
    command = [sys.executable, "-m", "vsr_lab", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    if not tty:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=child, stderr=subprocess.PIPE)
    os.close(child)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child closed its terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=300)
    os.close(main)
    assert proc.returncode == 0, proc.stderr.read().decode()
    return b"".join(chunks).decode(errors="replace"), proc.stderr.read().decode()


def test_a_fit_logged_to_a_file_prints_a_line_per_validation_and_no_bar(tmp_path):
    out, err = _run(["fit", "--config", CONFIG, *SHOWN, f"output_dir={tmp_path / 'runs'}"], tmp_path)
    assert "\r" not in out + err and "\x1b" not in out + err  # no redraws, no escape codes
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("batch ")]
    assert [line.split(":")[0] for line in progress] == ["batch 2/6", "batch 4/6", "batch 6/6"]
    assert all(re.search(r"val/psnr \d+\.\d\d \(bicubic \d+\.\d\d\), loss [\d.]+, [\d.]+ batches/s, elapsed \d+s, "
                         r"left ~\S+$", line) for line in progress), progress
    assert any(line.startswith("run no_pixel_gan-") and "trained 6 of 6 batches" in line for line in lines)
    assert not [line for line in err.splitlines() if not line.startswith("note: ")], err  # only our notes
    assert len(err.splitlines()) == len(set(err.splitlines()))  # each note once

    ckpt = next((tmp_path / "runs").glob("*/checkpoints/last.ckpt"))
    out, err = _run(["fit", "--ckpt", str(ckpt), "trainer.max_batches=8"], tmp_path)
    assert out.splitlines()[0].startswith("resuming run") and "batch 8/8:" in out
    assert "exists and is not empty" not in err and not [line for line in err.splitlines()
                                                         if not line.startswith("note: ")]


def test_on_a_terminal_a_fit_draws_one_bar_and_no_validation_bars(tmp_path):
    out, _ = _run(["fit", "--config", CONFIG, *SHOWN, f"output_dir={tmp_path / 'runs'}"], tmp_path, tty=True)
    assert "batches:" in out and "6/6" in out
    assert "Validation" not in out and "\x1b[A" not in out  # no nested bar, no cursor-up escapes
    assert not re.search(r"^batch \d+/6:", out, re.M)  # the lines are for logs only


def test_upscale_logged_to_a_file_prints_lines_per_tenth_of_a_video(tmp_path):
    _run(["sample-clip", str(tmp_path / "clip"), "--frames", "20", "--size", "64x48"], tmp_path)
    out, err = _run(["upscale", "--config", str(REPO / "experiments" / "instavsr_tiny.yaml"), *TINY_OVERRIDES[9:12],
                     "--input", str(tmp_path / "clip" / "lr.mkv"), "--output", str(tmp_path / "x4.mp4")], tmp_path)
    assert "\r" not in out + err and "\x1b" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("lr.mkv: ")]
    assert [line.split(" in ")[0] for line in lines] == [f"lr.mkv: {n}/20 frames" for n in range(2, 20, 2)] + [
        "lr.mkv: done, 20 frames (video 1 of 1)"]
    assert out.strip().startswith("upscaled 1 video: 20 frames")


def test_optuna_trial_lines_are_filtered():
    from vsr_lab.console import quiet

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    optuna_log = logging.getLogger("optuna")
    optuna_log.addHandler(handler)
    try:
        with quiet():
            optuna_log.info("Trial 0 finished with value: 1.0")
            optuna_log.warning("a real problem")
        optuna_log.setLevel(logging.INFO)
        optuna_log.info("after quiet: shown")
    finally:
        optuna_log.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["a real problem", "after quiet: shown"]
