"""FolderClipDataset on small real clips: frame folders, a video file, and a paired LR tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from vsr_lab.media.paths import find_clips
from vsr_lab.data.degradations.bicubic import BicubicDegradation
from vsr_lab.data.folder_dataset import FolderClipDataset
from vsr_lab.media.clip_reader import read_clip
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.video_writer import VideoWriter
from vsr_lab.errors import UserError

SCALE = 4
H, W = 48, 64


def moving_frames(n: int, h: int = H, w: int = W, offset: int = 0) -> list[np.ndarray]:
    """A window moving over the photo and dimming 3 % a frame, so no frame is a shifted copy of
    another and every crop has one place in the clip."""
    photo = data.astronaut().astype(np.float64)
    y, x = 60 + offset, 120 + offset
    return [np.round(photo[y + 3 * i:y + 3 * i + h, x + 2 * i:x + 2 * i + w] * (1 - 0.03 * i)).astype(np.uint8)
            for i in range(n)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Two frame-folder clips (12 and 10 frames) in the REDS layout."""
    root = tmp_path_factory.mktemp("gt")
    write_frame_folder(moving_frames(12), root / "000")
    write_frame_folder(moving_frames(10, offset=40), root / "001")
    return root


@pytest.fixture(scope="module")
def lr_root(tmp_path_factory, root):
    """The paired LR tree: each GT clip bicubic-downsampled and stored as PNG (like REDS)."""
    lr_root = tmp_path_factory.mktemp("lr")
    for name in ("000", "001"):
        write_frame_folder(BicubicDegradation(SCALE)(read_clip(root / name)), lr_root / name)
    return lr_root


def locate(item_gt: torch.Tensor, full: torch.Tensor) -> tuple[int, int, int, bool]:
    """Find (start, top, left, flipped) such that item_gt is that window/crop of `full`."""
    t, _, h, w = item_gt.shape
    for start in range(full.shape[0] - t + 1):
        for top in range(full.shape[2] - h + 1):
            for left in range(full.shape[3] - w + 1):
                crop = full[start:start + t, :, top:top + h, left:left + w]
                for flipped in (False, True):
                    if torch.equal(crop.flip(-1) if flipped else crop, item_gt):
                        return start, top, left, flipped
    raise AssertionError("item is not a crop of the clip")


def test_train_item_shapes_and_range(root):
    ds = FolderClipDataset(root, num_frames=5, crop_size=32)
    assert len(ds) == 2
    item = ds[0]
    assert set(item) == {"lr", "gt", "name"} and item["name"] == "000"
    assert item["gt"].shape == (5, 3, 32, 32) and item["lr"].shape == (5, 3, 8, 8)
    assert item["gt"].dtype == item["lr"].dtype == torch.float32
    assert 0 <= item["gt"].min() and item["gt"].max() <= 1 and item["gt"].std() > 0.05


def test_train_is_deterministic_per_seed_and_epoch(root):
    def items(seed, epoch):
        ds = FolderClipDataset(root, num_frames=4, crop_size=16, seed=seed)
        ds.set_epoch(epoch)
        return [ds[i]["gt"] for i in range(len(ds))]

    same = items(0, 0)
    assert all(torch.equal(a, b) for a, b in zip(items(0, 0), same))
    assert not all(torch.equal(a, b) for a, b in zip(items(0, 1), same))
    assert not all(torch.equal(a, b) for a, b in zip(items(1, 0), same))


def test_train_crop_is_aligned_and_lr_is_the_degraded_gt_crop(root):
    ds = FolderClipDataset(root, num_frames=3, crop_size=16, seed=3)
    full = read_clip(root / "000")
    seen_flip = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        _, top, left, flipped = locate(item["gt"], full)
        assert top % SCALE == 0 and left % SCALE == 0  # on the LR grid
        seen_flip.add(flipped)
        assert torch.equal(item["lr"], BicubicDegradation(SCALE)(item["gt"]))
    assert seen_flip == {False, True}


