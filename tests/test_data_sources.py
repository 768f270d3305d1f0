"""Data sources: photos as moving-camera clips with exact flow, REDS and Vimeo-90K layouts,
clip augmentations, and a test split held out from training and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from vsr_lab.config import load_config
from vsr_lab.data.datamodule import build_dataset
from vsr_lab.data.folder_dataset import FolderClipDataset
from vsr_lab.data.builtin_photos import TEST_PHOTOS, TRAIN_PHOTOS, TRAINABLE_PHOTOS, VAL_PHOTOS
from vsr_lab.data.synthetic import load_photo
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.errors import UserError
from vsr_lab.ops.flow import flow_warp

from helpers.common import REPO


def cfg_with(*overrides: str):
    return load_config(REPO / "experiments" / "instavsr_tiny.yaml",
                       ["data.num_frames=3", "data.hr_size=32", "data.val_frames=3", "data.val_hr_size=32",
                        "data.val_clips=2", *overrides])


# ----- built-in training photos (data.train_photos) -------------------------------------------
def test_train_photos_pick_the_photos_training_clips_come_from():
    assert cfg_with().data.train_photos == list(TRAIN_PHOTOS)  # the schema default is the built-in set
    ds = build_dataset(cfg_with("data.train_photos=[moon,page,astronaut]"), "train")
    assert [ds[i]["name"] for i in range(4)] == ["moon_00000", "page_00001", "astronaut_00002", "moon_00003"]
    grey = ds[0]["gt"]
    assert torch.equal(grey[:, 0], grey[:, 2]) and grey.std() > 0.02  # three equal channels, not flat
    val = build_dataset(cfg_with("data.train_photos=[moon]"), "val")
    assert val[0]["name"].startswith(VAL_PHOTOS[0])  # validation keeps its own photos
    assert not set(TRAINABLE_PHOTOS) & (set(VAL_PHOTOS) | set(TEST_PHOTOS))
    for name in set(TRAINABLE_PHOTOS) - set(TRAIN_PHOTOS):
        assert min(load_photo(name).shape[1:]) >= 160  # room for a 64-px crop and its motion


@pytest.mark.parametrize("photo, message", [
    ("coffee", "key 'data.train_photos': 'coffee' is a validation photo, held out from training; choose from"),
    ("gravel", "key 'data.train_photos': 'gravel' is a test photo, held out from training"),
    ("lena", "key 'data.train_photos': 'lena' is not one of"),
])
def test_train_photos_refuse_held_out_and_unknown_photos(photo, message):
    with pytest.raises(UserError, match=message):
        cfg_with(f"data.train_photos=[moon,{photo}]")


def _ramp_signs(item) -> tuple[int, int]:
    """Signs of the mean left-to-right and top-to-bottom slope of a clip's first frame."""
    frame = item["gt"][0, 0]
    dx, dy = float((frame[:, 1:] - frame[:, :-1]).mean()), float((frame[1:] - frame[:-1]).mean())
    return tuple(int(np.sign(v)) if abs(v) > 1e-3 else 0 for v in (dx, dy))


def test_photo_flips_show_each_training_clip_one_of_eight_orientations(tmp_path):
    ramp = np.repeat(np.linspace(0, 255, 300)[None, :, None], 200, axis=0).repeat(3, axis=2)  # brighter rightwards
    Image.fromarray(ramp.astype(np.uint8)).save(tmp_path / "ramp.png")
    base = ["data.source=photos", f"data.photo_root={tmp_path}", f"data.val_photo_root={tmp_path}",
            "data.min_detail=0", "data.degradation.type=bicubic"]
    plain = build_dataset(cfg_with(*base), "train")
    flipped = build_dataset(cfg_with(*base, "data.photo_flips=true"), "train")
    assert {_ramp_signs(plain[i]) for i in range(24)} == {(1, 0)}
    signs = [_ramp_signs(flipped[i]) for i in range(24)]
    assert set(signs) == {(1, 0), (-1, 0), (0, 1), (0, -1)}  # mirrored, and rotated by 90 degrees
    assert signs == [_ramp_signs(flipped[i]) for i in range(24)]  # drawn per clip, the same every time
    for i in range(4):  # the exact flow stays exact on a flipped photo
        item = flipped[i]
        aligned = flow_warp(item["gt"][1:], item["flow_fw"])
        err = ((aligned - item["gt"][:-1]).abs() * item["valid_fw"]).sum() / (3 * item["valid_fw"].sum())
        assert err < 0.01
    val = build_dataset(cfg_with(*base, "data.photo_flips=true"), "val")
    assert {_ramp_signs(val[i]) for i in range(2)} == {(1, 0)}  # validation clips are never flipped


# ----- photos ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(skdata.chelsea()).save(root / "cat.png")
    Image.fromarray(skdata.camera()).save(root / "grey.jpg")  # grey files become 3-channel clips
    return root


