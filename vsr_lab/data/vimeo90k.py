"""`data.source: vimeo90k`: Vimeo-90K septuplets (`sequences/00001/0001/im1.png` ... `im7.png`).

`data.root` is the `vimeo_septuplet` folder with `sequences/`, `sep_trainlist.txt` and
`sep_testlist.txt`; `data.lr_root` an optional LR `sequences` folder of the same layout
(e.g. vimeo_septuplet_matlabLRx4/sequences), else the LR is made by `data.degradation`.
train: the train list less `data.val_clips` septuplets spread evenly over it, which are the
validation split; test: the test list (Vimeo-90K-T). Clip headers are read lazily (64 612 clips).
"""

from __future__ import annotations

from pathlib import Path

from vsr_lab.data.folder_dataset import FolderClipDataset, folder_options
from vsr_lab.errors import UserError
from vsr_lab.registry import DATA_SOURCES

LISTS = {"train": "sep_trainlist.txt", "val": "sep_trainlist.txt", "test": "sep_testlist.txt"}


def read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"config: key 'data.root': Vimeo-90K list not found: {path}")
    entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not entries:
        raise UserError(f"Vimeo-90K list {path} is empty")
    return entries


def held_out(entries: list[str], count: int) -> set[str]:
    """`count` entries spread evenly over the list (the validation septuplets)."""
    count = min(count, len(entries) - 1)
    return {entries[(i * len(entries)) // count] for i in range(count)} if count > 0 else set()


@DATA_SOURCES.register("vimeo90k")
def build_vimeo90k(cfg, split: str, degradation) -> FolderClipDataset:
    d = cfg.data
    if not d.root:
        raise UserError("config: data.source is 'vimeo90k' but data.root (the vimeo_septuplet folder) is not set")
    root = Path(d.root).expanduser()
    entries = read_list(root / LISTS[split])
    if split != "test":
        val = held_out(entries, d.val_clips)
        entries = [e for e in entries if (e in val) == (split == "val")]
    names = {e: e.replace("/", "_") for e in entries}
    clips = {names[e]: root / "sequences" / e for e in entries}
    lr_clips = {names[e]: Path(d.lr_root).expanduser() / e for e in entries} if d.lr_root else None
    for path in list(clips.values())[:1] + (list(lr_clips.values())[:1] if lr_clips else []):
        if not path.is_dir():
            raise UserError(f"Vimeo-90K septuplet folder not found: {path}")
    return FolderClipDataset(None, clips=clips, lr_clips=lr_clips, degradation=degradation, lazy=True,
                             **folder_options(cfg, split == "train"))
