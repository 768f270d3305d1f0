"""Progress of a fit counted in batches of `trainer.max_batches`, not Lightning's epochs.

Epochs here are only the stretch between two validations, so Lightning's "Epoch 1/1 2/2" says
nothing a user asked for. On a terminal one bar runs from the batches already done (a resumed run
starts where it stopped) to `trainer.max_batches`; validation draws no bar of its own (its nested
bars left blank lines and cursor-up escapes behind), the bar's postfix gets the new scores. Off a
terminal (a file, a CI or SLURM log) there is no bar at all: one plain line per validation.
"""

from __future__ import annotations

import math
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from vsr_lab.console import live_bars
from vsr_lab.training.summary import MONITOR


class BatchProgressBar(TQDMProgressBar):
    def __init__(self, max_batches: int):
        super().__init__()
        self.max_batches = max_batches

    def on_train_start(self, trainer, pl_module) -> None:
        self.train_progress_bar = Tqdm(desc="batches", total=self.max_batches, initial=pl_module.batches_done,
                                       position=2 * self.process_position, disable=self.is_disabled, leave=True,
                                       dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)

    def on_train_epoch_start(self, trainer, *_) -> None:
        pass  # one bar over the whole run, not one per epoch

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)  # the batches bar says "validating" instead

    def on_validation_start(self, trainer, pl_module) -> None:
        super().on_validation_start(trainer, pl_module)
        if trainer.state.fn == "fit" and not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix_str("validating")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable:
            bar.n = pl_module.batches_done + 1  # the batch ending now is not counted as done yet
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the MLflow run id's tail: not a number anyone reads here
        return metrics


class ProgressLines(L.Callback):
    """Off a terminal: `batch 200/600: val/psnr 31.52 (bicubic 31.64), loss 0.0132, 1.9 batches/s,
    elapsed 1m45s, left ~3m30s` after each validation of a fit, on stdout."""

    def __init__(self, max_batches: int):
        self.max_batches = max_batches
        self._start: tuple[float, int] | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.monotonic(), pl_module.batches_done)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or not trainer.is_global_zero or self._start is None:
            return
        done = pl_module.batches_done
        metrics = trainer.callback_metrics
        parts = [f"batch {done}/{self.max_batches}:"]
        if MONITOR in metrics:
            bicubic = metrics.get(MONITOR.replace("val/", "val/bicubic_"))
            parts.append(f"{MONITOR} {float(metrics[MONITOR]):.2f}"
                         + (f" (bicubic {float(bicubic):.2f})," if bicubic is not None else ","))
        if "loss" in metrics:
            parts.append(f"loss {float(metrics['loss']):.4f},")
        seconds, trained = time.monotonic() - self._start[0], done - self._start[1]
        rate = trained / seconds if seconds > 0 else math.nan
        left = (self.max_batches - done) / rate if rate > 0 else math.nan
        parts.append(f"{rate:.2f} batches/s, elapsed {_duration(seconds)}, left ~{_duration(left)}")
        print(" ".join(parts), flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def fit_progress(max_batches: int, enabled: bool) -> list[L.Callback]:
    """The progress callbacks of a fit: a bar on a terminal, plain lines off one, none when off."""
    if not enabled:
        return []
    return [BatchProgressBar(max_batches)] if live_bars() else [ProgressLines(max_batches)]
