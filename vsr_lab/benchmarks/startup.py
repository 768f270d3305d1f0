"""`bench --startup`: how long a user waits for an answer, and where a short fit's fixed cost goes.

- errors: seconds from starting `python -m vsr_lab ...` to its exit for a missing `upscale
  --input`, an unknown config key and a missing config file (each one error line), and for
  `--help` and `fit --print-config` (median of `repeats` fresh interpreters);
- fit phases: a `trainer.max_batches`-batch fit of the config (tracking on, as a user runs it) in a
  fresh spawned interpreter, split into interpreter start and imports, config loading, data and
  model set-up up to the first batch, the training batches, validation, and the end of the fit
  (checkpoints, MLflow, summary).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ERROR_CASES = {  # name -> (arguments after `python -m vsr_lab`, text the error line must hold)
    "missing_upscale_input": (["upscale", "--config", "{config}", "--input", "{tmp}/missing.mp4",
                               "--output", "{tmp}/out.mp4"], "missing.mp4"),
    "unknown_config_key": (["fit", "--config", "{config}", "loss.temporall.weight=1"], "loss.temporall"),
    "missing_config_file": (["fit", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
}
ANSWER_CASES = {"help": ["--help"], "print_config": ["fit", "--config", "{config}", "--print-config"]}


def _seconds(args: list[str], expect_code: int, needle: str | None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vsr_lab", *args], capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if done.returncode != expect_code or (needle and needle not in done.stderr):
        raise RuntimeError(f"bench --startup: {' '.join(args)} gave exit {done.returncode}: {done.stderr[-500:]}")
    return seconds


def answer_times(config: str, repeats: int) -> dict[str, float]:
    """Median seconds to the answer of each error and answer case."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        def fill(args):
            return [a.format(config=config, tmp=tmp) for a in args]

        for name, (args, needle) in ERROR_CASES.items():
            out[name] = statistics.median(_seconds(fill(args), 2, needle) for _ in range(repeats))
        for name, args in ANSWER_CASES.items():
            out[name] = statistics.median(_seconds(fill(args), 0, None) for _ in range(repeats))
    return out


def _timed_fit(config: str, overrides: list[str], started: float, queue) -> None:
    """In a fresh interpreter: the fit's phase boundaries, in seconds since `started`."""
    import_start = time.time()
    import lightning as L

    from vsr_lab.config.loading import load_config
    from vsr_lab.console import quiet
    from vsr_lab.training.runner import fit

    marks = {"interpreter_started": import_start - started, "imports_done": time.time() - started}

    class Marks(L.Callback):
        def on_train_start(self, trainer, pl_module):
            marks.setdefault("train_start", time.time() - started)

        def on_train_batch_end(self, trainer, pl_module, *args):
            marks.setdefault("first_batch_done", time.time() - started)
            marks["last_batch_done"] = time.time() - started

        def on_validation_start(self, trainer, pl_module):
            marks.setdefault("validation_start", time.time() - started)

        def on_validation_end(self, trainer, pl_module):
            marks["validation_end"] = time.time() - started

    with quiet():
        cfg = load_config(config, overrides)
        marks["config_loaded"] = time.time() - started
        fit(cfg, config, extra_callbacks=[Marks()])
    marks["fit_returned"] = time.time() - started
    queue.put(marks)


def fit_phases(config: str, batches: int) -> dict[str, float]:
    """Seconds of each phase of a `batches`-batch fit (validated once at its end), from spawning a
    fresh interpreter to `fit` returning."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"trainer.max_batches={batches}", f"trainer.val_every={batches}", "trainer.progress_bar=false",
                     f"tracking.tracking_uri=sqlite:///{Path(tmp) / 'mlflow.db'}",
                     f"tracking.artifact_location={Path(tmp) / 'mlartifacts'}", f"output_dir={Path(tmp) / 'runs'}"]
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        cwd = os.getcwd()
        started = time.time()
        process = context.Process(target=_timed_fit, args=(str(Path(config).resolve()), overrides, started, queue))
        process.start()
        marks = queue.get(timeout=1800)
        process.join()
        os.chdir(cwd)
    validation = marks["validation_end"] - marks["validation_start"]
    return {
        "interpreter_start_s": marks["interpreter_started"],
        "imports_s": marks["imports_done"] - marks["interpreter_started"],
        "config_load_s": marks["config_loaded"] - marks["imports_done"],
        "setup_to_first_batch_s": marks["first_batch_done"] - marks["config_loaded"],
        "training_batches_s": marks["last_batch_done"] - marks["first_batch_done"],
        "validation_s": validation,
        "end_of_fit_s": marks["fit_returned"] - marks["validation_end"],
        "total_s": marks["fit_returned"],
    }


def run_startup_bench(config: str, repeats: int = 3, batches: int = 4) -> dict:
    return {"config": config, "repeats": repeats, "answers_s": answer_times(config, repeats),
            "fit_batches": batches, "fit_phases": fit_phases(config, batches),
            "python": sys.version.split()[0], "cpu_threads": os.cpu_count()}


def format_startup(result: dict) -> str:
    lines = [f"time to the answer (median of {result['repeats']} fresh interpreters):"]
    lines += [f"  {name:<24} {seconds:6.2f} s" for name, seconds in result["answers_s"].items()]
    lines.append(f"a {result['fit_batches']}-batch fit of {result['config']}, where the time goes:")
    lines += [f"  {name[:-2]:<24} {seconds:6.2f} s" for name, seconds in result["fit_phases"].items()]
    return "\n".join(lines)
