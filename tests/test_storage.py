"""The Optuna storage shared by a sweep's or an ablation grid's workers claims each waiting trial once."""

import multiprocessing as mp
import time

import optuna
from optuna.trial import TrialState

from vsr_lab.studies.storage import open_storage

CELLS = 60


def claim_until_empty(url: str, start: float, claimed) -> None:
    """A worker: ask for trials (Optuna pops a waiting one) until none waits; record the cells."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="race", storage=open_storage(url, 30, 120))
    while time.time() < start:  # all workers claim at the same moment
        time.sleep(0.001)
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        if "cell" in trial.user_attrs:
            claimed.put(trial.user_attrs["cell"])
            study.tell(trial, 1.0)
        else:  # a fresh trial Optuna made because another worker took the last waiting one
            study.tell(trial, state=TrialState.FAIL)


def test_three_processes_claim_each_enqueued_trial_of_a_sqlite_storage_once(tmp_path):
    """sqlite ignores SELECT ... FOR UPDATE: without the storage's BEGIN IMMEDIATE, 3 processes
    made 65 claims of 60 enqueued trials (optuna/optuna#4002)."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(url, 30, 120))
    for cell in range(CELLS):
        study.enqueue_trial({}, user_attrs={"cell": cell})
    ctx = mp.get_context("spawn")
    claimed = ctx.Queue()
    workers = [ctx.Process(target=claim_until_empty, args=(url, time.time() + 5, claimed)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    cells = []
    while not claimed.empty():
        cells.append(claimed.get())
    assert sorted(cells) == list(range(CELLS))  # every cell claimed, none twice
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == CELLS
