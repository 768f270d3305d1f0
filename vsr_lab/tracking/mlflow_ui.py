"""How the MLflow UI shows a vsr_lab experiment: as model training, with a saved view of its runs.

MLflow 3's UI opens an experiment on its GenAI pages (a traces overview with no data) unless told
otherwise. Two experiment tags, written when vsr_lab creates or logs to an experiment, and one
address do that:

- `mlflow.experimentKind` = `custom_model_development`, what the UI's own experiment-type choice
  writes. MLflow 3.x releases before the sidebar's GenAI / Model training switch (3.5, for one)
  open such an experiment on its Runs tab; 3.17 goes by the switch alone (kept in the browser's
  localStorage, GenAI until clicked), so there the address below does it.
- `mlflow.sharedViewState.vsr_lab`, a saved view of the runs table (the UI's "Views" menu, MLflow
  3.17's envelope format): the config name, `val/psnr` beside its bicubic baseline, `val/ssim`
  and `val/ewarp`. MLflow has no per-experiment default columns; a saved view is opened from
  that menu or by its address.
- `runs_address`: the Runs tab in model-training mode with that view open, so a fresh browser
  shows the runs and their scores without a click.
"""

from __future__ import annotations

import json
import time

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

KIND_TAG = "mlflow.experimentKind"
KIND = "custom_model_development"
VIEW_ID = "vsr_lab"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_ID}"
VIEW_NAME = "vsr_lab: val/psnr vs bicubic"
# the UI's column keys: `<metrics|params|tags|attributes>.` + the name in backquotes; the tag is
# runs.GROUP_TAG (not imported: runs imports this module through mlflow_setup)
VIEW_COLUMNS = ["tags.`vsr_lab.config`", "metrics.`val/psnr`", "metrics.`val/bicubic_psnr`", "metrics.`val/ssim`",
                "metrics.`val/ewarp`"]
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def ui_tags() -> dict[str, str]:
    """The experiment tags: its kind and the saved runs view (a JSON envelope around the view's
    own JSON state; the state holds only what differs from the UI's defaults)."""
    now_ms = int(time.time() * 1000)
    state = {"selectedColumns": VIEW_COLUMNS, "columnOrder": VIEW_COLUMNS}
    view = {"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms, "state": json.dumps(state)}
    return {KIND_TAG: KIND, VIEW_TAG: json.dumps(view)}


def set_ui_tags(client: MlflowClient, experiment_id: str) -> None:
    """Give an active experiment the tags it lacks; a kind chosen in the UI and a view saved over
    ours there are kept. An experiment from an older vsr_lab gets them with its next run."""
    experiment = client.get_experiment(experiment_id)
    if experiment.lifecycle_stage != "active":
        return
    for key, value in ui_tags().items():
        if key in experiment.tags:
            continue
        try:
            client.set_experiment_tag(experiment_id, key, value)
        except MlflowException:  # another worker wrote it at the same moment (a unique-key clash)
            if key not in client.get_experiment(experiment_id).tags:
                raise


def runs_address(experiment_id: str, base: str = UI_ADDRESS) -> str:
    """The UI address of an experiment's runs, in model-training mode with the saved view open."""
    query = f"workflowType=machine_learning&viewStateShareKey={VIEW_ID}"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
