"""Every degradation stage and preset gives bit-identical LR for the same clip and seed: 20 times
in one process, and in two spawned processes that run torch on 1 and on 2 threads.

The clip is cut so that the codec stages meet what made them vary (libx264's AVX-512 code on
odd-sized frames: see vsr_lab/media/x264.py): a 52 x 52 GT clip with motion, x4 to 13 x 13 LR,
and every stage alone at p = 1 on it, then every preset with its codec forced on.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
import torch

from helpers.common import REPO

REPEATS = 20
SEEDS = (0, 1, 2)
REALWORLD = str(REPO / "experiments" / "instavsr_tiny_realworld.yaml")
# every stage kind alone (type: pipeline), at p = 1
STAGES = {
    "blur": {"kind": "blur", "sinc_p": 0.5},
    "jpeg": {"kind": "jpeg", "quality": [30, 95], "quality_step": 3.0},
    "noise": {"kind": "noise", "sigma": [1.0, 30.0], "sigma_step": 0.1},
    "resize": {"kind": "resize", "scale": [0.7, 1.3], "scale_step": 0.03, "antialias_p": 0.5},
    "final_resize": {"kind": "final_resize", "sinc_p": 0.8},
    "video_codec_x264": {"kind": "video_codec", "codecs": ["libx264"], "codec_probs": [1.0], "crf": [18, 30]},
    "video_codec_mpeg4": {"kind": "video_codec", "codecs": ["mpeg4"], "codec_probs": [1.0], "qscale": [2, 15]},
}
PRESETS = ("bicubic", "light", "realbasicvsr", "video")


def case_overrides() -> dict[str, list[str]]:
    """Config overrides of each case, by name."""
    cases = {}
    for name, stage in STAGES.items():
        items = [f"data.degradation.stages.{name}.{k}={v}".replace(" ", "") for k, v in stage.items()]
        cases[f"stage:{name}"] = ["data.degradation.type=pipeline", *items]
    for preset in PRESETS:
        forced = ["data.degradation.stages.codec.p=1.0"] if preset != "bicubic" else []
        cases[f"preset:{preset}"] = [f"data.degradation.type={preset}", *forced]
    return cases


def digests(threads: int, repeats: int) -> dict[str, list[str]]:
    """md5 of the LR of every case and seed, `repeats` times, on `threads` torch threads."""
    from vsr_lab.config.loading import load_config
    from vsr_lab.data.synthetic import SyntheticClipDataset
    from vsr_lab.registry import DEGRADATIONS

    torch.set_num_threads(threads)
    gt = SyntheticClipDataset("val", num_clips=1, num_frames=5, hr_size=52, scale=4, seed=0)[0]["gt"]
    out = {}
    for name, overrides in case_overrides().items():
        cfg = load_config(REALWORLD, ["data.scale=4", *overrides])
        pipeline = DEGRADATIONS.get(cfg.data.degradation.type)(cfg)
        for seed in SEEDS:
            out[f"{name} seed {seed}"] = [
                hashlib.md5(pipeline(gt, np.random.default_rng(seed)).numpy().tobytes()).hexdigest()
                for _ in range(repeats)]
    return out


def varying(found: dict[str, list[str]]) -> list[str]:
    return [f"{case}: {len(set(d))} different LR in {len(d)}" for case, d in found.items() if len(set(d)) > 1]


@pytest.fixture(scope="module")
def in_process() -> dict[str, list[str]]:
    return digests(torch.get_num_threads(), REPEATS)


def test_every_stage_and_preset_repeats_bit_for_bit_in_one_process(in_process):
    assert len(in_process) == (len(STAGES) + len(PRESETS)) * len(SEEDS)
    assert not varying(in_process), "\n".join(varying(in_process))


def test_spawned_processes_on_1_and_2_threads_give_the_same_lr(in_process):
    results = []
    for threads in (1, 2):
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            results.append(pool.submit(digests, threads, 2).result())
    for case, here in in_process.items():
        assert results[0][case] == results[1][case] == here[:2], case


def test_the_cases_really_degrade():
    """Each case changes the clip and the seeds differ (a no-op stage would pass the tests above)."""
    found = digests(torch.get_num_threads(), 1)
    for name in case_overrides():
        by_seed = {found[f"{name} seed {s}"][0] for s in SEEDS}
        assert len(by_seed) == len(SEEDS) or name in ("preset:bicubic",), name


def test_x264_keeps_every_detected_capability_but_avx512(monkeypatch):
    from vsr_lab.media import x264

    for cached in (x264.detected_capabilities, x264.deterministic_params):
        cached.cache_clear()
    monkeypatch.setattr(x264, "detected_capabilities", lambda: ("MMX2", "SSE2Fast", "AVX2", "AVX512"))
    assert x264.deterministic_options("libx264", {"crf": "18", "x264-params": "ref=1"}) == \
        {"crf": "18", "x264-params": "ref=1:asm=MMX2,SSE2Fast,AVX2"}
    assert x264.deterministic_options("mpeg4", {"qscale": "3"}) == {"qscale": "3"}  # other encoders as given
    x264.deterministic_params.cache_clear()
    monkeypatch.setattr(x264, "detected_capabilities", lambda: ("MMX2", "SSE2Fast", "AVX2"))
    assert x264.deterministic_options("libx264", {"crf": "18"}) == {"crf": "18"}  # nothing to mask
    x264.deterministic_params.cache_clear()
    monkeypatch.setattr(x264, "detected_capabilities", lambda: None)  # libx264 said nothing: left as is
    assert x264.deterministic_options("libx264") == {}
    x264.deterministic_params.cache_clear()


def test_x264_reads_its_own_detection_and_opens_with_the_mask():
    """The capability names come from libx264's own log line, and an encoder given the mask
    reports exactly those names back (none forced, AVX-512 gone)."""
    from fractions import Fraction

    import av
    import av.logging

    from vsr_lab.media import x264

    x264.detected_capabilities.cache_clear()
    before = av.logging.get_level()
    names = x264.detected_capabilities()
    assert names, "libx264 did not report its capabilities"
    assert av.logging.get_level() == before  # the log level is restored
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width = ctx.height = 16
    ctx.pix_fmt, ctx.time_base = "yuv420p", Fraction(1, 25)
    ctx.options = x264.deterministic_options("libx264")
    with av.logging.Capture() as logs:
        av.logging.set_level(av.logging.INFO)
        ctx.open()
    av.logging.set_level(before)
    line = next(m for _, _, m in logs if m.startswith(x264.CAPABILITIES))
    assert line[len(x264.CAPABILITIES):].split() == [n for n in names if n != "AVX512"]