def test_a_photo_folder_becomes_clips_with_exact_flow(photo_root):
    ds = build_dataset(cfg_with("data.source=photos", f"data.photo_root={photo_root}"), "train")
    first, second = ds[0], ds[1]
    assert first["name"] == "cat_00000" and second["name"] == "grey_00001"
    assert first["gt"].shape == (3, 3, 32, 32) and first["lr"].shape == (3, 3, 8, 8)
    assert torch.equal(second["gt"][:, 0], second["gt"][:, 1])  # the grey photo
    for item in (first, second):
        aligned = flow_warp(item["gt"][1:], item["flow_fw"])  # frame t+1 brought back to t by the exact flow
        err = ((aligned - item["gt"][:-1]).abs() * item["valid_fw"]).sum() / (3 * item["valid_fw"].sum())
        assert err < 0.01 and (item["gt"][1:] - item["gt"][:-1]).abs().mean() > 2 * err  # it moves
    val = build_dataset(cfg_with("data.source=photos", f"data.photo_root={photo_root}"), "val")
    assert val[0]["name"].startswith(VAL_PHOTOS[0])  # the built-in validation photos, not the training folder
    own_val = build_dataset(cfg_with("data.source=photos", f"data.photo_root={photo_root}",
                                     f"data.val_photo_root={photo_root}"), "val")
    assert own_val[1]["name"] == "grey_00001"


def test_photo_folder_errors_name_the_key(tmp_path):
    (tmp_path / "notes.txt").write_text("no photos here")
    with pytest.raises(UserError, match="data.photo_root': no image files .* in folder .*"):
        build_dataset(cfg_with("data.source=photos", f"data.photo_root={tmp_path}"), "train")
    with pytest.raises(UserError, match="data.photo_root is not set"):
        build_dataset(cfg_with("data.source=photos"), "train")
    with pytest.raises(UserError, match="data.val_photo_root': photo folder not found"):
        build_dataset(cfg_with("data.source=photos", f"data.val_photo_root={tmp_path / 'nope'}"), "val")


# ----- held-out test split --------------------------------------------------------------------
def test_synthetic_test_clips_use_photos_of_neither_train_nor_val():
    assert not set(TEST_PHOTOS) & (set(TRAIN_PHOTOS) | set(VAL_PHOTOS))
    for name in TEST_PHOTOS:
        assert min(load_photo(name).shape[1:]) >= 256
    cfg = cfg_with("data.val_clips=4")
    names = [build_dataset(cfg, "test")[i]["name"] for i in range(4)]
    assert [n.rsplit("_", 1)[0] for n in names] == list(TEST_PHOTOS)


def test_folder_test_split_reads_test_root_only(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        write_frame_folder([rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)],
                           tmp_path / split / f"{split}_clip")
    base = ["data.source=folder", f"data.root={tmp_path / 'val'}", f"data.val_root={tmp_path / 'val'}"]
    with pytest.raises(UserError, match="data.test_root is not set .*never reads data.val_root"):
        build_dataset(cfg_with(*base), "test")
    test = build_dataset(cfg_with(*base, f"data.test_root={tmp_path / 'test'}"), "test")
    assert [test[i]["name"] for i in range(len(test))] == ["test_clip"]


