"""compare --curves: validation metrics against training batches, where each config peaks."""

import numpy as np
from helpers.sweep import client_for
from PIL import Image

from vsr_lab.cli import main

# two seeds of one config: a curve that peaks at batch 20 and falls after it
HISTORY = {"full": [[29.0, 30.2, 30.0], [29.4, 30.0, 29.8]], "no_gan": [[28.0, 28.5, 28.9], [28.2, 28.7, 29.1]]}


def make_store(root):
    client = client_for(root)
    exp = client.create_experiment("curves", artifact_location=(root / "mlartifacts").as_uri())
    for config, seeds in HISTORY.items():
        for seed, values in enumerate(seeds):
            run = client.create_run(exp, tags={"vsr_lab.config": config, "vsr_lab.seed": str(seed)}).info.run_id
            for i, value in enumerate(values):
                client.log_metric(run, "val/psnr", value, step=10 * (i + 1) - 1)  # as a fit logs: batches - 1
                client.log_metric(run, "val/ewarp", 0.3 - 0.05 * i, step=10 * (i + 1) - 1)
            client.log_metric(run, "val/bicubic_psnr", 29.5)
            client.set_terminated(run)


def test_curves_say_where_each_config_peaks_and_plot_every_run(tmp_path, capsys):
    make_store(tmp_path)
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", "curves", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--curves", "val/psnr,val/ewarp", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    full = np.mean(HISTORY["full"], axis=0)  # 29.2, 30.1, 29.9: best at batch 20
    assert (f"val/psnr full (mean of 2): best {full[1]:.4f} at batch 20, last {full[2]:.4f} at batch 30 "
            f"({full[2] - full[1]:+.4f} from the best)") in printed
    assert "val/psnr no_gan (mean of 2): best 29.0000 at batch 30, last 29.0000 at batch 30 (+0.0000 from the best)" \
        in printed
    assert any(line.startswith("val/ewarp full (mean of 2): best 0.2000 at batch 30") for line in printed)  # lower
    image = Image.open(out / "curves.png")
    assert image.size[0] > 2 * image.size[1]  # two panels side by side


def test_no_curves_without_the_flag(tmp_path, capsys):
    make_store(tmp_path)
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", "curves", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--out", str(out)]) == 0
    assert "from the best" not in capsys.readouterr().out and not (out / "curves.png").exists()
