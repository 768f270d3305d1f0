"""Built-in synthetic clips: photos, shapes, determinism, the camera window and the errors."""

import numpy as np
import pytest
import torch

from vsr_lab.data.builtin_photos import TRAIN_PHOTOS, VAL_PHOTOS
from vsr_lab.data.degradations.bicubic import BicubicDegradation
from vsr_lab.ops.resize import bicubic_downsample, bicubic_upsample
from vsr_lab.data.synthetic import (
    SyntheticClipDataset,
    dihedral,
    load_photo,
    render_clip,
)

KEYS = ("gt", "lr", "flow_fw", "flow_bw", "valid_fw", "valid_bw")


def _same(a: dict, b: dict) -> bool:
    return a["name"] == b["name"] and all(torch.equal(a[k], b[k]) for k in KEYS)


def test_dihedral_gives_the_eight_orientations():
    image = torch.arange(12.0).reshape(1, 3, 4)  # no symmetry: every flip or rotation differs
    outs = [dihedral(image, k) for k in range(8)]
    assert torch.equal(outs[0], image) and len({(o.shape, tuple(o.flatten().tolist())) for o in outs}) == 8
    assert torch.equal(outs[1], image.flip(-1)) and torch.equal(outs[4], image.transpose(-1, -2))
    assert torch.equal(outs[3], image.rot90(2, (-2, -1)))  # both mirrors: a half turn


def test_photo_lists_are_disjoint_and_load_offline():
    assert len(VAL_PHOTOS) >= 2 and len(TRAIN_PHOTOS) >= 2
    assert not set(TRAIN_PHOTOS) & set(VAL_PHOTOS)
    for name in TRAIN_PHOTOS + VAL_PHOTOS:
        photo = load_photo(name)
        assert photo.dtype == torch.float32 and photo.shape[0] == 3
        assert min(photo.shape[1:]) >= 256, name
        assert 0.0 <= photo.min() and photo.max() <= 1.0
    grey = load_photo("brick")
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert load_photo("coffee") is load_photo("coffee")  # cached, not reloaded


def test_item_shapes_ranges_and_name():
    ds = SyntheticClipDataset("train", num_clips=3, num_frames=5, hr_size=32, scale=4)
    assert len(ds) == 3
    item = ds[1]
    assert item["gt"].shape == (5, 3, 32, 32)
    assert item["lr"].shape == (5, 3, 8, 8)
    for key in ("flow_fw", "flow_bw"):
        assert item[key].shape == (4, 2, 32, 32)
    for key in ("valid_fw", "valid_bw"):
        assert item[key].shape == (4, 1, 32, 32)
        assert set(item[key].unique().tolist()) <= {0.0, 1.0}
    for key in KEYS:
        assert item[key].dtype == torch.float32, key
    for key in ("gt", "lr"):
        assert 0.0 <= item[key].min() and item[key].max() <= 1.0
    assert item["name"] == f"{TRAIN_PHOTOS[1]}_00001"
    assert torch.equal(item["lr"], bicubic_downsample(item["gt"], 4))
    assert (item["gt"][1:] - item["gt"][:-1]).abs().mean() > 1e-3  # the camera moves


def test_items_are_deterministic_and_independent_of_order():
    a = SyntheticClipDataset("train", num_clips=4, num_frames=3, hr_size=32, seed=7)
    b = SyntheticClipDataset("train", num_clips=4, num_frames=3, hr_size=32, seed=7)
    later = b[3]
    assert _same(a[3], later) and _same(a[0], b[0])
    other_seed = SyntheticClipDataset("train", num_clips=4, num_frames=3, hr_size=32, seed=8)
    assert not torch.equal(a[0]["gt"], other_seed[0]["gt"])
    assert not torch.equal(a[0]["flow_fw"], other_seed[0]["flow_fw"])
    same_photo = SyntheticClipDataset("train", num_clips=4, num_frames=3, hr_size=32, seed=7,
                                      photos=["astronaut"])
    assert not torch.equal(same_photo[0]["gt"], same_photo[1]["gt"])  # index changes the path
    val = SyntheticClipDataset("val", num_clips=2, num_frames=3, hr_size=32, seed=7)
    assert val[0]["name"] == f"{VAL_PHOTOS[0]}_00000" and val[1]["name"] == f"{VAL_PHOTOS[1]}_00001"