# ----- REDS and Vimeo-90K layouts -------------------------------------------------------------
def _frames(n: int, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_reds_holds_out_reds4_for_validation(tmp_path):
    for name in ("000", "001", "002", "011", "015", "020"):
        write_frame_folder(_frames(4), tmp_path / "train_sharp" / name)
        write_frame_folder(_frames(4, 4), tmp_path / "train_sharp_bicubic" / "X4" / name)
    base = ["data.source=reds", f"data.root={tmp_path / 'train_sharp'}", "data.hr_size=8",
            "loss.adversarial_latent.enabled=false"]  # 8-px crops are too small for the latent critic
    train = build_dataset(cfg_with(*base), "train")
    val = build_dataset(cfg_with(*base, f"data.lr_root={tmp_path / 'train_sharp_bicubic' / 'X4'}"), "val")
    assert train.names == ["001", "002"] and val.names == ["000", "011", "015", "020"]
    assert val.lr_paths[0] == tmp_path / "train_sharp_bicubic" / "X4" / "000"
    with pytest.raises(UserError, match="data.reds_val_clips': no clip 099"):
        build_dataset(cfg_with(*base, "data.reds_val_clips=['000','099']"), "val")  # quoted: YAML reads 011 as 9


def test_vimeo90k_septuplets_and_lists(tmp_path):
    train_ids = [f"00001/{i:04d}" for i in range(1, 7)]
    test_ids = ["00002/0001"]
    for sid in train_ids + test_ids:
        folder = tmp_path / "sequences" / sid
        folder.mkdir(parents=True)
        for t, frame in enumerate(_frames(7, seed=len(sid))):
            Image.fromarray(frame).save(folder / f"im{t + 1}.png")
    (tmp_path / "sep_trainlist.txt").write_text("\n".join(train_ids) + "\n")
    (tmp_path / "sep_testlist.txt").write_text("\n".join(test_ids) + "\n")
    base = ["data.source=vimeo90k", f"data.root={tmp_path}", "data.hr_size=8", "data.val_clips=2",
            "loss.adversarial_latent.enabled=false"]
    train, val, test = (build_dataset(cfg_with(*base), s) for s in ("train", "val", "test"))
    assert len(train) == 4 and len(val) == 2 and not set(train.names) & set(val.names)
    assert test.names == ["00002_0001"] and test[0]["gt"].shape[0] == 3  # data.val_frames
    assert train[0]["gt"].shape == (3, 3, 8, 8)
    with pytest.raises(UserError, match="Vimeo-90K list not found"):
        build_dataset(cfg_with("data.source=vimeo90k", f"data.root={tmp_path / 'sequences'}"), "train")


# ----- augmentations --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ramp_clip(tmp_path_factory):
    """Frame t is a vertical ramp plus 20 t, so order, interval and vertical flips can be read back."""
    root = tmp_path_factory.mktemp("ramp")
    ramp = np.arange(16, dtype=np.float64)[:, None, None] * 4
    write_frame_folder([np.broadcast_to(ramp + 20 * t, (16, 16, 3)).astype(np.uint8) for t in range(8)],
                       root / "ramp")
    return root


def _frame_numbers(gt: torch.Tensor) -> list[int]:
    return [round((float(f[0, :, 0].min()) * 255) / 20) for f in gt]


def test_time_reversal_intervals_and_vertical_flips_apply_to_the_whole_clip(ramp_clip):
    ds = FolderClipDataset(ramp_clip, num_frames=3, crop_size=16, vflip=True, reverse=True, intervals=[2], hflip=False)
    orders, flips = set(), set()
    for draw in range(16):
        gt = ds.draw(0, draw)["gt"]
        frames = _frame_numbers(gt)
        assert abs(frames[1] - frames[0]) == 2 and frames[2] - frames[1] == frames[1] - frames[0]
        orders.add(frames[1] > frames[0])
        down = [bool(f[0, -1, 0] > f[0, 0, 0]) for f in gt]
        assert len(set(down)) == 1  # the same flip for every frame
        flips.add(down[0])
    assert orders == {True, False} and flips == {True, False}
    plain = FolderClipDataset(ramp_clip, num_frames=3, crop_size=16)
    assert all(_frame_numbers(plain.draw(0, d)["gt"]) == sorted(_frame_numbers(plain.draw(0, d)["gt"]))
               for d in range(6))
    with pytest.raises(UserError, match="fewer than num_frames=5 at interval 2"):
        FolderClipDataset(ramp_clip, num_frames=5, intervals=[2])


def test_degrade_size_degrades_a_larger_window_and_crops_after(tmp_path):
    """`data.degrade_size`: the LR is the crop of the degraded whole window (a codec sees a real
    frame size), the GT and exact flow are the same crop, and validity is judged inside the crop."""
    import numpy as np

    from vsr_lab.data.synthetic import SyntheticClipDataset
    from vsr_lab.ops.flow import flow_warp

    seen = []

    def degrade(gt, rng):  # records the size it is given; bicubic like the default
        from vsr_lab.ops.resize import bicubic_downsample
        seen.append(tuple(gt.shape[-2:]))
        return bicubic_downsample(gt, 4)

    whole = SyntheticClipDataset("train", num_clips=3, num_frames=3, hr_size=32, scale=4, seed=1,
                                 degradation=degrade, degrade_size=96)
    item = whole[0]
    assert seen == [(96, 96)] and item["gt"].shape == (3, 3, 32, 32) and item["lr"].shape == (3, 3, 8, 8)
    assert item["flow_fw"].shape == (2, 2, 32, 32)
    # the LR is the crop of the window's LR: downscaling the cropped GT gives it back away from the border
    from vsr_lab.ops.resize import bicubic_downsample
    assert torch.allclose(bicubic_downsample(item["gt"], 4)[..., 2:-2, 2:-2], item["lr"][..., 2:-2, 2:-2], atol=2e-2)
    # the exact flow still warps frame t+1 onto frame t where it is valid (inside the crop)
    warped = flow_warp(item["gt"][1:], item["flow_fw"])
    valid = item["valid_fw"].expand_as(warped) > 0.5
    assert (warped - item["gt"][:-1]).abs()[valid].mean() < 0.02 and valid.float().mean() > 0.5
    again = SyntheticClipDataset("train", num_clips=3, num_frames=3, hr_size=32, scale=4, seed=1,
                                 degradation=degrade, degrade_size=96)[0]
    assert torch.equal(again["lr"], item["lr"]) and np.array_equal(again["gt"].numpy(), item["gt"].numpy())
    with pytest.raises(UserError, match=r"key 'data.degrade_size' must be at least data.hr_size \(64\)"):
        load_config(None, ["data.degrade_size=32"])
