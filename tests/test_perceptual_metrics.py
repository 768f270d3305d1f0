"""Perceptual metrics through pyiqa, from local files only.

The weight files are written by the tests (the real architectures with random values, in the
torch hub layout pyiqa and torchvision read), and sockets are forbidden while the metrics load
and score. LPIPS is checked against torchmetrics' LPIPS with the same weights, DISTS against its
formula; PIQE (no weights) against pyiqa on the same frames.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torchvision

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.errors import UserError
from vsr_lab.metrics.lpips import load_lpips
from vsr_lab.metrics.perceptual.catalog import lower_is_better, metric_spec
from vsr_lab.metrics.perceptual.metric import build_metric
from vsr_lab.metrics.scoring import score_clip
from vsr_lab.ops.color import quantize_8bit
from vsr_lab.registry import PERCEPTUAL_METRICS

LPIPS_CHANNELS = (64, 192, 384, 256, 256)


def _compact(state: dict) -> dict:
    """Random conv weights; the big fully connected layers (unused by LPIPS/DISTS) as one stored
    value expanded to their shape, so the files stay small."""
    return {k: (v if v.numel() < 3_000_000 else torch.zeros(1).expand(v.shape)) for k, v in state.items()}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    (root / "checkpoints").mkdir()
    (root / "pyiqa").mkdir()
    torch.manual_seed(0)
    torch.save(_compact(torchvision.models.alexnet().state_dict()), root / "checkpoints" / "alexnet-owt-7be5be79.pth")
    torch.save(_compact(torchvision.models.vgg16().state_dict()), root / "checkpoints" / "vgg16-397923af.pth")
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)},
               root / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)},
               root / "pyiqa" / "DISTS_weights-f5e65c96.pth")
    return root


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _frames(seed: int, n: int = 3, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = quantize_8bit(torch.rand(n, 3, size, size, generator=g))
    pred = quantize_8bit((gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1))
    return pred, gt


def torchmetrics_lpips(weights_dir: Path) -> torch.nn.Module:
    """The independent reference: torchmetrics' LPIPS with the same backbone and linear layers."""
    reference = load_lpips(str(weights_dir / "checkpoints" / "alexnet-owt-7be5be79.pth"), "alex")
    lins = torch.load(weights_dir / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
    for i, lin in enumerate(reference.lins):
        lin.model[1].weight.data.copy_(lins[f"lin{i}.model.1.weight"])
    return reference


def test_lpips_loads_offline_and_matches_torchmetrics_lpips(weights_dir, no_network):
    metric = build_metric("lpips", str(weights_dir))
    pred, gt = _frames(1)
    ours = metric.per_frame(pred, gt)
    expected = torchmetrics_lpips(weights_dir)(pred, gt, normalize=True).flatten().double()
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-6)
    assert (ours > 0).all() and metric.per_frame(gt, gt).abs().max() < 1e-6


def test_dists_loads_offline_and_matches_its_formula(weights_dir, no_network):
    metric = build_metric("dists", str(weights_dir))
    pred, gt = _frames(2)
    ours = metric.per_frame(pred, gt)
    net = metric.net.net
    with torch.no_grad():
        fx, fy = net.forward_once(pred), net.forward_once(gt)
        total = net.alpha.sum() + net.beta.sum()
        alpha = torch.split(net.alpha / total, net.chns, dim=1)
        beta = torch.split(net.beta / total, net.chns, dim=1)
        score = 0
        for x, y, a, b in zip(fx, fy, alpha, beta):
            mx, my = x.mean([2, 3], keepdim=True), y.mean([2, 3], keepdim=True)
            vx, vy = ((x - mx) ** 2).mean([2, 3], keepdim=True), ((y - my) ** 2).mean([2, 3], keepdim=True)
            cxy = (x * y).mean([2, 3], keepdim=True) - mx * my
            s1 = (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)
            s2 = (2 * cxy + 1e-6) / (vx + vy + 1e-6)
            score = score + (a * s1).sum(1) + (b * s2).sum(1)
    expected = (1 - score).flatten().double()
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-6)
    assert metric.per_frame(gt, gt).abs().max() < 1e-5


def test_piqe_needs_no_weights_and_scores_clips_per_frame(no_network):
    import pyiqa

    metric = build_metric("piqe")
    pred, gt = _frames(3, n=5)
    metric.batch_size = 2  # three calls for five frames
    scores = score_clip(pred, gt, None, perceptual=[metric])
    direct = pyiqa.create_metric("piqe", device="cpu")(pred)
    assert scores["piqe"] == pytest.approx(float(direct.mean()), rel=1e-6)
    assert metric_spec("piqe").lower_better and lower_is_better("musiq") is False and lower_is_better("tof") is None


