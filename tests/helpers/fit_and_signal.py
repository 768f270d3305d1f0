"""Run `fit` from the command line's config handling and send this process a signal after a given
batch, as a user's Ctrl-C (SIGINT), a scheduler's SIGTERM or the kernel's SIGKILL would.

    python tests/helpers/fit_and_signal.py SIGNAL AT_BATCH -- <fit arguments>

SIGNAL is INT, TERM, KILL or NONE; AT_BATCH counts batches of the whole run (the resumed part
included). Used by tests/test_resume.py, which needs the signal to reach a real process: Lightning
answers SIGINT by ignoring further ones and exiting.
"""

from __future__ import annotations

import os
import signal
import sys

import lightning as L


class SignalAt(L.Callback):
    def __init__(self, signum: int | None, at_batch: int):
        self.signum, self.at_batch = signum, at_batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.signum is not None and pl_module.batches_done + 1 == self.at_batch:
            os.kill(os.getpid(), self.signum)


def main(argv: list[str]) -> int:
    name, at_batch, sep, *fit_args = argv
    assert sep == "--"
    signum = None if name == "NONE" else getattr(signal, f"SIG{name}")
    from vsr_lab import cli
    from vsr_lab.training import runner

    fit = runner.fit
    runner.fit = lambda *a, **k: fit(*a, **k, extra_callbacks=[SignalAt(signum, int(at_batch))])
    return cli.main(["fit", *fit_args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
