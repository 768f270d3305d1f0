"""Fits started together on a new sqlite MLflow file: one creates the tables, none crashes.

Without the lock around the logger's creation, MLflow's schema migrations run in every process
at once and all but one fail with `duplicate column name` (seen with two fits launched by hand).
"""

from __future__ import annotations

import multiprocessing as mp

from omegaconf import OmegaConf

from vsr_lab.tracking.mlflow_setup import make_logger
from vsr_lab.tracking.runs import tracking_client

WORKERS = 2


def _start(uri: str, artifacts: str, name: str, barrier, results) -> None:
    cfg = OmegaConf.create({"tracking": {"experiment": "together", "tracking_uri": uri,
                                         "artifact_location": artifacts}})
    barrier.wait()
    try:
        results.put((name, make_logger(cfg, name).run_id))
    except Exception as exc:  # reported to the test, which names it
        results.put((name, f"error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"))


def test_fits_starting_together_on_a_new_sqlite_store_all_get_their_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_start, args=(uri, str(tmp_path / "art"), f"run{i}", barrier, results))
             for i in range(WORKERS)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(60)
    assert not [v for v in got.values() if v.startswith("error")], got
    client = tracking_client(uri)
    runs = client.search_runs([client.get_experiment_by_name("together").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(WORKERS)]
