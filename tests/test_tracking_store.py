"""The MLflow store as vsr_lab sets it up: fits started together on a new sqlite file (one
creates the tables, none crashes), and the experiment tags that make the MLflow UI open on the runs.

Without the lock around the logger's creation, MLflow's schema migrations run in every process
at once and all but one fail with `duplicate column name` (seen with two fits launched by hand).
"""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from vsr_lab.tracking.mlflow_setup import make_logger, ui_hint
from vsr_lab.tracking.mlflow_ui import KIND_TAG, VIEW_NAME, VIEW_TAG, runs_address, set_ui_tags
from vsr_lab.tracking.runs import GROUP_TAG, experiment_id, tracking_client

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


def _store(tmp_path) -> tuple[str, DictConfig]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, OmegaConf.create({"tracking": {"experiment": "ui", "tracking_uri": uri,
                                               "artifact_location": str(tmp_path / "art")}})


def test_new_experiments_get_the_model_training_kind_and_the_runs_view(tmp_path):
    uri, cfg = _store(tmp_path)
    client = tracking_client(uri)
    made_by_fit = client.get_experiment(make_logger(cfg, "fit").experiment_id).tags
    made_by_ablation = client.get_experiment(experiment_id(client, "ablation", str(tmp_path / "art"))).tags
    for tags in (made_by_fit, made_by_ablation):
        assert tags[KIND_TAG] == "custom_model_development"
        view = json.loads(tags[VIEW_TAG])  # the envelope the UI's "Views" menu lists
        assert view["name"] == VIEW_NAME and isinstance(view["createdAt"], int)
        state = json.loads(view["state"])
        assert state["selectedColumns"][:3] == [f"tags.`{GROUP_TAG}`", "metrics.`val/psnr`",
                                                "metrics.`val/bicubic_psnr`"]


def test_an_older_experiment_gets_the_tags_with_its_next_run_and_keeps_choices_made_in_the_ui(tmp_path):
    uri, cfg = _store(tmp_path)
    client = tracking_client(uri)
    old = client.create_experiment("ui")  # as an older vsr_lab left it: no tags
    experiment_id(client, "ui", create=False)  # reading (compare, plots) writes nothing
    assert KIND_TAG not in client.get_experiment(old).tags
    make_logger(cfg, "fit")
    assert {KIND_TAG, VIEW_TAG} <= set(client.get_experiment(old).tags)
    client.set_experiment_tag(old, KIND_TAG, "genai_development")  # chosen in the UI
    client.set_experiment_tag(old, VIEW_TAG, '{"name": "mine"}')  # "Override saved view"
    make_logger(cfg, "again")
    assert client.get_experiment(old).tags[KIND_TAG] == "genai_development"
    assert client.get_experiment(old).tags[VIEW_TAG] == '{"name": "mine"}'


def test_a_tag_another_worker_wrote_meanwhile_is_no_error_but_a_failed_write_is(tmp_path, monkeypatch):
    uri, _ = _store(tmp_path)
    client, other = tracking_client(uri), MlflowClient(uri)
    raced, failing = client.create_experiment("raced"), client.create_experiment("failing")

    def set_tag(experiment, key, value):
        if experiment == raced:  # the other worker's write lands first, ours hits the unique key
            other.set_experiment_tag(experiment, key, value)
        raise MlflowException("UNIQUE constraint failed: experiment_tags.experiment_id, experiment_tags.key")

    monkeypatch.setattr(client, "set_experiment_tag", set_tag)
    set_ui_tags(client, raced)
    assert {KIND_TAG, VIEW_TAG} <= set(client.get_experiment(raced).tags)
    with pytest.raises(MlflowException, match="UNIQUE"):
        set_ui_tags(client, failing)


def test_the_runs_address_opens_the_runs_in_model_training_mode_with_the_view():
    assert runs_address("7") == ("http://127.0.0.1:5000/#/experiments/7/runs"
                                 "?workflowType=machine_learning&viewStateShareKey=vsr_lab")
    assert runs_address("7", "http://tracking:5000/").startswith("http://tracking:5000/#/experiments/7/runs?")


def test_the_fit_summary_says_where_the_ui_shows_the_runs():
    assert ui_hint("sqlite:///mlflow.db", "7") == (f"MLflow UI: {runs_address('7')} "
                                                   "(after `mlflow ui --backend-store-uri sqlite:///mlflow.db`)")
    assert ui_hint("http://tracking:5000/", "7") == f"MLflow UI: {runs_address('7', 'http://tracking:5000')}"
    assert ui_hint("databricks", "7") is None


@pytest.mark.parametrize("uri, where", [
    ("http://alice:s3cret-pw@127.0.0.1:5000", "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
    ("postgresql+psycopg://vsr:s3cret-pw@db-host:5432/mlflow", "PGPASSWORD or ~/.pgpass"),
])
def test_a_tracking_uri_with_a_password_is_one_error_that_hides_it(tmp_path, capsys, tiny_overrides, uri, where):
    """The URI is saved with every run (params, config.yaml, run.json): credentials go elsewhere."""
    from helpers.common import REPO
    from vsr_lab.cli import main

    args = ["fit", "--config", str(REPO / "experiments" / "instavsr_tiny.yaml"), *tiny_overrides,
            f"tracking.tracking_uri={uri}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: tracking.tracking_uri: {uri.replace(':s3cret-pw@', ':***@')} holds a password")
    assert where in err and "s3cret" not in err and "\n" not in err
    assert not (tmp_path / "runs").exists()