def test_every_pyiqa_frame_metric_and_niqe_local_is_registered():
    import pyiqa

    names = set(PERCEPTUAL_METRICS.names())
    assert {"lpips", "dists", "niqe", "piqe", "brisque", "musiq", "clipiqa", "maniqa", "niqe_local"} <= names
    # not per frame (fid: scores of image sets), or already scored by metrics.image (BasicSR protocol)
    assert set(pyiqa.list_models()) - names <= {"fid", "inception_score", "fid_dinov2", "psnr", "ssim"}
    assert "psnr" not in names and "ssim" not in names
    assert metric_spec("dists").reference and not metric_spec("niqe_local").reference


def test_unknown_metric_is_one_line_with_a_suggestion(capsys):
    with pytest.raises(UserError, match=r"key 'metrics.perceptual': 'niqe_locl' .*did you mean 'niqe_local'"):
        load_config("experiments/instavsr_tiny.yaml", ["metrics.perceptual=[piqe,niqe_locl]"])
    with pytest.raises(UserError, match=r"key 'metrics.batch_size' must be >= 1; got 0"):
        load_config("experiments/instavsr_tiny.yaml", ["metrics.batch_size=0"])
    assert main(["fit", "--config", "experiments/instavsr_tiny.yaml", "metrics.perceptual=[lpipz]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'lpips'" in err


def test_missing_weight_file_names_metric_and_file_at_config_load(tmp_path, capsys):
    with pytest.raises(UserError) as info:
        load_config("experiments/instavsr_tiny.yaml", ["metrics.perceptual=[piqe,dists]", f"metrics.weights_dir={tmp_path}"])
    assert "'dists' needs the weight file" in str(info.value)
    assert str(tmp_path / "pyiqa" / "DISTS_weights-f5e65c96.pth") in str(info.value)
    out = tmp_path / "runs"
    assert main(["fit", "--config", "experiments/instavsr_tiny.yaml", "metrics.perceptual=[musiq]",
                 f"output_dir={out}", "tracking.enabled=false"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "musiq_koniq_ckpt-e95806b9.pth" in err and "metrics.weights_dir" in err
    assert not out.exists()  # nothing started


def test_a_metric_outside_the_table_reports_the_file_it_would_download(tmp_path, no_network):
    with pytest.raises(UserError, match=r"'cnniqa' needs the weight file \S+\.pth, which is not in metrics.weights_dir"):
        build_metric("cnniqa", str(tmp_path))


def test_weights_of_the_wrong_shape_are_one_error_naming_the_file(weights_dir, tmp_path, no_network):
    bad = tmp_path / "hub"
    (bad / "pyiqa").mkdir(parents=True)
    (bad / "checkpoints").symlink_to(weights_dir / "checkpoints")
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c + 1, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)},
               bad / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
    with pytest.raises(UserError, match=r"LPIPS_v0.1_alex-df73285e.pth does not fit 'lpips' \(RuntimeError: .*size mismatch"):
        build_metric("lpips", str(bad))
    torch.save({"something.else": torch.rand(3)}, bad / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
    with pytest.raises(UserError, match="holds none of the tensors of 'lpips'"):
        build_metric("lpips", str(bad))


def test_full_reference_metric_without_gt_is_an_error(tmp_path, capsys):
    from vsr_lab.media.frame_writer import write_frame_folder

    write_frame_folder(torch.rand(3, 3, 32, 32), tmp_path / "pred")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--metrics", "piqe,lpips"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'lpips' is a full-reference metric and needs --gt" in err


def test_the_pyiqa_table_agrees_with_the_installed_pyiqa():
    """Names are listed from pyiqa_table.py (no pyiqa import at config load): every row must say
    what the installed pyiqa says of that metric."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from vsr_lab.metrics.perceptual.pyiqa_table import PYIQA_METRICS

    assert len(PYIQA_METRICS) > 100
    for name, (reference, lower_better) in PYIQA_METRICS.items():
        cfg = DEFAULT_CONFIGS[name]
        assert (cfg["metric_mode"] == "FR", bool(cfg.get("lower_better", False))) == (reference, lower_better), name


def test_a_metric_the_table_lacks_is_found_in_the_installed_pyiqa(monkeypatch):
    """A newer pyiqa's metric (simulated: one row removed) is still a valid choice."""
    from vsr_lab.metrics.perceptual import pyiqa_table

    monkeypatch.delitem(pyiqa_table.PYIQA_METRICS, "musiq")
    monkeypatch.delitem(PERCEPTUAL_METRICS._entries, "musiq")
    monkeypatch.setattr(PERCEPTUAL_METRICS, "_fell_back", False)
    assert "musiq" not in PERCEPTUAL_METRICS.names()
    assert "musiq" in PERCEPTUAL_METRICS and PERCEPTUAL_METRICS.get("musiq").pyiqa_name == "musiq"
    with pytest.raises(UserError, match="'musiq' needs the weight file"):  # accepted as a name, then checked
        load_config(None, ["metrics.perceptual=[musiq]"])
