"""A progress bar that counts batches of `trainer.max_batches`, not Lightning's epochs.

Epochs here are only the stretch between two validations, so Lightning's "Epoch 1/1 2/2" says
nothing a user asked for. This bar runs once from the batches already done (a resumed run starts
where it stopped) to `trainer.max_batches`; validation keeps Lightning's own short-lived bar.
"""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


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
