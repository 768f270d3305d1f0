"""The score cache: a cached score is found again only when every byte it depends on is the same."""

from __future__ import annotations

import math
import os

from vsr_lab.evaluation import score_cache
from vsr_lab.evaluation.score_cache import ScoreCache


def _clips(root):
    lr, gt = root / "lr.mp4", root / "gt"
    lr.write_bytes(b"\x00lr video bytes")
    gt.mkdir()
    for t in range(3):
        (gt / f"{t:04d}.png").write_bytes(bytes([t]) * 10)
    return lr, gt


def test_key_follows_contents_settings_row_and_code_not_paths(tmp_path, monkeypatch):
    lr, gt = _clips(tmp_path)
    weights = tmp_path / "niqe.mat"
    weights.write_bytes(b"params")
    cache = ScoreCache(tmp_path / "cache", {"metrics": ["niqe_local"], "pretrained": {"niqe_local": str(weights)}})
    key = cache.key("bicubic", lr, gt)
    assert cache.key("bicubic", lr, gt) == key and cache.key("lanczos", lr, gt) != key
    copy = tmp_path / "copy"
    copy.mkdir()
    lr2, gt2 = _clips(copy)
    assert cache.key("bicubic", lr2, gt2) == key  # same bytes elsewhere: the same score
    (gt2 / "0001.png").write_bytes(b"another frame")
    assert cache.key("bicubic", lr2, gt2) != key
    lr.write_bytes(b"\x01lr video bytes")
    assert cache.key("bicubic", lr, gt) != key
    lr.write_bytes(b"\x00lr video bytes")
    assert ScoreCache(tmp_path / "cache", {"metrics": ["piqe"], "pretrained": {"niqe_local": str(weights)}}
                      ).key("bicubic", lr, gt) != key
    os.utime(weights, ns=(1, 1))  # a weight file that changed (by its size and time)
    assert ScoreCache(tmp_path / "cache", {"metrics": ["niqe_local"], "pretrained": {"niqe_local": str(weights)}}
                      ).key("bicubic", lr, gt) != key
    monkeypatch.setattr(score_cache, "code_fingerprint", lambda: "other code")
    assert cache.key("bicubic", lr, gt) != key


def test_put_then_get_keeps_every_score_and_a_broken_file_is_a_miss(tmp_path):
    cache = ScoreCache(tmp_path, {})
    scores = {"psnr": 31.25, "tof": math.nan, "ssim": 0.1 + 0.2}
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, scores)
    got = cache.get("ab" * 32)
    assert got["psnr"] == 31.25 and got["ssim"] == 0.1 + 0.2 and math.isnan(got["tof"])
    assert not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "ab" / f"{'ab' * 32}.json").write_text('{"psnr": 31.')  # a torn write from elsewhere
    assert cache.get("ab" * 32) is None
    assert cache.record() == {"dir": str(tmp_path), "hits": 1, "misses": 2}
