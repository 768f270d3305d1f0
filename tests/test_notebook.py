"""notebooks/compare_ablations.ipynb runs top to bottom against a store with an ablation and a study."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from helpers.common import REPO
from helpers.sweep import client_for, fake_store


def test_notebook_shows_table_bar_charts_and_pareto_front(tmp_path, monkeypatch):
    store = fake_store(tmp_path)
    monkeypatch.setenv("VSR_TRACKING_URI", store["uri"])
    monkeypatch.setenv("VSR_EXPERIMENT", store["experiment"])
    monkeypatch.delenv("VSR_ABLATION", raising=False)
    monkeypatch.delenv("VSR_STUDY", raising=False)
    monkeypatch.setenv("VSR_FIGURES", str(tmp_path / "figures"))
    nb = nbformat.read(REPO / "notebooks" / "compare_ablations.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "ablations: ['abl']" in text and "studies: ['st']" in text
    assert "| full (ref) | 2 | 30.5000 +- 0.7071 |" in text
    assert "| bicubic (baseline) | 6 | 30.7500 +- 0.0000 |" in text
    assert "4 completed trials" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # bar charts, Pareto front
    # ... also saved as files and as artifacts of the ablation's and the study's parent runs
    saved = {"abl": tmp_path / "figures" / "abl_bar_charts.png", "st": tmp_path / "figures" / "st_pareto_front.png"}
    client = client_for(tmp_path)
    for parent, path in saved.items():
        assert path.stat().st_size > 10_000
        run_id = client.search_runs([client.get_experiment_by_name(store["experiment"]).experiment_id],
                                    f"tags.`vsr_lab.parent` != '' and tags.`vsr_lab.ablation` = '{parent}'"
                                    if parent == "abl" else f"tags.`vsr_lab.study` = '{parent}'")[0].info.run_id
        logged = {a.path: a.file_size for a in client.list_artifacts(run_id, "notebook")}
        assert logged == {f"notebook/{path.name}": path.stat().st_size}