def test_render_clip_is_deterministic_per_rng():
    photo = load_photo("rocket")
    args = (photo, 4, (24, 40))
    motion = {"max_shift": 3.0, "max_zoom": 0.03, "max_rotation_deg": 2.0}
    a = render_clip(*args, np.random.default_rng(5), **motion)
    b = render_clip(*args, np.random.default_rng(5), **motion)
    c = render_clip(*args, np.random.default_rng(6), **motion)
    assert a["gt"].shape == (4, 3, 24, 40) and a["flow_bw"].shape == (3, 2, 24, 40)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["gt"], c["gt"])


def test_zero_motion_gives_still_frames_and_zero_flow():
    ds = SyntheticClipDataset("val", num_clips=1, num_frames=4, hr_size=32, max_shift=0.0,
                              max_zoom=0.0, max_rotation_deg=0.0)
    item = ds[0]
    assert torch.equal(item["gt"], item["gt"][:1].expand_as(item["gt"]))
    assert torch.equal(item["flow_fw"], torch.zeros_like(item["flow_fw"]))
    assert torch.equal(item["flow_bw"], torch.zeros_like(item["flow_bw"]))
    assert item["valid_fw"].min() == 1.0 and item["valid_bw"].min() == 1.0


def test_every_window_stays_inside_the_photo():
    # A photo whose one-pixel outer ring is black: any sample touching it shows up in the frames.
    # The motion asked for is far more than this small photo holds, so the camera must zoom in.
    photo = torch.zeros(3, 60, 80)
    photo[:, 1:-1, 1:-1] = 0.5
    clip = render_clip(photo, 8, (48, 48), np.random.default_rng(0), max_shift=20.0, max_zoom=0.1,
                       max_rotation_deg=10.0)
    assert torch.allclose(clip["gt"], torch.full_like(clip["gt"], 0.5), atol=1e-6)
    assert clip["flow_fw"].abs().max() > 5.0  # it did move


def test_custom_degradation_gets_the_item_rng():
    seen = []

    def degrade(frames, rng):
        seen.append(rng.random())
        return frames[..., ::2, ::2]

    ds = SyntheticClipDataset("train", num_clips=1, num_frames=2, hr_size=16, scale=2, degradation=degrade)
    assert ds[0]["lr"].shape == (2, 3, 8, 8)
    ds[0]
    assert seen[0] == seen[1]  # the rng is the item's own, so random degradations repeat too


def test_bicubic_helpers():
    frames = torch.rand(2, 3, 3, 16, 24)
    down = bicubic_downsample(frames, 4)
    assert down.shape == (2, 3, 3, 4, 6) and 0.0 <= down.min() and down.max() <= 1.0
    assert torch.equal(BicubicDegradation(4)(frames[0]), down[0])
    up = bicubic_upsample(down, 4)
    assert up.shape == frames.shape and 0.0 <= up.min() and up.max() <= 1.0
    flat = torch.full((1, 3, 8, 8), 0.25)
    assert torch.allclose(bicubic_upsample(bicubic_downsample(flat, 2), 2), flat)
    with pytest.raises(ValueError, match="18x24 is not divisible by scale 4"):
        bicubic_downsample(torch.rand(3, 18, 24), 4)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        SyntheticClipDataset("tset", num_clips=1, num_frames=2, hr_size=32)
    with pytest.raises(ValueError, match="hr_size 30 is not divisible by scale 4"):
        SyntheticClipDataset("train", num_clips=1, num_frames=2, hr_size=30)
    with pytest.raises(ValueError, match="unknown photo.*'lena'"):
        SyntheticClipDataset("train", num_clips=1, num_frames=2, hr_size=32, photos=["coffee", "lena"])
    with pytest.raises(ValueError, match="unknown photo 'lena'"):
        load_photo("lena")
    with pytest.raises(IndexError, match="clip index 2"):
        SyntheticClipDataset("val", num_clips=2, num_frames=2, hr_size=32)[2]


def test_min_detail_redraws_flat_windows_deterministically():
    from vsr_lab.data.synthetic import lr_detail

    plain = SyntheticClipDataset("val", 24, 3, 64, seed=5)
    picky = SyntheticClipDataset("val", 24, 3, 64, seed=5, min_detail=0.006)
    plain_d = [lr_detail(plain[i]["gt"][0], plain[i]["lr"][0]) for i in range(24)]
    picky_d = [lr_detail(picky[i]["gt"][0], picky[i]["lr"][0]) for i in range(24)]
    assert min(plain_d) < 0.006 <= min(picky_d)
    assert torch.equal(picky[3]["gt"], picky[3]["gt"])
    # a clip that already passes is not redrawn
    keep = [i for i in range(24) if plain_d[i] >= 0.006]
    assert keep and all(torch.equal(plain[i]["gt"], picky[i]["gt"]) for i in keep)
