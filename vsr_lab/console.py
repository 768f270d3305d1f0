"""What a command shows on the console: our notices once each, third-party chatter filtered.

Lightning, MLflow and torch print things a vsr_lab user cannot act on (accelerator inventory,
an advert for a logging service, database-migration steps, deprecation warnings about their own
internals, "possible user" hints that our batch-counted loop triggers by design). `quiet()` is
applied at the command-line entry point (and in ablation worker processes); `--verbose` skips it.
Our own notices (loggers under `vsr_lab`) print as `note: ...`, each distinct message once per
process, so an ablation of twelve runs says "tLP skipped" once instead of twelve times.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from contextlib import contextmanager

# Third-party loggers whose INFO lines are chatter; their warnings and errors still show. These are
# the loggers that emit (Lightning routes its notices through its rank-zero loggers): the package
# loggers (`lightning.pytorch`, `mlflow`) get their level reset to INFO when they are imported.
CHATTY_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                  "lightning.pytorch.accelerators.cuda", "mlflow.store.db.utils", "alembic.runtime.migration",
                  "optuna")  # optuna's "Trial 0 finished with value ..." repeats our own line per trial
# Third-party warning lines that name no problem of the user's: (logger or None, message regex).
NOISE = (
    ("lightning.pytorch.loggers.mlflow", r"Experiment with name .* not found\. Creating it"),
)
NOISY_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
# Third-party warnings about how we call them, by message: `validate --ckpt` builds its trainer
# without the fit's checkpoint/summary callbacks on purpose (it restores weights, not training).
# A resume writes into its own run folder's checkpoints on purpose.
NOISY_MESSAGES = (r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",
                  r"Checkpoint directory .* exists and is not empty")


def live_bars(stream=None) -> bool:
    """Whether progress may be drawn as live bars: only on a terminal. Off one (a file, a CI or
    SLURM log) a bar's every redraw would be a line of its own, with escape codes: progress is
    printed as plain lines there instead."""
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 run`, `4 runs` (`many` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


class _Once(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any((name is None or record.name == name) and re.search(pattern, message)
                       for name, pattern in NOISE)


# Lightning's category for hints that may not apply (e.g. "fewer batches than the logging
# interval", which our validation-sized epochs trigger by design); matched by name so that a
# command that never trains does not import Lightning just to filter it.
HINT_CATEGORIES = ("PossibleUserWarning",)


@contextmanager
def quiet(verbose: bool = False):
    """Filter third-party tips, INFO chatter and deprecation warnings for the duration (unless
    `verbose`); our own notices print once each as `note: ...` on stderr. Restores everything on exit."""
    ours = logging.getLogger("vsr_lab")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    if not verbose:
        handler.addFilter(_Once())
    saved_ours = (ours.level, ours.propagate)
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    saved_levels = {}
    drop = _DropNoise()
    with warnings.catch_warnings():
        if not verbose:
            for name in CHATTY_LOGGERS:
                logger = logging.getLogger(name)
                saved_levels[name] = logger.level
                logger.setLevel(logging.WARNING)
            for name, _ in NOISE:
                logging.getLogger(name).addFilter(drop)
            for category in NOISY_WARNINGS:
                warnings.filterwarnings("ignore", category=category)
            for message in NOISY_MESSAGES:
                warnings.filterwarnings("ignore", message=message)
            show = warnings.showwarning

            def show_unless_hint(message, category, *args, **kwargs):
                if category.__name__ not in HINT_CATEGORIES:
                    show(message, category, *args, **kwargs)

            warnings.showwarning = show_unless_hint
        try:
            yield
        finally:
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)
            for name, _ in NOISE:
                logging.getLogger(name).removeFilter(drop)
            ours.removeHandler(handler)
            ours.setLevel(saved_ours[0])
            ours.propagate = saved_ours[1]


def quiet_process(verbose: bool = False) -> None:
    """`quiet` for the rest of a worker process's life (ablation workers start from a fresh import)."""
    quiet(verbose).__enter__()