def test_paired_lr_root_reads_the_matching_lr_crop(root, lr_root):
    ds = FolderClipDataset(root, num_frames=4, crop_size=16, lr_root=lr_root, seed=1)
    for index, name in enumerate(("000", "001")):
        full_gt, full_lr = read_clip(root / name), read_clip(lr_root / name)
        for epoch in range(3):
            ds.set_epoch(epoch)
            item = ds[index]
            assert item["name"] == name and item["lr"].shape == (4, 3, 4, 4)
            start, top, left, flipped = locate(item["gt"], full_gt)
            lr = full_lr[start:start + 4, :, top // SCALE:top // SCALE + 4, left // SCALE:left // SCALE + 4]
            assert torch.equal(item["lr"], lr.flip(-1) if flipped else lr)


def test_val_is_deterministic_first_frames_centre_crop(root):
    ds = FolderClipDataset(root, num_frames=4, crop_size=16, split="val")
    item = ds[0]
    full = read_clip(root / "000")
    # LR grid 12x16, crop 4 -> LR top/left (4, 6) -> HR (16, 24)
    assert torch.equal(item["gt"], full[:4, :, 16:32, 24:40])
    ds.set_epoch(5)
    assert torch.equal(ds[0]["gt"], item["gt"]) and torch.equal(ds[0]["lr"], item["lr"])


@pytest.mark.parametrize("num_frames", [None, 0])
def test_val_without_num_frames_takes_whole_clips(root, num_frames):
    ds = FolderClipDataset(root, num_frames=num_frames, split="val")
    assert ds[0]["gt"].shape == (12, 3, H, W) and ds[1]["gt"].shape == (10, 3, H, W)
    assert ds[1]["lr"].shape == (10, 3, H // SCALE, W // SCALE)


def test_gt_is_trimmed_to_a_multiple_of_scale(tmp_path):
    write_frame_folder(moving_frames(3, 50, 66), tmp_path / "odd")
    item = FolderClipDataset(tmp_path, num_frames=3, split="val")[0]
    assert torch.equal(item["gt"], read_clip(tmp_path / "odd")[..., :48, :64])
    assert item["lr"].shape == (3, 3, 12, 16)


def test_video_clips_and_random_degradation_get_the_item_rng(tmp_path):
    with VideoWriter(tmp_path / "vid.mp4", 24, crf=10) as writer:
        for frame in moving_frames(8):
            writer.write(frame)

    def noisy(gt, rng):
        lr = BicubicDegradation(SCALE)(gt)
        return lr + torch.from_numpy(rng.normal(0, 0.01, lr.shape).astype(np.float32))

    a = FolderClipDataset(tmp_path, num_frames=4, crop_size=16, degradation=noisy, seed=2)
    b = FolderClipDataset(tmp_path, num_frames=4, crop_size=16, degradation=noisy, seed=2)
    item = a[0]
    assert item["name"] == "vid" and item["gt"].shape == (4, 3, 16, 16)
    assert torch.equal(item["lr"], b[0]["lr"])
    locate(item["gt"], read_clip(tmp_path / "vid.mp4"))


def test_find_clips_names_folders_and_videos(tmp_path):
    write_frame_folder(moving_frames(1), tmp_path / "b")
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert {k: v.name for k, v in find_clips(tmp_path).items()} == {"a": "a.mp4", "b": "b"}


# ---- user errors name the clip or file at fault ----

def test_empty_or_missing_root(tmp_path):
    with pytest.raises(UserError, match=f"no clips .* in {tmp_path}"):
        FolderClipDataset(tmp_path, num_frames=2)
    with pytest.raises(UserError, match="clip root folder not found: .*missing"):
        FolderClipDataset(tmp_path / "missing", num_frames=2)


def test_clip_shorter_than_num_frames(root):
    with pytest.raises(UserError, match="clip .*001 has 10 frames, fewer than num_frames=11"):
        FolderClipDataset(root, num_frames=11)


def test_gt_lr_size_mismatch(tmp_path, root):
    write_frame_folder(moving_frames(12, 13, 16), tmp_path / "000")
    write_frame_folder(moving_frames(10, 12, 16), tmp_path / "001")
    with pytest.raises(UserError, match="GT clip .*000 is 64x48 but LR clip .*000 is 16x13: not exactly x4"):
        FolderClipDataset(root, num_frames=4, lr_root=tmp_path)


def test_gt_lr_length_mismatch(tmp_path, root):
    write_frame_folder(moving_frames(11, 12, 16), tmp_path / "000")
    write_frame_folder(moving_frames(10, 12, 16), tmp_path / "001")
    with pytest.raises(UserError, match="GT clip .*000 has 12 frames but LR clip .*000 has 11"):
        FolderClipDataset(root, num_frames=4, lr_root=tmp_path)


def test_missing_lr_clip(tmp_path, root):
    write_frame_folder(moving_frames(12, 12, 16), tmp_path / "000")
    with pytest.raises(UserError, match=f"no LR clip in {tmp_path} for GT clip\\(s\\) 001"):
        FolderClipDataset(root, num_frames=4, lr_root=tmp_path)


def test_crop_larger_than_clip(root):
    with pytest.raises(UserError, match="clip .*000 \\(64x48\\) is smaller than crop_size=52"):
        FolderClipDataset(root, num_frames=4, crop_size=52)


def test_bad_settings_are_value_errors(root):
    with pytest.raises(ValueError, match="multiple of scale"):
        FolderClipDataset(root, num_frames=4, crop_size=30)
    with pytest.raises(ValueError, match="split"):
        FolderClipDataset(root, num_frames=4, split="test")
    with pytest.raises(ValueError, match="num_frames"):
        FolderClipDataset(root, num_frames=0)
