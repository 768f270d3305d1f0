"""`bench`: the unpruned pipeline and the configured generator, measured in one process."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.sd21_narrow import ALL_STAGES, NARROW, narrow_cfg
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vsr_lab.benchmarks.generator import format_table, run_bench
from vsr_lab.cli import main
from vsr_lab.models.build import build_unpruned_generator
from vsr_lab.models.pruning import frame_flops

from helpers.common import REPO


def test_meta_flop_count_equals_a_real_forward_attention_included():
    """On meta tensors attention runs as bmm and is counted; the CPU's fused SDPA kernel is not counted."""
    torch.manual_seed(0)
    gen = build_unpruned_generator(narrow_cfg(text_encoder=True)).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        gen.forward_frame(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64))
    counts = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    assert counts["aten.bmm"] > 0
    assert frame_flops(gen, (16, 16)) == counter.get_total_flops()


def test_bench_measures_both_models_on_the_same_input():
    cfg = narrow_cfg(stages=ALL_STAGES)
    res = run_bench(cfg, "narrow", resolution=64, frames=2, device="cpu", warmup=0, repeats=1)
    b, g, r = res["baseline"], res["generator"], res["ratios"]
    assert res["device"] == "cpu" and res["dtype"] == "float32" and res["frames"] == 2
    for key in ("params", "gflops_per_mp", "seconds_per_frame", "peak_memory_mb"):
        assert b[key] > 0 and g[key] > 0
    assert r["params"] == pytest.approx(b["params"] / g["params"])
    assert r["gflops_per_mp"] == pytest.approx(b["gflops_per_mp"] / g["gflops_per_mp"])
    assert r["gflops_per_mp"] > 8
    assert r["speedup"] == pytest.approx(b["seconds_per_frame"] / g["seconds_per_frame"])
    assert b["memory_kind"] == "process_rss_peak" and b["peak_memory_mb"] >= b["rss_before_mb"]
    # per output megapixel: one frame's FLOPs over (64 * 64) / 1e6
    assert res["stage_reports"][0]["gflops_before"] == pytest.approx(b["gflops_per_mp"] * 64 * 64 / 1e6)
    assert res["stage_reports"][-1]["gflops_after"] == pytest.approx(g["gflops_per_mp"] * 64 * 64 / 1e6)
    table = format_table(res)
    assert "GFLOPs / output MP" in table and "decoder_channels" in table


def test_bench_cli_writes_json_and_rejects_bad_sizes(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--config", "experiments/instavsr_sd21.yaml", "--resolution", "64", "--frames", "1",
            "--warmup", "0", "--repeats", "1", "--dtype", "bfloat16", "--json", str(out)]
    assert main(args + NARROW + ["model.pruning.stages=[text_encoder,vae_encoder]"]) == 0
    data = json.loads(out.read_text())
    assert data["dtype"] == "bfloat16" and data["stages"] == ["text_encoder", "vae_encoder"]
    assert set(data) >= {"config", "device", "resolution", "frames", "baseline", "generator", "ratios"}
    assert data["resolved_config"]["model"]["backbone"]["preset"] == "sd21"
    assert "unpruned" in capsys.readouterr().out
    assert main(["bench", "--config", "experiments/instavsr_sd21.yaml", "--resolution", "100"] + NARROW) == 2
    assert "--resolution must be a multiple of 32" in capsys.readouterr().err


def test_startup_bench_times_each_answer_and_checks_it_is_the_error_line():
    from vsr_lab.benchmarks.startup import ERROR_CASES, answer_times, format_startup

    answers = answer_times(str(REPO / "ablations" / "no_pixel_gan.yaml"), repeats=1)
    assert set(answers) == {*ERROR_CASES, "help", "print_config"} and all(s > 0 for s in answers.values())
    text = format_startup({"repeats": 1, "answers_s": answers, "fit_batches": 4, "config": "c",
                           "fit_phases": {"imports_s": 1.5, "total_s": 3.0}})
    assert "missing_upscale_input" in text and "  imports                    1.50 s" in text
